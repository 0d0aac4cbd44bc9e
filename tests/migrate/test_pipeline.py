"""The write loop: large reads cut into batches; parallel upserts commit in source order."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from opsbook.migrate.checkpoint import Checkpoint
from opsbook.migrate.exact import TopK
from opsbook.migrate.hashes import HashStore
from opsbook.migrate.pipeline import commit_every, write_collection
from opsbook.migrate.source import open_source
from opsbook.migrate.target import open_target

COL = "product-docs"


class SlowFirstBatches:
    """A memory target whose first upserts finish last (what parallel workers can do)."""

    kind = "server"

    def __init__(self) -> None:
        self.inner = open_target("memory")
        self.lock = threading.Lock()
        self.calls = 0

    def upsert(self, name: str, ids: list, vectors: np.ndarray, payloads: list) -> None:
        with self.lock:
            self.calls += 1
            delay = 0.3 if self.calls <= 2 else 0.0
        time.sleep(delay)
        with self.lock:
            self.inner.upsert(name, ids, vectors, payloads)


class RecordingCheckpoint(Checkpoint):
    """Records each advance, and how many digests were stored when it happened."""

    def advance(self, next_offset: int) -> None:
        self.offsets.append(next_offset)
        self.stored.append(self.hashes.count())
        super().advance(next_offset)


@pytest.mark.parametrize(("workers", "read_page"), [(1, 1000), (3, 60)])
def test_batches_commit_in_order(
    demo_store: Path, tmp_path: Path, workers: int, read_page: int
) -> None:
    source = open_source(str(demo_store), work_dir=str(tmp_path))
    target = SlowFirstBatches()
    try:
        info = source.info(COL)
        target.inner.create_collection("staging", info.dim, info.distance)
        cp = RecordingCheckpoint(
            tmp_path / "cp.json", "s", COL, "t", COL, "staging", info.count, "d"
        )
        cp.offsets, cp.stored = [], []
        hashes = cp.hashes = HashStore(tmp_path / "h.sqlite")
        truth = TopK(np.ones((2, info.dim), dtype=np.float32), info.distance)
        stats = write_collection(
            source, target, info, cp, 20, hashes, truth, read_page=read_page, workers=workers
        )
        every = commit_every(20, read_page)  # 200 records for pages of 1000, 60 for 60
        assert cp.offsets == [*range(every, info.count, every), info.count, info.count]
        assert cp.stored == cp.offsets  # the digests of a batch are stored before it counts
        assert [s.offset for s in stats] == list(range(0, info.count, 20))
        assert hashes.count() == info.count == target.inner.count("staging") == truth.seen
        assert cp.done
    finally:
        source.close()


def test_close_releases_the_chroma_client(demo_store: Path, tmp_path: Path) -> None:
    """close() releases chromadb's System (it holds every collection's loaded index)."""
    source = open_source(str(demo_store), work_dir=str(tmp_path))
    assert len(source.read(COL, 0, 5).ids) == 5
    source.close()
    assert source.client._closed  # noqa: SLF001 - chromadb's own flag
    assert not source.copy_dir.exists()

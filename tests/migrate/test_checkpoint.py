"""Checkpoints are keyed so a rehearsal never poisons the real run; resume refuses drift."""

from __future__ import annotations

from pathlib import Path

import chromadb
import pytest
from chromadb.config import Settings

from opsbook.migrate import migrate
from opsbook.migrate.checkpoint import checkpoint_key, checkpoint_path, load
from opsbook.migrate.errors import CheckpointMismatch


def test_key_depends_on_every_part() -> None:
    base = ("dir:/a", "docs", "local:/q", "docs")
    keys = {checkpoint_key(*base)}
    for i, other in enumerate(("dir:/b", "docs2", "server:http://q", "docs_live")):
        parts = list(base)
        parts[i] = other
        keys.add(checkpoint_key(*parts))
    assert len(keys) == 5


def test_rehearsal_does_not_poison_the_real_run(store: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    rehearsal = migrate(
        chroma_path=str(store),
        work_dir=str(work),
        dry_run=False,
        qdrant_path=str(tmp_path / "rehearsal"),
        collections=["release-notes"],
        backup=False,
    )
    real = migrate(
        chroma_path=str(store),
        work_dir=str(work),
        dry_run=False,
        resume=True,
        qdrant_path=str(tmp_path / "real"),
        collections=["release-notes"],
        backup=False,
    )
    assert real.collections[0].resumed_from == 0  # the rehearsal's progress is not reused
    assert real.integrity_ok and rehearsal.integrity_ok
    assert len(list((work / "checkpoints").glob("*.json"))) == 2


def test_resume_refuses_a_changed_source(store: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    first = migrate(
        chroma_path=str(store),
        work_dir=str(work),
        dry_run=False,
        collections=["release-notes"],
        backup=False,
        cutover=False,
    )
    cp = load(
        checkpoint_path(
            work,
            f"dir:{store.resolve()}",
            "release-notes",
            f"local:{(work / 'qdrant').resolve()}",
            "release-notes",
        )
    )
    assert cp is not None and cp.done and cp.staging == first.collections[0].staging
    client = chromadb.PersistentClient(
        path=str(store), settings=Settings(anonymized_telemetry=False)
    )
    client.get_collection("release-notes", embedding_function=None).add(
        ids=["late-arrival"], embeddings=[[0.5] * 384]
    )
    with pytest.raises(CheckpointMismatch, match="changed since the checkpoint"):
        migrate(
            chroma_path=str(store),
            work_dir=str(work),
            dry_run=False,
            collections=["release-notes"],
            backup=False,
            resume=True,
        )

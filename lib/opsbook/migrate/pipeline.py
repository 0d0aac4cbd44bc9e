"""The write loop: read a page, validate it, upsert it, checkpoint it.

A reader thread fetches the next page while the current one is written (Chroma reads
and Qdrant writes overlap where either releases the GIL). The checkpoint advances only
after an upsert returned, so a process killed at any instant resumes at a batch that
is at most replayed, never skipped.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from opsbook.migrate.checkpoint import Checkpoint
from opsbook.migrate.errors import ValidationFailed
from opsbook.migrate.exact import unit_rows
from opsbook.migrate.ids import point_ids
from opsbook.migrate.payload import build_payload
from opsbook.migrate.source import Batch, ChromaSource, CollectionInfo
from opsbook.migrate.target import Target
from opsbook.migrate.validate import Findings, check_batch


@dataclass(frozen=True)
class BatchStat:
    """Timing of one written batch (seconds since the collection started)."""

    collection: str
    offset: int
    records: int
    started_s: float
    ended_s: float

    @property
    def records_per_s(self) -> float:
        took = self.ended_s - self.started_s
        return self.records / took if took > 0 else float("nan")


_DONE = object()


def prefetch(batches: Iterator[Batch], depth: int = 2) -> Iterator[Batch]:
    """Yield from ``batches`` while a thread reads ahead up to ``depth`` pages."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def reader() -> None:
        try:
            for b in batches:
                while not stop.is_set():
                    try:
                        q.put(b, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_DONE)
        except BaseException as exc:  # handed to the consumer, re-raised there
            q.put(exc)

    thread = threading.Thread(target=reader, name="chroma-reader", daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def to_points(batch: Batch) -> tuple[list[str], list[dict]]:
    """Point ids and payloads of a batch (vectors are passed through unchanged)."""
    payloads = [
        build_payload(i, d, m)
        for i, d, m in zip(batch.ids, batch.documents, batch.metadatas, strict=True)
    ]
    return point_ids(batch.ids), payloads


def write_collection(
    source: ChromaSource,
    target: Target,
    info: CollectionInfo,
    checkpoint: Checkpoint,
    batch_size: int,
    on_batch: Callable[[BatchStat], None] | None = None,
    validate: bool = True,
) -> list[BatchStat]:
    """Write every record from the checkpoint's offset on into its staging collection."""
    stats: list[BatchStat] = []
    findings = Findings()
    t0 = time.perf_counter()
    pages = source.batches(info.name, batch_size, start=checkpoint.next_offset)
    for batch in prefetch(pages):
        started = time.perf_counter() - t0
        if validate:
            check_batch(batch, findings, info.dim, info.distance)
            if not findings.ok:
                raise ValidationFailed(
                    f"collection {info.name!r}: {dict(findings.counts)} at offset {batch.offset}; "
                    f"first: {findings.examples[:3]}",
                    hint="run the dry run to list every problem; fix the source, then run again",
                )
        ids, payloads = to_points(batch)
        vectors = unit_rows(batch.vectors, info.distance)
        target.upsert(checkpoint.staging, ids, vectors, payloads)
        checkpoint.advance(batch.offset + len(batch))
        stat = BatchStat(info.name, batch.offset, len(batch), started, time.perf_counter() - t0)
        stats.append(stat)
        if on_batch is not None:
            on_batch(stat)
    checkpoint.finish()
    return stats

"""The write loop: read large pages, write them in batches, hash each batch, commit often.

A reader thread fetches pages of ``read_page`` records (1,000-5,000 read ~3x faster than
100) and feeds them to the exact ground truth (numpy releases the GIL), while the main
thread validates and hashes batches of ``batch_size``. Up to ``2 * workers`` batches are
in flight at once (``workers > 1`` for a server target, as qdrant-client's
``upload_points(parallel=...)`` does). Memory is bounded by the pages in the reader's
queue and the batches in flight.

Upserts run in a writer thread (``workers`` of them for a server), so the next batch is
validated, hashed and turned into payloads while the previous one is written. For a
server the upload waits on the network without the GIL; in process, Chroma's ``get``,
qdrant_edge's point conversion and its ``update`` hold the GIL for most of their time
(``benchmarks/migrate_costs.py``), so the threads overlap little and the write rate is
bounded by the sum of those per-record costs (about that of the bare copy).
Batches are committed (their hashes stored, then the checkpoint advanced) only after
their upserts returned, in source order, every :func:`commit_every` records (about ten
batches) rather than after each one: a process killed at any instant resumes at a batch
that is at most replayed (at most that many records), never skipped.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from opsbook.migrate.checkpoint import Checkpoint
from opsbook.migrate.errors import ValidationFailed
from opsbook.migrate.exact import TopK, unit_rows
from opsbook.migrate.hashes import HashStore, Row, batch_rows
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


def prefetch(
    batches: Iterator[Batch], depth: int = 2, on_item: Callable[[Batch], None] | None = None
) -> Iterator[Batch]:
    """Yield from ``batches`` while a thread reads ahead up to ``depth`` pages.

    ``on_item`` runs in the reader thread for every page before it is queued.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def reader() -> None:
        try:
            for b in batches:
                if on_item is not None:
                    on_item(b)
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


def split(page: Batch, size: int) -> Iterator[Batch]:
    """A page cut into batches of ``size`` records (offsets kept)."""
    for s in range(0, len(page), size):
        yield replace(
            page,
            offset=page.offset + s,
            ids=page.ids[s : s + size],
            vectors=None if page.vectors is None else page.vectors[s : s + size],
            documents=page.documents[s : s + size],
            metadatas=page.metadatas[s : s + size],
            dims=page.dims[s : s + size],
        )


@dataclass
class _InFlight:
    batch: Batch
    rows: list[Row]
    started: float
    upsert: Future


def commit_every(batch_size: int, read_page: int) -> int:
    """Records between two commits (hashes stored, checkpoint advanced): about ten batches,
    at most a page, a whole number of batches. A kill replays at most this many records.

    >>> commit_every(100, 2000), commit_every(20, 60), commit_every(500, 100)
    (1000, 60, 500)
    """
    every = max(batch_size, min(read_page, 10 * batch_size))
    return every - every % batch_size


def prepare(
    batch: Batch, info: CollectionInfo
) -> tuple[list[str], np.ndarray, list[dict], list[Row]]:
    """Point ids, vectors as written (unit rows for Cosine), payloads and digest rows."""
    ids, payloads = to_points(batch)
    vectors = unit_rows(batch.vectors, info.distance)
    return ids, vectors, payloads, batch_rows(ids, payloads, vectors)


def write_collection(
    source: ChromaSource,
    target: Target,
    info: CollectionInfo,
    checkpoint: Checkpoint,
    batch_size: int,
    hashes: HashStore,
    truth: TopK | None = None,
    on_batch: Callable[[BatchStat], None] | None = None,
    validate: bool = True,
    read_page: int = 2000,
    workers: int = 1,
) -> list[BatchStat]:
    """Write every record from the checkpoint's offset on into its staging collection.

    Every record read also goes into ``truth`` (the exact top-k of the sampled queries)
    and its digests into ``hashes``.
    """
    stats: list[BatchStat] = []
    findings = Findings()
    t0 = time.perf_counter()
    pages = source.batches(info.name, max(read_page, batch_size), start=checkpoint.next_offset)
    every = commit_every(batch_size, read_page)
    done: list[Row] = []  # digests of upserted batches not yet committed

    def feed_truth(page: Batch) -> None:
        if truth is not None and page.vectors is not None and len(page) and page.vectors.size:
            truth.add(page.ids, page.vectors)

    def finished(item: _InFlight) -> None:
        item.upsert.result()  # re-raises the writer's error
        done.extend(item.rows)
        end = item.batch.offset + len(item.batch)
        if len(done) >= every or end >= checkpoint.total:
            commit(end)
        stat = BatchStat(
            info.name, item.batch.offset, len(item.batch), item.started, time.perf_counter() - t0
        )
        stats.append(stat)
        if on_batch is not None:
            on_batch(stat)

    def commit(end: int) -> None:
        hashes.put(done)  # the digests first: a kill in between replays, never skips
        done.clear()
        checkpoint.advance(end)

    # One writer thread even for an embedded target: what the engine does without the GIL
    # overlaps the next batch's preparation (little for qdrant_edge: module docstring).
    pool = ThreadPoolExecutor(max(workers, 1), thread_name_prefix="upsert")
    pending: deque[_InFlight] = deque()
    last_end = checkpoint.next_offset
    try:
        for page in prefetch(pages, on_item=feed_truth):
            for batch in split(page, batch_size):
                started = time.perf_counter() - t0
                if validate:
                    _validate(batch, findings, info)
                ids, vectors, payloads, rows = prepare(batch, info)
                upsert = pool.submit(target.upsert, checkpoint.staging, ids, vectors, payloads)
                pending.append(_InFlight(batch, rows, started, upsert))
                last_end = batch.offset + len(batch)
                while pending and (len(pending) > 2 * max(workers, 1) or pending[0].upsert.done()):
                    finished(pending.popleft())
        while pending:
            finished(pending.popleft())
        if done:
            commit(last_end)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    checkpoint.finish()
    return stats


def _validate(batch: Batch, findings: Findings, info: CollectionInfo) -> None:
    check_batch(batch, findings, info.dim, info.distance)
    if not findings.ok:
        raise ValidationFailed(
            f"collection {info.name!r}: {dict(findings.counts)} at offset {batch.offset}; "
            f"first: {findings.examples[:3]}",
            hint="run the dry run to list every problem; fix the source, then run again",
        )

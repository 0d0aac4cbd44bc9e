"""The write loop: read large pages, write them in batches, hash and checkpoint each batch.

A reader thread fetches pages of ``read_page`` records (1,000-5,000 read ~3x faster than
100) and feeds them to the exact ground truth (numpy releases the GIL), while the main
thread validates, hashes and upserts batches of ``batch_size``. With ``workers > 1`` (a
server target) up to ``2 * workers`` batches are in flight at once, as qdrant-client's
``upload_points(parallel=...)`` does; batches are committed in source order. Memory is
bounded by the pages in the reader's queue and the batches in flight.

A batch is committed (its hashes stored, then the checkpoint advanced) only after its
upsert returned, and only when every earlier batch was: a process killed at any instant
resumes at a batch that is at most replayed, never skipped.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

from opsbook.migrate.checkpoint import Checkpoint
from opsbook.migrate.errors import ValidationFailed
from opsbook.migrate.exact import TopK, unit_rows
from opsbook.migrate.hashes import HashStore, Row, record_row
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
    upsert: Future | None = None


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

    def feed_truth(page: Batch) -> None:
        if truth is not None and page.vectors is not None and len(page) and page.vectors.size:
            truth.add(page.ids, page.vectors)

    def commit(item: _InFlight) -> None:
        if item.upsert is not None:
            item.upsert.result()  # re-raises the worker's error
        hashes.put(item.rows)
        checkpoint.advance(item.batch.offset + len(item.batch))
        stat = BatchStat(
            info.name, item.batch.offset, len(item.batch), item.started, time.perf_counter() - t0
        )
        stats.append(stat)
        if on_batch is not None:
            on_batch(stat)

    pool = ThreadPoolExecutor(workers, thread_name_prefix="upsert") if workers > 1 else None
    pending: deque[_InFlight] = deque()
    try:
        for page in prefetch(pages, on_item=feed_truth):
            for batch in split(page, batch_size):
                started = time.perf_counter() - t0
                if validate:
                    _validate(batch, findings, info)
                ids, payloads = to_points(batch)
                vectors = unit_rows(batch.vectors, info.distance)
                rows = [record_row(*r) for r in zip(ids, payloads, vectors, strict=True)]
                item = _InFlight(batch, rows, started)
                if pool is None:
                    target.upsert(checkpoint.staging, ids, vectors, payloads)
                    commit(item)
                    continue
                item.upsert = pool.submit(target.upsert, checkpoint.staging, ids, vectors, payloads)
                pending.append(item)
                while pending and (len(pending) > 2 * workers or pending[0].upsert.done()):
                    commit(pending.popleft())
        while pending:
            commit(pending.popleft())
    finally:
        if pool is not None:
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

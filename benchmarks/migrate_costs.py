"""Where a migrated record's time goes: the write and verification paths cut into steps.

Each step runs alone on the same real records (read from a Chroma store, so payloads have
the demo store's mix of str, int, float, bool and list values) and is timed in CPU
seconds of the calling thread (``time.thread_time``), the best of ``--repeats``: on a
shared host CPU time moves much less with the load than wall time does. Every figure is
printed in µs per record and as a share of the bare copy measured in the same run (Chroma
page read + the target's point conversion + upsert, nothing else), which is what
``benchmarks/migrate.py`` calls the baseline.

Also printed:

* the cost of one payload value by type (qdrant_edge converts a str or float value only
  after failed integer extractions, an int or bool straight away);
* the target's engine alone (prebuilt operations) at batch sizes 100 / 500 / 2000 with
  and without its write-ahead log, to see whether a per-call cost would pay for
  coalescing batches;
* whether the engines release the GIL: the share of its solo speed a pure-Python thread
  keeps while ``update``, ``query_batch``, ``scroll`` and a Chroma page read run (1.0 =
  released, ~0 = held);
* the verification steps: scroll, vector list → float32, digest comparison, and exact
  search in ns per (query, point) pair.

Usage: .venv/bin/python benchmarks/migrate_costs.py [--store DIR] [--records 10000]
       (without --store a 10,000-record demo store is generated in a temp folder, ~30 s)
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def cpu_us(fn: Callable[[], Any], n: int, repeats: int) -> float:
    """Best thread-CPU time of ``fn`` in µs per record."""
    best = float("inf")
    for _ in range(repeats):
        t = time.thread_time()
        fn()
        best = min(best, time.thread_time() - t)
    return 1e6 * best / n


def gil_share(work: Callable[[], Any]) -> tuple[float, float]:
    """(share of its solo rate a pure-Python thread keeps while ``work`` runs, seconds)."""

    def spin(stop: threading.Event, out: list[int]) -> None:
        n = 0
        while not stop.is_set():
            n += 1
        out.append(n)

    stop, during = threading.Event(), []
    thread = threading.Thread(target=spin, args=(stop, during))
    thread.start()
    t = time.perf_counter()
    work()
    took = time.perf_counter() - t
    stop.set()
    thread.join()
    stop, alone = threading.Event(), []
    thread = threading.Thread(target=spin, args=(stop, alone))
    thread.start()
    time.sleep(took)
    stop.set()
    thread.join()
    return during[0] / max(alone[0], 1), took


def shard(root: Path, name: str, dim: int, distance: str, wal: bool = True) -> Any:
    import qdrant_edge as qe

    config = qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(size=dim, distance=getattr(qe.Distance, distance)),
        wal_enabled=None if wal else False,
    )
    return qe.EdgeShard.create(str(root / name), config)


def main() -> None:  # noqa: PLR0915 - one linear report
    import qdrant_edge as qe

    from opsbook.migrate import make_demo_chroma
    from opsbook.migrate.hashes import HashStore, batch_rows
    from opsbook.migrate.pipeline import prepare, split, to_points
    from opsbook.migrate.source import open_source
    from opsbook.migrate.target import EdgeTarget
    from opsbook.migrate.validate import Findings, check_batch
    from opsbook.migrate.verify import VerifyReport, check_records

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", default="", help="a Chroma store (default: generate one)")
    parser.add_argument("--records", type=int, default=10_000, help="records timed per step")
    parser.add_argument("--read-page", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=200, help="exact-search queries timed")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-migrate-costs-"))
    r = args.repeats
    try:
        store = Path(args.store) if args.store else scratch / "store"
        if not args.store:
            make_demo_chroma(store, n_docs=args.records, seed=1)
        load0 = os.getloadavg()[0]
        source = open_source(store, work_dir=scratch / "work")
        name = source.names()[-1]  # "support-articles": cosine, the largest
        info = source.info(name)
        n = min(args.records, info.count)
        page = args.read_page

        def read_all() -> list:
            return list(itertools.islice(source.batches(name, page), -(-n // page)))

        us: dict[str, float] = {}
        us["Chroma page read (get with embeddings)"] = cpu_us(read_all, n, r)
        pages = read_all()
        batches = [b for p in pages for b in split(p, 100)]
        n = sum(len(b) for b in batches)
        findings = Findings()
        us["validation (check_batch)"] = cpu_us(
            lambda: [check_batch(b, findings, info.dim, info.distance) for b in batches], n, r
        )
        us["payload dicts and point ids (to_points)"] = cpu_us(
            lambda: [to_points(b) for b in batches], n, r
        )
        prepared = [prepare(b, info) for b in batches]
        us["content digests (batch_rows)"] = cpu_us(
            lambda: [batch_rows(ids, pl, v) for ids, v, pl, _ in prepared], n, r
        )
        us["vectors to lists (tolist)"] = cpu_us(
            lambda: [v.tolist() for _, v, _, _ in prepared], n, r
        )
        lists = [v.tolist() for _, v, _, _ in prepared]

        def points(with_payload: bool) -> list:
            return [
                [
                    qe.Point(i, v, p if with_payload else None)
                    for i, v, p in zip(ids, vl, pl, strict=True)
                ]
                for (ids, _, pl, _), vl in zip(prepared, lists, strict=True)
            ]

        us["qe.Point without payload"] = cpu_us(lambda: points(False), n, r)
        us["qe.Point with the payload"] = cpu_us(lambda: points(True), n, r)
        built = points(True)
        us["UpdateOperation.upsert_points"] = cpu_us(
            lambda: [qe.UpdateOperation.upsert_points(p) for p in built], n, r
        )

        def engine(batch: int, wal: bool, with_payload: bool = True) -> float:
            flat = [p for ps in (built if with_payload else points(False)) for p in ps]
            ops = [
                qe.UpdateOperation.upsert_points(flat[s : s + batch]) for s in range(0, n, batch)
            ]
            best = float("inf")
            for k in range(r):
                sh = shard(
                    scratch,
                    f"engine-{batch}-{wal}-{with_payload}-{k}",
                    info.dim,
                    info.distance,
                    wal,
                )
                t = time.thread_time()
                for op in ops:
                    sh.update(op)
                best = min(best, time.thread_time() - t)
                sh.close()
            return 1e6 * best / n

        update = {(b, w): engine(b, w) for b in (100, 500, 2000) for w in (True, False)}
        us["shard.update (batch 100, WAL)"] = update[(100, True)]
        bare = (
            us["Chroma page read (get with embeddings)"]
            + us["vectors to lists (tolist)"]
            + us["payload dicts and point ids (to_points)"]
            + us["qe.Point with the payload"]
            + us["UpdateOperation.upsert_points"]
            + us["shard.update (batch 100, WAL)"]
        )
        print(
            f"{n:,} records of {name!r} ({info.dim}-d {info.distance}), read page {page}; "
            f"load {load0:.1f}\nwrite path, CPU µs per record (share of the bare copy, "
            f"{bare:.0f} µs/record = {1e6 / bare:,.0f} records/s on one core):"
        )
        for label, value in us.items():
            print(f"  {label:<42} {value:7.1f} µs  {value / bare:6.1%}")
        payload_part = us["qe.Point with the payload"] - us["qe.Point without payload"]
        print(
            f"  {'-> payload conversion alone':<42} {payload_part:7.1f} µs  {payload_part / bare:6.1%}"
        )

        print("one payload value, by type (µs per value, 10 values per point, 20,000 points):")
        vec = lists[0][0]
        empty = cpu_us(lambda: [qe.Point(1, vec, {}) for _ in range(20_000)], 20_000, r)
        samples = {"str": "kb", "float": 0.25, "int": 7, "bool": True, "None": None}
        for kind, value in samples.items():
            payload = {f"k{i}": value for i in range(10)}
            each = cpu_us(lambda p=payload: [qe.Point(1, vec, p) for _ in range(20_000)], 20_000, r)
            print(f"  {kind:<6} {(each - empty) / 10:6.2f} µs")

        print("engine alone, prebuilt operations (CPU µs per record; x = per record vs batch 100):")
        for wal in (True, False):
            row = "  ".join(
                f"batch {b}: {update[(b, wal)]:5.1f} (x{update[(b, wal)] / update[(100, wal)]:.2f})"
                for b in (100, 500, 2000)
            )
            print(f"  WAL {'on ' if wal else 'off'}  {row}")
        no_payload = engine(100, True, with_payload=False)
        print(f"  without payloads, batch 100, WAL on: {no_payload:5.1f}")

        target = EdgeTarget(scratch / "target")
        target.create_collection("c", info.dim or 0, info.distance)
        hashes = HashStore(scratch / "hashes.sqlite")
        for ids, v, pl, rows in prepared:
            target.upsert("c", ids, v, pl)
            hashes.put(rows)
        target.reopen()
        sh = target._shard("c")  # noqa: SLF001 - the raw engine, to time its own steps
        scroll_all = lambda: list(target.scroll_records("c"))  # noqa: E731
        request = qe.ScrollRequest(offset=None, limit=n, with_payload=True, with_vector=True)
        raw, _ = sh.scroll(request)
        queries = np.asarray(lists[0][: args.queries] * 1, dtype=np.float32)
        queries = queries + 0.01 * np.random.default_rng(0).standard_normal(queries.shape).astype(
            np.float32
        )
        verify = {
            "engine scroll (points as Python objects)": cpu_us(lambda: sh.scroll(request), n, r),
            "vector lists built from a scrolled point": cpu_us(
                lambda: [p.vector for p in raw], n, r
            ),
            "scroll_records (scroll + float32 rows)": cpu_us(scroll_all, n, r),
        }
        verify["check_records (scroll + digests compared)"] = cpu_us(
            lambda: check_records(VerifyReport("c", "c", n), target, hashes, 2000), n, r
        )
        report = VerifyReport("c", "c", n)
        check_records(report, target, hashes, 2000)
        assert report.ok, report.mismatches  # the timed path really compared every record
        search_s = float("inf")  # CPU of every thread: the engine searches in its own pool
        for _ in range(r):
            t = time.process_time()
            target.search("c", queries, 10)
            search_s = min(search_s, time.process_time() - t)
        per_pair = 1e9 * search_s / len(queries) / n
        print("verification, CPU µs per record:")
        for label, value in verify.items():
            print(f"  {label:<42} {value:7.1f} µs  {value / bare:6.1%} of the bare copy")
        print(
            f"  exact search: {per_pair:.1f} ns CPU per (query, point) pair; 1,000 queries "
            f"cost {per_pair:.0f} µs per record, {per_pair / bare:.1%} of the bare copy"
        )

        print("GIL: share of a pure-Python thread's solo speed kept while the engine runs")
        flat = [p for ps in built for p in ps]
        ops = [qe.UpdateOperation.upsert_points(flat[s : s + 2000]) for s in range(0, n, 2000)]
        fresh = shard(scratch, "gil", info.dim or 0, info.distance)
        for label, work in (
            ("update (2,000-point operations)", lambda: [fresh.update(op) for op in ops]),
            ("query_batch (exact)", lambda: target.search("c", queries, 10)),
            ("scroll with vectors", lambda: sh.scroll(request)),
            ("Chroma page read", read_all),
        ):
            share, took = gil_share(work)
            print(f"  {label:<34} {share:5.2f} over {took:.2f}s")
        fresh.close()
        hashes.close()
        target.close()
        source.close()
        print(f"load {load0:.1f} -> {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

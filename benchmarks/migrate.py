"""Chroma → Qdrant migration throughput, verification cost and peak memory, against a bare copy.

For each dataset (demo stores of 14,365, 100,000 and optionally 1,000,000 384-d records)
and target, measured in the same run on the same machine, each measurement in a fresh
child process (so its peak RSS is its own):

* baseline: copy the store, open the copy, read every record in pages of ``--read-page``
  and upsert the same points (same ids, payloads, unit vectors for cosine) in batches of
  ``--batch-size`` into a fresh target: no validation, no hashes, no checkpoint, no
  ground truth, no prefetch thread, no verification;
* migrate: ``migrate(backup=False, cutover=True)`` with the defaults (1,000 sampled
  queries per collection): validation, content hashes and checkpoint per batch, exact
  ground truth fed by the reader thread, then verification (one scroll of the target,
  exact search of the sampled queries) and the alias switch.

Printed: records/s end to end, write records/s, verification time / write time, peak
RSS split into anonymous memory (heap: ids, pages, batches) and file pages mapped into
the process (the target's segments and Chroma's index files, which the kernel can drop),
sampled every 0.2 s, the ratio of the migration's write rate to the baseline's, and the
1-minute load average at the start of each measurement (the host is shared). With
``--repeats N`` the measurements are interleaved and the median of each is printed.

Stores are generated (slow through Chroma's API: ~10 min per 100k records on a loaded
2-core host); ``--store-cache DIR`` keeps them in DIR/demo-<size>-seed1 for the next run.

Usage: .venv/bin/python benchmarks/migrate.py [--sizes 14365,100000] [--targets edge,local]
       .venv/bin/python benchmarks/migrate.py --sizes 1000000 --targets edge \
           --store-cache /work/cache/chroma-1m
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class RssSampler:
    """Peak anonymous and file-backed resident memory of this process (from /proc)."""

    def __init__(self, every_s: float = 0.2) -> None:
        self.peak = {"RssAnon": 0.0, "RssFile": 0.0}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(every_s,), daemon=True)

    def _sample(self) -> None:
        try:
            with open("/proc/self/status") as fh:
                for line in fh:
                    key = line.split(":", 1)[0]
                    if key in self.peak:
                        self.peak[key] = max(self.peak[key], int(line.split()[1]) / 1024.0)
        except OSError:  # not Linux: only the total peak is reported
            pass

    def _run(self, every_s: float) -> None:
        while not self.stop.wait(every_s):
            self._sample()

    def __enter__(self) -> RssSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self._sample()

    def figures(self) -> dict:
        return {
            "rss_mb": _peak_rss_mb(),
            "anon_mb": self.peak["RssAnon"],
            "file_mb": self.peak["RssFile"],
        }


def baseline(store: str, target_kind: str, scratch: str, batch: int, page: int) -> dict:
    """Bare copy: read everything, upsert everything, nothing else."""
    from opsbook.migrate.pipeline import split, to_points, unit_rows
    from opsbook.migrate.source import open_source
    from opsbook.migrate.target import open_target

    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    with RssSampler() as rss:
        source = open_source(store, work_dir=scratch)
        target = open_target(target_kind, Path(scratch) / f"bare-{uuid.uuid4().hex[:6]}")
        n = 0
        try:
            for name in source.names():
                info = source.info(name)
                target.create_collection(name, info.dim or 0, info.distance)
                for pg in source.batches(name, page):
                    for b in split(pg, batch):
                        ids, payloads = to_points(b)
                        target.upsert(name, ids, unit_rows(b.vectors, info.distance), payloads)
                        n += len(b)
        finally:
            target.close()
            source.close()
    return {"s": time.perf_counter() - t0, "n": n, "load": load} | rss.figures()


def pipeline(store: str, target_kind: str, scratch: str, batch: int, page: int) -> dict:
    from opsbook.migrate import migrate

    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    with RssSampler() as rss:
        result = migrate(
            chroma_path=store,
            work_dir=str(Path(scratch) / f"run-{uuid.uuid4().hex[:6]}"),
            target=target_kind,
            dry_run=False,
            backup=False,
            batch_size=batch,
            read_page=page,
        )
    took = time.perf_counter() - t0
    assert result.integrity_ok and result.cutover_done, result.mismatches()
    recall = result.recall_at_10()
    return {
        "s": took,
        "n": result.total_records,
        "write_s": result.write_s,
        "verify_s": result.verify_s,
        "load": load,
        "chroma_recall": {k: v["chroma"] for k, v in recall.items()},
    } | rss.figures()


def _in_child(fn: Any, *args: Any) -> dict:
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def _median(runs: list[dict]) -> dict:
    """The run with the median duration (an actual run, so its figures belong together)."""
    return sorted(runs, key=lambda r: r["s"])[(len(runs) - 1) // 2]


def _rss(r: dict) -> str:
    return f"peak RSS {r['rss_mb']:5,.0f} MB (anon {r['anon_mb']:5,.0f}, file {r['file_mb']:5,.0f})"


def bench(label: str, store: Path, kind: str, batch: int, page: int, repeats: int) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="bench-migrate-"))
    try:
        bases, runs = [], []
        for i in range(repeats):  # interleaved, so both see the same load on average
            bases.append(_in_child(baseline, str(store), kind, str(scratch), batch, page))
            runs.append(_in_child(pipeline, str(store), kind, str(scratch), batch, page))
            if repeats > 1:
                b, r = bases[-1], runs[-1]
                print(
                    f"  run {i + 1}: baseline {b['n'] / b['s']:7,.0f} rec/s (load {b['load']:.1f})"
                    f" | migrate {r['n'] / r['s']:7,.0f} rec/s end to end, write "
                    f"{r['n'] / r['write_s']:7,.0f} rec/s, verify/write "
                    f"{r['verify_s'] / r['write_s']:.2f} (load {r['load']:.1f})",
                    flush=True,
                )
        base, run = _median(bases), _median(runs)
        n = run["n"]
        what = "median of" if repeats > 1 else "one run of"
        print(
            f"{label:<16} {kind:<5} ({what} {repeats}) baseline {base['s']:7.1f}s "
            f"{n / base['s']:7,.0f} rec/s ({_rss(base)}) | migrate end to end {run['s']:7.1f}s "
            f"{n / run['s']:7,.0f} rec/s = x{base['s'] / run['s']:.2f} of baseline, write "
            f"{run['write_s']:6.1f}s {n / run['write_s']:7,.0f} rec/s = "
            f"x{(n / run['write_s']) / (n / base['s']):.2f} of baseline, verify "
            f"{run['verify_s']:6.1f}s = {run['verify_s'] / run['write_s']:.2f} x write ({_rss(run)})"
            f" | load {statistics.mean(r['load'] for r in bases + runs):.1f}"
            f" | Chroma HNSW recall@10 {run['chroma_recall']}",
            flush=True,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def demo_store(size: int, caches: list[Path], scratch: Path) -> tuple[Path, bool]:
    """A demo store of ``size`` records: a cached one, else generated (and cached when asked).

    Returns the store and whether it must be deleted after use.
    """
    from opsbook.migrate import make_demo_chroma

    name = f"demo-{size}-seed1"
    for cache in caches:
        if (cache / f"{name}.complete").exists():
            print(f"{size:,} x 384 store from {cache / name}", flush=True)
            return cache / name, False
    dest = caches[0] / name if caches else scratch / name
    shutil.rmtree(dest, ignore_errors=True)  # an unfinished earlier build
    t0 = time.perf_counter()
    make_demo_chroma(dest, n_docs=size, seed=1)
    took = time.perf_counter() - t0
    print(f"{size:,} x 384 store generated in {took:.1f}s", flush=True)
    if caches:
        (caches[0] / f"{name}.complete").write_text(f"{took:.1f}\n")
    return dest, not caches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="14365,100000", help="store sizes (records)")
    parser.add_argument("--targets", default="edge,local")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--read-page", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=1, help="interleaved runs, median kept")
    parser.add_argument(
        "--store-cache",
        default="",
        help="comma-separated folders holding demo-<size>-seed1 stores (built into the first)",
    )
    args = parser.parse_args()
    caches = [Path(c) for c in args.store_cache.split(",") if c]
    for cache in caches[:1]:
        cache.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="bench-stores-"))
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            store, temporary = demo_store(size, caches, root)
            for kind in args.targets.split(","):
                label = f"{size:,} x 384"
                bench(label, store, kind, args.batch_size, args.read_page, args.repeats)
            if temporary:
                shutil.rmtree(store, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

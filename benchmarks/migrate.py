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
RSS, and the ratio of the migration's write rate to the baseline's.

Usage: .venv/bin/python benchmarks/migrate.py [--sizes 14365,100000] [--targets edge,local]
       .venv/bin/python benchmarks/migrate.py --sizes 1000000 --targets edge
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def baseline(store: str, target_kind: str, scratch: str, batch: int, page: int) -> dict:
    """Bare copy: read everything, upsert everything, nothing else."""
    from opsbook.migrate.pipeline import split, to_points, unit_rows
    from opsbook.migrate.source import open_source
    from opsbook.migrate.target import open_target

    t0 = time.perf_counter()
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
    return {"s": time.perf_counter() - t0, "n": n, "rss_mb": _peak_rss_mb()}


def pipeline(store: str, target_kind: str, scratch: str, batch: int, page: int) -> dict:
    from opsbook.migrate import migrate

    t0 = time.perf_counter()
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
        "rss_mb": _peak_rss_mb(),
        "chroma_recall": {k: v["chroma"] for k, v in recall.items()},
    }


def _in_child(fn: Any, *args: Any) -> dict:
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def bench(label: str, store: Path, kind: str, batch: int, page: int, repeats: int) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="bench-migrate-"))
    try:
        bases, runs = [], []
        for _ in range(repeats):  # interleaved; the best of each is compared
            bases.append(_in_child(baseline, str(store), kind, str(scratch), batch, page))
            runs.append(_in_child(pipeline, str(store), kind, str(scratch), batch, page))
        base = min(bases, key=lambda r: r["s"])
        run = min(runs, key=lambda r: r["s"])
        n = run["n"]
        print(
            f"{label:<16} {kind:<5} baseline {base['s']:7.1f}s {n / base['s']:7,.0f} rec/s "
            f"(peak RSS {base['rss_mb']:5,.0f} MB) | migrate end to end {run['s']:7.1f}s "
            f"{n / run['s']:7,.0f} rec/s, write {run['write_s']:6.1f}s "
            f"{n / run['write_s']:7,.0f} rec/s = x{(n / run['write_s']) / (n / base['s']):.2f} "
            f"of baseline, verify {run['verify_s']:6.1f}s = {run['verify_s'] / run['write_s']:.2f}"
            f" x write (peak RSS {run['rss_mb']:5,.0f} MB) | Chroma HNSW recall@10 "
            f"{run['chroma_recall']}",
            flush=True,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="14365,100000", help="store sizes (records)")
    parser.add_argument("--targets", default="edge,local")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--read-page", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=1, help="interleaved runs, best kept")
    args = parser.parse_args()
    from opsbook.migrate import make_demo_chroma

    root = Path(tempfile.mkdtemp(prefix="bench-stores-"))
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            t0 = time.perf_counter()
            store = make_demo_chroma(root / f"s{size}", n_docs=size, seed=1)
            print(f"{size:,} x 384 store generated in {time.perf_counter() - t0:.1f}s", flush=True)
            for kind in args.targets.split(","):
                label = f"{size:,} x 384"
                bench(label, store, kind, args.batch_size, args.read_page, args.repeats)
            shutil.rmtree(store, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

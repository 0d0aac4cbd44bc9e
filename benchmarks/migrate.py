"""Chroma → Qdrant migration throughput, and the pipeline's overhead over a bare copy.

For each dataset (the 14,365-document demo store, and 100k × 384-d) and target, measured
in the same run on the same machine:

Baseline and pipeline run twice, interleaved; the best of each is compared.

* baseline: copy the store, open the copy, read every page with ``col.get`` and upsert the
  same points (same ids, payloads, unit vectors for cosine) into a fresh target — no
  validation, no checkpoint, no prefetch thread, no verification;
* pipeline: ``migrate(verify=False, backup=False, cutover=False)`` — validation, checkpoint
  per batch, prefetching reader;
* verified: ``migrate(verify=True, cutover=True)``; verification time as a fraction of
  the write time.

Usage: .venv/bin/python benchmarks/migrate.py [--quick] [--targets edge,local]
It takes a few minutes (the 100k store alone takes ~1 min to generate).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from opsbook.migrate import make_demo_chroma, migrate
from opsbook.migrate.pipeline import to_points, unit_rows
from opsbook.migrate.source import open_source
from opsbook.migrate.target import open_target


def baseline(store: Path, target_kind: str, scratch: Path, batch_size: int) -> tuple[float, int]:
    """Bare copy: read everything, upsert everything, nothing else."""
    t0 = time.perf_counter()
    source = open_source(str(store), work_dir=str(scratch))
    target = open_target(target_kind, scratch / f"bare-{uuid.uuid4().hex[:6]}")
    n = 0
    try:
        for name in source.names():
            info = source.info(name)
            target.create_collection(name, info.dim or 0, info.distance)
            for batch in source.batches(name, batch_size):
                ids, payloads = to_points(batch)
                target.upsert(name, ids, unit_rows(batch.vectors, info.distance), payloads)
                n += len(batch)
    finally:
        target.close()
        source.close()
    return time.perf_counter() - t0, n


def pipeline(
    store: Path, target_kind: str, scratch: Path, batch_size: int, verify: bool
) -> tuple[float, object]:
    work = scratch / f"run-{uuid.uuid4().hex[:6]}"
    t0 = time.perf_counter()
    result = migrate(
        chroma_path=str(store),
        work_dir=str(work),
        target=target_kind,
        dry_run=False,
        backup=False,
        verify=verify,
        cutover=verify,
        batch_size=batch_size,
    )
    return time.perf_counter() - t0, result


def bench(label: str, store: Path, target_kind: str, batch_size: int) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="bench-migrate-"))
    try:
        bases, pipes = [], []
        for _ in range(2):  # interleaved, best of two: the machine is shared and noisy
            base_s, n = baseline(store, target_kind, scratch, batch_size)
            bases.append(base_s)
            pipes.append(pipeline(store, target_kind, scratch, batch_size, verify=False)[0])
        full_s, full = pipeline(store, target_kind, scratch, batch_size, verify=True)
        base_best, pipe_s = min(bases), min(pipes)
        assert full.integrity_ok, "verification failed during the benchmark"
        print(
            f"{label:<22} {target_kind:<6} {n:>7}  baseline {base_best:7.1f}s "
            f"({n / base_best:8,.0f} rec/s)  pipeline {pipe_s:7.1f}s ({n / pipe_s:8,.0f} rec/s)  "
            f"overhead x{pipe_s / base_best:.2f}  | verified run {full_s:6.1f}s, "
            f"verify {full.verify_s:5.1f}s = {full.verify_s / full.write_s:.0%} of write time "
            f"({full.verify_s / full_s:.0%} of the run)",
            flush=True,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="only the 14,365-doc store")
    parser.add_argument("--targets", default="edge,local", help="targets for the demo store")
    parser.add_argument("--large-targets", default="edge", help="targets for 100k x 384")
    parser.add_argument("--batch-size", type=int, default=100)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-stores-"))
    try:
        t0 = time.perf_counter()
        demo = make_demo_chroma(root / "demo", n_docs=14365)
        print(f"demo store 14,365 docs generated in {time.perf_counter() - t0:.1f}s", flush=True)
        for kind in args.targets.split(","):
            bench("14,365 docs x 384", demo, kind, args.batch_size)
        if not args.quick:
            t0 = time.perf_counter()
            big = make_demo_chroma(root / "big", n_docs=100_000, seed=1)
            print(f"100k store generated in {time.perf_counter() - t0:.1f}s", flush=True)
            for kind in args.large_targets.split(","):
                bench("100,000 docs x 384", big, kind, args.batch_size)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Structured metadata (Loki 3.x) in metric queries: columnar path vs general path.

Writes N JSONL records carrying ``structuredMetadata`` (what ``opsbook loki export`` writes
for a Loki 3.x tenant) to a temp dir, loads them with ``LocalLogs`` and times two metric
queries that group by metadata labels, with the columnar path on and off, in the same
run. Prints the load time, the best of 3 per path, their ratio and whether both answers
are identical. The machine's load average is printed: on a shared host every figure moves
with it.

    .venv/bin/python benchmarks/logql_metadata.py                 # 200,000 lines
    .venv/bin/python benchmarks/logql_metadata.py --lines 50000
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from opsbook.loki.local import LocalLogs
from opsbook.loki.logql import columnar
from opsbook.loki.timeutil import NS_PER_S, ns_to_rfc3339

START_NS = 1_795_824_000 * NS_PER_S  # 2026-11-28T00:00:00Z
QUERIES = (
    'sum by (tenant) (count_over_time({app="api"} | json | status >= 500 [5m]))',
    'sum by (route, tenant) (sum_over_time({app="api"} | json | unwrap latency_ms [5m]))',
)


def write_export(path: Path, lines: int, seed: int = 1) -> int:
    """JSONL records one millisecond apart; returns the end of the data (ns)."""
    rng = random.Random(seed)
    with path.open("wb") as out:
        for i in range(lines):
            body = {
                "status": rng.choice([200, 200, 200, 500, 503]),
                "route": rng.choice(["/api/chat", "/api/search"]),
                "latency_ms": round(rng.random() * 100, 3),
            }
            record = {
                "labels": {"app": "api"},
                "line": orjson.dumps(body).decode(),
                "timestamp": ns_to_rfc3339(START_NS + i * 1_000_000),
                "structuredMetadata": {"trace_id": f"t{i % 1000}", "tenant": rng.choice("xyz")},
            }
            out.write(orjson.dumps(record) + b"\n")
    return START_NS + lines * 1_000_000


def best_of(store: LocalLogs, query: str, at: int, fast: bool) -> tuple[float, Any]:
    columnar.FAST_PATH = fast
    best, answer = float("inf"), None
    for _ in range(3):
        started = time.perf_counter()
        answer = store.query(query, time=at)
        best = min(best, time.perf_counter() - started)
    return best, answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "metadata.jsonl"
        end = write_export(path, args.lines)
        started = time.perf_counter()
        store = LocalLogs(path)
        print(f"load {args.lines:,} lines with metadata: {time.perf_counter() - started:.2f} s")
        for query in QUERIES:
            general, slow_answer = best_of(store, query, end, fast=False)
            fast, fast_answer = best_of(store, query, end, fast=True)
            print(query)
            print(
                f"  general {general:.3f} s  columnar {fast:.3f} s  ratio {general / fast:.1f}x"
                f"  identical: {slow_answer == fast_answer}"
            )
    columnar.FAST_PATH = True
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

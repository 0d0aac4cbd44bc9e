"""LogQL engine benchmark: cold (load + evaluate) vs reading + orjson-parsing the file.

Generates N simulated JSON log lines (logcli ``--output=jsonl`` shape) for a few services
in a temp dir, then prints, for two queries, the cold time (a fresh ``LocalLogs``: load +
first evaluation, nothing cached) as a ratio to the baseline of reading the file and
``orjson.loads``-ing every line in the same run, and the warm throughput of the same
query on already-loaded logs (parsed fields cached per stream). The machine's load
average is printed before and after: on a shared host every figure moves with it.

    .venv/bin/python benchmarks/logql.py            # 1,000,000 lines
    .venv/bin/python benchmarks/logql.py --lines 200000
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

import orjson

from opsbook.loki.local import LocalLogs
from opsbook.loki.timeutil import NS_PER_S, ns_to_rfc3339

SERVICES = ("backend-ts", "backend-rag", "vector-db", "redis")
ROUTES = ("/api/chat", "/api/search", "/api/health", "/api/upload")
START_NS = 1_795_824_000 * NS_PER_S  # 2026-11-28T00:00:00Z
QUERIES = {
    "error rate": 'sum by (service) (rate({env="prod"} | json | status >= 500 [1m]))',
    "p95 latency": (
        'quantile_over_time(0.95, {env="prod"} | json | unwrap latency_ms [5m]) by (service)'
    ),
}


OTHER_SHAPE = 'sum by (level) (count_over_time({env="prod"} | json [1m]))'


def generate(path: Path, lines: int, seed: int = 7) -> tuple[int, int]:
    """Write ``lines`` JSONL records over two hours; returns (start_ns, end_ns)."""
    rng = random.Random(seed)
    span_ns = 2 * 3600 * NS_PER_S
    step = span_ns // lines
    with path.open("wb") as out:
        for i in range(lines):
            service = SERVICES[i % len(SERVICES)]
            status = 500 if rng.random() < 0.02 else 200
            body = {
                "level": "error" if status >= 500 else "info",
                "route": ROUTES[rng.randrange(len(ROUTES))],
                "status": status,
                "latency_ms": round(rng.lognormvariate(4.5, 0.6), 1),
                "msg": "request served",
            }
            record = {
                "labels": {"env": "prod", "service": service},
                "line": orjson.dumps(body).decode(),
                "timestamp": ns_to_rfc3339(START_NS + i * step + rng.randrange(step)),
            }
            out.write(orjson.dumps(record) + b"\n")
    return START_NS, START_NS + span_ns


class Clock:
    """Wall and CPU seconds of a block (CPU counts every thread of this process)."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def baseline(path: Path) -> Clock:
    """Read the file and orjson-parse every line."""
    with Clock() as clock, path.open("rb") as handle:
        for line in handle:
            orjson.loads(line)
    return clock


def cold_run(path: Path, query: str, start: int, end: int) -> tuple[Clock, Clock, int]:
    """(load, first evaluation, series) on a fresh LocalLogs: nothing loaded or cached."""
    with Clock() as load:
        logs = LocalLogs(path)
    with Clock() as first:
        result = logs.query_range(query, start, end, step="1m")
    return load, first, len(result["result"])


def warm_run(logs: LocalLogs, query: str, start: int, end: int) -> float:
    """Seconds for the query on loaded logs; run it once first unless already run."""
    with Clock() as clock:
        logs.query_range(query, start, end, step="1m")
    return clock.wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="cold runs per query (best kept)")
    args = parser.parse_args()
    print(f"load average before: {_loadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "logs.jsonl"
        start, end = generate(path, args.lines)
        size_mb = path.stat().st_size / 1e6
        print(f"{args.lines:,} lines, {size_mb:.0f} MB ({path.name})")
        base = min((baseline(path) for _ in range(3)), key=lambda c: c.wall)
        print(f"baseline read + orjson.loads per line: {base.wall:.2f} s (cpu {base.cpu:.2f} s)")
        shared = LocalLogs(path)  # for warm figures: a json query of another shape runs first
        shared.query_range(OTHER_SHAPE, start, end, step="1m")
        for name, query in QUERIES.items():
            runs = [cold_run(path, query, start, end) for _ in range(args.repeat)]
            load, first, series = min(runs, key=lambda run: run[0].wall + run[1].wall)
            cold, cpu = load.wall + first.wall, load.cpu + first.cpu
            print(
                f"{name:12s} series={series} load={load.wall:.2f} s eval={first.wall:.2f} s "
                f"cold={cold:.2f} s ratio={cold / base.wall:.2f}x baseline (goal <= 2x); "
                f"cpu ratio={cpu / base.cpu:.2f}x"
            )
            switch = warm_run(shared, query, start, end)  # lines parsed, labels not yet read
            warm = warm_run(shared, query, start, end)
            print(
                f"{'':12s} warm={warm:.3f} s = {args.lines / warm:,.0f} lines/s; "
                f"after a different json query on the same logs: {switch:.3f} s"
            )
    print(f"load average after: {_loadavg()}")


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()

"""LogQL engine benchmark: cold (load + evaluate) vs reading + orjson-parsing the file.

Generates N simulated JSON log lines (logcli ``--output=jsonl`` shape) for a few services
in a temp dir, then prints, for two queries, the cold time as a ratio to the baseline of
reading the file and ``orjson.loads``-ing every line in the same run, and the warm
throughput on already-loaded logs.

    .venv/bin/python benchmarks/logql.py            # 1,000,000 lines
    .venv/bin/python benchmarks/logql.py --lines 200000
"""

from __future__ import annotations

import argparse
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


def baseline(path: Path) -> float:
    """Seconds to read the file and orjson-parse every line."""
    began = time.perf_counter()
    with path.open("rb") as handle:
        for line in handle:
            orjson.loads(line)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "logs.jsonl"
        start, end = generate(path, args.lines)
        size_mb = path.stat().st_size / 1e6
        print(f"{args.lines:,} lines, {size_mb:.0f} MB ({path.name})")
        base = min(baseline(path) for _ in range(2))
        print(f"baseline read + orjson.loads per line: {base:.2f} s")
        began = time.perf_counter()
        logs = LocalLogs(path)
        load = time.perf_counter() - began
        print(f"LocalLogs load: {load:.2f} s ({load / base:.2f}x baseline)")
        for name, query in QUERIES.items():
            began = time.perf_counter()
            result = logs.query_range(query, start, end, step="1m")
            first = time.perf_counter() - began
            began = time.perf_counter()
            logs.query_range(query, start, end, step="1m")
            warm = time.perf_counter() - began
            cold = load + first
            print(
                f"{name:12s} series={len(result['result'])} cold={cold:.2f} s "
                f"ratio={cold / base:.2f}x baseline (goal <= 2x); "
                f"warm={warm:.2f} s = {args.lines / warm:,.0f} lines/s"
            )


if __name__ == "__main__":
    main()

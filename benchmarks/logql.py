"""LogQL engine benchmark, per parser: cold (load + evaluate) vs reading + orjson-parsing.

Generates N simulated log records (logcli ``--output=jsonl`` shape) for a few services in
a temp dir, once per parser shape: the log line is a JSON object (``| json``) or logfmt
text (``| logfmt``, ``| regexp``, ``| pattern`` read the same lines). For each shape and
two queries it prints the load time, the cold time (a fresh ``LocalLogs``: load + first
evaluation, nothing cached) as a ratio to the baseline of reading the JSON file and
``orjson.loads``-ing every line in the same run (goal: at most 2x), and the warm
throughput of the same query on already-loaded logs (goal: at least 10M lines/s). The
machine's load average is printed before and after: on a shared host every figure moves
with it.

    .venv/bin/python benchmarks/logql.py                       # 1,000,000 lines a shape
    .venv/bin/python benchmarks/logql.py --lines 200000 --shapes logfmt pattern
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
PARSERS = {  # shape -> (line format, parser stage)
    "json": ("json", "json"),
    "logfmt": ("logfmt", "logfmt"),
    "regexp": ("logfmt", 'regexp "status=(?P<status>\\\\d+) latency_ms=(?P<latency_ms>\\\\S+)"'),
    "pattern": (
        "logfmt",
        'pattern "level=<level> route=<route> status=<status> latency_ms=<latency_ms> <_>"',
    ),
}
QUERIES = {
    "error rate": 'sum by (service) (rate({{env="prod"}} | {parser} | status >= 500 [1m]))',
    "p95 latency": (
        'quantile_over_time(0.95, {{env="prod"}} | {parser} | unwrap latency_ms [5m]) by (service)'
    ),
}
OTHER_SHAPE = 'sum by (level) (count_over_time({{env="prod"}} | {parser} [1m]))'


def render(body: dict[str, object], fmt: str) -> str:
    """The log line of one record: a JSON object or logfmt pairs (same fields; a value
    with a space is quoted, as loggers write ``msg="request served"``)."""
    if fmt == "json":
        return orjson.dumps(body).decode()
    return " ".join(
        f'{key}="{value}"' if isinstance(value, str) and " " in value else f"{key}={value}"
        for key, value in body.items()
    )


def generate(path: Path, lines: int, fmt: str = "json", seed: int = 7) -> tuple[int, int]:
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
                "line": render(body, fmt),
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


def warm_run(logs: LocalLogs, query: str, start: int, end: int) -> Clock:
    """Wall and CPU seconds of the query on loaded logs."""
    with Clock() as clock:
        logs.query_range(query, start, end, step="1m")
    return clock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="cold runs per query (best kept)")
    parser.add_argument("--shapes", nargs="*", default=list(PARSERS), choices=list(PARSERS))
    args = parser.parse_args()
    print(f"load average before: {_loadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        files: dict[str, Path] = {}
        for fmt in sorted({PARSERS[shape][0] for shape in args.shapes} | {"json"}):
            files[fmt] = Path(tmp) / f"logs-{fmt}.jsonl"
            start, end = generate(files[fmt], args.lines, fmt)
            print(f"{fmt}: {args.lines:,} lines, {files[fmt].stat().st_size / 1e6:.0f} MB")
        base = min((baseline(files["json"]) for _ in range(3)), key=lambda c: c.wall)
        print(f"baseline read + orjson.loads per line: {base.wall:.2f} s (cpu {base.cpu:.2f} s)")
        for shape in args.shapes:
            fmt, stage = PARSERS[shape]
            run_shape(shape, files[fmt], stage, base, args, start, end)
    print(f"load average after: {_loadavg()}")


def run_shape(
    shape: str, path: Path, stage: str, base: Clock, args: argparse.Namespace, start: int, end: int
) -> None:
    """Cold and warm figures of both queries with one parser stage."""
    shared = LocalLogs(path)  # for warm figures: a query of another shape runs first
    shared.query_range(OTHER_SHAPE.format(parser=stage), start, end, step="1m")
    for name, template in QUERIES.items():
        query = template.format(parser=stage)
        runs = [cold_run(path, query, start, end) for _ in range(args.repeat)]
        load, first, series = min(runs, key=lambda run: run[0].wall + run[1].wall)
        cold, cpu = load.wall + first.wall, load.cpu + first.cpu
        switch = warm_run(shared, query, start, end)  # lines loaded, this shape not parsed yet
        warm = min((warm_run(shared, query, start, end) for _ in range(3)), key=lambda c: c.wall)
        print(
            f"{shape:8s} {name:12s} series={series} load={load.wall:.2f} s "
            f"eval={first.wall:.2f} s cold ratio={cold / base.wall:.2f}x (goal <= 2x; "
            f"cpu {cpu / base.cpu:.2f}x) warm={args.lines / warm.wall / 1e6:.1f}M lines/s "
            f"(goal >= 10M; {warm.wall:.3f} s; cpu {args.lines / max(warm.cpu, 1e-9) / 1e6:.1f}M"
            f" lines/s) first on loaded logs {switch.wall:.3f} s"
        )


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()

"""Cross-check with ``redis-benchmark PUBLISH`` run against the same server in the same run.

``redis-benchmark`` has no subscribe test: ``PUBLISH ch <payload>`` measures the publish
round trip only (no subscriber unless one is listening). Shown beside the harness's own
numbers, it tells the reader how much of the ceiling is the harness. The password goes
through ``REDISCLI_AUTH``, never on the command line.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
from typing import Any

import pandas as pd

from opsbook.pubsub.resp import ConnParams


def available() -> bool:
    return shutil.which("redis-benchmark") is not None


def redis_benchmark_publish(
    params: ConnParams,
    *,
    size: int = 1024,
    requests: int = 50_000,
    clients: int = 50,
    pipeline: int = 1,
    channel: str = "rb:publish",
    timeout_s: float = 120,
) -> dict[str, Any]:
    """Run ``redis-benchmark ... PUBLISH channel <size bytes>``; rps and latency percentiles.

    Returns ``{"available": False, ...}`` when redis-benchmark is not on PATH.
    """
    exe = shutil.which("redis-benchmark")
    base = {
        "tool": "redis-benchmark PUBLISH",
        "size": size,
        "clients": clients,
        "pipeline": pipeline,
        "requests": requests,
    }
    if exe is None:
        return {**base, "available": False, "note": "redis-benchmark not on PATH"}
    cmd = [exe, "-n", str(requests), "-c", str(clients), "-P", str(pipeline), "-q", "--csv"]
    cmd += ["-s", params.path] if params.path else ["-h", params.host, "-p", str(params.port)]
    if params.tls:
        cmd.append("--tls")
    if params.username:
        cmd += ["--user", params.username]
    env = dict(os.environ)
    if params.password:
        env["REDISCLI_AUTH"] = params.password
    cmd += ["PUBLISH", channel, "x" * size]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
    if proc.returncode != 0:
        return {**base, "available": True, "error": proc.stderr.strip()[-300:]}
    return {**base, "available": True, **_parse_csv(proc.stdout)}


def _parse_csv(text: str) -> dict[str, float]:
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        return {"rps": float("nan")}
    row = rows[-1]
    out = {"rps": float(row.get("rps", "nan"))}
    for key in ("avg", "p50", "p95", "p99", "max"):
        name = f"{key}_latency_ms"
        if name in row:
            out[f"{key}_ms"] = float(row[name])
    return out


def side_by_side(
    redis_benchmark: dict[str, Any] | list[dict[str, Any]], throughput_steps: list[Any], at_10k: Any
) -> pd.DataFrame:
    """redis-benchmark's PUBLISH round trip (one or more runs) beside the harness's sustained
    1 -> 1 figures; ``vs_redis_benchmark`` divides by the first redis-benchmark row."""
    from opsbook.pubsub.scenarios import sustained

    one = [s for s in throughput_steps if s.config["pubs"] == 1 and sustained(s)]
    best = max(one, key=lambda s: s.summary["delivered_rate"], default=None)
    runs = redis_benchmark if isinstance(redis_benchmark, list) else [redis_benchmark]
    rows = [_redis_benchmark_row(run) for run in runs]
    rows = [r for r in rows if r is not None]
    what = "publish -> deliver, from intended send time (due messages sent pipelined)"
    if best is not None:
        rows.append(
            _harness_row("harness, 1 publisher -> 1 subscriber, 1 KB (max sustained)", best, what)
        )
    if at_10k is not None:
        rows.append(_harness_row("harness at 10,000 msg/s offered", at_10k, what))
    frame = pd.DataFrame(rows)
    baseline = next((r["msgs_per_s"] for r in rows if r["measurement"].startswith("redis")), 0)
    if baseline:
        frame["vs_redis_benchmark"] = frame["msgs_per_s"] / baseline
    return frame


def _redis_benchmark_row(run: dict[str, Any]) -> dict[str, Any] | None:
    if not (run.get("available") and "rps" in run):
        return None
    return {
        "measurement": f"redis-benchmark PUBLISH, {run['clients']} clients, -P {run['pipeline']}, "
        f"{run['size']} B, no subscriber",
        "msgs_per_s": run["rps"],
        "p50_ms": run.get("p50_ms"),
        "p99_ms": run.get("p99_ms"),
        "what": "publish round trip only" + (" (pipelined)" if run["pipeline"] > 1 else ""),
    }


def _harness_row(label: str, res: Any, what: str) -> dict[str, Any]:
    return {
        "measurement": label,
        "msgs_per_s": res.summary["delivered_rate"],
        "p50_ms": res.summary["p50_ms"],
        "p99_ms": res.summary["p99_ms"],
        "what": what,
    }

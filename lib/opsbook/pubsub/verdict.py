"""The verdict table: each sales claim, the measured figure, pass/fail, and what breaks it."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

CLAIM_LATENCY = "<10 ms latency (p99, 1 KB, at 10,000 msg/s)"
CLAIM_THROUGHPUT = "10,000+ msg/s (sustained, zero loss)"
CLAIM_CONNECTIONS = "10,000+ concurrent connections"
CLAIM_MEMORY = "~1 KB per connection"
CLAIM_DELIVERY = "messages are delivered (no loss)"


def _fmt(value: float | None, unit: str, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "not measured"
    return f"{value:,.{digits}f} {unit}"


def latency_claim(
    p99_at_10k: float | None,
    knee: dict[str, Any],
    target_ms: float = 10.0,
    host_load: float | None = None,
    runs: int = 1,
) -> dict[str, Any]:
    knee_rate = knee.get("knee_rate")
    breaks = (
        f"p99 crosses {target_ms:g} ms between {knee.get('last_ok_rate') or 0:,.0f} and "
        f"{knee_rate:,.0f} msg/s offered"
        if knee_rate
        else f"p99 stayed under {target_ms:g} ms up to {knee.get('last_ok_rate') or 0:,.0f} "
        "msg/s (highest tested)"
    )
    ok = p99_at_10k is not None and not math.isnan(p99_at_10k) and p99_at_10k <= target_ms
    notes = [f"better of {runs} runs"] if runs > 1 else []
    if host_load is not None:
        notes.append(f"host load {host_load:.1f}")
    load = f" ({'; '.join(notes)})" if notes else ""
    return {
        "claim": CLAIM_LATENCY,
        "measured": f"p99 {_fmt(p99_at_10k, 'ms', 2)}{load}",
        "pass": bool(ok),
        "breaks_when": breaks,
    }


def throughput_claim(max_rate: float | None, limiter: str) -> dict[str, Any]:
    ok = bool(max_rate and max_rate >= 10_000)
    return {
        "claim": CLAIM_THROUGHPUT,
        "measured": _fmt(max_rate, "msg/s", 0),
        "pass": ok,
        "breaks_when": limiter,
    }


def connections_claim(
    reached: int, requested: int, limit: str | None, maxclients: int
) -> dict[str, Any]:
    ok = reached >= 10_000
    if limit:
        breaks = f"stopped at {reached:,} connections: {limit} (maxclients={maxclients:,})"
    elif requested < 10_000:
        breaks = f"only {requested:,} tried (profile); maxclients={maxclients:,}"
    else:
        breaks = f"maxclients={maxclients:,} and the fd limit cap it"
    return {
        "claim": CLAIM_CONNECTIONS,
        "measured": f"{reached:,} idle subscribers",
        "pass": ok,
        "breaks_when": breaks,
    }


def memory_claim(
    just_connected: float | None, settled: float | None, settle_s: float
) -> dict[str, Any]:
    ok = settled is not None and settled <= 1.5 * 1024
    return {
        "claim": CLAIM_MEMORY,
        "measured": f"{_fmt(_kb(just_connected), 'KB')} just connected, "
        f"{_fmt(_kb(settled), 'KB')} after {settle_s:g} s",
        "pass": bool(ok),
        "breaks_when": "every connection carries query/reply buffers (CLIENT LIST tot-mem); "
        "a subscriber's output buffer grows with its backlog",
    }


def delivery_claim(slow_lost: int, jobs_lost: int) -> dict[str, Any]:
    return {
        "claim": CLAIM_DELIVERY,
        "measured": f"{slow_lost:,} lost by a slow subscriber; {jobs_lost:,} ai:jobs lost "
        "over pub/sub",
        "pass": slow_lost == 0 and jobs_lost == 0,
        "breaks_when": "a subscriber is slow (output-buffer limit cuts it off), absent or "
        "restarting: pub/sub is at-most-once; use Streams for jobs",
    }


def _kb(value: float | None) -> float | None:
    return None if value is None else value / 1024


def table(verdicts: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(verdicts, columns=["claim", "measured", "pass", "breaks_when"])


def build(
    *,
    at_10k: Any,
    knee: dict[str, Any],
    max_rate: float,
    limiter: str,
    cap: dict[str, Any],
    settle_s: float,
    slow: Any,
    jobs: pd.DataFrame | None,
) -> list[dict[str, Any]]:
    """All verdicts from the scenario results (see the notebook)."""
    samples = cap["samples"]
    fresh = samples[samples["when"] == "just connected"]["tot_mem_age_le_1s"].dropna()
    just = float(fresh.median()) if len(fresh) else None
    pubsub_jobs_lost = 0
    if jobs is not None and len(jobs):
        pubsub_jobs_lost = int(jobs.loc[jobs["transport"] == "pub/sub", "lost"].sum())
    return [
        latency_claim(
            at_10k.summary["p99_ms"] if at_10k is not None else None,
            knee,
            host_load=at_10k.summary.get("host_load_1m") if at_10k is not None else None,
            runs=at_10k.summary.get("runs_at_rate", 1) if at_10k is not None else 1,
        ),
        throughput_claim(max_rate, limiter),
        connections_claim(cap["reached"], cap["requested"], cap["limit"], cap["maxclients"]),
        memory_claim(just, cap["settled"]["used_memory_per_conn"], settle_s),
        delivery_claim(int(slow.summary["lost"]), pubsub_jobs_lost),
    ]

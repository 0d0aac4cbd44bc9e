"""The verdict table: each sales claim, the measured figure, pass/fail, and what breaks it."""

from __future__ import annotations

import math
import statistics
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


def outcome(passes: list[bool]) -> str:
    """The verdict of repeated runs: ``pass`` when every repeat passed, ``fail`` when none
    did, ``unstable`` when only some did (a claim that holds sometimes does not hold)."""
    if not passes:
        return "not measured"
    if all(passes):
        return "pass"
    return "fail" if not any(passes) else "unstable"


def _median(values: list[float]) -> float | None:
    clean = [v for v in values if v is not None and not math.isnan(v)]
    return float(statistics.median(clean)) if clean else None


def _repeats(figures: list[float | None], passes: list[bool], loads: list[Any]) -> list[dict]:
    return [
        {"repeat": i + 1, "figure": f, "pass": p, "host_load_1m": load}
        for i, (f, p, load) in enumerate(zip(figures, passes, loads, strict=True))
    ]


def _shown(figures: list[float | None], unit: str, loads: list[Any]) -> str:
    """Every repeat, and the host load beside it: "3.1, 12.4, 3.3 ms (host load 2.1, 5.8, 2.0)"."""
    values = ", ".join("?" if f is None else f"{f:,.2f}" for f in figures)
    load = ", ".join("?" if x is None else f"{x:.1f}" for x in loads)
    return f"{values} {unit} (host load {load})"


def latency_claim(steps: list[Any], knee: dict[str, Any], target_ms: float = 10.0) -> dict:
    """p99 at 10,000 msg/s from every repeat (``steps``); the median is the figure, and the
    verdict is :func:`outcome` of the repeats (each passes when its p99 <= ``target_ms``)."""
    knee_rate = knee.get("knee_rate")
    breaks = (
        f"p99 crosses {target_ms:g} ms between {knee.get('last_ok_rate') or 0:,.0f} and "
        f"{knee_rate:,.0f} msg/s offered"
        if knee_rate
        else f"p99 stayed under {target_ms:g} ms up to {knee.get('last_ok_rate') or 0:,.0f} "
        "msg/s (highest tested)"
    )
    p99s = [s.summary.get("p99_ms") for s in steps]
    loads = [s.summary.get("host_load_1m") for s in steps]
    passes = [p is not None and not math.isnan(p) and p <= target_ms for p in p99s]
    verdict = outcome(passes)
    return {
        "claim": CLAIM_LATENCY,
        "measured": f"median p99 {_fmt(_median(p99s), 'ms', 2)} of {len(steps)} runs: "
        + _shown(p99s, "ms", loads),
        "verdict": verdict,
        "pass": verdict == "pass",
        "breaks_when": breaks,
        "repeats": _repeats(p99s, passes, loads),
    }


def throughput_claim(
    steps: list[Any], max_rate: float | None, limiter: str, sustained: Any
) -> dict:
    """10,000 msg/s offered, ``len(steps)`` repeats, each judged by ``sustained`` (zero
    loss, schedule kept); the median delivered rate is shown beside the searched maximum."""
    delivered = [s.summary.get("delivered_rate") for s in steps]
    loads = [s.summary.get("host_load_1m") for s in steps]
    passes = [bool(sustained(s)) for s in steps]
    verdict = outcome(passes)
    return {
        "claim": CLAIM_THROUGHPUT,
        "measured": f"at 10,000 msg/s offered: sustained in {sum(passes)} of {len(steps)} runs, "
        f"median delivered {_fmt(_median(delivered), 'msg/s', 0)} of "
        + _shown(delivered, "msg/s", loads)
        + f"; highest sustained rate found {_fmt(max_rate, 'msg/s', 0)} (one run per rate)",
        "verdict": verdict,
        "pass": verdict == "pass",
        "breaks_when": limiter,
        "repeats": _repeats(delivered, passes, loads),
    }


def _single(row: dict[str, Any]) -> dict[str, Any]:
    """A claim measured once (a count, not a timing): the verdict is its pass/fail."""
    return {**row, "verdict": "pass" if row["pass"] else "fail", "repeats": []}


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
    return _single(
        {
            "claim": CLAIM_CONNECTIONS,
            "measured": f"{reached:,} idle subscribers",
            "pass": ok,
            "breaks_when": breaks,
        }
    )


def memory_claim(
    just_connected: float | None, settled: float | None, settle_s: float, stable: bool = True
) -> dict[str, Any]:
    ok = settled is not None and settled <= 1.5 * 1024
    return _single(
        {
            "claim": CLAIM_MEMORY,
            "measured": f"{_fmt(_kb(just_connected), 'KB')} just connected, "
            f"{_fmt(_kb(settled), 'KB')} "
            + (
                f"settled (after {settle_s:g} s)"
                if stable
                else f"after {settle_s:g} s, NOT settled"
            ),
            "pass": bool(ok),
            "breaks_when": "every connection carries query/reply buffers (CLIENT LIST "
            "tot-mem); a subscriber's output buffer grows with its backlog",
        }
    )


def delivery_claim(slow_lost: int, jobs_lost: int) -> dict[str, Any]:
    return _single(
        {
            "claim": CLAIM_DELIVERY,
            "measured": f"{slow_lost:,} lost by a slow subscriber; {jobs_lost:,} ai:jobs lost "
            "over pub/sub",
            "pass": slow_lost == 0 and jobs_lost == 0,
            "breaks_when": "a subscriber is slow (output-buffer limit cuts it off), absent or "
            "restarting: pub/sub is at-most-once; use Streams for jobs",
        }
    )


def _kb(value: float | None) -> float | None:
    return None if value is None else value / 1024


COLUMNS = ["claim", "measured", "verdict", "breaks_when"]


def table(verdicts: list[dict[str, Any]]) -> pd.DataFrame:
    """The verdict table (every repeat is in ``measured``; the raw repeats stay in the
    records)."""
    return pd.DataFrame(verdicts, columns=COLUMNS)


def build(
    *,
    at_10k: list[Any],
    knee: dict[str, Any],
    tp_at_10k: list[Any],
    max_rate: float,
    limiter: str,
    cap: dict[str, Any],
    settle_s: float,
    slow: Any,
    jobs: pd.DataFrame | None,
) -> list[dict[str, Any]]:
    """All verdicts from the scenario results (see the notebook). ``at_10k`` and
    ``tp_at_10k`` are the repeated runs at 10,000 msg/s (latency and throughput)."""
    from opsbook.pubsub.scenarios import sustained

    samples = cap["samples"]
    fresh = samples[samples["when"] == "just connected"]["tot_mem_age_le_1s"].dropna()
    just = float(fresh.median()) if len(fresh) else None
    pubsub_jobs_lost = 0
    if jobs is not None and len(jobs):
        pubsub_jobs_lost = int(jobs.loc[jobs["transport"] == "pub/sub", "lost"].sum())
    return [
        latency_claim(at_10k, knee),
        throughput_claim(tp_at_10k, max_rate, limiter, sustained),
        connections_claim(cap["reached"], cap["requested"], cap["limit"], cap["maxclients"]),
        memory_claim(
            just,
            cap["settled"]["used_memory_per_conn"],
            cap["settled"].get("settle_wait_s", settle_s),
            bool(cap["settled"].get("settled", True)),
        ),
        delivery_claim(int(slow.summary["lost"]), pubsub_jobs_lost),
    ]


CLAIM_CLUSTER = "pub/sub on Redis Cluster: which pattern the product channels should use"


def cluster_pattern(rows: pd.DataFrame) -> dict[str, Any]:
    """Classic vs sharded pub/sub at the most shards measured: sharded is recommended when
    it lost nothing and cost the cluster less (Redis CPU of all nodes, messages over the
    cluster bus). ``rows`` is :func:`opsbook.pubsub.cluster.cluster_table`."""
    top = rows[rows["shards"] == rows["shards"].max()].set_index("pattern")
    classic, sharded = top.loc["classic"], top.loc["sharded"]
    less_cpu = sharded["redis_cpu_us_per_msg"] <= classic["redis_cpu_us_per_msg"]
    less_bus = sum(sharded["bus_messages_in_per_node"]) < sum(classic["bus_messages_in_per_node"])
    use_sharded = bool(sharded["lost"] == 0 and (less_cpu or less_bus))

    def said(name: str, row: Any) -> str:
        return (
            f"{name}: {row['delivered_rate']:,.0f} msg/s delivered, p99 {row['p99_ms']:.2f} ms, "
            f"Redis CPU {row['redis_cpu_us_per_msg']:.1f} µs/msg (per node, % of a core: "
            f"{row['redis_cpu_pct_per_node']}), "
            f"{sum(row['bus_messages_in_per_node']):,} bus messages, {int(row['lost'])} lost"
        )

    return {
        "claim": CLAIM_CLUSTER,
        "measured": f"{int(rows['shards'].max())} shards: "
        + said("classic", classic)
        + "; "
        + said("sharded", sharded),
        "verdict": "use SPUBLISH/SSUBSCRIBE" if use_sharded else "use PUBLISH/SUBSCRIBE",
        "pass": use_sharded,
        "breaks_when": "classic PUBLISH is broadcast over the cluster bus to every node, so "
        "every node pays for all traffic; sharded has no pattern subscriptions (the "
        "user:notifications:* relay must SSUBSCRIBE per channel) and one channel is bounded "
        "by one shard",
        "repeats": [],
    }

"""The benchmark's scenarios: rate sweep and knee, sustained throughput, fan-out, the
product's channels, message sizes, slow subscriber. Each returns :class:`StepResult` rows.

Profiles pick sensible defaults: ``quick`` fits a CI notebook run (< 60 s in all),
``full`` is the real measurement.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from opsbook.action_kinds import record_config_set
from opsbook.errors import ConfigError
from opsbook.pubsub.harness import Bench, StepResult

TARGET_MS = 10.0
REPEATS = 3  # runs behind every timing verdict; the median is the figure
LATENCY_COLUMNS = [
    "label",
    "offered_rate",
    "size",
    "sent",
    "received",
    "lost",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "p999_ms",
    "max_ms",
    "publisher_lag_p99_ms",
    "rtt_p50_ms",
    "rtt_p99_ms",
    "client_cpu_pct",
    "redis_cpu_pct",
    "host_load_1m",
]
THROUGHPUT_COLUMNS = [
    "label",
    "loop",
    "offered_rate",
    "pubs",
    "subscribers",
    "sent",
    "received",
    "lost",
    "disconnects",
    "publish_rate",
    "delivered_rate",
    "p50_ms",
    "p99_ms",
    "rtt_p50_ms",
    "client_cpu_pct",
    "redis_cpu_pct",
    "host_load_1m",
]
FANOUT_RECORD = [
    "subscribers",
    "offered_rate",
    "delivered_rate",
    "lost",
    "p50_ms",
    "p99_ms",
    "p999_ms",
]
PER_PUBLISHER_RATE = 60_000  # one publisher process keeps an open-loop schedule up to ~this


@dataclass(frozen=True)
class Profile:
    """Defaults of one profile; every field can be overridden by a notebook parameter."""

    name: str
    duration_s: float
    rates: list[int]
    message_sizes: list[int]
    subscribers: list[int]
    connections: int
    channels: list[str]
    knee_refine: int = 1
    throughput_pubs: list[int] = field(default_factory=lambda: [1, 2])
    product_rate: int = 5000
    users: int = 50
    settle_s: float = 2.0
    jobs: int = 600
    jobs_rate: int = 600
    throughput_start: int = 20_000
    ceiling: int = 400_000
    checkpoints: int = 5
    ws_clients: int = 50
    crosscheck_requests: int = 100_000
    cluster: bool = True  # compare classic vs sharded pub/sub on a local 3-master cluster
    cluster_rate: int = 5000  # msg/s offered per shard in that comparison
    cluster_subs: int = 4  # subscribers per shard


PRODUCT_CHANNELS = [
    "user:notifications",
    "ai:jobs",
    "ai:results",
    "cache:invalidate",
    "chat:messages",
    "analytics:events",
    "system:events",
]

PROFILES = {
    "quick": Profile(
        name="quick",
        duration_s=0.6,
        rates=[1_000, 10_000, 40_000],
        message_sizes=[64, 1024, 16384, 65536],
        subscribers=[1, 10, 100],
        connections=1_000,
        channels=PRODUCT_CHANNELS,
        knee_refine=0,
        throughput_pubs=[1, 2],
        product_rate=3000,
        users=30,
        settle_s=20.0,
        jobs=300,
        jobs_rate=1000,
        throughput_start=40_000,
        ceiling=160_000,
        checkpoints=3,
        ws_clients=20,
        crosscheck_requests=30_000,
        cluster=False,
        cluster_rate=1000,
        cluster_subs=1,
    ),
    "full": Profile(
        name="full",
        duration_s=5.0,
        rates=[1_000, 5_000, 10_000, 20_000, 40_000, 60_000, 80_000, 120_000],
        message_sizes=[64, 256, 1024, 4096, 16384, 65536],
        subscribers=[1, 10, 50, 100, 200],
        connections=10_000,
        channels=PRODUCT_CHANNELS,
        knee_refine=2,
        throughput_pubs=[1, 2, 4],
        product_rate=10_000,
        users=500,
        settle_s=60.0,
        jobs=3000,
        ws_clients=500,
    ),
}


def profile(name: str, **overrides: Any) -> Profile:
    """The named profile with every non-empty override applied.

    >>> profile("quick", duration_s=2).duration_s
    2
    """
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}", hint=f"use one of {sorted(PROFILES)}")
    base = PROFILES[name]
    known = set(asdict(base))
    unknown = set(overrides) - known
    if unknown:
        raise ConfigError(f"unknown profile fields {sorted(unknown)}", hint=f"use {sorted(known)}")
    chosen = {k: v for k, v in overrides.items() if v not in (None, "", [], 0)}
    prof = replace(base, **chosen)
    _check(prof)
    return prof


def _check(prof: Profile) -> None:
    if prof.duration_s <= 0 or prof.duration_s > 600:
        raise ConfigError(f"duration_s={prof.duration_s} is out of range", hint="use 0.2..600")
    for name in ("rates", "message_sizes", "subscribers"):
        values = getattr(prof, name)
        if not values or any((not isinstance(v, int | float)) or v <= 0 for v in values):
            raise ConfigError(f"{name} must be a list of positive numbers, got {values!r}")
    if any(s < 64 or s > 64 * 1024 * 1024 for s in prof.message_sizes):
        raise ConfigError("message_sizes must be between 64 B and 64 MB")
    unknown = set(prof.channels) - set(PRODUCT_CHANNELS) - {"mixed"}
    if unknown:
        raise ConfigError(f"unknown channels {sorted(unknown)}", hint=f"use {PRODUCT_CHANNELS}")
    if prof.connections < 1:
        raise ConfigError("connections must be at least 1")


def table(results: list[StepResult], columns: list[str] | None = None) -> pd.DataFrame:
    """Rows of results as a DataFrame, optionally only some columns."""
    frame = pd.DataFrame([r.row() for r in results])
    if columns and not frame.empty:
        frame = frame[[c for c in columns if c in frame.columns]]
    return frame


def _pubs_for(rate: float) -> int:
    return max(1, math.ceil(rate / PER_PUBLISHER_RATE))


def open_loop(
    bench: Bench,
    rate: float,
    duration_s: float,
    *,
    size: int = 1024,
    subs: list[dict[str, Any]] | None = None,
    scenario: str = "rate",
    label: str = "",
    channel: str = "bench",
) -> StepResult:
    """One open-loop step at ``rate`` msg/s in total, split over enough publishers."""
    pubs = _pubs_for(rate)
    per_pub = rate / pubs
    count = max(1, int(per_pub * duration_s))
    return bench.step(
        channels=[bench.channel(channel)],
        subs=subs or [{}],
        rate=per_pub,
        count=count,
        size=size,
        pubs=pubs,
        scenario=scenario,
        label=label or f"{int(rate)} msg/s",
    )


# --------------------------------------------------------------------------- rate sweep


def saturated(res: StepResult) -> bool:
    """The step could not keep up: loss, schedule missed, or latency ran away (> 1 s)."""
    s = res.summary
    offered = res.config["offered_rate"] or 0
    return bool(s["lost"] or s["publish_rate"] < 0.9 * offered or s["p99_ms"] > 1000)


def over_target(res: StepResult, target_ms: float = TARGET_MS) -> bool:
    return bool(res.summary["p99_ms"] > target_ms or saturated(res))


def rate_sweep(
    bench: Bench, rates: list[int], duration_s: float, *, size: int = 1024
) -> list[StepResult]:
    """Latency vs offered rate, one subscriber, one run per rate; stops after the first
    saturated rate. Nothing is re-run: a verdict comes from :func:`repeats_at_rate`."""
    out: list[StepResult] = []
    for rate in sorted(rates):
        out.append(open_loop(bench, rate, duration_s, size=size, scenario="rate_sweep"))
        if saturated(out[-1]):
            break
    return out


def knee(results: list[StepResult], target_ms: float = TARGET_MS) -> dict[str, Any]:
    """Where p99 crosses ``target_ms``: the highest rate that is under it and the first
    higher rate that is over it. A rate measured several times is judged by the majority
    of its runs (the median p99), never by its best run."""
    runs: dict[float, list[bool]] = {}
    for r in results:
        runs.setdefault(r.config["offered_rate"], []).append(not over_target(r, target_ms))
    by_rate = {rate: 2 * sum(oks) > len(oks) for rate, oks in runs.items()}
    last_ok = max((rate for rate, ok in by_rate.items() if ok), default=None)
    first_over = min(
        (rate for rate, ok in by_rate.items() if not ok and (last_ok is None or rate > last_ok)),
        default=None,
    )
    return {
        "knee_rate": first_over,
        "last_ok_rate": last_ok,
        "target_ms": target_ms,
        "crossed": first_over is not None,
    }


def find_knee(
    bench: Bench,
    sweep: list[StepResult],
    duration_s: float,
    *,
    size: int = 1024,
    refine: int = 1,
    max_rate: int = 400_000,
) -> tuple[dict[str, Any], list[StepResult]]:
    """Extend the sweep upward until p99 crosses the target, then bisect ``refine`` times."""
    extra: list[StepResult] = []
    k = knee(sweep)
    while not k["crossed"] and (k["last_ok_rate"] or 0) < max_rate:
        rate = int((k["last_ok_rate"] or 1000) * 2)
        extra.append(open_loop(bench, rate, duration_s, size=size, scenario="rate_sweep"))
        k = knee(sweep + extra)
    for _ in range(refine):
        if not (k["crossed"] and k["last_ok_rate"]):
            break
        mid = int((k["knee_rate"] + k["last_ok_rate"]) / 2)
        extra.append(open_loop(bench, mid, duration_s, size=size, scenario="rate_sweep"))
        k = knee(sweep + extra)
    return k, extra


def repeated(run: Callable[[int], StepResult], repeats: int) -> list[StepResult]:
    """``repeats`` runs of ``run(i)`` (i = 1..repeats), every one kept: the verdict is the
    median and the agreement of all of them (:func:`opsbook.pubsub.verdict.outcome`)."""
    if repeats < 1:
        raise ConfigError(f"repeats={repeats} must be at least 1", hint="use 3 (the default)")
    return [run(i + 1) for i in range(repeats)]


def repeats_at_rate(
    bench: Bench,
    results: list[StepResult],
    rate: int,
    duration_s: float,
    *,
    repeats: int = REPEATS,
) -> list[StepResult]:
    """Exactly ``repeats`` latency runs at ``rate`` msg/s, 1 KB: the sweep's runs at that
    rate count, the missing ones are run now (and appended to ``results``)."""
    have = [r for r in results if r.config["offered_rate"] == rate and r.config["size"] == 1024]
    more: list[StepResult] = []
    if len(have) < repeats:
        more = repeated(
            lambda i: open_loop(
                bench,
                rate,
                duration_s,
                scenario="rate_sweep",
                label=f"{int(rate)} msg/s (run {len(have) + i})",
            ),
            repeats - len(have),
        )
        results.extend(more)
    return (have + more)[:repeats]


def median_run(runs: list[StepResult], key: str = "p99_ms") -> StepResult:
    """The run whose ``key`` is the median (the lower middle one for an even count)."""
    ordered = sorted(runs, key=lambda r: r.summary[key])
    return ordered[(len(ordered) - 1) // 2]


# --------------------------------------------------------------------------- throughput


def sustained(res: StepResult, p99_limit_ms: float = 100.0) -> bool:
    """Zero loss, schedule kept, everything delivered, no backlog building up."""
    s = res.summary
    offered = res.config["offered_rate"] or 0
    return bool(
        s["lost"] == 0
        and s["disconnects"] == 0
        and s["publish_rate"] >= 0.95 * offered
        and s["received"] >= s["sent"]
        and s["p99_ms"] <= p99_limit_ms
    )


def max_throughput(
    bench: Bench,
    pubs: int,
    duration_s: float,
    *,
    size: int = 1024,
    start_rate: int = 10_000,
    refine: int = 1,
    ceiling: int = 600_000,
) -> tuple[int, list[StepResult]]:
    """Highest offered rate (``pubs`` publishers, 1 subscriber) that is :func:`sustained`."""
    steps: list[StepResult] = []
    good, bad, rate = 0, 0, start_rate
    while rate <= ceiling:
        ok, runs = _sustained_at(bench, pubs, rate, duration_s, size)
        steps += runs
        if not ok:
            bad = rate
            break
        good, rate = rate, int(rate * 2)
    for _ in range(refine if bad else 0):
        mid = int((good + bad) / 2)
        ok, runs = _sustained_at(bench, pubs, mid, duration_s, size)
        steps += runs
        good, bad = (mid, bad) if ok else (good, mid)
    return good, steps


def _sustained_at(
    bench: Bench, pubs: int, rate: int, duration_s: float, size: int
) -> tuple[bool, list[StepResult]]:
    """One run at ``rate``: the search takes it as it is (no re-run to a better figure)."""
    step = _throughput_step(bench, pubs, rate, duration_s, size)
    return sustained(step), [step]


def throughput_repeats(
    bench: Bench, rate: int, duration_s: float, *, size: int = 1024, repeats: int = REPEATS
) -> list[StepResult]:
    """``repeats`` sustained-throughput runs at ``rate`` (the claim's figure), 1 subscriber."""
    pubs = _pubs_for(rate)
    return repeated(lambda _: _throughput_step(bench, pubs, rate, duration_s, size), repeats)


def _throughput_step(
    bench: Bench, pubs: int, rate: int, duration_s: float, size: int
) -> StepResult:
    count = max(1, int(rate / pubs * duration_s))
    return bench.step(
        channels=[bench.channel("bench")],
        subs=[{}],
        rate=rate / pubs,
        count=count,
        size=size,
        pubs=pubs,
        scenario="throughput",
        label=f"{pubs} pub @ {rate} msg/s",
        batch_max=256,
    )


def saturation(bench: Bench, pubs: int, duration_s: float, *, size: int = 1024) -> StepResult:
    """Closed-loop run (labelled so): publishers send as fast as replies come back."""
    return bench.step(
        channels=[bench.channel("bench")],
        subs=[{}],
        rate=None,
        count=int(2_000_000 * duration_s),
        size=size,
        pubs=pubs,
        max_s=duration_s,
        scenario="saturation",
        label=f"closed loop, {pubs} pub",
        batch_max=128,
    )


# --------------------------------------------------------------------------- fan-out, sizes


def fanout(
    bench: Bench, subscribers: list[int], rate: int, duration_s: float, *, size: int = 1024
) -> list[StepResult]:
    """One channel, 1 publisher, N subscribers: delivered msgs/s and latency per N."""
    out = []
    for n in sorted(subscribers):
        out.append(
            open_loop(
                bench,
                rate,
                duration_s,
                size=size,
                subs=[{}] * n,
                scenario="fanout",
                label=f"1 -> {n}",
            )
        )
    return out


def size_sweep(bench: Bench, sizes: list[int], rate: int, duration_s: float) -> list[StepResult]:
    """Latency and delivered rate per message size at a fixed offered rate."""
    return [
        open_loop(bench, rate, duration_s, size=s, scenario="size", label=f"{s} B")
        for s in sorted(sizes)
    ]


# --------------------------------------------------------------------------- product mix

# name -> (share of traffic, message size, subscriber connections)
MIX = {
    "user:notifications": (0.25, 512, 0),  # per-user channels, see product_mix
    "ai:jobs": (0.05, 2048, 2),
    "ai:results": (0.05, 4096, 1),
    "cache:invalidate": (0.15, 128, 8),
    "chat:messages": (0.20, 512, 20),
    "analytics:events": (0.25, 256, 1),
    "system:events": (0.05, 256, 8),
}


def product_mix(
    bench: Bench, channels: list[str], rate: int, duration_s: float, *, users: int = 50
) -> StepResult:
    """All product channels at once, weighted, each with its own subscribers.

    ``user:notifications`` is one channel per user (``user:notifications:<id>``), each
    with its own subscriber connection, plus one ``PSUBSCRIBE user:notifications:*``
    connection (a relay that sees every user).
    """
    names, weights, sizes, subs = [], [], [], []
    chosen = [c for c in channels if c in MIX] or list(MIX)
    for chan in chosen:
        share, size, n_subs = MIX[chan]
        if chan == "user:notifications":
            user_chans = [bench.channel(f"{chan}:{uid}") for uid in range(users)]
            names += user_chans
            weights += [share / users] * users
            sizes += [size] * users
            subs += [{"channels": [c], "group": chan} for c in user_chans]
            if not bench.cluster:  # sharded pub/sub has no pattern subscriptions
                subs.append(
                    {"patterns": [bench.channel(f"{chan}:*")], "group": f"{chan} (pattern)"}
                )
            continue
        names.append(bench.channel(chan))
        weights.append(share)
        sizes.append(size)
        subs += [{"channels": [bench.channel(chan)], "group": chan}] * n_subs
    pubs = _pubs_for(rate)
    count = max(1, int(rate / pubs * duration_s))
    return bench.step(
        channels=names,
        subs=subs,
        rate=rate / pubs,
        count=count,
        pubs=pubs,
        weights=weights,
        sizes=sizes,
        scenario="product_mix",
        label=f"mixed {rate} msg/s",
        size=max(sizes),
    )


def per_channel_table(res: StepResult) -> pd.DataFrame:
    """Latency and loss per product channel (per-user channels folded together)."""
    from opsbook.pubsub import hist

    groups: dict[str, Any] = {}
    for name, h in res.per_channel.items():
        key = _product_name(name)
        groups.setdefault(key, hist.new()).add(h)
    loss: dict[str, list[int]] = {}
    for conn in res.conns:
        group = (conn.get("group") or "?").replace(" (pattern)", "")
        acc = loss.setdefault(group, [0, 0, 0])
        acc[0] += conn.get("expected", 0)
        acc[1] += conn.get("lost", 0)
        acc[2] += 1
    rows = []
    for key, h in sorted(groups.items()):
        s = hist.summary(h)
        exp, lost, conns = loss.get(key, [0, 0, 0])
        rows.append(
            {
                "channel": key,
                "subscriber_conns": conns,
                "deliveries": s["count"],
                "lost": lost,
                "p50_ms": s["p50_ms"],
                "p99_ms": s["p99_ms"],
                "p999_ms": s["p999_ms"],
                "max_ms": s["max_ms"],
            }
        )
    return pd.DataFrame(rows)


def _product_name(channel: str) -> str:
    for name in PRODUCT_CHANNELS:
        if f":{name}" in channel:
            return name
    return channel


# --------------------------------------------------------------------------- slow subscriber


OUTPUT_LIMIT = "client-output-buffer-limit"


@contextlib.contextmanager
def pubsub_output_limit(bench: Bench, limit: str | None) -> Iterator[str]:
    """Temporarily set ``client-output-buffer-limit pubsub <limit>``; restore it after.

    ``limit`` like ``"1mb 256kb 1"``; None/"" keeps the server's setting. Yields the
    pubsub limit in force.
    """
    original = bench.admin.config_get(OUTPUT_LIMIT)[OUTPUT_LIMIT]
    current = _pubsub_part(original)
    if not limit:
        yield current
        return
    bench.admin.config_set(OUTPUT_LIMIT, f"pubsub {limit}")
    record_config_set(bench, OUTPUT_LIMIT, original, f"pubsub {limit}")
    try:
        yield limit
    finally:
        bench.admin.config_set(OUTPUT_LIMIT, original)
        record_config_set(bench, OUTPUT_LIMIT, f"pubsub {limit}", original)


def _pubsub_part(config: str) -> str:
    words = config.split()
    i = words.index("pubsub")
    return " ".join(words[i + 1 : i + 4])


def slow_subscriber(
    bench: Bench,
    *,
    rate: int,
    duration_s: float,
    size: int,
    delay_us: int = 2000,
    limit: str | None = None,
    rcvbuf: int = 65536,
) -> StepResult:
    """A fast and a slow subscriber (own processes) on one channel; the slow one reads one
    message per ``delay_us`` until Redis cuts it off at the pubsub output-buffer limit."""
    with pubsub_output_limit(bench, limit) as in_force:
        subs = [
            {"proc": 0, "group": "fast"},
            {"proc": 1, "delay_us": delay_us, "group": "slow", "rcvbuf": rcvbuf},
        ]
        bench.subscribers(2)
        res = bench.step(
            channels=[bench.channel("slow")],
            subs=subs,
            rate=rate,
            count=max(1, int(rate * duration_s)),
            size=size,
            scenario="slow_subscriber",
            label=f"slow reader {delay_us} us/msg",
            drain_s=30,
        )
    res.summary["output_limit"] = in_force
    return res


def slow_table(res: StepResult) -> pd.DataFrame:
    """Per subscriber: expected, received, lost, disconnects, Redis client ids seen."""
    return pd.DataFrame(
        [
            {
                "subscriber": c.get("group"),
                "expected": c.get("expected"),
                "received": c["received"],
                "lost": c.get("lost"),
                "disconnects": c["disconnects"],
                "reconnects": c["reconnects"],
                "client_ids": c["client_ids"],
            }
            for c in res.conns
        ]
    )


# --------------------------------------------------------------------------- helpers for the report


def describe_break(res: StepResult | None) -> str:
    """What went wrong at the first rate that was not sustained."""
    if res is None:
        return "no limit reached up to the highest rate tried"
    s = res.summary
    why = []
    if s["lost"]:
        why.append(f"{s['lost']:,} lost, {s['disconnects']} subscriber cut-offs")
    if s["publish_rate"] < 0.95 * (res.config["offered_rate"] or 0):
        why.append(f"publishers reached only {s['publish_rate']:,.0f} msg/s")
    why.append(f"p99 {s['p99_ms']:.1f} ms")
    why.append(
        f"client CPU {s['client_cpu_pct']:.0f}%, Redis CPU {s['redis_cpu_pct']:.0f}% of one core"
    )
    return f"at {res.config['offered_rate']:,.0f} msg/s: " + "; ".join(why)


def first_unsustained(steps: list[StepResult], above: float = 0) -> StepResult | None:
    """The lowest-rate step above ``above`` msg/s that was not :func:`sustained`."""
    bad = [s for s in steps if not sustained(s) and (s.config["offered_rate"] or 0) > above]
    return min(bad, key=lambda s: s.config["offered_rate"]) if bad else None


def percentiles_by_rate(results: list[StepResult]) -> list[dict[str, Any]]:
    """[{rate, p50_ms, p99_ms, p999_ms, lost}] for the record."""
    return [
        {
            "rate": r.config["offered_rate"],
            "p50_ms": r.summary["p50_ms"],
            "p99_ms": r.summary["p99_ms"],
            "p999_ms": r.summary["p999_ms"],
            "lost": r.summary["lost"],
        }
        for r in sorted(results, key=lambda r: r.config["offered_rate"] or 0)
    ]


def save_histograms(results: list[StepResult], folder: str | Path) -> list[str]:
    """Write every step's merged latency histogram (``.hdr`` + ``.csv``) into ``folder``."""
    from opsbook.pubsub import hist

    out = Path(folder)
    written = []
    for i, res in enumerate(results):
        slug = "".join(c if c.isalnum() else "_" for c in f"{res.scenario}_{res.label}")
        written.append(str(hist.save(res.latency, out / f"{i:03d}_{slug}.hdr")))
    return written


def loss_counts(results: list[StepResult], jobs: pd.DataFrame | None = None) -> dict[str, Any]:
    """Lost / duplicated / reordered messages and cut-offs per scenario (and ai:jobs)."""
    out: dict[str, Any] = {}
    for res in results:
        acc = out.setdefault(
            res.scenario, {"sent": 0, "lost": 0, "duplicates": 0, "reordered": 0, "disconnects": 0}
        )
        for key in acc:
            acc[key] += int(res.summary[key])
    if jobs is not None:
        for row in jobs.to_dict(orient="records"):
            out[f"ai:jobs {row['transport']}"] = {
                "sent": row["published"],
                "lost": row["lost"],
                "redelivered": row["redelivered"],
            }
    return out


def throughput_limit(steps: list[StepResult], best: dict[str, int]) -> str:
    """What stopped the best publisher configuration just above its sustained maximum."""
    if not best:
        return "not measured"
    key = max(best, key=lambda k: best[k])
    pubs = int(key.split("_")[0])
    mine = [s for s in steps if s.config["pubs"] == pubs]
    return f"{pubs} publisher(s): " + describe_break(first_unsustained(mine, above=best[key]))

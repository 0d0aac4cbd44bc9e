"""Publisher lag (send time - intended time of a batch's oldest message) at 1k and 10k msg/s:
how the publisher waits and where it runs, before vs after, measured in the same run.

Variants (interleaved, so that each sees the same host load; median of ``--repeats``):

* ``before``: the first publisher: sleep in ``select()`` until 10 us before the due time,
  spin 20 us; default timer slack (50 us); no pinning; normal priority,
* ``early``: timer slack 1 ns and a sleep that ends early by the recent wake-up overshoot,
  spin the rest (bounded, see ``Waiter``),
* ``early+pin``: and, with at least 2 cores, the publisher on a core of its own among the
  benchmark's processes (subscribers on the others),
* ``early+pin+slice``: and a 0.1 ms EEVDF slice for the publisher, so that it preempts
  other programs on its core when it wakes (no privilege needed),
* ``median+pin+slice`` (the default now): and the early wake's margin follows the median
  recent overshoot, not the largest (see ``Waiter``: spinning for preemptions only spent
  the publisher's share of its core),
* ``early+pin+rt``: and SCHED_FIFO for the publisher during the step, when permitted
  (the refusal is printed otherwise).

Per variant: lag p50/p99/max (median over runs), delivery p50/p99, and what the late
batches (lag >= ``--late-us``) are made of, from per-batch publisher traces: the
run-queue delay the kernel accounted to the publisher since its previous batch (waiting
for a CPU), the sleep's overshoot past the due time, building the frames, the previous
``sendall``. Prints ``uptime`` load beside every figure; asserts nothing about time.

With ``--delay d`` every run goes through the delaying proxy (:mod:`opsbook.pubsub.netdelay`),
one per ``--proxies`` entry (``netdelay.KINDS``: ``loop``, the default: one thread, normal
priority, any core; ``loop-rt``: ``SCHED_FIFO`` when permitted; ``loop-rt-away``: and off
the publisher's core; ``loop-away``: off it at normal priority; ``threads``: the first
version, a reader and a writer thread per direction per connection), each variant
through each proxy, interleaved; the proxy's own lateness (how late it sent chunks past
arrival + d, p50/p99/max) is printed beside, so that its error is told from the harness'.

    .venv/bin/python benchmarks/pubsub_lag.py [--duration 2 --repeats 3 --delay 0]
    .venv/bin/python benchmarks/pubsub_lag.py --delay 2 --proxies loop,threads --variants early+pin
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
from dataclasses import dataclass
from typing import Any

import numpy as np

from opsbook.pubsub import scenarios
from opsbook.pubsub.endpoint import resolve
from opsbook.pubsub.harness import Bench
from opsbook.pubsub.netdelay import KINDS, DelayProxy
from opsbook.pubsub.workers import TRACE_FIELDS


@dataclass(frozen=True)
class Variant:
    name: str
    wait: str
    pin: bool
    realtime: bool
    short_slice: bool = False


VARIANTS = (
    Variant("before", "select", False, False),
    Variant("early", "early-max", False, False),
    Variant("early+pin", "early-max", True, False),
    Variant("early+pin+slice", "early-max", True, False, True),
    Variant("median+pin+slice", "early", True, False, True),
    Variant("early+pin+rt", "early-max", True, True),
)


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def breakdown(traces: list[bytes], late_us: float) -> dict[str, float]:
    """What the late batches are made of (see the module docstring); times in us."""
    rows = [np.frombuffer(t, dtype=np.int64).reshape(-1, len(TRACE_FIELDS)) for t in traces]
    t = np.concatenate(rows) if rows else np.empty((0, len(TRACE_FIELDS)), dtype=np.int64)
    if len(t) < 2:
        return {}
    intended, woke, top, sending, sent, run_delay = (t[:, i] for i in range(len(TRACE_FIELDS)))
    lag = (sending - intended) / 1e3
    runq = np.diff(run_delay, prepend=run_delay[0]) / 1e3  # since the previous batch
    waited = woke > 0
    overshoot = np.where(waited, np.maximum(0, woke - intended), 0) / 1e3
    build = (sending - top) / 1e3
    prev_send = np.concatenate(([0], (sent - sending)[:-1])) / 1e3
    late = lag >= late_us
    n_late = int(late.sum())

    def med(x: np.ndarray) -> float:
        return float(np.median(x[late])) if n_late else 0.0

    return {
        "batches": float(len(t)),
        "late": float(n_late),
        "late_cpu_wait_share": float(np.mean(runq[late] >= 0.5 * lag[late])) if n_late else 0.0,
        "late_runq_us": med(runq),
        "late_overshoot_us": med(overshoot),
        "late_build_us": med(build),
        "late_prev_send_us": med(prev_send),
        "overshoot_p99_us": float(np.percentile(overshoot[waited], 99)) if waited.any() else 0.0,
        "build_p99_us": float(np.percentile(build, 99)),
        "send_p99_us": float(np.percentile((sent - sending) / 1e3, 99)),
    }


KEYS = ("publisher_lag_p50_ms", "publisher_lag_p99_ms", "publisher_lag_max_ms", "p50_ms", "p99_ms")


def measure(
    bench: Bench, variant: Variant, rate: int, duration: float, late_us: float, proxy: Any
) -> dict:
    bench.wait, bench.pin, bench.realtime, bench.trace = (
        variant.wait,
        variant.pin,
        variant.realtime,
        True,
    )
    bench.short_slice = variant.short_slice
    if proxy is not None:
        proxy.lateness()
    res = scenarios.open_loop(bench, rate, duration, scenario="lag")
    s = res.summary
    late = proxy.lateness() if proxy is not None else {}
    return {
        **{k: s[k] for k in KEYS},
        **breakdown(res.pub_traces, late_us),
        **{f"proxy_{k}": late[k] for k in ("late_p50_ms", "late_p99_ms", "late_max_ms") if late},
        "load": os.getloadavg()[0],
        "placed": f"{s.get('publisher_cpus')} / {s.get('publisher_priority')}",
        "wait": s.get("publisher_wait", ""),
        "lost": s["lost"],
    }


def report(benches: dict[str, tuple[Bench, Any]], args: argparse.Namespace) -> None:
    rates = [int(r) for r in args.rates.split(",") if r.strip()]
    chosen = [v for v in VARIANTS if v.name in args.variants.split(",")]
    print(uptime())
    print(
        f"{os.cpu_count()} cores; {args.duration} s per run; median of {args.repeats}; "
        + (f"through a proxy delaying {args.delay:g} ms each way" if args.delay else "direct")
    )
    for name, (_, proxy) in benches.items():
        if proxy is not None:
            print(f"  proxy {name}: {proxy.placed}")
    configs = [(p, v) for p in benches for v in chosen]
    for rate in rates:
        runs: dict[tuple[str, str], list[dict]] = {(p, v.name): [] for p, v in configs}
        for _ in range(args.repeats):
            for p, v in configs:
                bench, proxy = benches[p]
                runs[p, v.name].append(measure(bench, v, rate, args.duration, args.late_us, proxy))
        print(f"\n== {rate:,} msg/s, 1 KB, 1 -> 1 ({uptime().split('load')[-1].strip()})")
        print(
            f"  {'proxy / variant':<22} {'lag p50':>8} {'lag p99':>8} {'lag max':>8} "
            f"{'deliv p50':>9} {'deliv p99':>9} {'load':>5}  late batches (>= {args.late_us:g} us):"
            f" n, CPU-wait share, median run-queue / overshoot / build / prev send us"
        )
        base = None
        for p, v in configs:
            rs = runs[p, v.name]
            m = {k: statistics.median(r.get(k, 0.0) for r in rs) for k in rs[0] if k in _NUM}
            base = base or m["publisher_lag_p99_ms"]
            label = f"{p} / {v.name}" if args.delay else v.name
            print(
                f"  {label:<22} {m['publisher_lag_p50_ms']:>8.3f} {m['publisher_lag_p99_ms']:>8.3f} "
                f"{m['publisher_lag_max_ms']:>8.3f} {m['p50_ms']:>9.3f} {m['p99_ms']:>9.3f} "
                f"{m['load']:>5.1f}  {m.get('late', 0):>5.0f} {m.get('late_cpu_wait_share', 0):>5.0%}"
                f" {m.get('late_runq_us', 0):>7.0f} / {m.get('late_overshoot_us', 0):.0f} / "
                f"{m.get('late_build_us', 0):.0f} / {m.get('late_prev_send_us', 0):.0f}"
                f"   (lag p99 x{m['publisher_lag_p99_ms'] / max(base, 1e-9):.2f} of the first row)"
            )
            print(
                f"  {'':<22} lag p99 of each run: "
                + ", ".join(f"{r['publisher_lag_p99_ms']:.3f}" for r in rs)
                + f" ms; select overshoot p99 {m.get('overshoot_p99_us', 0):.0f} us, build p99 "
                f"{m.get('build_p99_us', 0):.0f} us, sendall p99 {m.get('send_p99_us', 0):.0f} us;"
                f" lost {sum(r['lost'] for r in rs)}"
            )
            if "proxy_late_p50_ms" in m:
                print(
                    f"  {'':<22} proxy late p50 {m['proxy_late_p50_ms']:.3f} / p99 "
                    f"{m['proxy_late_p99_ms']:.3f} / max {m['proxy_late_max_ms']:.3f} ms "
                    "(past arrival + d)"
                )
            print(f"  {'':<22} {rs[-1]['placed']}; {rs[-1]['wait']}")
    print("\n" + uptime())


_NUM = set(KEYS) | {
    "batches",
    "late",
    "late_cpu_wait_share",
    "late_runq_us",
    "late_overshoot_us",
    "late_build_us",
    "late_prev_send_us",
    "overshoot_p99_us",
    "build_p99_us",
    "send_p99_us",
    "load",
    "proxy_late_p50_ms",
    "proxy_late_p99_ms",
    "proxy_late_max_ms",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per variant and rate")
    parser.add_argument("--rates", default="1000,10000")
    parser.add_argument("--variants", default=",".join(v.name for v in VARIANTS))
    parser.add_argument("--late-us", type=float, default=500.0, help="a late batch's lag")
    parser.add_argument("--delay", type=float, default=0.0, help="through a proxy (ms each way)")
    parser.add_argument(
        "--proxies", default="loop", help=f"with --delay: any of {', '.join(KINDS)}"
    )
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        endpoint = stack.enter_context(resolve("REDIS_URL"))
        benches: dict[str, tuple[Bench, Any]] = {}
        for impl in args.proxies.split(",") if args.delay else ["direct"]:
            proxy: Any = None
            ep = endpoint
            if args.delay:
                target = (endpoint.params.host, endpoint.params.port)
                proxy = stack.enter_context(DelayProxy(target, args.delay, **KINDS[impl]))
                ep = proxy.endpoint(endpoint.params)
            bench = stack.enter_context(Bench(ep, sub_procs=1, pub_procs=1))
            bench.warm_up()
            benches[impl] = (bench, proxy)
        report(benches, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

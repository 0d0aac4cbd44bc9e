"""Harness throughput vs. ``redis-benchmark PUBLISH``, and latency at 1k / 10k / the knee.

In the same run, against the same Redis (default 127.0.0.1:6379, or $REDIS_URL):

* baseline: ``redis-benchmark -c 50 PUBLISH ch <1 KB>`` (publish round trip, no subscriber),
* the harness: highest *sustained* open-loop rate, 1 publisher -> 1 subscriber, 1 KB
  (zero loss, schedule kept, p99 <= 100 ms), delivered msgs/s; goal >= 70% of the baseline,
* the closed-loop saturation run (labelled; loses messages once the subscriber falls behind),
* p50/p99 at 1,000 and 10,000 msg/s (``--repeats`` runs each, median shown with every run)
  and around the knee where p99 crosses 10 ms,
* the delay table (``--delays 0,2,5``): the same 1 -> 1 runs through a loopback proxy that
  delays each direction by d ms; expected p50 = 2d + the no-delay p50 (A) or, measured,
  the no-delay p50 + the PING round trip's increase (B: on a busy host a process that
  sleeps d ms also wakes late), and the publisher's lag, which must not grow with d;
  the proxy's own lateness (past arrival + d) beside. ``--proxies loop,threads`` repeats
  the table through each proxy kind (``threads``: the first version), ``--realtime`` runs
  it with SCHED_FIFO publishers when permitted, ``--only-delays`` skips everything else.

Prints figures and ratios; asserts nothing about time.

    .venv/bin/python benchmarks/pubsub.py [--duration 2 --requests 200000 --delays 0,2,5]
    .venv/bin/python benchmarks/pubsub.py --only-delays --proxies loop,threads
"""

from __future__ import annotations

import argparse
import os
import statistics
from typing import Any

from opsbook.pubsub import crosscheck, scenarios
from opsbook.pubsub.endpoint import resolve
from opsbook.pubsub.harness import Bench
from opsbook.pubsub.netdelay import KINDS, DelayProxy


def _baseline(bench: Bench, requests: int, repeat: int) -> dict:
    runs = [
        crosscheck.redis_benchmark_publish(bench.params, size=1024, requests=requests, clients=50)
        for _ in range(repeat)
    ]
    if not runs[0].get("available") or "rps" not in runs[0]:
        return runs[0]
    return {
        **runs[-1],
        "rps": statistics.median(r["rps"] for r in runs),
        "all_rps": [r["rps"] for r in runs],
    }


def _line(label: str, res: scenarios.StepResult | None) -> str:
    if res is None:
        return f"  {label:<34} not measured"
    s = res.summary
    return (
        f"  {label:<34} offered {res.config['offered_rate'] or 0:>9,.0f}  delivered "
        f"{s['delivered_rate']:>9,.0f}/s  p50 {s['p50_ms']:7.3f} ms  p99 {s['p99_ms']:8.3f} ms"
        f"  lost {s['lost']}"
    )


def delay_table(
    target: Any,
    delays: list[float],
    rates: list[int],
    duration: float,
    kind: str = "loop",
    realtime: bool = False,
) -> None:
    """p50 through a delaying proxy against 2d + the no-delay p50, per rate (median of 3)."""
    print(
        f"\n== through a delaying proxy on loopback (d ms each way; proxy {kind}), 1 -> 1, "
        f"1 KB, median of 3 ({_load()})"
    )
    print(
        "  expected A = 2d + no-delay p50; expected B = no-delay p50 + (PING p50 - no-delay PING p50)"
    )
    print(
        f"  {'rate':>7} {'d ms':>5} {'expect A':>9} {'expect B':>9} {'measured p50':>13} "
        f"{'lag p50':>8} {'lag p99':>8} {'PING p50/p99':>14} {'proxy late p50/p99':>18} "
        f"{'load':>5}"
    )
    proxies = [DelayProxy((target.host, target.port), d, **KINDS[kind]) for d in delays]
    print(f"  proxy: {proxies[0].placed}")
    benches = [
        Bench(p.endpoint(target), sub_procs=1, pub_procs=1, realtime=realtime) for p in proxies
    ]
    try:
        for bench in benches:
            bench.warm_up()
        for rate in rates:
            rows: dict[float, list[tuple[dict, float]]] = {d: [] for d in delays}
            for _ in range(3):  # interleaved, so that every delay sees the same host load
                for d, bench, proxy in zip(delays, benches, proxies, strict=True):
                    proxy.lateness()
                    res = scenarios.open_loop(bench, rate, duration)
                    late = proxy.lateness()
                    rows[d].append((res.summary, (late["late_p50_ms"], late["late_p99_ms"])))
            med = {
                d: {k: statistics.median(s[k] for s, _ in rows[d]) for k in _DELAY_KEYS}
                for d in delays
            }
            base, rtt0 = med[delays[0]]["p50_ms"], med[delays[0]]["rtt_p50_ms"]
            print(f"  publisher: {rows[delays[0]][-1][0].get('publisher_priority')}")
            for d in delays:
                late50 = statistics.median(x[0] for _, x in rows[d])
                late99 = statistics.median(x[1] for _, x in rows[d])
                m = med[d]
                within = abs(m["p50_ms"] - (2 * d + base)) <= 0.1 * (2 * d + base)
                print(
                    f"  {rate:>7,} {d:>5g} {2 * d + base:>6.3f} ms "
                    f"{base + m['rtt_p50_ms'] - rtt0:>6.3f} ms "
                    f"{m['p50_ms']:>10.3f} ms {m['publisher_lag_p50_ms']:>8.3f} "
                    f"{m['publisher_lag_p99_ms']:>8.3f} {m['rtt_p50_ms']:>6.2f}/"
                    f"{m['rtt_p99_ms']:<6.2f} {late50:>8.3f}/{late99:<8.3f} {m['host_load_1m']:>5.1f}"
                    f"  A within 10%: {'yes' if within else 'NO'}; p50 of each run "
                    + ", ".join(f"{s['p50_ms']:.3f}" for s, _ in rows[d])
                )
    finally:
        for bench in benches:
            bench.close()
        for proxy in proxies:
            proxy.close()


_DELAY_KEYS = (
    "p50_ms",
    "p99_ms",
    "publisher_lag_p50_ms",
    "publisher_lag_p99_ms",
    "rtt_p50_ms",
    "rtt_p99_ms",
    "host_load_1m",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per step")
    parser.add_argument("--requests", type=int, default=200_000, help="redis-benchmark -n")
    parser.add_argument("--repeat", type=int, default=3, help="redis-benchmark runs (median)")
    parser.add_argument("--repeats", type=int, default=3, help="latency runs per rate (median)")
    parser.add_argument("--delays", default="0,2,5", help="proxy delays (ms each way); '' skips")
    parser.add_argument("--delay-rates", default="1000,10000", help="rates of the delay table")
    parser.add_argument(
        "--proxies", default="loop", help=f"delay table per proxy kind: any of {', '.join(KINDS)}"
    )
    parser.add_argument(
        "--realtime", action="store_true", help="delay table: SCHED_FIFO publishers if permitted"
    )
    parser.add_argument("--only-delays", action="store_true", help="the delay table only")
    args = parser.parse_args()
    if args.only_delays:
        with resolve("REDIS_URL") as endpoint:
            _delay_tables(endpoint, args)
        return 0
    with resolve("REDIS_URL") as endpoint:
        return report(endpoint, args)


def report(endpoint: Any, args: argparse.Namespace) -> int:
    """Every measurement against ``endpoint``, printed in order."""
    with Bench(endpoint) as bench:
        bench.warm_up()
        env = bench.environment()
        print(
            f"endpoint {endpoint.kind} {endpoint.label}; Redis {env['redis_version']}; "
            f"{env['cores']} cores; hiredis {env['hiredis']}; single host {env['single_host']}"
        )
        base = _baseline(bench, args.requests, args.repeat)
        best_1, steps_1 = scenarios.max_throughput(
            bench, 1, args.duration, start_rate=20_000, refine=2
        )
        best_2, steps_2 = scenarios.max_throughput(
            bench, 2, args.duration, start_rate=20_000, refine=2
        )
        closed = scenarios.saturation(bench, 2, args.duration)
        sweep = scenarios.rate_sweep(bench, [1_000, 10_000, 40_000], args.duration)
        knee, extra = scenarios.find_knee(bench, sweep, args.duration, refine=2)
        sweep += extra
        for rate in (1_000, 10_000):
            scenarios.repeats_at_rate(bench, sweep, rate, args.duration, repeats=args.repeats)
    delivered = max(
        (s.summary["delivered_rate"] for s in steps_1 if scenarios.sustained(s)), default=0
    )
    print("\n== throughput, 1 KB, 1 subscriber")
    if "rps" in base:
        print(
            f"  redis-benchmark PUBLISH (50 clients, no subscriber): {base['rps']:,.0f} req/s "
            f"(runs {[round(r) for r in base.get('all_rps', [base['rps']])]}), "
            f"p50 {base.get('p50_ms')} ms, p99 {base.get('p99_ms')} ms"
        )
    else:
        print(f"  redis-benchmark unavailable: {base.get('note') or base.get('error')}")
    print(
        f"  harness max sustained, 1 publisher: offered {best_1:,} msg/s, "
        f"delivered {delivered:,.0f} msg/s"
    )
    print(f"  harness max sustained, 2 publishers: offered {best_2:,} msg/s")
    print(
        f"  closed-loop saturation (2 pub, labelled): delivered "
        f"{closed.summary['delivered_rate']:,.0f} msg/s, lost {closed.summary['lost']:,}, "
        f"cut-offs {closed.summary['disconnects']}"
    )
    if base.get("rps"):
        ratio = delivered / base["rps"]
        print(
            f"  ratio harness / redis-benchmark = {ratio:.2f} "
            f"(goal >= 0.70: {'met' if ratio >= 0.7 else 'NOT met'})"
        )
    print(
        f"  first unsustained step: {scenarios.describe_break(scenarios.first_unsustained(steps_1))}"
    )
    print("\n== latency from intended send time, 1 -> 1, 1 KB, open loop")
    picks = [
        ("1,000 msg/s", 1_000),
        ("10,000 msg/s", 10_000),
        ("last rate with p99 <= 10 ms", knee["last_ok_rate"]),
        ("knee (first rate, p99 > 10 ms)", knee["knee_rate"]),
    ]
    for label, rate in picks:
        runs = [s for s in sweep if rate is not None and s.config["offered_rate"] == rate]
        print(_line(label, scenarios.median_run(runs) if runs else None))
        if len(runs) > 1:
            every = ", ".join(f"{r.summary['p99_ms']:.2f}" for r in runs)
            loads = ", ".join(f"{r.summary['host_load_1m']:.1f}" for r in runs)
            print(f"  {'':<34} (median of {len(runs)}; p99 of each: {every} ms; load {loads})")
    load = [s.summary["host_load_1m"] for s in sweep]
    print(f"  host load (1 min) during the sweep: {min(load):.1f} .. {max(load):.1f}")
    _delay_tables(endpoint, args)
    return 0


def _load() -> str:
    return "load " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _delay_tables(endpoint: Any, args: argparse.Namespace) -> None:
    delays = [float(d) for d in args.delays.split(",") if d.strip()]
    if not delays:
        return
    rates = [int(r) for r in args.delay_rates.split(",") if r.strip()]
    for kind in args.proxies.split(","):
        delay_table(endpoint.params, delays, rates, args.duration, kind, args.realtime)
    print(f"\n({_load()})")


if __name__ == "__main__":
    raise SystemExit(main())

"""Harness throughput vs. ``redis-benchmark PUBLISH``, and latency at 1k / 10k / the knee.

In the same run, against the same Redis (default 127.0.0.1:6379, or $REDIS_URL):

* baseline: ``redis-benchmark -c 50 PUBLISH ch <1 KB>`` (publish round trip, no subscriber),
* the harness: highest *sustained* open-loop rate, 1 publisher -> 1 subscriber, 1 KB
  (zero loss, schedule kept, p99 <= 100 ms), delivered msgs/s; goal >= 70% of the baseline,
* the closed-loop saturation run (labelled; loses messages once the subscriber falls behind),
* p50/p99 at 1,000 and 10,000 msg/s and around the knee where p99 crosses 10 ms.

Prints figures and ratios; asserts nothing about time.

    .venv/bin/python benchmarks/pubsub.py [--duration 2 --requests 200000]
"""

from __future__ import annotations

import argparse
import statistics

from opsbook.pubsub import crosscheck
from opsbook.pubsub import scenarios as sc
from opsbook.pubsub.endpoint import resolve
from opsbook.pubsub.harness import Bench


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


def _line(label: str, res: sc.StepResult | None) -> str:
    if res is None:
        return f"  {label:<34} not measured"
    s = res.summary
    return (
        f"  {label:<34} offered {res.config['offered_rate'] or 0:>9,.0f}  delivered "
        f"{s['delivered_rate']:>9,.0f}/s  p50 {s['p50_ms']:7.3f} ms  p99 {s['p99_ms']:8.3f} ms"
        f"  lost {s['lost']}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per step")
    parser.add_argument("--requests", type=int, default=200_000, help="redis-benchmark -n")
    parser.add_argument("--repeat", type=int, default=3, help="redis-benchmark runs (median)")
    args = parser.parse_args()
    with resolve("REDIS_URL") as endpoint, Bench(endpoint) as bench:
        bench.warm_up()
        env = bench.environment()
        print(
            f"endpoint {endpoint.kind} {endpoint.label}; Redis {env['redis_version']}; "
            f"{env['cores']} cores; hiredis {env['hiredis']}; single host {env['single_host']}"
        )
        base = _baseline(bench, args.requests, args.repeat)
        best_1, steps_1 = sc.max_throughput(bench, 1, args.duration, start_rate=20_000, refine=2)
        best_2, steps_2 = sc.max_throughput(bench, 2, args.duration, start_rate=20_000, refine=2)
        closed = sc.saturation(bench, 2, args.duration)
        sweep = sc.rate_sweep(bench, [1_000, 10_000, 40_000], args.duration)
        knee, extra = sc.find_knee(bench, sweep, args.duration, refine=2)
        sweep += extra
    delivered = max((s.summary["delivered_rate"] for s in steps_1 if sc.sustained(s)), default=0)
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
    print(f"  first unsustained step: {sc.describe_break(sc.first_unsustained(steps_1))}")
    print("\n== latency from intended send time, 1 -> 1, 1 KB, open loop")
    picks = [
        ("1,000 msg/s", 1_000),
        ("10,000 msg/s", 10_000),
        ("last rate with p99 <= 10 ms", knee["last_ok_rate"]),
        ("knee (first rate, p99 > 10 ms)", knee["knee_rate"]),
    ]
    for label, rate in picks:
        runs = [s for s in sweep if rate is not None and s.config["offered_rate"] == rate]
        for i, run in enumerate(runs or [None]):
            print(_line(label if i == 0 else "  (repeat)", run))
    load = [s.summary["host_load_1m"] for s in sweep]
    print(f"  host load (1 min) during the sweep: {min(load):.1f} .. {max(load):.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Figures that hold over a network: a delaying proxy on loopback stands for the network.

With a delay ``d`` per direction between the clients and Redis, a message goes publisher ->
proxy -> Redis -> proxy -> subscriber, so its latency is ``2d`` plus what it is without
delay; the publisher must not add a round trip of its own by waiting on replies.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator

import pytest

from opsbook.pubsub import scenarios as sc
from opsbook.pubsub.endpoint import Endpoint
from opsbook.pubsub.harness import Bench, StepResult
from opsbook.pubsub.netdelay import DelayProxy

pytestmark = pytest.mark.services

DELAYS_MS = (0, 2, 5)


@pytest.fixture(scope="module")
def proxies(endpoint: Endpoint) -> Iterator[dict[int, Bench]]:
    """One delaying proxy and one Bench through it per delay (0, 2, 5 ms each way); the
    Bench's ``proxy`` attribute is its proxy."""
    target = (endpoint.params.host, endpoint.params.port)
    opened: list[DelayProxy] = []
    benches: dict[int, Bench] = {}
    try:
        for delay in DELAYS_MS:
            opened.append(DelayProxy(target, delay))
            benches[delay] = Bench(opened[-1].endpoint(endpoint.params), sub_procs=1, pub_procs=1)
            benches[delay].warm_up()
            benches[delay].proxy = opened[-1]  # type: ignore[attr-defined]
        yield benches
    finally:
        for bench in benches.values():
            bench.close()
        for proxy in opened:
            proxy.close()


def test_the_proxy_adds_its_delay_to_the_round_trip(proxies: dict[int, Bench]) -> None:
    rtt = {d: proxies[d].rtt(pings=20)["rtt_p50_ms"] for d in DELAYS_MS}
    assert rtt[5] >= 10.0 and rtt[2] >= 4.0  # a round trip crosses the proxy twice
    assert rtt[0] < rtt[2] < rtt[5]


def test_the_publisher_sends_on_schedule_without_waiting_for_replies(
    proxies: dict[int, Bench],
) -> None:
    res = sc.open_loop(proxies[5], 1000, 0.5)
    s = res.summary
    assert s["sent"] == 500 and s["lost"] == 0 and s["received"] == 500
    # a 10 ms round trip at 1 message per ms: a publisher that waited on each reply would
    # never have more than one batch unanswered; this one had several ms of them
    assert s["publishes_in_flight_max"] >= 5
    assert s["zero_receiver_publishes"] == 0 and s["publish_errors"] == 0
    assert s["rtt_p50_ms"] >= 10.0  # the network context is recorded with the step


def _run(bench: Bench) -> tuple[StepResult, float]:
    """One 1,000 msg/s step and how late the proxy itself was (median, ms)."""
    bench.proxy.lateness()  # type: ignore[attr-defined]
    res = sc.open_loop(bench, 1000, 1.0)
    return res, bench.proxy.lateness()["late_p50_ms"]  # type: ignore[attr-defined]


@pytest.mark.slow
def test_latency_through_a_delay_is_twice_the_delay_plus_the_no_delay_latency(
    proxies: dict[int, Bench],
) -> None:
    """The delay table of issue 18: p50(d) = 2d + p50(0) within 10%. The machine is shared,
    so the runs are interleaved (0, 2, 5, 0, 2, 5, ...) and the median of 3 decides. A
    message crosses the proxy twice, and on a busy host the proxy's sleeping threads wake
    late (it never sleeps at 0 ms): that measured lateness is the proxy's, and is added to
    the expectation. The tolerance widens to the spread of the no-delay p50 when larger."""
    runs: dict[int, list[StepResult]] = {d: [] for d in DELAYS_MS}
    late: dict[int, list[float]] = {d: [] for d in DELAYS_MS}
    for _ in range(3):
        for delay in DELAYS_MS:
            res, proxy_late = _run(proxies[delay])
            runs[delay].append(res)
            late[delay].append(proxy_late)
    p50 = {d: statistics.median(r.summary["p50_ms"] for r in runs[d]) for d in DELAYS_MS}
    base = [r.summary["p50_ms"] for r in runs[0]]
    noise = max(base) - min(base)
    for delay in (2, 5):
        expected = 2 * delay + p50[0] + 2 * statistics.median(late[delay])
        assert abs(p50[delay] - expected) <= max(0.1 * expected, noise), (delay, p50, late)
    # the publisher's lag must not grow with the round trip (waiting on replies made it
    # 4.7 ms at 2 ms and 11.2 ms at 5 ms); what is left is the host's scheduling
    lag = {
        d: statistics.median(r.summary["publisher_lag_p50_ms"] for r in runs[d]) for d in DELAYS_MS
    }
    assert lag[2] <= lag[0] + 0.5 and lag[5] <= lag[0] + 0.5, lag
    assert all(r.summary["lost"] == 0 for rs in runs.values() for r in rs)

"""Figures that hold over a network: a delaying proxy on loopback stands for the network.

With a delay ``d`` per direction between the clients and Redis, a message goes publisher ->
proxy -> Redis -> proxy -> subscriber, so its latency is ``2d`` plus what it is without
delay; the publisher must not add a round trip of its own by waiting on replies.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator

import pytest

from opsbook.pubsub import scenarios
from opsbook.pubsub.endpoint import Endpoint
from opsbook.pubsub.harness import Bench, StepResult
from opsbook.pubsub.netdelay import DelayProxy

pytestmark = pytest.mark.services

DELAYS_MS = (0, 2, 5)


@pytest.fixture(scope="module")
def proxies(endpoint: Endpoint) -> Iterator[dict[int, Bench]]:
    """One delaying proxy and one Bench through it per delay (0, 2, 5 ms each way)."""
    target = (endpoint.params.host, endpoint.params.port)
    opened: list[DelayProxy] = []
    benches: dict[int, Bench] = {}
    try:
        for delay in DELAYS_MS:
            opened.append(DelayProxy(target, delay))
            benches[delay] = Bench(opened[-1].endpoint(endpoint.params), sub_procs=1, pub_procs=1)
            benches[delay].warm_up()
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
    res = scenarios.open_loop(proxies[5], 1000, 0.5)
    s = res.summary
    assert s["sent"] == 500 and s["lost"] == 0 and s["received"] == 500
    # a 10 ms round trip at 1 message per ms: a publisher that waited on each reply would
    # never have more than one batch unanswered; this one had several ms of them
    assert s["publishes_in_flight_max"] >= 5
    assert s["zero_receiver_publishes"] == 0 and s["publish_errors"] == 0
    assert s["rtt_p50_ms"] >= 10.0  # the network context is recorded with the step


@pytest.mark.slow
def test_latency_through_a_delay_is_the_no_delay_latency_plus_the_network(
    proxies: dict[int, Bench],
) -> None:
    """The delay table of issue 18: p50(d) = p50(0) + what the network adds, within 10%.

    What the network adds is measured, not assumed: the PING round trip recorded before
    each step, minus the one without delay. On an idle host that is 2d; on a busy one the
    proxy wakes late, for PING and for messages alike, and its wake-up to forward a chunk
    is hidden in d when d > 0 (it stamps arrivals with the kernel's receive time) but not
    when d = 0, so the difference can be a little under 2d (a round trip through the
    proxy is never under 2d: the lower bound asserted). A harness that waits on replies
    adds ~0.65 of a round trip on top, which this catches. Runs are interleaved (0, 2, 5,
    0, ...) and the median of 3 decides; the tolerance widens to the spread of the no-delay
    p50, or to a fifth of the added round trip, when either is larger. The 10% table itself
    is the benchmark's (``benchmarks/pubsub.py --only-delays``), measured on an idle host."""
    runs: dict[int, list[StepResult]] = {d: [] for d in DELAYS_MS}
    for _ in range(3):
        for delay in DELAYS_MS:
            runs[delay].append(scenarios.open_loop(proxies[delay], 1000, 1.0))

    def median(delay: int, key: str) -> float:
        return float(statistics.median(r.summary[key] for r in runs[delay]))

    base = [r.summary["p50_ms"] for r in runs[0]]
    noise = max(base) - min(base)
    for delay in (2, 5):
        assert median(delay, "rtt_p50_ms") >= 2 * delay  # the proxy really delays both ways
        network = median(delay, "rtt_p50_ms") - median(0, "rtt_p50_ms")
        expected = median(0, "p50_ms") + network
        measured = median(delay, "p50_ms")
        # 10% of the expected p50, or the no-delay p50's own spread, or a fifth of the
        # added round trip when that is larger (a busy CI host with a second xdist worker
        # delays the proxy during a step, not during the PING before it: seen 0.88 ms at
        # d=2). A harness that waits on replies adds ~0.65 of the round trip: still caught.
        tolerance = max(0.1 * expected, noise, 0.2 * network)
        assert abs(measured - expected) <= tolerance, (delay, measured, expected, tolerance)
    assert all(r.summary["lost"] == 0 for rs in runs.values() for r in rs)

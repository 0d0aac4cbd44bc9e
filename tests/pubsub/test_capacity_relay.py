"""Connection capacity, the WebSocket hop, redis-benchmark cross-check and the charts."""

from __future__ import annotations

import shutil

import pytest
from matplotlib.figure import Figure

from opsbook.pubsub import capacity, charts, crosscheck, relay, scenarios, verdict
from opsbook.pubsub.harness import Bench

pytestmark = pytest.mark.services


def test_capacity_opens_idle_subscribers_and_measures_memory(bench: Bench) -> None:
    before = bench.admin.info("clients")["connected_clients"]
    cap = capacity.connection_capacity(
        bench, 200, procs=2, checkpoints=2, settle_s=0.2, latency_s=0.2
    )
    assert cap["reached"] == 200 and cap["limit"] is None
    samples = cap["samples"]
    assert list(samples["connections"]) == [100, 200, 200]
    assert (samples["tot_mem_per_conn"] > 0).all()
    assert samples["connected_clients"].iloc[1] >= before + 200
    assert cap["latency"].summary["lost"] == 0
    after = bench.admin.info("clients")["connected_clients"]
    assert after < before + 200  # the holders closed their connections


def test_settled_memory_per_connection_is_measured_and_differs_from_just_connected(
    bench: Bench,
) -> None:
    cap = capacity.connection_capacity(
        bench, 100, procs=1, checkpoints=1, settle_s=30, latency_s=0.1
    )
    settled = cap["settled"]
    assert settled["settled"] is True and settled["when"] == "settled"
    assert capacity.SETTLE_WINDOW - 1 <= settled["settle_wait_s"] < 30
    fresh = cap["samples"].iloc[0]
    assert fresh["when"] == "just connected"
    # Redis shrinks an idle client's buffers after a few seconds: tens of KB -> ~2 KB
    assert settled["tot_mem_per_conn"] < fresh["tot_mem_per_conn"] / 4
    assert settled["used_memory_per_conn"] < fresh["used_memory_per_conn"] / 4
    row = verdict.memory_claim(
        fresh["tot_mem_age_le_1s"], settled["used_memory_per_conn"], settled["settle_wait_s"]
    )
    assert "just connected" in row["measured"] and "settled (after" in row["measured"]


def test_websocket_hop_delivers_to_every_client(bench: Bench) -> None:
    res = relay.measure(bench, clients=4, rate=400, duration_s=0.5)
    assert res["sent"] == 200
    assert res["deliveries"] == 4 * 200 and res["lost"] == 0
    assert res["count"] == res["deliveries"]
    assert res["p50_ms"] <= res["p99_ms"]


@pytest.mark.skipif(shutil.which("redis-benchmark") is None, reason="redis-benchmark missing")
def test_redis_benchmark_crosscheck_parses_rps(bench: Bench) -> None:
    run = crosscheck.redis_benchmark_publish(bench.params, size=256, requests=2000, clients=4)
    assert run["available"] and run["rps"] > 0
    assert run["p50_ms"] <= run["p99_ms"]


def test_charts_render_from_real_results(bench: Bench) -> None:
    steps = [scenarios.open_loop(bench, r, 0.2, scenario="rate_sweep") for r in (500, 2000)]
    fan = scenarios.fanout(bench, [1, 3], rate=500, duration_s=0.2)
    frame = scenarios.table(steps + fan)
    cap = capacity.connection_capacity(bench, 20, checkpoints=2, settle_s=0.0, latency_s=0.1)
    figs = [
        charts.latency_cdf_and_histogram({s.label: s.latency for s in steps}),
        charts.percentiles_vs_rate(scenarios.table(steps)),
        charts.throughput_vs_fanout(scenarios.table(fan)),
        charts.memory_per_connection(cap["samples"]),
        charts.loss_vs_rate(frame),
    ]
    assert all(isinstance(f, Figure) and f.axes for f in figs)


def test_capacity_reports_the_maxclients_limit_instead_of_failing() -> None:
    from opsbook.pubsub.endpoint import start_redis_server

    with start_redis_server(["--maxclients", "60"]) as ep, Bench(ep, sub_procs=1) as small:
        cap = capacity.connection_capacity(
            small, 100, procs=2, checkpoints=1, settle_s=0.0, latency_s=0.1
        )
    assert 40 <= cap["reached"] < 60
    assert "max number of clients" in cap["limit"]
    assert cap["maxclients"] == 60
    claim = verdict.connections_claim(cap["reached"], 100, cap["limit"], cap["maxclients"])
    assert claim["pass"] is False and "max number of clients" in claim["breaks_when"]

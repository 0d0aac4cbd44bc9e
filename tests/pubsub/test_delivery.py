"""Short real-Redis runs: invariants of a clean run, loss from a slow subscriber, cleanup."""

from __future__ import annotations

import os
import time

import pytest

from opsbook.pubsub import scenarios, sched
from opsbook.pubsub.harness import Bench

pytestmark = pytest.mark.services


def test_clean_run_delivers_every_message_exactly_once(bench: Bench) -> None:
    res = bench.step(
        channels=[bench.channel("inv")],
        subs=[{}, {}],
        rate=2000,
        count=1000,
        size=256,
        pubs=2,
        scenario="test",
    )
    s = res.summary
    assert s["sent"] == 2000
    assert s["received"] == 2 * 2000  # two subscribers, every message once each
    assert (s["lost"], s["duplicates"], s["reordered"], s["disconnects"]) == (0, 0, 0, 0)
    assert res.latency.get_total_count() == s["received"]
    assert s["p50_ms"] <= s["p90_ms"] <= s["p99_ms"] <= s["p999_ms"] <= s["max_ms"]
    assert s["p50_ms"] > 0


def test_patterns_and_per_user_channels_count_what_each_connection_should_get(
    bench: Bench,
) -> None:
    names = [bench.channel(f"user:notifications:{i}") for i in range(3)]
    subs = [
        {"channels": [names[0]]},
        {"channels": names[1:]},
        {"patterns": [bench.channel("user:notifications:*")]},
    ]
    res = bench.step(
        channels=names, subs=subs, rate=900, count=300, size=128, weights=[1, 1, 1], scenario="test"
    )
    per_conn = sorted((c["expected"], c["received"], c["lost"]) for c in res.conns)
    sent = res.summary["sent"]
    assert sent == 300
    assert per_conn[-1] == (sent, sent, 0)  # the pattern subscriber sees every user
    assert sum(e for e, _, _ in per_conn[:2]) == sent
    assert all(lost == 0 for _, _, lost in per_conn)
    assert res.latency.get_total_count() == 2 * sent


def test_slow_subscriber_is_cut_off_and_its_loss_counted(bench: Bench) -> None:
    before = bench.admin.config_get("client-output-buffer-limit")
    res = scenarios.slow_subscriber(
        bench, rate=2000, duration_s=0.5, size=8192, delay_us=2000, limit="256kb 128kb 1"
    )
    after = bench.admin.config_get("client-output-buffer-limit")
    assert after == before  # the temporary limit was restored
    table = scenarios.slow_table(res).set_index("subscriber")
    assert table.loc["fast", "lost"] == 0
    assert table.loc["fast", "received"] == res.summary["sent"]
    assert table.loc["slow", "lost"] > 0
    assert table.loc["slow", "disconnects"] >= 1
    assert len(table.loc["slow", "client_ids"]) >= 2  # reconnected as a new client
    assert table.loc["slow", "received"] + table.loc["slow", "lost"] == res.summary["sent"]
    assert res.summary["lost"] == table.loc["slow", "lost"]


def test_closed_loop_is_labelled_and_accounts_for_everything(bench: Bench) -> None:
    res = scenarios.saturation(bench, 1, 0.3, size=512)
    s = res.summary
    assert res.config["loop"] == "closed" and res.config["offered_rate"] is None
    assert s["sent"] > 0
    assert s["received"] + s["lost"] == s["sent"]


def test_run_leaves_no_keys_and_no_config_change(endpoint: object) -> None:
    from opsbook.pubsub import streams

    with Bench(endpoint, sub_procs=1, pub_procs=1) as b:  # type: ignore[arg-type]
        config = b.admin.config_get("client-output-buffer-limit")
        df = streams.compare(b, jobs=120, rate=400)
        prefix = b.prefix
        admin = b.admin
        assert admin.keys(f"{prefix}:*") == []
        assert admin.config_get("client-output-buffer-limit") == config
    rows = df.set_index("transport")
    assert rows.loc["pub/sub", "lost"] > 0
    assert rows.loc["pub/sub", "lost_worker_absent"] > 0
    assert rows.loc["pub/sub", "publish_to_nobody"] > 0
    streams_row = rows.loc["Redis Streams + consumer group"]
    assert streams_row["lost"] == 0 and streams_row["processed_unique"] == 120


def test_redis_py_silent_reconnect_is_counted(endpoint: object) -> None:
    from opsbook.pubsub.redispy import ReconnectWatch, redis_client

    r = redis_client(endpoint.params, client_name="opsbook-test-watch")  # type: ignore[attr-defined]
    pubsub = r.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("opsbook-test-watch")
    watch = ReconnectWatch(pubsub)
    subscriber = [
        c for c in r.client_list() if c["name"] == "opsbook-test-watch" and c["sub"] == "1"
    ]
    assert len(subscriber) == 1
    assert r.client_kill_filter(_id=subscriber[0]["id"]) == 1  # Redis drops the subscriber
    for _ in range(10):  # no exception reaches the caller: redis-py reconnects and resubscribes
        assert pubsub.get_message(timeout=0.2) is None
        if watch.reconnects:
            break
    assert watch.reconnects == 1
    assert r.publish("opsbook-test-watch", b"after") == 1  # resubscribed, nobody was told
    watch.close()
    pubsub.close()
    r.close()


def test_cluster_endpoint_uses_sharded_pubsub(tmp_path: object) -> None:
    from opsbook.pubsub.endpoint import probe, start_redis_server

    with start_redis_server(
        ["--cluster-enabled", "yes", "--cluster-config-file", f"{tmp_path}/nodes.conf"]
    ) as ep:
        from opsbook.pubsub.redispy import admin_client

        admin = admin_client(ep.params)
        admin.cluster("addslotsrange", 0, 16383)
        for _ in range(100):
            if admin.cluster("info")["cluster_state"] == "ok":
                break
            time.sleep(0.05)
        admin.close()
        ep.info = probe(ep.params)
        with Bench(ep, sub_procs=1, pub_procs=1) as b:
            assert b.cluster and b.environment()["sharded_pubsub"] is True
            assert b.channel("x").startswith("{")  # one hash tag: one slot, one node
            res = scenarios.product_mix(
                b, ["chat:messages", "user:notifications"], 600, 0.3, users=3
            )
        assert res.summary["sent"] > 0
        assert res.summary["lost"] == 0 and res.summary["duplicates"] == 0
        assert res.summary["received"] == sum(c["expected"] for c in res.conns)


def test_a_step_records_where_the_publisher_ran_and_a_refused_priority(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(sched.os, "sched_setscheduler", refuse)
    monkeypatch.setattr(bench, "realtime", True)
    res = bench.step(channels=[bench.channel("lag")], subs=[{}], rate=2000, count=20)
    pubs, subs, why = sched.plan_affinity(1, 1, sched.cores())
    s = res.summary
    assert (s["sent"], s["lost"]) == (20, 0)
    assert s["publisher_priority"] == (
        "not permitted (PermissionError: [Errno 1] Operation not permitted), "
        + sched.set_slice(os.getpid(), sched.SLICE_NS)  # what this kernel does with it
    )
    sched.set_slice(os.getpid(), 0)
    if pubs:
        assert s["publisher_cpus"] == f"cpus {min(pubs[0])}"
        assert s["subscriber_cpus"] == ",".join(map(str, sorted(subs)))
    else:
        assert s["publisher_cpus"] == why
    assert s["publisher_wait"].startswith("early")
    every = set(sched.cores())  # back on every core after the step
    assert all(os.sched_getaffinity(p.process.pid) == every for p in bench._pubs + bench._subs)

"""A real 3-master Redis Cluster on loopback: started, measured with both patterns, stopped."""

from __future__ import annotations

from collections.abc import Iterator

import psutil
import pytest

from opsbook.pubsub import charts, cluster, verdict
from opsbook.pubsub.errors import RedisUnreachable

pytestmark = [
    pytest.mark.services,
    pytest.mark.skipif(not cluster.available(), reason="redis-server/redis-cli not on PATH"),
]


def _alive(pids: list[int]) -> list[int]:
    return [
        pid
        for pid in pids
        if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    ]


@pytest.fixture(scope="module")
def local_cluster() -> Iterator[cluster.LocalCluster]:
    with cluster.LocalCluster(3) as started:
        yield started
    assert _alive(started.pids) == []


def test_three_masters_share_every_slot(local_cluster: cluster.LocalCluster) -> None:
    assert len(local_cluster.nodes) == 3 and len(_alive(local_cluster.pids)) == 3
    tags = [local_cluster.tag_on(i, "t") for i in range(3)]
    assert len(set(tags)) == 3 and all(t.startswith("{t-") for t in tags)


def test_classic_publish_is_broadcast_and_sharded_stays_on_its_shard(
    local_cluster: cluster.LocalCluster,
) -> None:
    frame, steps = cluster.compare_patterns(
        local_cluster, shards=[1, 3], rate_per_shard=400, duration_s=0.5, subs_per_shard=1
    )
    rows = frame.set_index(["pattern", "shards"])
    assert list(frame["pattern"]) == ["classic", "sharded", "classic", "sharded"]
    for res in steps:  # every message reached its subscribers, whatever the pattern
        s = res.summary
        assert s["lost"] == 0 and s["received"] == s["sent"]
        assert s["sent"] == 200 * res.config["shards"]
    # 1 shard: node 0 publishes 200 messages; classic sends each over the bus to both
    # other nodes, sharded to none (no replicas); end markers are classic and broadcast
    classic_bus = rows.loc[("classic", 1), "bus_messages_in_per_node"]
    sharded_bus = rows.loc[("sharded", 1), "bus_messages_in_per_node"]
    assert classic_bus[1] >= 200 and classic_bus[2] >= 200
    assert sharded_bus[1] < 200 and sharded_bus[2] < 200
    assert rows.loc[("sharded", 3), "connections_per_node"] == [2, 2, 2]
    assert rows.loc[("classic", 1), "connections_per_node"] == [2, 0, 0]
    assert len(rows.loc[("sharded", 3), "redis_cpu_pct_per_node"]) == 3
    fig = charts.cluster_scaling(frame)
    assert len(fig.axes) == 3
    row = verdict.cluster_pattern(frame)
    assert row["verdict"] in {"use SPUBLISH/SSUBSCRIBE", "use PUBLISH/SUBSCRIBE"}
    assert "bus" in row["measured"]


def test_the_cluster_is_stopped_when_the_block_fails() -> None:
    with pytest.raises(RuntimeError, match="boom"), cluster.LocalCluster(3) as doomed:
        pids = doomed.pids
        raise RuntimeError("boom")
    assert _alive(pids) == []


def test_the_cluster_is_stopped_when_creating_it_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    doomed = cluster.LocalCluster(3)
    monkeypatch.setattr(
        cluster.shutil, "which", lambda name: name if name != "redis-cli" else "false"
    )
    monkeypatch.setattr(cluster, "available", lambda: True)
    with pytest.raises(RedisUnreachable, match="cluster create failed"), doomed:
        pass
    assert len(doomed.pids) == 3 and _alive(doomed.pids) == []

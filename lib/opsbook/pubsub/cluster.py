"""A 3-master Redis Cluster on loopback, and classic vs sharded pub/sub on 1 -> 3 shards.

:class:`LocalCluster` starts real ``redis-server`` processes (``cluster-enabled yes``, no
persistence, 127.0.0.1 only, ports below 55,000 so that each bus port, port + 10,000,
exists), joins them with ``redis-cli --cluster create`` and always stops them, even when
the start itself fails half-way.

:func:`compare_patterns` measures the two ways a product channel can live on a cluster:

* classic ``PUBLISH``/``SUBSCRIBE``: a message published on one node is broadcast over
  the cluster bus to every node, whether a subscriber is there or not (Redis documents
  this; it is the best-known way pub/sub stops scaling on a cluster);
* sharded ``SPUBLISH``/``SSUBSCRIBE`` (Redis 7): a channel belongs to the slot of its
  name and only that shard handles it (no pattern subscriptions).

With ``k`` shards in use, there is one channel per shard (a hash tag owned by that node),
one publisher and ``subs_per_shard`` subscribers per channel, all connected to the owning
node, offering ``rate_per_shard`` msg/s each. Recorded per step: delivered msg/s, p50/p99,
Redis CPU of every node (INFO cpu before and after), the pub/sub messages each node got
over the cluster bus (CLUSTER INFO counters: the broadcast, counted rather than inferred)
and the connections each node holds.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from opsbook.errors import ConfigError
from opsbook.pubsub.endpoint import Endpoint, free_port, log_tail, probe
from opsbook.pubsub.errors import RedisUnreachable
from opsbook.pubsub.harness import Bench, StepResult
from opsbook.pubsub.redispy import admin_client
from opsbook.pubsub.resp import ConnParams

PATTERNS = {"classic": "PUBLISH", "sharded": "SPUBLISH"}


def available() -> bool:
    """True when ``redis-server`` and ``redis-cli`` are on PATH (a cluster can be started)."""
    return bool(shutil.which("redis-server") and shutil.which("redis-cli"))


def wanted(choice: str, profile_default: bool) -> bool:
    """Whether to run the cluster comparison: ``on``, ``off`` or ``auto`` (the profile's
    default), and only where a cluster can be started."""
    if choice not in ("on", "off", "auto"):
        raise ConfigError(f"cluster_compare={choice!r}", hint="use on, off or auto")
    chosen = {"on": True, "off": False}.get(choice, profile_default)
    if chosen and choice == "on" and not available():
        raise ConfigError(
            "cluster_compare=on needs redis-server and redis-cli on PATH",
            hint="install redis, or use cluster_compare=auto",
        )
    return chosen and available()


@dataclass
class LocalCluster:
    """``masters`` real redis-server processes joined into one cluster (no replicas).

    >>> with LocalCluster(3) as cluster:  # doctest: +SKIP
    ...     frame = compare_patterns(cluster, shards=[1, 2, 3])
    """

    masters: int = 3
    timeout_s: float = 60.0
    nodes: list[ConnParams] = field(default_factory=list)
    _procs: list[subprocess.Popen] = field(default_factory=list)
    _tmp: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> LocalCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def start(self) -> None:
        """Start the nodes, create the cluster, wait until every slot is served."""
        if not available():
            raise RedisUnreachable(
                "redis-server or redis-cli is not on PATH", hint="install redis (apt redis-server)"
            )
        self._tmp = tempfile.TemporaryDirectory(prefix="opsbook-cluster-")
        for i in range(self.masters):
            self._start_node(f"{self._tmp.name}/n{i}")
        addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
        cmd = [shutil.which("redis-cli") or "redis-cli", "--cluster", "create", *addresses]
        cmd += ["--cluster-replicas", "0", "--cluster-yes"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout_s)
        if done.returncode != 0:
            raise RedisUnreachable(
                f"redis-cli --cluster create failed: {(done.stdout + done.stderr)[-300:]}"
            )
        for node in self.nodes:
            self._wait(lambda n=node: _cluster_ok(n), "cluster_state:ok on every node")

    def _start_node(self, folder: str, attempts: int = 3) -> None:
        """Start one node and wait until it answers; a port another process took between
        choosing and binding it is retried on a new port."""
        os.makedirs(folder)
        for attempt in range(attempts):
            port = free_port(below=55_000)
            proc = self._spawn(port, folder)
            node = ConnParams(host="127.0.0.1", port=port)
            self._procs.append(proc)
            self.nodes.append(node)
            try:
                self._wait(lambda n=node: probe(n, timeout=1.0), "a cluster node to answer")
                return
            except RedisUnreachable:
                if proc.poll() is None or attempt == attempts - 1:
                    raise
                self._procs.pop()
                self.nodes.pop()
                with contextlib.suppress(OSError):
                    os.remove(f"{folder}/nodes.conf")

    def _spawn(self, port: int, folder: str) -> subprocess.Popen:
        cmd = [shutil.which("redis-server") or "redis-server", "--port", str(port)]
        cmd += ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", folder]
        cmd += ["--cluster-enabled", "yes", "--cluster-config-file", f"{folder}/nodes.conf"]
        cmd += ["--cluster-node-timeout", "5000"]
        with open(f"{folder}/redis.log", "ab") as out:
            return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)

    def _wait(self, check: Any, what: str) -> None:
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(RedisUnreachable, OSError, ConnectionError):
                if check() is not False:
                    return
            for proc, node in zip(self._procs, self.nodes, strict=True):
                if proc.poll() is not None:
                    tail = self._log_tail(node)
                    raise RedisUnreachable(
                        f"cluster node 127.0.0.1:{node.port} exited while waiting for {what}; "
                        f"its log ends: {tail or '(empty)'}"
                    )
            time.sleep(0.1)
        raise RedisUnreachable(f"timed out after {self.timeout_s:.0f} s waiting for {what}")

    def _log_tail(self, node: ConnParams) -> str:
        if self._tmp is None:
            return ""
        index = self.nodes.index(node)
        return log_tail(f"{self._tmp.name}/n{index}/redis.log")

    def stop(self) -> None:
        """Stop every node (terminate, then kill) and delete their folders. Idempotent."""
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                proc.kill()
                proc.wait(timeout=10)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def endpoint(self, index: int = 0) -> Endpoint:
        """Node ``index`` as an :class:`Endpoint` (its INFO says cluster_enabled:1)."""
        params = self.nodes[index]
        return Endpoint(params=params, kind=f"local cluster node {index}", info=probe(params))

    def tag_on(self, index: int, prefix: str) -> str:
        """A hash tag (``{...}``) whose slot node ``index`` owns."""
        client = admin_client(self.nodes[index])
        try:
            ranges = [
                (int(r[0]), int(r[1]))
                for r in client.cluster("slots")
                if int(r[2][1]) == self.nodes[index].port
            ]
            for i in range(100_000):
                tag = f"{prefix}-{i}"
                slot = int(client.cluster("keyslot", tag))
                if any(lo <= slot <= hi for lo, hi in ranges):
                    return "{" + tag + "}"
        finally:
            client.close()
        raise RedisUnreachable(f"node {index} owns no slot")  # pragma: no cover

    def counters(self) -> list[dict[str, float]]:
        """Per node: Redis CPU seconds (used_cpu_sys + used_cpu_user) and the pub/sub
        messages it received over the cluster bus (CLUSTER INFO
        ``cluster_stats_messages_publish[shard]_received``)."""
        out = []
        for node in self.nodes:
            client = admin_client(node)
            try:
                cpu = client.info("cpu")
                bus = client.cluster("info")
            finally:
                client.close()
            out.append(
                {
                    "cpu_s": float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]),
                    "bus_in": float(bus.get("cluster_stats_messages_publish_received", 0))
                    + float(bus.get("cluster_stats_messages_publishshard_received", 0)),
                }
            )
        return out


def _cluster_ok(node: ConnParams) -> bool:
    import redis

    try:
        client = admin_client(node, timeout=2.0)
    except redis.RedisError:
        return False
    try:
        info = client.cluster("info")
    except redis.RedisError:
        return False
    finally:
        client.close()
    return info.get("cluster_state") == "ok" and info.get("cluster_slots_ok") == "16384"


def pattern_step(
    bench: Bench,
    cluster: LocalCluster,
    *,
    pattern: str,
    shards: int,
    rate_per_shard: int,
    duration_s: float,
    subs_per_shard: int = 2,
    size: int = 1024,
) -> StepResult:
    """One step: ``shards`` channels, each on its own node, published with ``pattern``."""
    tags = [cluster.tag_on(i, bench.prefix) for i in range(shards)]
    channels = [f"{tag}:bench" for tag in tags]
    nodes = cluster.nodes[:shards]
    subs = [
        {"channels": [channels[i]], "params": nodes[i], "group": f"shard {i}"}
        for i in range(shards)
        for _ in range(subs_per_shard)
    ]
    one_hot = [[1.0 if j == i else 0.0 for j in range(shards)] for i in range(shards)]
    before = cluster.counters()
    res = bench.step(
        channels=channels,
        subs=subs,
        rate=rate_per_shard,
        count=max(1, int(rate_per_shard * duration_s)),
        size=size,
        pubs=shards,
        pub_params=list(nodes),
        pub_weights=one_hot,
        command=PATTERNS[pattern],
        scenario="cluster",
        label=f"{pattern}, {shards} shard(s)",
    )
    after = cluster.counters()
    cpu = [b["cpu_s"] - a["cpu_s"] for a, b in zip(before, after, strict=True)]
    window = max(1e-9, res.summary["window_s"])
    res.summary["bus_messages_in_per_node"] = [
        int(b["bus_in"] - a["bus_in"]) for a, b in zip(before, after, strict=True)
    ]
    res.config.update(pattern=pattern, shards=shards, nodes=len(cluster.nodes))
    res.summary["redis_cpu_pct_per_node"] = [round(100 * c / window, 1) for c in cpu]
    res.summary["redis_cpu_pct_total"] = round(100 * sum(cpu) / window, 1)
    res.summary["redis_cpu_us_per_msg"] = round(1e6 * sum(cpu) / max(1, res.summary["sent"]), 1)
    res.summary["connections_per_node"] = [
        (1 + subs_per_shard) if i < shards else 0 for i in range(len(cluster.nodes))
    ]
    return res


def compare_patterns(
    cluster: LocalCluster,
    *,
    shards: list[int] | None = None,
    rate_per_shard: int = 2000,
    duration_s: float = 1.0,
    subs_per_shard: int = 2,
) -> tuple[pd.DataFrame, list[StepResult]]:
    """Classic vs sharded pub/sub on 1 -> ``len(nodes)`` shards; one row per step."""
    steps: list[StepResult] = []
    with Bench(cluster.endpoint(0), sub_procs=2, pub_procs=len(cluster.nodes)) as bench:
        bench.warm_up()
        for k in shards or list(range(1, len(cluster.nodes) + 1)):
            for pattern in PATTERNS:
                steps.append(
                    pattern_step(
                        bench,
                        cluster,
                        pattern=pattern,
                        shards=k,
                        rate_per_shard=rate_per_shard,
                        duration_s=duration_s,
                        subs_per_shard=subs_per_shard,
                    )
                )
    return cluster_table(steps), steps


CLUSTER_COLUMNS = [
    "pattern",
    "shards",
    "offered_rate",
    "sent",
    "received",
    "lost",
    "delivered_rate",
    "p50_ms",
    "p99_ms",
    "redis_cpu_us_per_msg",
    "redis_cpu_pct_total",
    "redis_cpu_pct_per_node",
    "bus_messages_in_per_node",
    "connections_per_node",
    "rtt_p50_ms",
    "host_load_1m",
]


def cluster_table(steps: list[StepResult]) -> pd.DataFrame:
    """One row per (pattern, shards) step with the figures the chart and verdict use."""
    frame = pd.DataFrame([s.row() for s in steps])
    return frame[[c for c in CLUSTER_COLUMNS if c in frame.columns]] if len(frame) else frame

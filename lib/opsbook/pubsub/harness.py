"""The orchestrator: long-lived publisher/subscriber processes and one measured step at a time.

``Bench`` spawns worker processes once (spawn start method) and reuses them for every
step, so process start-up is paid once per notebook. A step: subscribers connect and
subscribe, say ready; publishers start together at a common ``perf_counter_ns`` instant;
when they are done the orchestrator publishes ``end:<step>`` on the control channel, which
reaches each subscriber after every data message Redis sent it. Before the publishers
start, the client <-> server round trip (PING p50/p99) is measured and recorded with the
step (on a raw socket, like the measured traffic: redis-py's own overhead would be
measured too). The step's result merges the subscribers' histograms and compares what each
connection got with what was sent to the channels it listens to: lost, duplicated,
reordered. Everything else (INFO, CONFIG, key clean-up, the end marker, cluster slots)
goes through redis-py on :attr:`Bench.admin`.
"""

from __future__ import annotations

import contextlib
import fnmatch
import multiprocessing as mp
import os
import platform
import time
import uuid
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from typing import Any

import numpy as np
import psutil
from hdrh.histogram import HdrHistogram

from opsbook.pubsub import hist, sched
from opsbook.pubsub.endpoint import Endpoint
from opsbook.pubsub.errors import WorkerFailed
from opsbook.pubsub.redispy import admin_client
from opsbook.pubsub.resp import ConnParams, RawConn
from opsbook.pubsub.workers import CLOCK, DEFAULT_WAIT, publisher_main, subscriber_main

START_DELAY_NS = 150_000_000
RTT_PINGS = 50


@dataclass
class WorkerProc:
    """A spawned worker process, its end of the Pipe and a psutil handle for CPU."""

    process: Any
    pipe: Connection
    ps: psutil.Process

    def cpu(self) -> float:
        try:
            t = self.ps.cpu_times()
        except psutil.Error:  # pragma: no cover - process gone
            return 0.0
        return float(t.user + t.system)


@dataclass
class StepResult:
    """One measured step: offered load, what arrived, latency, loss, CPU."""

    label: str
    scenario: str
    config: dict[str, Any]
    summary: dict[str, Any]
    latency: HdrHistogram
    per_channel: dict[str, HdrHistogram] = field(default_factory=dict)
    conns: list[dict[str, Any]] = field(default_factory=list)
    pub_traces: list[bytes] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        """Flat dict for tables and records (histograms excluded)."""
        return {"scenario": self.scenario, "label": self.label, **self.config, **self.summary}


def receive(proc: WorkerProc, timeout: float, what: str) -> dict[str, Any]:
    """The worker's next message; a clear :class:`WorkerFailed` on silence, death or error."""
    if not proc.pipe.poll(timeout):
        raise WorkerFailed(
            f"{what} did not answer within {timeout:.0f} s",
            hint="the machine may be overloaded; lower rates or connections",
        )
    try:
        msg = proc.pipe.recv()
    except EOFError:
        raise WorkerFailed(f"{what} died (exit code {proc.process.exitcode})") from None
    if msg.get("error"):
        raise WorkerFailed(f"{what} failed: {msg['error']}")
    return msg


class Bench:
    """Worker processes plus an admin client (redis-py) for one Redis endpoint.

    How publishers keep their schedule, for every step (recorded in each result):
    ``wait`` (see :class:`~opsbook.pubsub.workers.Waiter`); ``pin``: when there are
    cores enough for one per publisher and one per active subscriber process, each
    publisher gets a core that no subscriber process of this Bench runs on; ``realtime``:
    ``SCHED_FIFO`` for publishers during the step when permitted (a refusal is
    recorded); ``short_slice``: otherwise a 0.1 ms EEVDF slice for publishers during the
    step (:func:`~opsbook.pubsub.sched.set_slice`: a publisher that wakes when a message
    is due preempts what else runs on its core, no privilege needed); ``trace``: per-batch
    publisher times, kept in :attr:`StepResult.pub_traces`.

    >>> Bench(resolve()) as bench:  # doctest: +SKIP
    ...     res = bench.step(rate=1000, count=1000, size=1024, channels=["c"], subs=[{}])
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        sub_procs: int = 2,
        pub_procs: int = 2,
        prefix: str | None = None,
        wait: str = DEFAULT_WAIT,
        pin: bool = True,
        realtime: bool = False,
        short_slice: bool = True,
    ) -> None:
        self.endpoint = endpoint
        self.wait, self.pin, self.realtime, self.trace = wait, pin, realtime, False
        self.short_slice = short_slice
        self.params = endpoint.params
        self.prefix = prefix or f"opsbook:pubsub:{uuid.uuid4().hex[:10]}"
        self.ctl = f"{self.prefix}:ctl"
        self.n_sub, self.n_pub = max(1, sub_procs), max(1, pub_procs)
        self._ctx = mp.get_context("spawn")
        self._subs: list[WorkerProc] = []
        self._pubs: list[WorkerProc] = []
        self._admin: Any = None  # redis.Redis, created on first use
        self._rtt_conn: RawConn | None = None
        self.step_id = 0
        self.results: list[StepResult] = []
        self.cluster = endpoint.info.get("cluster_enabled") == 1
        if self.cluster:
            self.params = self._shard_owner()

    def _shard_owner(self) -> ConnParams:
        """On a cluster every channel of the run shares one hash tag, hence one slot: talk
        to the node that owns it (sharded pub/sub and stream keys live there)."""
        client = admin_client(self.params)
        try:
            slot = int(client.cluster("keyslot", self.prefix))
            for start, end, primary, *_ in client.cluster("slots"):
                if int(start) <= slot <= int(end):
                    host = primary[0] or self.params.host
                    return replace(self.params, host=host, port=int(primary[1]))
        finally:
            client.close()
        raise WorkerFailed(f"no cluster node owns slot {slot}", hint="is the cluster healthy?")

    # ----------------------------------------------------------------- lifecycle
    def __enter__(self) -> Bench:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def admin(self) -> Any:
        """A redis-py client (``str`` replies) for everything that is not measured."""
        if self._admin is None:
            self._admin = admin_client(self.params)
        return self._admin

    def spawn(self, target: Any, args: tuple) -> WorkerProc:
        """Start ``target(*args, pipe)`` in a spawned daemon process (ends with the Bench)."""
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(target=target, args=(*args, child), daemon=True)
        proc.start()
        child.close()
        return WorkerProc(proc, parent, psutil.Process(proc.pid))

    def subscribers(self, n: int) -> list[WorkerProc]:
        """The first ``n`` subscriber processes, spawned (and answering) when missing."""
        fresh = []
        while len(self._subs) < n:
            fresh.append(self.spawn(subscriber_main, (self.params,)))
            self._subs.append(fresh[-1])
        _ping(fresh)
        return self._subs[:n]

    def publishers(self, n: int) -> list[WorkerProc]:
        """The first ``n`` publisher processes, spawned (and answering) when missing."""
        fresh = []
        while len(self._pubs) < n:
            fresh.append(self.spawn(publisher_main, (self.params, len(self._pubs))))
            self._pubs.append(fresh[-1])
        _ping(fresh)
        return self._pubs[:n]

    def warm_up(self) -> None:
        """Spawn every worker process now so that no step pays for start-up."""
        self.subscribers(self.n_sub)
        self.publishers(self.n_pub)

    def close(self) -> None:
        for proc in self._subs + self._pubs:
            with contextlib.suppress(OSError):
                proc.pipe.send({"op": "stop"})
        for proc in self._subs + self._pubs:
            proc.process.join(timeout=3)
            if proc.process.is_alive():  # pragma: no cover
                proc.process.kill()
        self._subs, self._pubs = [], []
        if self._admin is not None:
            self.cleanup_keys()
            self._admin.close()
            self._admin = None
        if self._rtt_conn is not None:
            self._rtt_conn.close()
            self._rtt_conn = None

    def cleanup_keys(self) -> int:
        """Delete every key under this run's prefix (streams, markers); return how many."""
        keys = list(self.admin.scan_iter(match=f"*{self.prefix}*", count=1000))
        return sum(int(self.admin.delete(*keys[i : i + 1000])) for i in range(0, len(keys), 1000))

    # ----------------------------------------------------------------- facts
    def info(self) -> dict[str, Any]:
        """INFO everything, as redis-py parses it (numbers are numbers)."""
        return dict(self.admin.info("everything"))

    def redis_cpu(self) -> float:
        info = self.admin.info("cpu")
        return float(info.get("used_cpu_sys", 0)) + float(info.get("used_cpu_user", 0))

    def rtt(self, pings: int = RTT_PINGS) -> dict[str, float]:
        """Client <-> server round trip: ``pings`` sequential PINGs on a raw RESP socket
        (the measured traffic's client, without redis-py's overhead), p50 and p99 in ms.
        Recorded beside every step's latency so that a reader can tell the network from
        Redis (a 1 ms network adds 1 ms to every delivery)."""
        if self._rtt_conn is None:
            self._rtt_conn = RawConn(self.params)
        conn = self._rtt_conn
        samples = np.empty(pings, dtype=np.int64)
        for i in range(pings):
            t0 = CLOCK()
            conn.call("PING")
            samples[i] = CLOCK() - t0
        p50, p99 = np.percentile(samples, [50, 99]) / 1e6
        return {"rtt_p50_ms": round(float(p50), 4), "rtt_p99_ms": round(float(p99), 4)}

    def environment(self) -> dict[str, Any]:
        """Facts recorded with every result."""
        import redis as redis_py

        info = self.endpoint.info
        return {
            "endpoint": self.endpoint.label,
            "endpoint_kind": self.endpoint.kind,
            "redis_version": str(info.get("redis_version", "?")),
            "redis_mode": str(info.get("redis_mode", "?")),
            "hiredis": True,  # a dependency: the raw sockets parse with hiredis
            "cores": os.cpu_count(),
            "single_host": self.params.single_host,
            "python": platform.python_version(),
            "redis_py": redis_py.__version__,
            "harness_client": "raw RESP2 sockets (hiredis parser)",
            "sharded_pubsub": self.cluster,
            "host_load_1m": round(os.getloadavg()[0], 2),
        }

    def _row_env(self) -> dict[str, Any]:
        """The facts every result row carries (see :meth:`environment`)."""
        if not hasattr(self, "_env_cache"):
            env = self.environment()
            self._env_cache = {
                k: env[k]
                for k in ("redis_version", "hiredis", "cores", "single_host", "endpoint_kind")
            }
        return dict(self._env_cache)

    def channel(self, name: str) -> str:
        """This run's name for a product channel (prefixed; hash-tagged on a cluster)."""
        return f"{{{self.prefix}}}:{name}" if self.cluster else f"{self.prefix}:{name}"

    # ----------------------------------------------------------------- one step
    def step(
        self,
        *,
        channels: list[str],
        subs: list[dict[str, Any]],
        rate: float | None,
        count: int,
        size: int = 1024,
        pubs: int = 1,
        weights: list[float] | None = None,
        scenario: str = "custom",
        label: str = "",
        max_s: float | None = None,
        batch_max: int = 64,
        drain_s: float = 10.0,
        command: str | None = None,
        sizes: list[int] | None = None,
        pub_params: list[ConnParams] | None = None,
        pub_weights: list[list[float]] | None = None,
    ) -> StepResult:
        """Run one step. ``rate``/``count`` are per publisher; ``rate=None`` is closed-loop.

        ``subs`` is one dict per subscriber connection: ``channels`` (names from
        ``channels``; default all), ``patterns``, ``delay_us`` (slow consumer), ``proc``,
        ``params`` (another node to connect to, e.g. a cluster shard). ``pub_params`` and
        ``pub_weights`` give each publisher its own node and channel weights.
        """
        self.step_id += 1
        step = self.step_id
        pub_cmd = command or ("SPUBLISH" if self.cluster else "PUBLISH")
        sub_cmd = "SSUBSCRIBE" if pub_cmd == "SPUBLISH" else "SUBSCRIBE"
        expected_s = count / rate if rate else (max_s or 10.0)
        pub_procs = self.publishers(pubs)  # spawned before subscribing: nobody starts late
        groups = self._assign(subs, channels, sub_cmd)
        sub_procs = self.subscribers(max(groups) + 1 if groups else 0)
        active = [(sub_procs[i], specs) for i, specs in groups.items()]
        for proc, specs in active:
            proc.pipe.send(
                {
                    "op": "step",
                    "step": step,
                    "ctl": self.ctl,
                    "conns": specs,
                    "timeout_s": expected_s + drain_s + 5,
                }
            )
        placed = self._place(pub_procs, len(active))
        try:
            return self._run(
                step=step,
                pub_procs=pub_procs,
                active=active,
                placed=placed,
                expected_s=expected_s,
                drain_s=drain_s,
                run={
                    "channels": channels,
                    "rate": rate,
                    "count": count,
                    "size": size,
                    "sizes": sizes,
                    "batch_max": batch_max,
                    "max_s": max_s or 3600,
                    "command": pub_cmd,
                },
                weights=weights,
                pub_params=pub_params,
                pub_weights=pub_weights,
                scenario=scenario,
                label=label,
                subs_n=len(subs),
            )
        finally:
            self._unplace(pub_procs)

    def _place(self, pub_procs: list[WorkerProc], n_subs: int) -> dict[str, str]:
        """CPU affinity and priority of this step's processes (best effort, recorded)."""
        placed = {"publisher_cpus": "not pinned", "publisher_priority": "normal"}
        if self.pin:
            pubs, sub_cpus, why = sched.plan_affinity(len(pub_procs), n_subs, sched.cores())
            if pubs:
                done = [sched.set_affinity(p.process.pid, pubs[i]) for i, p in enumerate(pub_procs)]
                for proc in self._subs:
                    sched.set_affinity(proc.process.pid, sub_cpus)
                placed["publisher_cpus"] = "; ".join(done)
                placed["subscriber_cpus"] = ",".join(str(c) for c in sorted(sub_cpus))
            else:
                placed["publisher_cpus"] = why
        if self.realtime:
            placed["publisher_priority"] = "; ".join(
                sorted({sched.set_realtime(p.process.pid) for p in pub_procs})
            )
        if self.short_slice and not placed["publisher_priority"].startswith("SCHED_FIFO"):
            placed["publisher_priority"] += ", " + "; ".join(
                sorted({sched.set_slice(p.process.pid) for p in pub_procs})
            )
        return placed

    def _unplace(self, pub_procs: list[WorkerProc]) -> None:
        """Every worker back on every core, publishers back to normal priority."""
        every = set(sched.cores())
        for proc in self._subs + self._pubs:
            if proc.process.is_alive():
                sched.set_affinity(proc.process.pid, every)
        for proc in pub_procs:
            if proc.process.is_alive():
                if self.realtime:
                    sched.set_normal(proc.process.pid)
                if self.short_slice:
                    sched.set_slice(proc.process.pid, 0)

    def _run(
        self,
        *,
        step: int,
        pub_procs: list[WorkerProc],
        active: list[tuple[WorkerProc, Any]],
        placed: dict[str, str],
        expected_s: float,
        drain_s: float,
        run: dict[str, Any],
        weights: list[float] | None,
        pub_params: list[ConnParams] | None,
        pub_weights: list[list[float]] | None,
        scenario: str,
        label: str,
        subs_n: int,
    ) -> StepResult:
        self._await_ready(active)
        network = self.rtt()
        workers = [p for p, _ in active] + pub_procs
        cpu0, rcpu0 = [p.cpu() for p in workers], self.redis_cpu()
        start = CLOCK() + START_DELAY_NS
        for i, proc in enumerate(pub_procs):
            proc.pipe.send(
                {
                    **run,
                    "op": "run",
                    "step": step,
                    "start_ns": start,
                    "weights": pub_weights[i] if pub_weights else weights,
                    "params": pub_params[i] if pub_params else None,
                    "seed": step,
                    "wait": self.wait,
                    "trace": self.trace,
                }
            )
        pub_reports = [receive(p, expected_s * 3 + 60, "publisher process") for p in pub_procs]
        sub_reports = self._collect(active, drain_s + 10)
        cpu1, rcpu1 = [p.cpu() for p in workers], self.redis_cpu()
        rate, pubs = run["rate"], len(pub_procs)
        result = self._result(
            scenario=scenario,
            label=label,
            channels=run["channels"],
            start=start,
            pub_reports=pub_reports,
            sub_reports=sub_reports,
            config={
                "offered_rate": (rate * pubs) if rate else None,
                "pubs": pubs,
                "size": run["size"],
                "subscribers": subs_n,
                "loop": "open" if rate else "closed",
            },
            cpu={"client_cpu_s": sum(cpu1) - sum(cpu0), "redis_cpu_s": rcpu1 - rcpu0},
        )
        result.summary.update(network)
        result.summary.update(placed)
        result.summary["publisher_wait"] = pub_reports[0].get("wait", "")
        result.pub_traces = [r["trace"] for r in pub_reports if r.get("trace")]
        self.results.append(result)
        return result

    def _assign(
        self, subs: list[dict[str, Any]], channels: list[str], sub_cmd: str
    ) -> dict[int, list[dict[str, Any]]]:
        groups: dict[int, list[dict[str, Any]]] = {}
        for i, spec in enumerate(subs):
            proc = int(spec.get("proc", i % self.n_sub))
            full = {
                "channels": list(
                    spec.get("channels", channels if not spec.get("patterns") else [])
                ),
                "patterns": list(spec.get("patterns", [])),
                "delay_us": int(spec.get("delay_us", 0)),
                "command": sub_cmd,
                "group": spec.get("group", ""),
                "rcvbuf": int(spec.get("rcvbuf", 0)),
                "params": spec.get("params"),
            }
            groups.setdefault(proc, []).append(full)
        return dict(sorted(groups.items()))

    def _await_ready(self, active: list[tuple[WorkerProc, Any]]) -> None:
        """Wait for every subscriber process to be subscribed. If one fails (say maxclients),
        end the step for the others so that no stale report is mistaken for the next one."""
        ready, failure = [], None
        for proc, specs in active:
            try:
                receive(proc, 60, "subscriber process (subscribe)")
                ready.append((proc, specs))
            except WorkerFailed as exc:
                failure = failure or exc
        if failure is not None:
            with contextlib.suppress(WorkerFailed):
                self._collect(ready, 10)
            raise failure

    def _collect(
        self, active: list[tuple[WorkerProc, Any]], timeout: float
    ) -> list[dict[str, Any]]:
        """Publish the end marker (repeatedly, in case a subscriber was reconnecting)."""
        pending = {id(p.pipe): p for p, _ in active}
        reports: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while pending:
            self.admin.publish(self.ctl, f"end:{self.step_id}")
            for pipe in wait([p.pipe for p in pending.values()], timeout=0.25):
                proc = pending.pop(id(pipe))
                reports.append(receive(proc, 1, "subscriber process"))
            if time.monotonic() > deadline and pending:
                raise WorkerFailed(f"{len(pending)} subscriber process(es) never finished")
        return reports

    def _result(
        self,
        *,
        scenario: str,
        label: str,
        channels: list[str],
        start: int,
        pub_reports: list[dict[str, Any]],
        sub_reports: list[dict[str, Any]],
        config: dict[str, Any],
        cpu: dict[str, float],
    ) -> StepResult:
        sent = {r["pub_id"]: r["sent_per_channel"] for r in pub_reports}
        conns = [c for rep in sub_reports for c in rep["conns"]]
        lost = dups = reorders = received = 0
        for conn in conns:
            exp, uniq = _expected(conn, channels, sent)
            conn["expected"], conn["lost"] = exp, exp - uniq
            lost += exp - uniq
            received += uniq
            for _unique, dup, reorder, _ in conn["flows"].values():
                dups += dup
                reorders += reorder
        by_chan: dict[str, list[str]] = {}
        for rep in sub_reports:
            for ch, enc in rep["latency"].items():
                by_chan.setdefault(channels[int(ch)], []).append(enc)
        per_channel = {name: hist.merge(encs) for name, encs in by_chan.items()}
        latency = hist.merge(enc for encs in by_chan.values() for enc in encs)
        last = max((c["last_ns"] for c in conns if c["last_ns"]), default=start)
        pub_first = min(r["first_ns"] for r in pub_reports)
        pub_last = max(r["last_ns"] for r in pub_reports)
        total_sent = sum(r["sent"] for r in pub_reports)
        window = max(last, pub_last) - min(start, pub_first)
        lag = hist.merge(r["lag"] for r in pub_reports)
        summary = {
            **hist.summary(latency),
            "sent": total_sent,
            "received": received,
            "lost": lost,
            "duplicates": dups,
            "reordered": reorders,
            "disconnects": sum(c["disconnects"] for c in conns),
            "reconnects": sum(c["reconnects"] for c in conns),
            "zero_receiver_publishes": sum(r["zero_receivers"] for r in pub_reports),
            "publish_errors": sum(r["errors"] for r in pub_reports),
            "publish_rate": total_sent / max(1e-9, (pub_last - pub_first) / 1e9),
            "delivered_rate": received / max(1e-9, window / 1e9),
            "publisher_lag_p50_ms": lag.get_value_at_percentile(50) / 1000.0,
            "publisher_lag_p99_ms": lag.get_value_at_percentile(99) / 1000.0,
            "publisher_lag_max_ms": lag.get_max_value() / 1000.0,
            "publishes_in_flight_max": max(r["max_in_flight"] for r in pub_reports),
            "timed_out": any(rep["timed_out"] for rep in sub_reports),
            "window_s": window / 1e9,
            **cpu,
            "client_cpu_pct": 100 * cpu["client_cpu_s"] / max(1e-9, window / 1e9),
            "redis_cpu_pct": 100 * cpu["redis_cpu_s"] / max(1e-9, window / 1e9),
            "host_load_1m": round(os.getloadavg()[0], 2),
        }
        summary.update(self._row_env())
        return StepResult(
            label=label or scenario,
            scenario=scenario,
            config=config,
            summary=summary,
            latency=latency,
            per_channel=per_channel,
            conns=conns,
        )


def _ping(procs: list[WorkerProc]) -> None:
    for proc in procs:
        proc.pipe.send({"op": "ping"})
    for proc in procs:
        receive(proc, 60, "new worker process")


def _expected(
    conn: dict[str, Any], channels: list[str], sent: dict[int, list[int]]
) -> tuple[int, int]:
    """Messages sent to what ``conn`` listens to, and unique ones it got."""
    listened = set(conn["channels"])
    idx = [
        i
        for i, name in enumerate(channels)
        if name in listened or any(fnmatch.fnmatchcase(name, p) for p in conn["patterns"])
    ]
    expected = sum(per[i] for per in sent.values() for i in idx)
    unique = sum(f[0] for f in conn["flows"].values())
    return expected, unique

"""Connection capacity: many idle subscriber connections, and what each costs Redis.

Holder processes (a few, each with its RLIMIT_NOFILE raised to the hard limit) open
plain sockets, send ``CLIENT SETNAME`` + ``SUBSCRIBE`` on all of them, then read the
replies: thousands of connections per second without asyncio. At each checkpoint the
orchestrator reads INFO (``used_memory``, ``mem_clients_normal``, ``connected_clients``)
and CLIENT LIST (``tot-mem`` of our named connections, and of those at most 1 s old: what a
connection costs right after connecting); then it polls once a second until the memory per
connection has stopped moving (``SETTLE_WINDOW`` polls within 2%) or ``settle_s`` passed,
since Redis shrinks idle query/reply buffers only after a few seconds (Redis 7.0 here:
~37 KB just connected, ~1.9 KB tot-mem / ~2.5 KB used_memory after ~6 s). Both figures are
kept, with how long settling took and whether it did. The first limit hit
(fd limit, ``maxclients``) is reported instead of raised.
"""

from __future__ import annotations

import contextlib
import time
from multiprocessing.connection import Connection
from typing import Any

import pandas as pd

from opsbook.pubsub.harness import Bench, receive
from opsbook.pubsub.resp import ConnParams, RawConn, ReplyError, pack
from opsbook.pubsub.workers import raise_nofile_limit


def _open_batch(
    params: ConnParams, n: int, name: str, channel: str
) -> tuple[list[RawConn], str | None]:
    """Open up to ``n`` subscribed connections; stop at the first error and say which."""
    conns: list[RawConn] = []
    error = None
    hello = pack("CLIENT", "SETNAME", name) + pack("SUBSCRIBE", channel)
    for _ in range(n):
        try:
            conn = RawConn(params, timeout=10.0, wait_auth=False)
            conn.send(hello)
        except Exception as exc:  # fd limit (EMFILE) or refused
            error = str(exc)
            break
        conns.append(conn)
    alive = []
    for conn in conns:
        try:
            for _ in range(3 if params.password else 2):
                reply = conn.read_reply()
                if isinstance(reply, ReplyError):
                    raise reply
        except (ReplyError, OSError, ConnectionError) as exc:
            error = error or str(exc) or "connection closed by Redis"
            conn.close()
            continue
        alive.append(conn)
    return alive, error


def holder_main(params: ConnParams, pipe: Connection) -> None:
    """Entry point of a holder process: ``open`` (more) connections, ``close`` them all."""
    soft, hard = raise_nofile_limit()
    conns: list[RawConn] = []
    while True:
        cmd = pipe.recv()
        if cmd["op"] == "ping":
            pipe.send({"pong": True, "nofile": [soft, hard]})
        elif cmd["op"] == "open":
            new, error = _open_batch(params, int(cmd["n"]), cmd["name"], cmd["channel"])
            conns += new
            pipe.send({"open": len(conns), "limit_error": error})
        elif cmd["op"] in ("close", "stop"):
            for conn in conns:
                conn.close()
            conns = []
            pipe.send({"closed": True})
            if cmd["op"] == "stop":
                return


def _memory(bench: Bench, name: str) -> dict[str, Any]:
    info = bench.admin.info("everything")
    ours = [client for client in bench.admin.client_list() if client.get("name") == name]
    tot = [int(client["tot-mem"]) for client in ours]
    fresh = [t for t, client in zip(tot, ours, strict=True) if int(client["age"]) <= 1]
    return {
        "used_memory": int(info["used_memory"]),
        "mem_clients_normal": int(info.get("mem_clients_normal", 0)),
        "connected_clients": int(info["connected_clients"]),
        "client_list_count": len(ours),
        "tot_mem_sum": sum(tot),
        "fresh_tot_mem": sum(fresh) / len(fresh) if fresh else float("nan"),
    }


def connection_capacity(
    bench: Bench,
    connections: int,
    *,
    procs: int = 2,
    checkpoints: int = 4,
    settle_s: float = 2.0,
    latency_rate: int = 1000,
    latency_s: float = 0.5,
) -> dict[str, Any]:
    """Open up to ``connections`` idle subscribers; memory per connection; latency with them.

    Returns ``{"samples": DataFrame, "reached": int, "limit": str|None, "settled": {...},
    "latency": StepResult|None, "maxclients": int, "nofile": [soft, hard]}``.
    """
    name = f"{bench.prefix.replace(':', '-')}-idle"
    channel = bench.channel("idle")
    holders = [bench.spawn(holder_main, (bench.params,)) for _ in range(max(1, procs))]
    try:
        for h in holders:
            h.pipe.send({"op": "ping"})
        nofile = [receive(h, 60, "connection holder")["nofile"] for h in holders][0]
        base = _memory(bench, name)
        samples, reached, limit = [], 0, None
        for target in _targets(connections, checkpoints):
            reached, limit = _grow(holders, target, name, channel)
            samples.append(_sample(bench, name, base, reached, "just connected"))
            if limit:
                break
        settled = _settle(bench, name, base, reached, settle_s)
        samples.append(settled)
        latency = None
        with contextlib.suppress(Exception):  # no slot left for the probe: limit hit
            latency = bench.step(
                channels=[bench.channel("bench")],
                subs=[{}],
                rate=latency_rate,
                count=max(1, int(latency_rate * latency_s)),
                size=1024,
                scenario="capacity",
                label=f"1 -> 1 with {reached} idle conns",
            )
    finally:
        for h in holders:
            with contextlib.suppress(Exception):
                h.pipe.send({"op": "stop"})
                receive(h, 30, "connection holder")
            h.process.join(timeout=5)
    maxclients = int(bench.admin.info("clients").get("maxclients", 0))
    return {
        "samples": pd.DataFrame(samples),
        "reached": reached,
        "limit": limit,
        "settled": settled,
        "latency": latency,
        "maxclients": maxclients,
        "nofile": nofile,
        "requested": connections,
    }


def _targets(connections: int, checkpoints: int) -> list[int]:
    steps = sorted({max(1, int(connections * (i + 1) / checkpoints)) for i in range(checkpoints)})
    return steps or [connections]


def _grow(holders: list[Any], target: int, name: str, channel: str) -> tuple[int, str | None]:
    share = [
        target // len(holders) + (1 if i < target % len(holders) else 0)
        for i in range(len(holders))
    ]
    opened, limit = 0, None
    for holder, want in zip(holders, share, strict=True):
        holder.pipe.send(
            {
                "op": "open",
                "n": max(0, want - getattr(holder, "n_open", 0)),
                "name": name,
                "channel": channel,
            }
        )
    for holder in holders:
        reply = receive(holder, 120, "connection holder")
        holder.n_open = reply["open"]
        opened += reply["open"]
        limit = limit or reply["limit_error"]
    return opened, limit


def _sample(
    bench: Bench, name: str, base: dict[str, Any], reached: int, when: str
) -> dict[str, Any]:
    mem = _memory(bench, name)
    n = max(1, reached)
    return {
        "connections": reached,
        "when": when,
        "used_memory_per_conn": (mem["used_memory"] - base["used_memory"]) / n,
        "mem_clients_normal_per_conn": (mem["mem_clients_normal"] - base["mem_clients_normal"]) / n,
        "tot_mem_per_conn": mem["tot_mem_sum"] / max(1, mem["client_list_count"]),
        "tot_mem_age_le_1s": mem["fresh_tot_mem"],
        "connected_clients": mem["connected_clients"],
    }


SETTLE_WINDOW = 5  # polls, 1 s apart, that must agree within 2% (spans Redis' 5 s peak reset)


def _settle(
    bench: Bench, name: str, base: dict[str, Any], reached: int, settle_s: float
) -> dict[str, Any]:
    """Poll memory per connection once a second until the last ``SETTLE_WINDOW`` polls agree
    within 2% (``settled``) or ``settle_s`` is up; return the last sample, marked."""
    start = time.monotonic()
    recent: list[float] = []
    while True:
        sample = _sample(bench, name, base, reached, "settled")
        recent = (recent + [float(sample["tot_mem_per_conn"])])[-SETTLE_WINDOW:]
        waited = time.monotonic() - start
        stable = len(recent) == SETTLE_WINDOW and max(recent) <= 1.02 * min(recent)
        if stable or waited >= settle_s:
            sample.update(settled=stable, settle_wait_s=round(waited, 1))
            if not stable:
                sample["when"] = f"not settled after {waited:.0f} s"
            return sample
        time.sleep(min(1.0, max(0.0, settle_s - waited)))


def memory_figures(cap: dict[str, Any]) -> dict[str, Any]:
    """Memory per idle connection for the record: just connected and settled, both ways
    of counting (INFO used_memory delta, CLIENT LIST tot-mem), and how settling went."""
    samples = cap["samples"]
    fresh = samples[samples["when"] == "just connected"]
    last = fresh.iloc[-1] if len(fresh) else None
    settled = cap["settled"]
    return {
        "connections": int(cap["reached"]),
        "just_connected_used_memory_bytes": None
        if last is None
        else float(last["used_memory_per_conn"]),
        "just_connected_tot_mem_bytes": None if last is None else float(last["tot_mem_per_conn"]),
        "settled_used_memory_bytes": float(settled["used_memory_per_conn"]),
        "settled_tot_mem_bytes": float(settled["tot_mem_per_conn"]),
        "settled": bool(settled.get("settled", False)),
        "settle_wait_s": settled.get("settle_wait_s"),
    }

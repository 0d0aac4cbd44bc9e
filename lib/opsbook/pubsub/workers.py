"""Publisher and subscriber processes (spawned; they talk to the orchestrator over a Pipe).

A *subscriber* process holds one or more subscriber connections. For each step it opens
them, subscribes (plus the step's control channel), says ``ready``, then reads until every
connection saw the control message ``end:<step>`` (published by the orchestrator after all
publishers finished) or the deadline passes. It counts, per connection and per (publisher,
channel): unique messages, duplicates, reorders; and per channel the latency from the
message's *intended* send time. A dropped connection is counted, reopened and resubscribed,
the way redis-py does silently, so a cut-off shows as ``disconnects`` plus sequence gaps.

A *publisher* process follows an open-loop schedule: message ``i`` is due at
``start_ns + i / rate``; when it falls behind it sends every due message at once (pipelined,
up to ``batch_max``), each stamped with its own due time, so queueing delay stays in the
latency (no coordinated omission). It never waits for a reply while the schedule runs:
replies are read between sends, when they are there, and only counted, so a round trip
to a distant server is not mistaken for delivery latency. ``rate=None`` is a closed-loop
saturation run: messages are stamped when built and sent as fast as replies come back.
"""

from __future__ import annotations

import contextlib
import gc
import os
import random
import selectors
import socket
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from opsbook.pubsub import hist, sched
from opsbook.pubsub.message import HEADER, padding
from opsbook.pubsub.resp import ConnParams, RawConn, ReplyError, pack

CLOCK = time.perf_counter_ns
SPIN_NS = 20_000
MAX_SPIN_NS = 200_000
WAITS = ("select", "early", "early-max")
DEFAULT_WAIT = "early"
TRACE_FIELDS = ("intended", "woke", "top", "sending", "sent", "run_delay")


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """No cyclic-GC pauses inside a measured step (reference counting still frees memory)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def raise_nofile_limit() -> tuple[int, int]:
    """Raise this process's soft RLIMIT_NOFILE to the hard limit; return (soft, hard)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Linux
        return (0, 0)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):  # pragma: no cover
            pass
    return soft, hard


# --------------------------------------------------------------------------- subscriber


@dataclass
class _Flow:
    """Sequence bookkeeping for one (publisher, channel) on one connection."""

    seen: bytearray = field(default_factory=bytearray)
    max_seq: int = -1
    unique: int = 0
    dups: int = 0
    reorders: int = 0

    def add(self, seq: int) -> None:
        if seq >= len(self.seen):
            self.seen.extend(b"\0" * max(seq + 1 - len(self.seen), 4096))
        if self.seen[seq]:
            self.dups += 1
            return
        self.seen[seq] = 1
        self.unique += 1
        if seq < self.max_seq:
            self.reorders += 1
        else:
            self.max_seq = seq


@dataclass
class _SubConn:
    spec: dict[str, Any]
    conn: RawConn
    flows: dict[int, _Flow] = field(default_factory=dict)
    received: int = 0
    stale: int = 0
    ended: bool = False
    disconnects: int = 0
    reconnects: int = 0
    client_ids: list[int] = field(default_factory=list)
    first_ns: int = 0
    last_ns: int = 0


def _subscribe(params: ConnParams, spec: dict[str, Any], ctl: str) -> tuple[RawConn, int]:
    """Open a connection (to ``spec["params"]`` when set), note its CLIENT ID, subscribe to
    ctl + channels + patterns."""
    conn = RawConn(spec.get("params") or params, timeout=10.0)
    if spec.get("rcvbuf"):  # a small kernel buffer: Redis' output buffer fills, not ours
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, int(spec["rcvbuf"]))
    client_id = int(conn.call("CLIENT", "ID"))
    sub_cmd = spec.get("command", "SUBSCRIBE")
    channels = list(spec.get("channels", []))
    patterns = list(spec.get("patterns", []))
    conn.send(pack("SUBSCRIBE", ctl))
    if channels:
        conn.send(pack(sub_cmd, *channels))
    if patterns:
        conn.send(pack("PSUBSCRIBE", *patterns))
    for _ in range(1 + len(channels) + len(patterns)):
        reply = conn.read_reply()
        if isinstance(reply, ReplyError):
            conn.close()
            raise reply
    return conn, client_id


def _handle(
    sub: _SubConn,
    reply: Any,
    now: int,
    step: int,
    lat: dict[int, array],
    end_token: bytes,
    delay_s: float,
) -> None:
    kind = reply[0]
    if kind == b"message" or kind == b"smessage":
        data = reply[2]
    elif kind == b"pmessage":
        data = reply[3]
    else:
        return
    if len(data) < HEADER.size:
        if data == end_token:
            sub.ended = True
        return
    pub_id, chan, msg_step, seq, intended = HEADER.unpack_from(data)
    if msg_step != step:
        sub.stale += 1
        return
    key = (pub_id << 16) | chan
    flow = sub.flows.get(key)
    if flow is None:
        flow = sub.flows[key] = _Flow()
    flow.add(seq)
    sub.received += 1
    if not sub.first_ns:
        sub.first_ns = now
    sub.last_ns = now
    bucket = lat.get(chan)
    if bucket is None:
        bucket = lat[chan] = array("q")
    bucket.append((now - intended) // 1000)
    if delay_s:
        time.sleep(delay_s)


def _drain(sub: _SubConn, step: int, lat: dict[int, array], end_token: bytes) -> None:
    sub.conn.fill()
    now = CLOCK()
    delay_s = sub.spec.get("delay_us", 0) / 1e6
    gets = sub.conn.reader.gets
    reply = gets()
    while reply is not False:
        if isinstance(reply, list):
            _handle(sub, reply, now, step, lat, end_token, delay_s)
            if delay_s:
                now = CLOCK()
        reply = gets()


def _reopen(params: ConnParams, sub: _SubConn, ctl: str, sel: selectors.BaseSelector) -> None:
    sel.unregister(sub.conn.sock)
    sub.conn.close()
    sub.disconnects += 1
    for attempt in range(50):
        try:
            sub.conn, client_id = _subscribe(params, sub.spec, ctl)
        except (OSError, ConnectionError, ReplyError):
            time.sleep(0.01 * (attempt + 1))
            continue
        sub.reconnects += 1
        sub.client_ids.append(client_id)
        sel.register(sub.conn.sock, selectors.EVENT_READ, sub)
        return


def _conn_report(sub: _SubConn) -> dict[str, Any]:
    flows = {str(key): [f.unique, f.dups, f.reorders, f.max_seq] for key, f in sub.flows.items()}
    return {
        "received": sub.received,
        "stale": sub.stale,
        "ended": sub.ended,
        "disconnects": sub.disconnects,
        "reconnects": sub.reconnects,
        "client_ids": sub.client_ids,
        "first_ns": sub.first_ns,
        "last_ns": sub.last_ns,
        "flows": flows,
        "channels": sub.spec.get("channels", []),
        "patterns": sub.spec.get("patterns", []),
        "group": sub.spec.get("group", ""),
    }


def run_subscribers(params: ConnParams, cmd: dict[str, Any], ready: Any) -> dict[str, Any]:
    """Open the step's connections, call ``ready()``, read until end markers or deadline."""
    step, ctl = int(cmd["step"]), cmd["ctl"]
    end_token = f"end:{step}".encode()
    conns: list[_SubConn] = []
    for spec in cmd["conns"]:
        conn, client_id = _subscribe(params, spec, ctl)
        conns.append(_SubConn(spec=spec, conn=conn, client_ids=[client_id]))
    sel = selectors.DefaultSelector()
    for sub in conns:
        sel.register(sub.conn.sock, selectors.EVENT_READ, sub)
    ready()
    lat: dict[int, array] = {}
    deadline = time.monotonic() + float(cmd["timeout_s"])
    open_conns = len(conns)
    while open_conns and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.2):
            sub = key.data
            try:
                _drain(sub, step, lat, end_token)
            except (OSError, ConnectionError):
                _reopen(params, sub, ctl, sel)
        open_conns = sum(1 for sub in conns if not sub.ended)
    for sub in conns:
        sub.conn.close()
    sel.close()
    latency = {
        str(ch): hist.encode(hist.from_values(np.frombuffer(a, dtype=np.int64)))
        for ch, a in lat.items()
    }
    return {
        "conns": [_conn_report(sub) for sub in conns],
        "latency": latency,
        "timed_out": open_conns > 0,
    }


def _serve(pipe: Connection, handle: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Serve orchestrator commands on ``pipe`` until ``stop``: ``ping`` answers with the pid,
    anything else runs ``handle`` (GC paused) and sends its report or the error."""
    while True:
        cmd = pipe.recv()
        if cmd["op"] == "stop":
            return
        if cmd["op"] == "ping":
            pipe.send({"pong": os.getpid()})
            continue
        try:
            with _no_gc():
                report = handle(cmd)
        except Exception as exc:  # reported to the orchestrator, which raises WorkerFailed
            pipe.send({"error": f"{type(exc).__name__}: {exc}"})
            continue
        pipe.send(report)


def subscriber_main(params: ConnParams, pipe: Connection) -> None:
    """Entry point of a subscriber process: serve step commands until ``stop``."""
    raise_nofile_limit()
    _serve(pipe, lambda cmd: run_subscribers(params, cmd, lambda: pipe.send({"ready": True})))


# --------------------------------------------------------------------------- publisher


def _frames(cmd: dict[str, Any]) -> list[tuple[bytes, bytes, bytes]]:
    """Per channel: the RESP bytes before the payload, the padding, and the tail."""
    sizes = cmd.get("sizes") or [int(cmd["size"])] * len(cmd["channels"])
    verb = cmd.get("command", "PUBLISH")
    out = []
    for name, size in zip(cmd["channels"], sizes, strict=True):
        key = name.encode()
        if verb == "XADD":
            head = b"*5\r\n$4\r\nXADD\r\n$%d\r\n%s\r\n$1\r\n*\r\n$1\r\nd\r\n$%d\r\n" % (
                len(key),
                key,
                size,
            )
        else:
            v = verb.encode()
            head = b"*3\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n" % (len(v), v, len(key), key, size)
        out.append((head, padding(int(size)), b"\r\n"))
    return out


def _channel_plan(cmd: dict[str, Any], pub_id: int, count: int) -> list[int] | None:
    """Channel index of every message when weighted (seeded); None means round robin."""
    n_chan = len(cmd["channels"])
    weights = cmd.get("weights")
    if not weights or n_chan == 1:
        return None
    rng = random.Random(int(cmd.get("seed", 0)) * 1000 + pub_id)
    return rng.choices(range(n_chan), weights=weights, k=count)


def run_publisher(params: ConnParams, pub_id: int, cmd: dict[str, Any]) -> dict[str, Any]:
    """Publish one step's messages on schedule (to ``cmd["params"]`` when set) and report
    what was sent."""
    conn = RawConn(cmd.get("params") or params, timeout=30.0)
    try:
        return _publish(conn, pub_id, cmd)
    finally:
        conn.close()


@dataclass
class _Replies:
    """What came back for the publishes (counted, never waited on while the schedule runs)."""

    read: int = 0
    receivers: int = 0
    zero: int = 0
    errors: int = 0

    def drain(self, conn: RawConn) -> None:
        """Count every reply already parsed from ``conn``."""
        gets = conn.reader.gets
        reply = gets()
        while reply is not False:
            self.read += 1
            if isinstance(reply, int):
                self.receivers += reply
                self.zero += reply == 0
            elif isinstance(reply, ReplyError):
                self.errors += 1
            reply = gets()


def _publish(conn: RawConn, pub_id: int, cmd: dict[str, Any]) -> dict[str, Any]:
    """Open loop (``rate`` set): sending follows the schedule and never waits for a reply;
    replies are read between sends, when the socket has some, and only counted (a reply
    that is a round trip away must not hold back what is due). Closed loop (``rate`` None):
    each batch waits for its replies, which is what closed loop means.

    A batch's lag is its send time minus the intended time of its *oldest* message.
    ``cmd["wait"]`` picks how the publisher waits for the next due time (:class:`Waiter`);
    ``cmd["trace"]`` also returns, per batch, the times in :data:`TRACE_FIELDS` (intended,
    the end of the sleep, the top of the loop, before and after the send, the thread's
    cumulative run-queue delay) so that a late batch can be explained."""
    step, count = int(cmd["step"]), int(cmd["count"])
    rate = cmd.get("rate")
    interval = int(1e9 / rate) if rate else 0
    batch_max = int(cmd.get("batch_max", 64))
    frames = _frames(cmd)
    plan = _channel_plan(cmd, pub_id, count)
    n_chan = len(frames)
    seqs = [0] * n_chan
    start = int(cmd["start_ns"])
    stop_at = start + int(float(cmd.get("max_s", 3600)) * 1e9)
    replies = _Replies()
    waiter = Waiter(str(cmd.get("wait") or DEFAULT_WAIT), interval)
    trace = array("q") if cmd.get("trace") else None
    run_delay = sched.RunDelay() if trace is not None else None
    sel = selectors.DefaultSelector()
    sel.register(conn.sock, selectors.EVENT_READ)
    slack = waiter.begin()
    try:
        _sleep_until(start)
        lags, sent, in_flight, woke = array("q"), 0, 0, 0
        ahead: list[bytes] = []  # ``early``: message ``sent``, built while waiting for it

        def build(lo: int, hi: int, now: int) -> list[bytes]:
            parts: list[bytes] = []
            for j in range(lo, hi):
                ch = plan[j] if plan is not None else j % n_chan
                intended = start + j * interval if interval else now
                head, pad, tail = frames[ch]
                parts += (head, HEADER.pack(pub_id, ch, step, seqs[ch], intended), pad, tail)
                seqs[ch] += 1
            return parts

        first = CLOCK()
        while sent < count:
            now = CLOCK()
            if interval:
                due = min(count, (now - start) // interval + 1)
                if due <= sent:
                    if waiter.early and not ahead:
                        ahead = [b"".join(build(sent, sent + 1, now))]
                        continue
                    woke = waiter.wait(conn, sel, replies, start + sent * interval)
                    continue
                k = min(due - sent, batch_max)
            else:
                if now > stop_at:
                    break
                k = min(count - sent, batch_max)
            if ahead:
                parts, ahead = ahead + build(sent + 1, sent + k, now), []
            else:
                parts = build(sent, sent + k, now)
            data = b"".join(parts)
            in_flight = max(in_flight, sent - replies.read)  # sent before earlier replies came
            oldest = start + sent * interval if interval else now
            sending = CLOCK()
            conn.send(data)
            lags.append((sending - oldest) // 1000)
            if trace is not None and run_delay is not None:
                trace.extend((oldest, woke, now, sending, CLOCK(), run_delay.read()))
            woke = 0
            sent += k
            if not interval:
                while replies.read < sent:
                    conn.fill()
                    replies.drain(conn)
        last = CLOCK()
    finally:
        waiter.end(slack)
        if run_delay is not None:
            run_delay.close()
    _read_all(conn, sel, replies, sent)
    sel.close()
    report = {
        "pub_id": pub_id,
        "sent": sent,
        "sent_per_channel": seqs,
        "receivers": replies.receivers,
        "zero_receivers": replies.zero,
        "errors": replies.errors,
        "first_ns": first,
        "last_ns": last,
        "lag": hist.encode(lag_histogram(lags)),
        "batches": len(lags),
        "max_in_flight": in_flight,
        "wait": waiter.describe(),
    }
    if trace is not None:
        report["trace"] = trace.tobytes()
    return report


def lag_histogram(lags_us: array) -> Any:
    """The publisher's lag histogram (microseconds, one value per batch)."""
    return hist.from_values(np.frombuffer(lags_us, dtype=np.int64))


class Waiter:
    """How the publisher waits until its next message is due (it never sends early).

    ``select`` (the first version): sleep in ``select()`` on the reply socket until
    :data:`SPIN_NS` / 2 before the due time, then spin the rest. That sleep is late by
    up to a whole millisecond: the default selector is epoll, and ``epoll_wait`` takes
    its timeout in *milliseconds*, which Python rounds up (a 0.3 ms wait sleeps 1 ms).
    At 1k msg/s most waits are under 1 ms, which made the lag p99 ~1.1 ms on an idle
    host. The default 50 us timer slack and a busy CPU add to it.

    ``early``: the next message's frame is built while waiting for it (its intended time
    is known from the schedule), so that only ``sendall`` is left when it is due. A wait
    of 2 ms or more first sleeps in ``select()`` for whole milliseconds only, leaving at
    least one (woken early by replies, which it counts; epoll itself wakes ~0.1 ms late);
    the rest is a ``time.sleep`` (``clock_nanosleep``, nanosecond resolution) followed by
    a non-blocking look for replies. The thread's timer slack is 1 ns during the step, and
    the sleep ends ``margin`` before the due time, then spins. ``margin`` is
    :data:`SPIN_NS` plus the *median* overshoot of the last 64 sleeps, at most the smaller
    of :data:`MAX_SPIN_NS` and half the send interval, which bounds the CPU spent
    spinning: at most 200 us per message at 1k msg/s (20% of a core), half of each
    100 us interval at 10k msg/s; on an idle host the margin stays near SPIN_NS plus the
    usual few tens of us of wake-up latency.

    Why the median and not the largest overshoot (``early-max``, the first version): on a
    busy core the largest overshoots are preemptions, milliseconds that no spin covers, and
    they drove the margin to the cap. Spinning 200 us a message then spent the publisher's
    fair share of its core, and the scheduler made it wait longer when it woke (EEVDF: a
    task that ran more than its share is not eligible at once): measured on 2 cores at
    load 7, sleeping to 1 ms deadlines, a 200 us spin gave a lateness p99 of 6.0 ms and
    516 ms of run-queue delay where a 20 us one gave 2.0 ms and 124 ms.
    """

    def __init__(self, mode: str, interval_ns: int) -> None:
        if mode not in WAITS:
            raise ValueError(f"unknown wait {mode!r}; one of {', '.join(WAITS)}")
        self.mode = mode
        self.early = mode.startswith("early")
        self.by_max = mode == "early-max"
        self.cap = min(MAX_SPIN_NS, max(SPIN_NS, interval_ns // 2))
        self.margin = SPIN_NS if self.early else SPIN_NS // 2
        self.overshoots: deque[int] = deque(maxlen=64)
        self.spun_ns = 0
        self.slack = ""

    def begin(self) -> int:
        """Timer slack 1 ns for an ``early`` wait; returns the slack to restore."""
        old = sched.get_timerslack()
        if self.early:
            self.slack = sched.set_timerslack(1)
        return old

    def end(self, old_slack: int) -> None:
        if self.early and old_slack > 0:
            sched.set_timerslack(old_slack)

    def wait(
        self, conn: RawConn, sel: selectors.BaseSelector, replies: _Replies, target_ns: int
    ) -> int:
        """Until ``target_ns``: count replies as they arrive, then spin the last
        microseconds; returns when the spin started (the end of the sleep)."""
        spin = self.margin if self.early else SPIN_NS
        while True:
            now = CLOCK()
            if target_ns - now <= spin:
                while CLOCK() < target_ns:
                    pass
                self.spun_ns += max(0, target_ns - now)
                return now
            wake_at = target_ns - self.margin
            if not self.early:
                ready = sel.select((wake_at - now) / 1e9)
            elif wake_at - now >= 2_000_000:  # whole ms, and >= 1 ms left for the rest
                ready = sel.select(((wake_at - now) // 1_000_000 - 1) / 1e3)
            else:
                time.sleep((wake_at - now) / 1e9)
                self.overshoots.append(CLOCK() - wake_at)
                self.margin = spin = self.margin_for(self.overshoots)
                ready = sel.select(0)
            if ready:
                conn.fill()
                replies.drain(conn)

    def margin_for(self, overshoots: deque[int]) -> int:
        """How long before the due time the sleep ends, from the recent overshoots."""
        if self.by_max:
            return min(self.cap, SPIN_NS + max(overshoots))
        return min(self.cap, SPIN_NS + max(0, sorted(overshoots)[len(overshoots) // 2]))

    def describe(self) -> str:
        if not self.early:
            return f"select, spin {SPIN_NS // 1000} us"
        return (
            f"{self.mode}, spin up to {self.cap // 1000} us (last margin {self.margin // 1000} us, "
            f"spun {self.spun_ns / 1e6:.1f} ms); {self.slack}"
        )


def _read_all(
    conn: RawConn, sel: selectors.BaseSelector, replies: _Replies, sent: int, timeout_s: float = 30
) -> None:
    """After the last send: every reply, so that the report counts all of them."""
    deadline = time.monotonic() + timeout_s
    replies.drain(conn)
    while replies.read < sent and time.monotonic() < deadline:
        if sel.select(0.5):
            conn.fill()
            replies.drain(conn)
    if replies.read < sent:
        raise ConnectionError(f"{sent - replies.read} publish replies never arrived")


def _sleep_until(target_ns: int) -> None:
    """Sleep, then spin for the last few microseconds: never send before a message is due."""
    while True:
        remaining = target_ns - CLOCK()
        if remaining <= 0:
            return
        if remaining > SPIN_NS:
            time.sleep((remaining - SPIN_NS / 2) / 1e9)


def publisher_main(params: ConnParams, pub_id: int, pipe: Connection) -> None:
    """Entry point of a publisher process: serve ``run`` commands until ``stop``."""
    _serve(pipe, lambda cmd: run_publisher(params, pub_id, cmd))

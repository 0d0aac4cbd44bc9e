"""A TCP proxy on loopback that delays every chunk by a fixed time in each direction.

It stands for a network between client and Redis: with a delay ``d`` per direction, a
round trip takes ``2d`` more and a message published through it reaches a subscriber
(also through it) ``2d`` later. The benchmark uses it to check that what it reports over
a network is the network plus Redis, and nothing of its own (``benchmarks/pubsub.py
--delays``, ``tests/pubsub/test_network.py``).

The proxy runs in its own spawned process (so the caller's GIL cannot delay it) and, by
default, is one thread (``impl="loop"``) that must not take the CPU from the process it
measures:

* one ``epoll`` loop for every connection and both directions; every chunk read is
  stamped with the time the *kernel* received it (``SO_TIMESTAMPNS``, so a late wake-up
  of the proxy is not added to the delay) and queued to leave at that time + ``d``.
  The delay is the same for every chunk and one thread stamps them in arrival order, so
  one FIFO holds every chunk of every connection in the order it is due (a timer heap
  with a single delay is a queue);
* the loop sleeps in ``epoll_wait`` until the head of that queue is due, woken by a
  ``timerfd`` armed at the due time in nanoseconds (``epoll_wait`` alone rounds its
  timeout up to whole milliseconds); no thread is woken per chunk, nothing spins;
* by default it runs at normal priority on any core. ``realtime=True`` (``SCHED_FIFO``
  when permitted) and ``cpus=away_from_publisher()`` make the proxy itself punctual on a
  busy host (lateness p99 0.1-1 ms instead of 1-13 ms at load 6-10 on 2 cores) but
  were measured to hurt what it serves: pinned to the other core it pushed the host's
  other programs onto the publisher's core (normal-priority publisher lag p99 at 10k msg/s
  4.8 ms against 0.54 ms unpinned), and at ``SCHED_FIFO`` beside a ``SCHED_FIFO``
  publisher it took the CPU the normal-priority subscriber needed at 10k msg/s (delivery
  p50 ~0.8 s instead of 10 ms). Compared in one run by ``benchmarks/pubsub_lag.py
  --proxies``.

It measures its own error: :data:`LATE_NS` holds, per chunk, how late it left (send time
- (kernel arrival + ``d``)), so a latency found above ``2d`` + the no-delay latency can be
split into the proxy's part and the harness'. A chunk never leaves before arrival + ``d``.

``impl="threads"`` is the first version (one reader and one writer thread per direction
per connection, a ``time.sleep`` per chunk), kept as the baseline of
``benchmarks/pubsub_lag.py --proxy``. Bounded: listens on 127.0.0.1 only and stops with
:meth:`DelayProxy.close` (or the ``with`` block), or when its parent goes away.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import queue
import selectors
import socket
import struct
import threading
import time
from array import array
from collections import deque
from dataclasses import replace
from multiprocessing.connection import Connection
from typing import Any

from opsbook.pubsub import sched
from opsbook.pubsub.endpoint import Endpoint, probe
from opsbook.pubsub.errors import RedisUnreachable
from opsbook.pubsub.resp import ConnParams

CHUNK = 262_144
IMPLS = ("loop", "threads")
KINDS: dict[str, dict[str, Any]] = {  # named DelayProxy settings the benchmarks compare
    "loop": {},  # the default: one thread, normal priority, any core
    "loop-rt": {"realtime": True},  # SCHED_FIFO if permitted, any core
    "loop-rt-away": {"realtime": True, "away": True},  # and off the publisher's core
    "loop-away": {"away": True},  # normal priority, off the publisher's core
    "threads": {"impl": "threads"},  # the first version (normal priority, any core)
}
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; Python 3.11 lacks the name

LATE_NS = array("q")  # per chunk: how late the proxy sent it (its own scheduling error)


def _lateness() -> dict[str, float]:
    late = sorted(LATE_NS)
    del LATE_NS[:]
    if not late:
        return {"chunks": 0, "late_p50_ms": 0.0, "late_p99_ms": 0.0, "late_max_ms": 0.0}
    p50, p99 = (late[min(len(late) - 1, int(q * len(late)))] / 1e6 for q in (0.5, 0.99))
    return {
        "chunks": len(late),
        "late_p50_ms": p50,
        "late_p99_ms": p99,
        "late_max_ms": late[-1] / 1e6,
    }


# --------------------------------------------------------------------------- one thread


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class _Timer:
    """A ``timerfd`` on CLOCK_MONOTONIC armed at an absolute time in ns (through libc;
    Python 3.11 has no ``os.timerfd_*``). ``fd`` is -1 where there is none."""

    def __init__(self) -> None:
        self.fd, self.armed, self._spec = -1, 0, _Itimerspec()
        try:
            c = sched.libc()
            self._settime = c.timerfd_settime if c else None
            fd = int(c.timerfd_create(time.CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC))
        except (OSError, AttributeError):
            return
        if fd >= 0:
            self.fd = fd

    def arm(self, at_ns: int) -> None:
        if at_ns == self.armed:
            return
        self._spec.it_value.tv_sec, self._spec.it_value.tv_nsec = divmod(
            max(1, at_ns), 1_000_000_000
        )
        self._settime(self.fd, 1, ctypes.byref(self._spec), None)  # 1: TFD_TIMER_ABSTIME
        self.armed = at_ns

    def clear(self) -> None:
        with contextlib.suppress(OSError):
            os.read(self.fd, 8)
        self.armed = 0


class _Side:
    """One socket of a proxied connection: what it reads goes to ``peer``, ``d`` later."""

    __slots__ = ("sock", "peer", "out", "reading", "eof_queued", "shut", "closed", "events")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.peer: _Side = self
        self.out = bytearray()  # what is due but the kernel would not take yet
        self.reading = True
        self.eof_queued = False  # the peer's end of stream, waiting for ``out`` to drain
        self.shut = False  # SHUT_WR done (the peer's end of stream passed on)
        self.closed = False
        self.events = selectors.EVENT_READ


class _Loop:
    """The single-threaded proxy: see the module docstring."""

    def __init__(
        self, listener: socket.socket, target: tuple[str, int], delay_ns: int, pipe: Connection
    ) -> None:
        self.listener, self.target, self.delay_ns, self.pipe = listener, target, delay_ns, pipe
        self.sel = selectors.DefaultSelector()
        self.due: deque[tuple[int, _Side, bytes]] = deque()  # (due ns, to, data); b"" = EOF
        self.timer = _Timer()
        self.clock_offset = 0  # CLOCK_REALTIME - CLOCK_MONOTONIC, never too large
        listener.setblocking(False)
        self.sel.register(listener, selectors.EVENT_READ, "accept")
        self.sel.register(pipe.fileno(), selectors.EVENT_READ, "pipe")
        if self.timer.fd >= 0:
            self.sel.register(self.timer.fd, selectors.EVENT_READ, "timer")

    def run(self) -> None:
        clock = time.monotonic_ns
        while True:
            if not self.due:
                timeout = None
            elif self.timer.fd >= 0:
                self.timer.arm(self.due[0][0])
                timeout = None
            else:  # epoll rounds up to whole ms: late, and recorded as such
                timeout = max(0, self.due[0][0] - clock()) / 1e9
            for key, mask in self.sel.select(timeout):
                what = key.data
                if isinstance(what, _Side):
                    if mask & selectors.EVENT_WRITE:
                        self._flush(what)
                    if mask & selectors.EVENT_READ and not what.closed:
                        self._read(what)
                elif what == "timer":
                    self.timer.clear()
                elif what == "accept":
                    self._accept()
                elif not self._answer():
                    return
            self._send_due(clock)

    # -- timing

    def _arrival(self, ancdata: list[tuple[int, int, bytes]], now: int) -> int:
        """When the kernel received the chunk, on CLOCK_MONOTONIC (never after ``now``, never
        earlier than it was: the offset is read realtime first, so it errs late)."""
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
                sec, nsec = struct.unpack_from("qq", data)
                at = sec * 1_000_000_000 + nsec - self.clock_offset
                if at > now or at < now - 1_000_000_000:  # the offset moved (clock stepped)
                    self.clock_offset = time.time_ns() - time.monotonic_ns()
                    at = sec * 1_000_000_000 + nsec - self.clock_offset
                return min(at, now)
        return now

    def _send_due(self, clock: Any) -> None:
        due, late = self.due, LATE_NS
        now = clock()
        while due and due[0][0] <= now:
            at, side, data = due.popleft()
            if side.closed:
                continue
            late.append(now - at)
            if data:
                self._write(side, data)
            else:
                side.eof_queued = True
                self._flush(side)
            now = clock()

    # -- sockets

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            self.clock_offset = time.time_ns() - time.monotonic_ns()
            a, b = _Side(client), _Side(upstream)
            a.peer, b.peer = b, a
            for side in (a, b):
                side.sock.setblocking(False)
                side.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with contextlib.suppress(OSError):
                    side.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                self.sel.register(side.sock, side.events, side)

    def _read(self, side: _Side) -> None:
        try:
            data, anc, _flags, _addr = side.sock.recvmsg(CHUNK, 64)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(side)
            return
        now = time.monotonic_ns()
        self.due.append((self._arrival(anc, now) + self.delay_ns, side.peer, data))
        if not data:  # end of stream: passed on d later, after what came before it
            side.reading = False
            self._interest(side)

    def _write(self, side: _Side, data: bytes) -> None:
        if side.out:
            side.out += data
            return
        try:
            n = side.sock.send(data)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:
            self._close(side)
            return
        if n < len(data):
            side.out += memoryview(data)[n:]
            self._interest(side)

    def _flush(self, side: _Side) -> None:
        """Send what the kernel did not take before; pass the end of stream on once empty."""
        if side.out:
            try:
                n = side.sock.send(side.out)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError:
                self._close(side)
                return
            del side.out[:n]
        if not side.out and side.eof_queued and not side.shut:
            side.shut = True
            with contextlib.suppress(OSError):
                side.sock.shutdown(socket.SHUT_WR)
        self._interest(side)
        if side.shut and side.peer.shut:  # both directions ended and delivered
            self._close(side)

    def _interest(self, side: _Side) -> None:
        events = (selectors.EVENT_READ if side.reading else 0) | (
            selectors.EVENT_WRITE if side.out else 0
        )
        if events == side.events or side.closed:
            return
        if side.events and events:
            self.sel.modify(side.sock, events, side)
        elif events:
            self.sel.register(side.sock, events, side)
        else:
            self.sel.unregister(side.sock)
        side.events = events

    def _close(self, side: _Side) -> None:
        """Both sockets of the connection, at once (a reset, or both directions ended)."""
        for s in (side, side.peer):
            if s.closed:
                continue
            s.closed = True
            if s.events:
                self.sel.unregister(s.sock)
            with contextlib.suppress(OSError):
                s.sock.close()

    def _answer(self) -> bool:
        """``late`` from the parent: the lateness since the last ask; False when it is gone."""
        try:
            if self.pipe.recv() != "late":
                return False
            self.pipe.send(_lateness())
        except (EOFError, OSError):
            return False
        return True


# --------------------------------------------------------------------------- first version


def _pump(src: socket.socket, dst: socket.socket, delay_ns: int) -> None:
    """Read ``src`` in one thread, write to ``dst`` ``delay_ns`` later in another."""
    chunks: queue.SimpleQueue[tuple[int, bytes] | None] = queue.SimpleQueue()

    def read() -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(CHUNK):
                chunks.put((time.monotonic_ns() + delay_ns, data))
        chunks.put(None)

    def write() -> None:
        try:
            while (item := chunks.get()) is not None:
                due, data = item
                wait = due - time.monotonic_ns()
                if wait > 0:
                    time.sleep(wait / 1e9)
                LATE_NS.append(time.monotonic_ns() - due)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (dst, src):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    threading.Thread(target=read, daemon=True).start()
    threading.Thread(target=write, daemon=True).start()


def _threads(
    listener: socket.socket, target: tuple[str, int], delay_ns: int, pipe: Connection
) -> None:
    def answer() -> None:
        with contextlib.suppress(EOFError, OSError):
            while pipe.recv() == "late":
                pipe.send(_lateness())

    threading.Thread(target=answer, daemon=True).start()
    while True:
        client, _ = listener.accept()
        try:
            upstream = socket.create_connection(target, timeout=5)
        except OSError:
            client.close()
            continue
        upstream.settimeout(None)
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _pump(client, upstream, delay_ns)
        _pump(upstream, client, delay_ns)


# --------------------------------------------------------------------------- process


def away_from_publisher() -> set[int] | None:
    """Every CPU but the last when there are two or more (the last is the publisher's, see
    :func:`opsbook.pubsub.sched.plan_affinity`)."""
    cpus = sched.cores()
    return set(cpus[:-1]) if len(cpus) >= 2 else None


def proxy_main(
    target: tuple[str, int],
    delay_ms: float,
    pipe: Connection,
    impl: str = "loop",
    cpus: set[int] | None = None,
    nice: int = 0,
    realtime: bool = False,
) -> None:
    """Entry point of the proxy process: place itself, listen, report the port and where it
    runs, relay until killed or its parent closes the pipe."""
    placed = [sched.set_affinity(0, cpus) if cpus else "any cpu"]
    if realtime:
        placed.append(sched.set_realtime(0))
    if nice:
        try:
            placed.append(f"nice {os.nice(nice)}")
        except OSError as exc:
            placed.append(f"nice not set ({exc})")
    if impl == "loop":
        placed.append(sched.set_timerslack(1))
    listener = socket.create_server(("127.0.0.1", 0), backlog=512)
    delay_ns = int(delay_ms * 1e6)
    if impl == "threads":
        pipe.send((int(listener.getsockname()[1]), "; ".join(placed)))
        _threads(listener, target, delay_ns, pipe)
        return
    loop = _Loop(listener, target, delay_ns, pipe)
    if loop.timer.fd < 0:
        placed.append("no timerfd: epoll ms timeouts")
    pipe.send((int(listener.getsockname()[1]), "; ".join(placed)))
    loop.run()


class DelayProxy:
    """A delaying proxy in front of ``target`` (host, port), in its own process.

    ``impl``: ``loop`` (one thread, the default) or ``threads`` (the first version);
    ``cpus``: where the proxy may run (default: anywhere); ``away``: on every CPU but the
    publisher's (:func:`away_from_publisher`); ``nice``: added to its niceness;
    ``realtime``: ``SCHED_FIFO`` when permitted (a refusal is recorded). See the module
    docstring for why none is the default. :attr:`placed` says what was done.

    >>> with DelayProxy(("127.0.0.1", 6379), delay_ms=2) as proxy:  # doctest: +SKIP
    ...     endpoint = proxy.endpoint()   # Redis, 2 ms away each way
    """

    def __init__(
        self,
        target: tuple[str, int],
        delay_ms: float,
        *,
        impl: str = "loop",
        cpus: set[int] | None = None,
        away: bool = False,
        nice: int = 0,
        realtime: bool = False,
    ) -> None:
        if not 0 <= delay_ms <= 1000:
            raise ValueError(f"delay_ms={delay_ms} must be between 0 and 1000")
        if impl not in IMPLS:
            raise ValueError(f"unknown proxy impl {impl!r}; one of {', '.join(IMPLS)}")
        self.target, self.delay_ms, self.impl = target, delay_ms, impl
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        where = away_from_publisher() if away else cpus
        self._process: Any = ctx.Process(
            target=proxy_main,
            args=(target, delay_ms, child, impl, where, nice, realtime),
            daemon=True,
        )
        self._process.start()
        child.close()
        self._pipe = parent
        if not parent.poll(30):
            self.close()
            raise RedisUnreachable("the delay proxy did not start within 30 s")
        try:
            port, self.placed = parent.recv()
        except EOFError:
            self.close()
            raise RedisUnreachable(
                f"the delay proxy exited at start (exit code {self._process.exitcode})"
            ) from None
        self.port = int(port)

    def lateness(self) -> dict[str, float]:
        """How late the proxy itself sent chunks since the last call: ``chunks``, and the
        median, p99 and max in ms. On a busy host the proxy wakes late, and that is the
        proxy's error, not the benchmark's: subtract it when checking that
        latency = 2 x delay + the rest."""
        self._pipe.send("late")
        if not self._pipe.poll(10):
            raise RedisUnreachable("the delay proxy did not answer within 10 s")
        return dict(self._pipe.recv())

    def params(self, base: ConnParams) -> ConnParams:
        """``base`` (credentials, db) pointed at the proxy instead of the server."""
        return replace(base, host="127.0.0.1", port=self.port, path=None, tls=False)

    def endpoint(self, base: ConnParams | None = None) -> Endpoint:
        """An :class:`Endpoint` that reaches the target through this proxy."""
        params = self.params(base or ConnParams(host=self.target[0], port=self.target[1]))
        return Endpoint(params=params, kind=f"delay proxy {self.delay_ms:g} ms", info=probe(params))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._pipe.close()
        if self._process.is_alive():
            self._process.kill()
        self._process.join(timeout=5)

    def __enter__(self) -> DelayProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

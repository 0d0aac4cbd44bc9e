"""A TCP proxy on loopback that delays every chunk by a fixed time in each direction.

It stands for a network between client and Redis: with a delay ``d`` per direction, a
round trip takes ``2d`` more and a message published through it reaches a subscriber
(also through it) ``2d`` later. The benchmark uses it to check that what it reports over
a network is the network plus Redis, and nothing of its own (``benchmarks/pubsub.py
--delays``, ``tests/pubsub/test_network.py``).

The proxy runs in its own spawned process (so the caller's GIL cannot delay it), one
reader and one writer thread per direction per connection: the reader stamps each chunk
with its arrival time, the writer sends it at arrival + ``d``, in order. Bounded: it
listens on 127.0.0.1 only and stops with :meth:`DelayProxy.close` (or the ``with`` block).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import queue
import socket
import threading
import time
from dataclasses import replace
from multiprocessing.connection import Connection
from typing import Any

from opsbook.pubsub.endpoint import Endpoint, probe
from opsbook.pubsub.errors import RedisUnreachable
from opsbook.pubsub.resp import ConnParams

CHUNK = 262_144


LATE_NS: list[int] = []  # per chunk: how late the proxy sent it (its own scheduling error)


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


def _connect(client: socket.socket, target: tuple[str, int], delay_ns: int) -> None:
    try:
        upstream = socket.create_connection(target, timeout=5)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    for sock in (client, upstream):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    _pump(client, upstream, delay_ns)
    _pump(upstream, client, delay_ns)


def _lateness() -> dict[str, float]:
    late = sorted(LATE_NS)
    LATE_NS.clear()
    if not late:
        return {"chunks": 0, "late_p50_ms": 0.0, "late_p99_ms": 0.0}
    p50, p99 = (late[min(len(late) - 1, int(q * len(late)))] / 1e6 for q in (0.5, 0.99))
    return {"chunks": len(late), "late_p50_ms": p50, "late_p99_ms": p99}


def _answer(pipe: Connection) -> None:
    """``late``: the median and p99 lateness (ms) of the chunks sent since the last ask."""
    with contextlib.suppress(EOFError, OSError):
        while pipe.recv() == "late":
            pipe.send(_lateness())


def proxy_main(target: tuple[str, int], delay_ms: float, pipe: Connection) -> None:
    """Entry point of the proxy process: listen, report the port, relay until killed."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=512)
    pipe.send(int(listener.getsockname()[1]))
    threading.Thread(target=_answer, args=(pipe,), daemon=True).start()
    delay_ns = int(delay_ms * 1e6)
    while True:
        client, _ = listener.accept()
        _connect(client, target, delay_ns)


class DelayProxy:
    """A delaying proxy in front of ``target`` (host, port), in its own process.

    >>> with DelayProxy(("127.0.0.1", 6379), delay_ms=2) as proxy:  # doctest: +SKIP
    ...     endpoint = proxy.endpoint()   # Redis, 2 ms away each way
    """

    def __init__(self, target: tuple[str, int], delay_ms: float) -> None:
        if not 0 <= delay_ms <= 1000:
            raise ValueError(f"delay_ms={delay_ms} must be between 0 and 1000")
        self.target, self.delay_ms = target, delay_ms
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self._process: Any = ctx.Process(
            target=proxy_main, args=(target, delay_ms, child), daemon=True
        )
        self._process.start()
        child.close()
        if not parent.poll(30):
            self.close()
            raise RedisUnreachable("the delay proxy did not start within 30 s")
        self.port = int(parent.recv())
        self._pipe = parent

    def lateness(self) -> dict[str, float]:
        """How late the proxy itself sent chunks (the median and p99, ms) since the last call:
        on a busy host a sleeping thread wakes late, and that is the proxy's error, not the
        benchmark's. Subtract it when checking that latency = 2 x delay + the rest."""
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
        if self._process.is_alive():
            self._process.kill()
        self._process.join(timeout=5)

    def __enter__(self) -> DelayProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""The delaying proxy's invariants, against a plain TCP echo server (no Redis needed).

Chunks leave in the order they came, each direction on its own, never before the time it
was sent + the delay (a lower bound, so it holds on a host of any load); the end of stream
is passed on after the data; a large transfer that the receiver takes slowly arrives whole
(the proxy buffers what the kernel will not take yet, in order).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from opsbook.pubsub import sched
from opsbook.pubsub.netdelay import IMPLS, DelayProxy, away_from_publisher

DELAY_MS = 20
DELAY_NS = DELAY_MS * 1_000_000


class EchoServer:
    """Echoes every connection's bytes back and records, per connection, when each
    ``recv`` returned and how many bytes it had by then; closes at the end of stream."""

    def __init__(self, *, rcvbuf: int = 0, stall_s: float = 0.0) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.addr = self.sock.getsockname()
        self.rcvbuf, self.stall_s = rcvbuf, stall_s
        self.arrivals: list[list[tuple[int, int]]] = []  # per connection: (ns, total bytes)
        self.data: list[bytearray] = []
        self.eof: list[bool] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn: socket.socket) -> None:
        arrivals: list[tuple[int, int]] = []
        data = bytearray()
        self.arrivals.append(arrivals)
        self.data.append(data)
        index = len(self.eof)
        self.eof.append(False)
        if self.rcvbuf:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        time.sleep(self.stall_s)
        with conn, contextlib.suppress(OSError):
            while chunk := conn.recv(65536):
                arrivals.append((time.monotonic_ns(), len(data) + len(chunk)))
                data += chunk
                conn.sendall(chunk)
            self.eof[index] = True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)  # fail, not hang
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _read_to_eof(
    sock: socket.socket, arrivals: list[tuple[int, int]], size: int | None = None
) -> bytes:
    """Everything until the end of stream (or ``size`` bytes), noting when each recv returned."""
    got = bytearray()
    while (size is None or len(got) < size) and (chunk := sock.recv(65536)):
        got += chunk
        arrivals.append((time.monotonic_ns(), len(got)))
    return bytes(got)


def _first_arrival(arrivals: list[tuple[int, int]], offset: int) -> int:
    """When the byte at ``offset`` had arrived (the first recv that reached past it)."""
    return next(t for t, total in arrivals if total > offset)


@pytest.mark.parametrize("impl", IMPLS)
def test_chunks_leave_in_order_and_never_before_arrival_plus_the_delay(
    echo: EchoServer, impl: str
) -> None:
    chunks = [b"%03d:" % i + bytes([65 + i % 26]) * (1 + 97 * i) for i in range(12)]
    with DelayProxy(echo.addr, DELAY_MS, impl=impl) as proxy:
        client = _connect(proxy.port)
        sent_at, offset, offsets = [], 0, []
        for i, chunk in enumerate(chunks):
            sent_at.append(time.monotonic_ns())
            client.sendall(chunk)
            offsets.append(offset)
            offset += len(chunk)
            time.sleep(0.003 if i % 3 else 0)  # some chunks apart, some back to back
        back: list[tuple[int, int]] = []
        echoed = _read_to_eof(client, back, size=offset)
        client.close()
        late = proxy.lateness()
    assert bytes(echo.data[0]) == b"".join(chunks)  # everything, in order, once
    assert echoed == b"".join(chunks)
    for at, start in zip(sent_at, offsets, strict=True):
        assert _first_arrival(echo.arrivals[0], start) >= at + DELAY_NS  # one way
        assert _first_arrival(back, start) >= at + 2 * DELAY_NS  # there and back
    assert late["chunks"] >= 2 and late["late_p50_ms"] >= 0


def test_the_directions_and_connections_do_not_wait_for_each_other(echo: EchoServer) -> None:
    """Two connections through one proxy, interleaved: each gets its own bytes, in order, and
    each one's end of stream after its data."""
    with DelayProxy(echo.addr, DELAY_MS) as proxy:
        socks = [_connect(proxy.port) for _ in range(2)]
        for i in range(6):
            for n, sock in enumerate(socks):
                sock.sendall(b"conn%d-%d;" % (n, i))
        for sock in socks:
            sock.shutdown(socket.SHUT_WR)
        echoed = [_read_to_eof(sock, []) for sock in socks]
        for sock in socks:
            sock.close()
    for n in range(2):
        assert echoed[n] == b"".join(b"conn%d-%d;" % (n, i) for i in range(6))
    assert sorted(bytes(d) for d in echo.data) == sorted(echoed)
    assert echo.eof == [True, True]  # the clients' ends of stream reached the server


def test_a_receiver_that_takes_its_time_gets_every_byte_in_order() -> None:
    """4 MB (read in chunks of up to 256 KB) to a server with a 64 KB receive buffer that
    starts reading late: the proxy's sends are cut short by the kernel and it must keep the
    rest, in order."""
    server = EchoServer(rcvbuf=65536, stall_s=0.2)
    payload = bytes(range(256)) * (4 * 4096)
    try:
        with DelayProxy(server.addr, 1) as proxy:
            client = _connect(proxy.port)
            got: list[bytes] = []
            reader = threading.Thread(target=lambda: got.append(_read_to_eof(client, [])))
            reader.start()
            client.sendall(payload)
            client.shutdown(socket.SHUT_WR)
            reader.join(timeout=60)
            client.close()
            # the proxy still serves a new connection after that one ended
            again = _connect(proxy.port)
            again.sendall(b"again")
            again.shutdown(socket.SHUT_WR)
            assert _read_to_eof(again, []) == b"again"
            again.close()
    finally:
        server.close()
    assert got == [payload]
    assert bytes(server.data[0]) == payload


def test_the_proxy_refuses_what_it_cannot_be() -> None:
    with pytest.raises(ValueError, match=r"^delay_ms=-1 must be between 0 and 1000$"):
        DelayProxy(("127.0.0.1", 1), -1)
    with pytest.raises(ValueError, match=r"^unknown proxy impl 'netem'; one of loop, threads$"):
        DelayProxy(("127.0.0.1", 1), 1, impl="netem")


def test_the_proxy_says_where_it_runs(echo: EchoServer) -> None:
    first = sched.cores()[0]
    with DelayProxy(echo.addr, 0, cpus={first}) as proxy:
        assert proxy.placed == f"cpus {first}; timer slack 1 ns"
    with DelayProxy(echo.addr, 0) as proxy:
        assert proxy.placed == "any cpu; timer slack 1 ns"
    away = away_from_publisher()
    with DelayProxy(echo.addr, 0, away=True) as proxy:
        where = "cpus " + ",".join(map(str, sorted(away))) if away else "any cpu"
        assert proxy.placed == f"{where}; timer slack 1 ns"

"""Fixtures for the pub/sub benchmark tests: one real Redis endpoint and one Bench per module."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from opsbook.pubsub.endpoint import Endpoint, resolve
from opsbook.pubsub.harness import Bench


@pytest.fixture(scope="module")
def endpoint() -> Iterator[Endpoint]:
    """The default endpoint (127.0.0.1:6379, else a throwaway redis-server)."""
    ep = resolve(None)
    yield ep
    ep.close()


@pytest.fixture(scope="module")
def bench(endpoint: Endpoint) -> Iterator[Bench]:
    with Bench(endpoint, sub_procs=2, pub_procs=2) as b:
        b.warm_up()
        yield b


class FakeServer:
    """A TCP server on loopback that answers every connection with fixed bytes (an HTTP
    or SSH port standing where Redis should be); ``banner`` is sent before reading."""

    def __init__(self, answer: bytes, *, banner: bool = False) -> None:
        self.answer, self.banner = answer, banner
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                if not self.banner:
                    conn.recv(4096)
                conn.sendall(self.answer)
                conn.recv(4096)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(
    params=[
        (b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", False),
        (b"SSH-2.0-OpenSSH_9.6\r\n", True),
        (b"+OK\r\n", False),
    ],
    ids=["http", "ssh-banner", "resp-but-no-pong"],
)
def not_redis(request: pytest.FixtureRequest) -> Iterator[FakeServer]:
    server = FakeServer(request.param[0], banner=request.param[1])
    yield server
    server.close()

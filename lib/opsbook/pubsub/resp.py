"""A minimal RESP2 client over a raw socket: the harness's measured path only.

Publishers and subscribers of the benchmark speak RESP themselves so that the client
library's per-message overhead is not what gets measured; replies are parsed by
``hiredis`` (a dependency). Everything that is not measured (INFO, CONFIG, CLIENT LIST,
clean-up) goes through redis-py (:mod:`opsbook.pubsub.redispy`).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

import hiredis

from opsbook.pubsub.errors import BadRedisURL, RedisAuthFailed, RedisUnreachable


class ReplyError(Exception):
    """An error reply (``-ERR ...``) from Redis."""


class ProtocolError(Exception):
    """The bytes from the server are not RESP: it is not a Redis server."""


_PROTOCOL_ERRORS: tuple[type[Exception], ...] = (ProtocolError, hiredis.ProtocolError)


@dataclass(frozen=True)
class ConnParams:
    """Where and how to connect; built from a ``redis://``, ``rediss://`` or ``unix://`` URL."""

    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None
    username: str | None = None
    password: str | None = None
    tls: bool = False
    db: int = 0

    @property
    def single_host(self) -> bool:
        """True when the server runs on this machine (loopback or unix socket)."""
        return self.path is not None or self.host in {"127.0.0.1", "localhost", "::1"}

    def redacted(self) -> str:
        """The URL without its password, safe for records."""
        if self.path:
            return f"unix://{self.path}"
        scheme = "rediss" if self.tls else "redis"
        user = f"{self.username}:***@" if self.password and self.username else ""
        user = user or ("***@" if self.password else "")
        return f"{scheme}://{user}{self.host}:{self.port}/{self.db}"


def parse_url(url: str) -> ConnParams:
    """Parse a Redis URL into :class:`ConnParams`.

    >>> parse_url("redis://:s3cret@127.0.0.1:6380/2").port
    6380
    """
    if not isinstance(url, str) or "://" not in url:
        raise BadRedisURL(
            f"{url!r} is not a Redis URL",
            hint="use redis://[user:password@]host:port[/db], rediss://... or unix:///path",
        )
    parts = urlparse(url)
    if parts.scheme not in {"redis", "rediss", "unix"}:
        raise BadRedisURL(
            f"unsupported scheme {parts.scheme!r} in Redis URL",
            hint="use redis://, rediss:// (TLS) or unix://",
        )
    try:
        port = parts.port or 6379
    except ValueError as exc:
        raise BadRedisURL(f"bad port in Redis URL: {exc}", hint="use host:port") from None
    db_text = unquote(parts.path or "").strip("/")
    if parts.scheme == "unix":
        if not parts.path:
            raise BadRedisURL("unix:// URL without a socket path", hint="unix:///run/redis.sock")
        db_text = ""
    if db_text and not db_text.isdigit():
        raise BadRedisURL(f"bad database number {db_text!r} in Redis URL", hint="use /0")
    return ConnParams(
        host=unquote(parts.hostname or "127.0.0.1"),
        port=port,
        path=unquote(parts.path) if parts.scheme == "unix" else None,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=parts.scheme == "rediss",
        db=int(db_text or 0),
    )


def pack(*args: bytes | str | int) -> bytes:
    """Encode one command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode()
        elif isinstance(arg, int):
            arg = str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


def make_reader() -> Any:
    """A hiredis RESP reader (``feed``/``gets``) whose error replies are :class:`ReplyError`."""
    return hiredis.Reader(replyError=ReplyError)


class RawConn:
    """One blocking socket speaking RESP2; AUTH is done on connect."""

    def __init__(
        self, params: ConnParams, *, timeout: float | None = 5.0, wait_auth: bool = True
    ) -> None:
        """Connect and AUTH; with ``wait_auth=False`` the AUTH reply is left for the caller
        (one reply more to read), so many connections can be opened without round trips."""
        self.params = params
        self.sock = _open_socket(params, timeout)
        self.reader = make_reader()
        if params.password:
            auth = (params.username, params.password) if params.username else (params.password,)
            if not wait_auth:
                self.send(pack("AUTH", *auth))
                return
            try:
                self.call("AUTH", *auth)
            except ReplyError as exc:
                self.close()
                raise RedisAuthFailed(
                    f"Redis at {params.redacted()} refused the credentials: {exc}",
                    hint="check the password/user in the URL held by the redis_url_env variable",
                ) from None

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_reply(self) -> Any:
        """Block until one full reply is parsed; raise ConnectionError on EOF."""
        while True:
            reply = self.reader.gets()
            if reply is not False:
                return reply
            self.fill()

    def fill(self, size: int = 262144) -> int:
        data = self.sock.recv(size)
        if not data:
            raise ConnectionError("connection closed by Redis")
        self.reader.feed(data)
        return len(data)

    def read_checked(self) -> Any:
        """:meth:`read_reply`, with a non-RESP answer raised as :class:`ProtocolError`
        (hiredis raises its own class; callers need one)."""
        try:
            return self.read_reply()
        except _PROTOCOL_ERRORS as exc:
            raise ProtocolError(str(exc)) from None

    def call(self, *args: bytes | str | int) -> Any:
        """Send one command and return its reply (raising :class:`ReplyError`)."""
        self.send(pack(*args))
        reply = self.read_checked()
        if isinstance(reply, ReplyError):
            raise reply
        return reply

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def _open_socket(params: ConnParams, timeout: float | None) -> socket.socket:
    try:
        if params.path:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(params.path)
        else:
            sock = socket.create_connection((params.host, params.port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if params.tls:
            context = ssl.create_default_context()
            sock = context.wrap_socket(sock, server_hostname=params.host)
    except OSError as exc:
        raise RedisUnreachable(
            f"cannot connect to Redis at {params.redacted()}: {exc.strerror or exc}",
            hint="is the server up and the URL right? unset the variable to use the default",
        ) from None
    sock.settimeout(None)
    return sock

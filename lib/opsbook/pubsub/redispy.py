"""redis-py helpers: clients for an endpoint, and a watch for its *silent* reconnects.

Everything that is not measured goes through redis-py: probing an endpoint, INFO, CONFIG
GET/SET, CLIENT LIST, CLUSTER queries, key clean-up, control messages
(:func:`admin_client`). Raw RESP sockets (:mod:`opsbook.pubsub.resp`) stay on the
measured path only, where a client library's per-message overhead would be measured too.

redis-py's ``PubSub`` reconnects and resubscribes on its own when its connection drops
(for example when Redis cuts a slow subscriber off at the output-buffer limit); the
messages published in between are simply gone and the application is never told.
:class:`ReconnectWatch` hooks the connection's connect callbacks so that every reconnect
is counted, and the CLIENT ID it had before and after is kept.
"""

from __future__ import annotations

from typing import Any

from opsbook.pubsub.resp import ConnParams


def redis_client(params: ConnParams, **kwargs: Any) -> Any:
    """A redis-py client for the same endpoint (RESP2, bytes replies)."""
    import redis

    common = {
        "username": params.username,
        "password": params.password,
        "db": params.db,
        "protocol": 2,
        **kwargs,
    }
    if params.path:
        return redis.Redis(unix_socket_path=params.path, **common)
    return redis.Redis(host=params.host, port=params.port, ssl=params.tls, **common)


def admin_client(params: ConnParams, *, timeout: float | None = 5.0, **kwargs: Any) -> Any:
    """A redis-py client for the admin path: replies decoded to ``str``, INFO parsed by
    redis-py (numbers come back as ``int``/``float``), one connection opened now (so a
    refused connection or wrong credentials fail here, not at the first command), and no
    ``CLIENT SETINFO`` on connect (a server that is not Redis then fails at PING, where it
    can be named as such)."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis_client(
        params,
        # redis-py 6+ retries a failed connect or read 3 times with backoff by default:
        # a refused port then answers in ~4.5 s and a silent one after ~4x the timeout.
        # The admin path reports failures at once; callers that want to wait loop.
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        single_connection_client=True,
        lib_name=None,
        lib_version=None,
        **kwargs,
    )


class ReconnectWatch:
    """Counts reconnects of a redis-py ``PubSub`` (call after the first subscribe).

    >>> watch = ReconnectWatch(pubsub)  # doctest: +SKIP
    >>> watch.reconnects                # doctest: +SKIP
    0
    """

    def __init__(self, pubsub: Any) -> None:
        self.pubsub = pubsub
        self.connection = pubsub.connection
        if self.connection is None:
            raise ValueError("subscribe before watching: the PubSub has no connection yet")
        self.reconnects = 0
        self.connection.register_connect_callback(self._on_connect)

    def _on_connect(self, _connection: Any) -> None:
        self.reconnects += 1

    def close(self) -> None:
        """Stop counting (the connection goes back to the pool with our callback removed)."""
        self.connection.deregister_connect_callback(self._on_connect)

"""Leaf exceptions of the pub/sub benchmark."""

from __future__ import annotations

from opsbook.errors import ConfigError, OpsbookError, ServiceUnavailable


class PubSubError(OpsbookError):
    """Base of the pub/sub benchmark's own errors."""


class BadRedisURL(ConfigError):
    """The Redis URL cannot be parsed or uses an unsupported scheme."""


class RedisAuthFailed(ConfigError):
    """Redis refused the credentials in the URL (WRONGPASS / NOAUTH)."""


class RedisUnreachable(ServiceUnavailable):
    """No Redis answered at the URL, and no embedded server could be started."""


class WorkerFailed(PubSubError):
    """A publisher or subscriber process crashed or did not answer in time."""


class NotRedis(ConfigError):
    """The server at the URL answered, but not in the Redis protocol (RESP)."""

"""Redis pub/sub latency benchmark: honest percentiles, throughput, fan-out, capacity, loss.

Publishers and subscribers run in separate processes and talk RESP over their own sockets
(:mod:`opsbook.pubsub.resp`), so the GIL and client libraries are not what gets measured;
everything around the measurement (probing the endpoint, INFO, CONFIG, CLIENT LIST, CLUSTER,
clean-up) goes through redis-py (:mod:`opsbook.pubsub.redispy`).
Latency is taken from the *intended* send time of an open-loop schedule into HdrHistograms
(:mod:`opsbook.pubsub.hist`) that are merged across processes.
"""

from opsbook.pubsub.errors import (
    BadRedisURL,
    PubSubError,
    RedisAuthFailed,
    RedisUnreachable,
    WorkerFailed,
)

__all__ = ["BadRedisURL", "PubSubError", "RedisAuthFailed", "RedisUnreachable", "WorkerFailed"]

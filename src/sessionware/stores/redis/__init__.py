"""Redis store, compatible with connect-redis: a Node app and a Python app share sessions.

One module per job: ``rules`` (the key and TTL layout, the scripts, the commands of each store
operation, what redis-py's errors mean), ``transport`` (automatic pipelining over the client's
connections), ``cache`` (the opt-in client cache), ``stores`` (``RedisStore`` for asyncio and
``SyncRedisStore`` for threads, which only execute commands).
"""

from __future__ import annotations

from ...errors import extra_needed

with extra_needed("redis", "redis"):
    from .rules import (
        DEFAULT_PREFIX,
        DEFAULT_SCAN_COUNT,
        DEFAULT_TTL,
        RedisRules,
        Serializer,
        classify,
    )
    from .stores import (
        DEFAULT_HEALTH_CHECK_INTERVAL,
        DEFAULT_RETRY_INTERVAL,
        DEFAULT_TIMEOUT,
        RedisStore,
        SyncRedisStore,
    )

RedisSessions = RedisRules
"""The name of ``RedisRules`` in 0.1 (kept so that code written for it still imports)."""

__all__ = [
    "DEFAULT_HEALTH_CHECK_INTERVAL",
    "DEFAULT_PREFIX",
    "DEFAULT_RETRY_INTERVAL",
    "DEFAULT_SCAN_COUNT",
    "DEFAULT_TIMEOUT",
    "DEFAULT_TTL",
    "RedisRules",
    "RedisSessions",
    "RedisStore",
    "Serializer",
    "SyncRedisStore",
    "classify",
]

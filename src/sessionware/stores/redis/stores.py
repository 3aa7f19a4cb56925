"""The two Redis stores: each builds (or takes) a redis-py client and only executes the commands
``RedisRules`` yields. Outages go through the store toolkit."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.retry import Retry

from ..._native import mypyc_attr
from ..._records import SessionRecord
from ...options import positive
from ..toolkit import CommandStore, SyncCommandStore, check_client, valid_sid
from ._hiredis import pack_with_hiredis
from .cache import CachedSend, TrackedCache
from .rules import Each, RedisCommand, RedisRules, Scan, classify, script_call
from .transport import Pipeliner

DEFAULT_TIMEOUT = 2.0
DEFAULT_RETRY_INTERVAL = 0.5
DEFAULT_HEALTH_CHECK_INTERVAL = 30

logger = logging.getLogger("sessionware")


def _client_options(timeout: float, retry: Any) -> dict[str, Any]:
    """One immediate retry on a fresh connection for connection errors (a connection the
    server or a load balancer cut while idle is not an outage), none for timeouts (a stalled
    server is one), idle connections checked before use, and every wait bounded by
    ``timeout``."""
    positive(timeout, "timeout", unit=" of seconds")
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": retry,
        "health_check_interval": DEFAULT_HEALTH_CHECK_INTERVAL,
    }


def _open(
    store: CommandStore[RedisCommand] | SyncCommandStore[RedisCommand],
    client: Any,
    kinds: tuple[Any, Any, Any],
    *,
    url: str | None = None,
    cluster: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    retry_interval: float = DEFAULT_RETRY_INTERVAL,
    **options: Any,
) -> tuple[Any, RedisRules]:
    """What both stores' constructors share: the client (``kinds``: its class, the cluster
    class and the retry class of the store's side) and the store's rules."""
    client_class, cluster_class, retry_class = kinds
    check_client(client, type(store).__name__)
    rules = RedisRules(**options)
    owns_client = client is None
    if client is None:
        factory = cluster_class if cluster else client_class
        retry = retry_class(NoBackoff(), 1, supported_errors=(RedisConnectionError,))
        client = factory.from_url(
            url or "redis://127.0.0.1:6379", **_client_options(timeout, retry)
        )
    elif url is not None:
        raise TypeError("pass a client or url=, not both")
    rules.atomic_index = not isinstance(client, cluster_class)
    store._setup(
        rules,
        name="redis",
        classify=classify,
        retry_interval=retry_interval,
        owns_client=owns_client,
        asynchronous=isinstance(store, CommandStore),
    )
    return client, rules


def _rules(store: CommandStore[RedisCommand] | SyncCommandStore[RedisCommand]) -> RedisRules:
    """The store's rules as the Redis rules they are (the base types them by their protocol)."""
    rules = store.rules
    assert isinstance(rules, RedisRules)
    return rules


def _each_pipeline(client: Any, cluster: bool, each: Each) -> Any:
    pipe = client.pipeline() if cluster else client.pipeline(transaction=False)
    for key in each.keys:
        pipe.execute_command(each.command, key)
    return pipe


@mypyc_attr(allow_interpreted_subclasses=True)
class RedisStore(CommandStore[RedisCommand]):
    """The Redis store for ASGI apps (redis.asyncio), standalone or Cluster.

    ``RedisStore(url="redis://...")``, ``RedisStore(url=..., cluster=True)`` or
    ``RedisStore(client)`` with any redis.asyncio client (Sentinel: ``sentinel.master_for(...)``).
    """

    def __init__(
        self,
        client: Any = None,
        *,
        client_cache: bool = False,
        client_cache_size: int = 10_000,
        auto_pipeline: bool = True,
        **options: Any,
    ) -> None:
        self.client, rules = _open(
            self, client, (aioredis.Redis, aioredis.RedisCluster, AsyncRetry), **options
        )
        self.is_cluster = not rules.atomic_index
        if client_cache and self.is_cluster:
            raise ValueError("client_cache is not available with Redis Cluster")
        if self.owns_client and not self.is_cluster:
            pack_with_hiredis(self.client.connection_pool)
        self.pipeliner = Pipeliner(self.client) if auto_pipeline and not self.is_cluster else None
        send: Callable[..., Awaitable[Any]] = (
            self.client.execute_command if self.pipeliner is None else self.pipeliner.send
        )
        self.cache = TrackedCache(self.client, client_cache_size) if client_cache else None
        if self.cache is not None and self.cache.available:
            send = CachedSend(self.cache, send)
            rules.getex = False  # a cached read costs no round trip; GETEX would
        self.send = send
        """How a command that may be pipelined (or cached) goes to Redis."""

    async def _execute(self, command: RedisCommand) -> Any:
        send = self.send
        script = script_call(command)
        if script is not None:
            try:
                return await send("EVALSHA", *script[1:])
            except NoScriptError:
                return await send("EVAL", *script[0])
        if isinstance(command, Scan):
            return [
                key async for key in self.client.scan_iter(match=command.match, count=command.batch)
            ]
        if isinstance(command, Each):
            return list(await _each_pipeline(self.client, self.is_cluster, command).execute())
        return await send(*command)

    def _sid_of(self, command: RedisCommand) -> str | None:
        return _rules(self).sid_in(command)

    async def add_record(self, sid: str, record: SessionRecord) -> None:
        """Write ``record`` only if nothing is stored under ``sid`` (a cache's fill)."""
        await self._run(_rules(self).add(valid_sid(sid), record))

    async def _ping(self) -> None:
        await self.client.ping()

    async def _close_client(self) -> None:
        await self.client.aclose()

    async def aclose(self) -> None:
        if self.cache is not None:
            await self.cache.close()
        if self.pipeliner is not None:
            await self.pipeliner.close()
        await super().aclose()


@mypyc_attr(allow_interpreted_subclasses=True)
class SyncRedisStore(SyncCommandStore[RedisCommand]):
    """The Redis store for WSGI apps (redis-py's blocking client), standalone or Cluster."""

    def __init__(self, client: Any = None, **options: Any) -> None:
        self.client, rules = _open(
            self, client, (redis.Redis, redis.RedisCluster, Retry), **options
        )
        self.is_cluster = not rules.atomic_index

    def _sid_of(self, command: RedisCommand) -> str | None:
        return _rules(self).sid_in(command)

    def add_record(self, sid: str, record: SessionRecord) -> None:
        """Write ``record`` only if nothing is stored under ``sid`` (a cache's fill)."""
        self._run(_rules(self).add(valid_sid(sid), record))

    def _execute(self, command: RedisCommand) -> Any:
        script = script_call(command)
        if script is not None:
            try:
                return self.client.evalsha(*script[1:])
            except NoScriptError:
                return self.client.eval(*script[0])
        if isinstance(command, Scan):
            return list(self.client.scan_iter(match=command.match, count=command.batch))
        if isinstance(command, Each):
            return list(_each_pipeline(self.client, self.is_cluster, command).execute())
        return self.client.execute_command(*command)

    def _ping(self) -> None:
        self.client.ping()

    def _close_client(self) -> None:
        self.client.close()

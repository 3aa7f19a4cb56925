"""Redis store, compatible with connect-redis: a Node app and a Python app share sessions.

Layout (connect-redis v4 to v10): key ``prefix + sid`` (prefix ``sess:``), value the session's JSON,
expiry ``SET ... EX ttl`` with ttl = seconds until ``cookie.expires`` rounded up (else the ``ttl``
option, one day); a ttl <= 0 deletes the key; ``touch`` moves only the expiry (``EXPIRE``).

One command per get, set and touch; with ``touch_after`` a read-only request whose session was
written or touched less than ``touch_after`` seconds ago sends no command at all after its GET.
When Redis stops answering the store emits ``disconnect`` (the middleware then serves requests
without a session, or 503), probes in the background and emits ``connect`` once Redis is back.

``RedisStore`` is for ASGI (redis.asyncio), ``SyncRedisStore`` for WSGI; the rules below are
shared, only the I/O differs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import select
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import redis
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from ..cookies import now_ms
from ..errors import StoreUnavailable
from ..options import is_valid_sid
from ..session import SessionRecord, encode_json
from .base import EventEmitter, SessionData, Store, SyncStore

DEFAULT_PREFIX = "sess:"
DEFAULT_TTL = 86400
DEFAULT_SCAN_COUNT = 100
DEFAULT_TIMEOUT = 2.0
DEFAULT_RETRY_INTERVAL = 0.5
_TOUCH_MEMORY = 10_000
_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError, OSError)

logger = logging.getLogger("sessionware")

Command = tuple[Any, ...]
Ttl = int | Callable[[SessionData], int]


class Serializer(Protocol):
    """How values are encoded; it must match the Node app's ``serializer`` (JSON by default)."""

    def dumps(self, data: SessionData) -> str | bytes: ...

    def loads(self, text: str) -> SessionData: ...


class RedisSessions:
    """connect-redis's rules, with no I/O: which command to send, how to read what comes back."""

    def __init__(
        self,
        *,
        prefix: str = DEFAULT_PREFIX,
        ttl: Ttl = DEFAULT_TTL,
        disable_ttl: bool = False,
        disable_touch: bool = False,
        touch_after: float = 0,
        serializer: Serializer | None = None,
        scan_count: int = DEFAULT_SCAN_COUNT,
    ) -> None:
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, got {prefix!r}")
        if not callable(ttl) and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0):
            raise ValueError(f"ttl must be a positive number of seconds or a callable, got {ttl!r}")
        if (
            isinstance(touch_after, bool)
            or not isinstance(touch_after, (int, float))
            or touch_after < 0
        ):
            raise ValueError(f"touch_after must be a number of seconds >= 0, got {touch_after!r}")
        if isinstance(scan_count, bool) or not isinstance(scan_count, int) or scan_count < 1:
            raise ValueError(f"scan_count must be a positive int, got {scan_count!r}")
        self.prefix = prefix
        self.ttl = ttl
        self.disable_ttl = disable_ttl
        self.disable_touch = disable_touch
        self.touch_after_ms = round(touch_after * 1000)
        self.serializer = serializer
        self.scan_count = scan_count
        self.match = _escape_glob(prefix) + "*"
        self._last_activity: dict[str, int] = {}

    def key(self, sid: str) -> str:
        return self.prefix + sid

    def ttl_for(self, record: SessionRecord) -> int:
        """Seconds until ``cookie.expires``, rounded up; else the ``ttl`` option."""
        if callable(self.ttl):
            return int(self.ttl(record.as_dict()))
        expires = record.expires_ms
        if expires is not None:
            return math.ceil((expires - now_ms()) / 1000)
        return self.ttl

    def get_command(self, sid: str) -> Command:
        return ("GET", self.key(sid))

    def set_command(self, sid: str, record: SessionRecord) -> Command:
        ttl = self.ttl_for(record)
        key = self.key(sid)
        if ttl <= 0:
            return ("DEL", key)
        self._remember_activity(sid, now_ms())
        if self.serializer is None:
            value: str | bytes = record.json
        else:
            value = self.serializer.dumps(record.as_dict())
        if self.disable_ttl:
            return ("SET", key, value)
        return ("SET", key, value, "EX", ttl)

    def touch_command(self, sid: str, record: SessionRecord) -> Command | None:
        """``EXPIRE`` with the new lifetime, or nothing (touch disabled, or touched recently)."""
        if self.disable_touch or self.disable_ttl:
            return None
        now = now_ms()
        if self.touch_after_ms:
            last = self._last_activity.get(sid)
            if last is not None and now - last < self.touch_after_ms:
                return None
        self._remember_activity(sid, now)
        return ("EXPIRE", self.key(sid), self.ttl_for(record))

    def destroy_command(self, sid: str) -> Command:
        self._last_activity.pop(sid, None)
        return ("DEL", self.key(sid))

    def parse(self, sid: str, value: bytes | str | None) -> SessionRecord | None:
        """The record stored under ``sid``; notes when it was last written (for touch_after)."""
        if value is None:
            return None
        text = value.decode() if isinstance(value, bytes) else value
        stored = json.loads(text) if self.serializer is None else self.serializer.loads(text)
        if not isinstance(stored, dict):
            raise ValueError(f"session {sid!r} in Redis is not a JSON object")
        cookie = stored.pop("cookie", None)
        record = SessionRecord(
            cookie if isinstance(cookie, dict) else None, stored, encode_json(stored)
        )
        if self.touch_after_ms and isinstance(cookie, dict):
            original = cookie.get("originalMaxAge")
            expires = record.expires_ms
            if expires is not None and isinstance(original, int):
                self._remember_activity(sid, expires - original)
        return record

    def sid_of(self, key: bytes | str) -> str | None:
        text = key.decode() if isinstance(key, bytes) else key
        sid = text[len(self.prefix) :]
        return sid if text.startswith(self.prefix) and is_valid_sid(sid) else None

    def _remember_activity(self, sid: str, when: int) -> None:
        if not self.touch_after_ms:
            return
        memory = self._last_activity
        if len(memory) >= _TOUCH_MEMORY:
            memory.clear()
        memory[sid] = max(when, memory.get(sid, when))


def _ttl_of(command: Command) -> int | None:
    """The expiry a SET ... EX ttl or an EXPIRE key ttl gives its key."""
    if command[0] == "EXPIRE":
        return int(command[2])
    if command[0] == "SET" and len(command) == 5:
        return int(command[4])
    return None


def _escape_glob(text: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


class _Health:
    """Up or down, with the events the middleware listens to emitted on each change."""

    def __init__(self, emitter: EventEmitter) -> None:
        self.emitter = emitter
        self.up = True
        self._lock = threading.Lock()

    def failed(self, error: BaseException) -> bool:
        """Mark Redis down; True for the failure that changed the state (start probing then)."""
        with self._lock:
            changed, self.up = self.up, False
        if changed:
            logger.warning("redis session store unreachable: %s", error)
            self.emitter.emit("disconnect")
        return changed

    def succeeded(self) -> None:
        if self.up:
            return
        with self._lock:
            changed, self.up = not self.up, True
        if changed:
            logger.warning("redis session store reachable again")
            self.emitter.emit("connect")


def _client_options(timeout: float) -> dict[str, Any]:
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 1),
    }


class _TrackedCache:
    """Server-assisted client-side caching (Redis 6+ RESP3 key tracking) for session reads.

    Every session command goes through one dedicated connection with ``CLIENT TRACKING ON``, so
    Redis tells it, on that same connection and in order, whenever a key it read changes (a
    write, a delete, an expiry, from any client). Pushes already received are applied before
    each lookup, and each entry is also bounded by the key's own TTL. Writes and touches re-read
    the key in the same round trip, since Redis stops tracking a key once it has invalidated it.
    A lost connection drops the whole cache. What remains is the window every cache has: a change
    whose invalidation is still on the wire.
    """

    def __init__(self, client: Any, max_entries: int) -> None:
        kwargs = dict(client.connection_pool.connection_kwargs)
        kwargs["protocol"] = 3
        self.connection_class = client.connection_pool.connection_class
        self.connection_kwargs = kwargs
        self.max_entries = max_entries
        self.entries: dict[bytes, tuple[bytes, float]] = {}
        self.connection: Any = None
        self.lock = asyncio.Lock()

    async def _invalidated(self, push: list[Any]) -> None:
        keys = push[1] if len(push) > 1 else None
        if keys is None:
            self.entries.clear()
            return
        for key in keys:
            self.entries.pop(key if isinstance(key, bytes) else str(key).encode(), None)

    async def _connected(self) -> Any:
        if self.connection is None:
            connection = self.connection_class(**self.connection_kwargs)
            await connection.connect()
            connection._parser.invalidation_push_handler_func = self._invalidated
            await connection.send_command("CLIENT", "TRACKING", "ON")
            await connection.read_response()
            self.entries.clear()
            self.connection = connection
        return self.connection

    async def _drain(self, connection: Any) -> None:
        """Apply every invalidation Redis has sent so far, including bytes still in the kernel's
        socket buffer (the event loop may not have read them yet)."""
        descriptor = connection._writer.get_extra_info("socket").fileno()
        for _ in range(100):
            if not select.select([descriptor], [], [], 0)[0]:
                break
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            while await connection.can_read():
                await connection.read_response(push_request=True)
        while await connection.can_read():
            await connection.read_response(push_request=True)

    async def run(self, commands: list[Command]) -> list[Any]:
        """Send ``commands`` in one round trip on the tracking connection; a failure drops the
        connection and the cache."""
        try:
            connection = await self._connected()
            await connection.send_packed_command(connection.pack_commands(commands))
            return [await connection.read_response() for _ in commands]
        except BaseException:
            await self._reset()
            raise

    async def _reset(self) -> None:
        self.entries.clear()
        if self.connection is not None:
            connection, self.connection = self.connection, None
            await connection.disconnect()

    async def get(self, key: str) -> bytes | None:
        async with self.lock:
            encoded = key.encode()
            if self.connection is not None:
                try:
                    await self._drain(self.connection)
                except BaseException:
                    await self._reset()
                    raise
                cached = self.entries.get(encoded)
                if cached is not None and cached[1] > time.monotonic():
                    return cached[0]
            value, pttl = await self.run([("GET", key), ("PTTL", key)])
            self._keep(encoded, value, pttl)
            return value  # type: ignore[no-any-return]

    async def write(self, command: Command, ttl: int | None) -> None:
        """Run a write; keep tracking the key by reading it back in the same round trip (a
        write by someone else in between is what that read returns, and is then tracked)."""
        key = command[1]
        async with self.lock:
            if command[0] == "DEL":
                await self.run([command])
                self.entries.pop(key.encode(), None)
                return
            _, value = await self.run([command, ("GET", key)])
            self._keep(key.encode(), value, -1 if ttl is None else ttl * 1000)

    def _keep(self, key: bytes, value: bytes | None, pttl: int) -> None:
        if value is None or pttl == -2:
            self.entries.pop(key, None)
            return
        if len(self.entries) >= self.max_entries:
            self.entries.clear()
        lifetime = 3600.0 if pttl < 0 else pttl / 1000
        self.entries[key] = (value, time.monotonic() + lifetime)

    async def close(self) -> None:
        await self._reset()


class _RedisConnection:
    """The constructor both stores share; each names its client classes."""

    client_class: Any
    cluster_class: Any

    def __init__(
        self,
        client: Any = None,
        *,
        url: str | None = None,
        cluster: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
        **options: Any,
    ) -> None:
        self.sessions = RedisSessions(**options)
        if client is None:
            factory = self.cluster_class if cluster else self.client_class
            client = factory.from_url(url or "redis://127.0.0.1:6379", **_client_options(timeout))
        self.client = client
        self.is_cluster = isinstance(client, self.cluster_class)
        self.retry_interval = retry_interval
        assert isinstance(self, EventEmitter)
        self.health = _Health(self)

    def _pipeline(self, command: str, sids: list[str]) -> Any:
        """One command per key, pipelined (a cluster pipeline splits by slot)."""
        pipe = (
            self.client.pipeline() if self.is_cluster else self.client.pipeline(transaction=False)
        )
        for sid in sids:
            pipe.execute_command(command, self.sessions.key(sid))
        return pipe


class RedisStore(_RedisConnection, Store):
    """The Redis store for ASGI apps (redis.asyncio), standalone or Cluster.

    ``RedisStore(url="redis://...")``, ``RedisStore(url=..., cluster=True)`` or
    ``RedisStore(client)`` with any redis.asyncio client (Sentinel: ``sentinel.master_for(...)``).
    """

    client_class = aioredis.Redis
    cluster_class = aioredis.RedisCluster
    _probe: asyncio.Task[None] | None = None

    def __init__(
        self,
        client: Any = None,
        *,
        client_cache: bool = False,
        client_cache_size: int = 10_000,
        **options: Any,
    ) -> None:
        super().__init__(client, **options)
        if client_cache and self.is_cluster:
            raise ValueError("client_cache is not available with Redis Cluster")
        self.cache = _TrackedCache(self.client, client_cache_size) if client_cache else None

    async def _execute(self, command: Command) -> Any:
        try:
            if self.cache is None:
                result = await self.client.execute_command(*command)
            elif command[0] == "GET":
                result = await self.cache.get(command[1])
            else:
                await self.cache.write(command, _ttl_of(command))
                result = None
        except _UNAVAILABLE as exc:
            if self.health.failed(exc):
                self._start_probe()
            raise StoreUnavailable(f"redis: {exc}") from exc
        self.health.succeeded()
        return result

    def _start_probe(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._probe = loop.create_task(self._probe_until_up())

    async def _probe_until_up(self) -> None:
        while not self.health.up:
            await asyncio.sleep(self.retry_interval)
            try:
                await self.client.ping()
            except Exception:  # noqa: S112
                continue
            self.health.succeeded()

    async def get_record(self, sid: str) -> SessionRecord | None:
        return self.sessions.parse(sid, await self._execute(self.sessions.get_command(sid)))

    async def set_record(self, sid: str, record: SessionRecord) -> None:
        await self._execute(self.sessions.set_command(sid, record))

    async def touch_record(self, sid: str, record: SessionRecord) -> None:
        command = self.sessions.touch_command(sid, record)
        if command is not None:
            await self._execute(command)

    async def get(self, sid: str) -> SessionData | None:
        record = await self.get_record(sid)
        return None if record is None else record.as_dict()

    async def set(self, sid: str, data: SessionData) -> None:
        await self.set_record(sid, SessionRecord.from_dict(data))

    async def touch(self, sid: str, data: SessionData) -> None:
        await self.touch_record(sid, SessionRecord.from_dict(data))

    async def destroy(self, sid: str) -> None:
        await self._execute(self.sessions.destroy_command(sid))

    async def ids(self) -> list[str]:
        """Every sid under the prefix: SCAN MATCH on every primary, without duplicates."""
        try:
            keys = [
                key
                async for key in self.client.scan_iter(
                    match=self.sessions.match, count=self.sessions.scan_count
                )
            ]
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
        return _unique_sids(self.sessions, keys)

    async def all(self) -> dict[str, SessionData]:
        sids = await self.ids()
        values = await self._each("GET", sids)
        return _records_by_sid(self.sessions, sids, values)

    async def length(self) -> int:
        return len(await self.ids())

    async def clear(self) -> None:
        await self._each("DEL", await self.ids())

    async def _each(self, command: str, sids: list[str]) -> list[Any]:
        if not sids:
            return []
        try:
            return list(await self._pipeline(command, sids).execute())
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
        if self.cache is not None:
            await self.cache.close()
        await self.client.aclose()


class SyncRedisStore(_RedisConnection, SyncStore):
    """The Redis store for WSGI apps (redis-py's blocking client), standalone or Cluster."""

    client_class = redis.Redis
    cluster_class = redis.RedisCluster

    def _execute(self, command: Command) -> Any:
        try:
            result = self.client.execute_command(*command)
        except _UNAVAILABLE as exc:
            if self.health.failed(exc):
                threading.Thread(target=self._probe_until_up, daemon=True).start()
            raise StoreUnavailable(f"redis: {exc}") from exc
        self.health.succeeded()
        return result

    def _probe_until_up(self) -> None:
        while not self.health.up:
            time.sleep(self.retry_interval)
            try:
                self.client.ping()
            except Exception:  # noqa: S112
                continue
            self.health.succeeded()

    def get_record(self, sid: str) -> SessionRecord | None:
        return self.sessions.parse(sid, self._execute(self.sessions.get_command(sid)))

    def set_record(self, sid: str, record: SessionRecord) -> None:
        self._execute(self.sessions.set_command(sid, record))

    def touch_record(self, sid: str, record: SessionRecord) -> None:
        command = self.sessions.touch_command(sid, record)
        if command is not None:
            self._execute(command)

    def get(self, sid: str) -> SessionData | None:
        record = self.get_record(sid)
        return None if record is None else record.as_dict()

    def set(self, sid: str, data: SessionData) -> None:
        self.set_record(sid, SessionRecord.from_dict(data))

    def touch(self, sid: str, data: SessionData) -> None:
        self.touch_record(sid, SessionRecord.from_dict(data))

    def destroy(self, sid: str) -> None:
        self._execute(self.sessions.destroy_command(sid))

    def ids(self) -> list[str]:
        """Every sid under the prefix: SCAN MATCH on every primary, without duplicates."""
        try:
            keys = list(
                self.client.scan_iter(match=self.sessions.match, count=self.sessions.scan_count)
            )
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
        return _unique_sids(self.sessions, keys)

    def all(self) -> dict[str, SessionData]:
        sids = self.ids()
        return _records_by_sid(self.sessions, sids, self._each("GET", sids))

    def length(self) -> int:
        return len(self.ids())

    def clear(self) -> None:
        self._each("DEL", self.ids())

    def _each(self, command: str, sids: list[str]) -> list[Any]:
        if not sids:
            return []
        try:
            return list(self._pipeline(command, sids).execute())
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc

    def close(self) -> None:
        self.client.close()


def _unique_sids(sessions: RedisSessions, keys: Iterable[bytes | str]) -> list[str]:
    found: dict[str, None] = {}
    for key in keys:
        sid = sessions.sid_of(key)
        if sid is not None:
            found[sid] = None
    return list(found)


def _records_by_sid(
    sessions: RedisSessions, sids: list[str], values: list[Any]
) -> dict[str, SessionData]:
    result: dict[str, SessionData] = {}
    for sid, value in zip(sids, values, strict=True):
        record = sessions.parse(sid, value)
        if record is not None:
            result[sid] = record.as_dict()
    return result

"""The opt-in client cache (``client_cache=True``): server-assisted client-side caching of session
reads over one RESP3 connection with key tracking.

It needs two hooks of redis-py that are not public API: the parser's
``invalidation_push_handler_func`` and the connection's ``_writer``. Both are probed when the store
is built and again on connecting; where either is missing the cache steps aside (logged once at
INFO) and every command goes through the client's pool, the public path.
"""

from __future__ import annotations

import asyncio
import logging
import select
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .rules import Command

logger = logging.getLogger("sessionware")

_CACHED_COMMANDS = frozenset(("GET", "SET", "EXPIRE", "DEL"))
"""The session-key commands the client cache answers or tracks; the index's go to the pool."""


class _Busy:
    """The tracking connection is in use by another request (or there is none: the cache
    fell back)."""


BUSY = _Busy()


class TrackedCache:
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
        self.available = True
        """Whether this redis-py has the hooks the cache needs; without them every read goes
        through the client's pool, as with no cache."""
        if not _has_push_hooks(self.connection_class(**kwargs)):
            self._fall_back()

    def _fall_back(self) -> None:
        self.available = False
        logger.info(
            "RedisStore client_cache: this redis-py lacks the hooks the cache needs "
            "(the parser's invalidation push handler); reads go through the client's pool"
        )

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
            if not _has_push_hooks(connection):  # the parser changed on connecting
                await connection.disconnect()
                self._fall_back()
                return None
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
            if connection is None:
                raise _Unavailable
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

    async def get(self, key: str) -> bytes | _Busy | None:
        """The value of ``key``; ``BUSY`` when another request holds the tracking connection
        (the caller then reads through the pool: nobody waits behind a stalled request)."""
        if self.lock.locked() or not self.available:
            return BUSY
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
            try:
                value, pttl = await self.run([("GET", key), ("PTTL", key)])
            except _Unavailable:
                return BUSY
            self._keep(encoded, value, pttl)
            return value  # type: ignore[no-any-return]

    async def write(self, command: Command, ttl: int | None) -> bool:
        """Run a write; keep tracking the key by reading it back in the same round trip (a
        write by someone else in between is what that read returns, and is then tracked).
        ``False`` when the tracking connection is busy: the caller writes through the pool."""
        key = command[1]
        if self.lock.locked() or not self.available:
            self.entries.pop(key.encode(), None)
            return False
        async with self.lock:
            try:
                if command[0] == "DEL":
                    await self.run([command])
                    self.entries.pop(key.encode(), None)
                    return True
                _, value = await self.run([command, ("GET", key)])
            except _Unavailable:
                return False
            self._keep(key.encode(), value, -1 if ttl is None else ttl * 1000)
            return True

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


class _Unavailable(Exception):
    """The cache has no tracking connection to use (the hooks are missing)."""


def _has_push_hooks(connection: Any) -> bool:
    """Whether ``connection`` (connected or not) has the two hooks the cache uses."""
    parser = getattr(connection, "_parser", None)
    return hasattr(parser, "invalidation_push_handler_func") and hasattr(connection, "_writer")


def _ttl_of(command: Command) -> int | None:
    """The expiry a SET ... EX ttl or an EXPIRE key ttl gives its key."""
    if command[0] == "EXPIRE":
        return int(command[2])
    if command[0] == "SET" and len(command) == 5:
        return int(command[4])
    return None


class CachedSend:
    """How a command goes when the store has a client cache: session reads are answered from
    it, session writes go through it (and stay tracked), a script or GETDEL drops the key's
    entry; everything else, and anything while the tracking connection is busy, goes by
    ``send``."""

    def __init__(self, cache: TrackedCache, send: Callable[..., Awaitable[Any]]) -> None:
        self.cache = cache
        self.send = send

    async def __call__(self, *command: Any) -> Any:
        name = command[0]
        cache = self.cache
        if name in _CACHED_COMMANDS:
            if name == "GET":
                value = await cache.get(command[1])
                if value is not BUSY:
                    return value
            elif await cache.write(command, _ttl_of(command)):
                return None
        elif name in ("EVALSHA", "EVAL"):
            key = command[3]
            cache.entries.pop(key.encode() if isinstance(key, str) else key, None)
        elif name == "GETDEL":
            cache.entries.pop(command[1].encode(), None)
        return await self.send(*command)

"""A cache in front of a durable store (Django's ``cached_db``): reads from the cache, writes to
the durable store first.

    CachedStore(cache=RedisStore(url=...), store=PostgresStore(url=...))   # ASGI
    SyncCachedStore(cache=MemoryStore(), store=SQLiteStore("sessions.db"))  # WSGI

- A read asks the cache; on a miss it reads the durable store and fills the cache, only where
  the cache holds nothing (``add_record``: SET NX), so a fill never overwrites a newer write.
- A write (save, touch) goes to the durable store, then to the cache. A merge of concurrent
  saves runs its compare-and-set on the durable store, and the cache entry is then invalidated,
  not guessed: replaced by a short-lived marker (``INVALID_SECONDS``) that reads pass through
  and that a slow fill of an older value cannot overwrite. Destroying and revoking go to the
  durable store and invalidate what they end; the per-user index is the durable store's.
- Cache down: served from the durable store, the outage logged once. Writes made meanwhile
  are remembered (in this process, up to ``STALE_LIMIT``) and their cache entries dropped as soon
  as the cache answers again, so an entry never outlives a newer write.
- ``touch_after`` (seconds, default 0: every request, as express): a read-only request touches
  the session (both stores) only when it was last written or touched that long ago, so a warm
  read makes no write at all.
- Durable store down: reads the cache holds still work (their touch is skipped, logged); writes
  raise ``StoreUnavailable``, since nothing is acknowledged that is not durable.

The rules are written once, as steps naming which store to call; ``CachedStore`` performs them
with ``await`` and ``SyncCachedStore`` with plain calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable
from typing import Any, NamedTuple

from .._records import Base, SessionRecord, Steps, arun_steps, run_steps, user_name
from .._wire import now_ms
from ..cookie import Cookie
from ..errors import SessionCorrupt, StoreUnavailable, loggable
from .base import RecordStore, SessionData, SyncRecordStore, SyncStore, index_users
from .toolkit import TouchThrottle

logger = logging.getLogger("sessionware")

CACHE = "cache"
DURABLE = "store"
STALE_LIMIT = 10_000
"""Sessions written while the cache was down whose entries are dropped when it is back."""
INVALID_SECONDS = 5
"""How long an invalidated entry stays marked: reads of it go to the durable store meanwhile,
and a fill of what a read took from the durable store before the write cannot land."""
INVALID_KEY = "__sessionware_invalid__"


class Op(NamedTuple):
    """One call on one of the two stores: ``target`` (``CACHE`` or ``DURABLE``), the method and
    its arguments."""

    target: str
    method: str
    args: tuple[Any, ...] = ()


class _CacheDown(Exception):
    """A cache call failed: the rules carry on without the cache."""


class _CacheCorrupt(_CacheDown):
    """The cache holds something that is not a session: a fill replaces it."""


class CachedRules:
    """What a cached store does, as steps of ``Op``s (shared by the async and the sync store)."""

    def __init__(self, cache: Any, store: Any, touch_after: float = 0) -> None:
        for role, given in (("cache", cache), ("store", store)):
            if not isinstance(given, (RecordStore, SyncRecordStore)):
                raise TypeError(
                    f"{role} must be one of sessionware's stores (a record store), got "
                    f"{type(given).__name__}"
                )
        self.cache = cache
        self.store = store
        self.throttle = TouchThrottle(touch_after)
        self.fill = "add_record" if callable(getattr(cache, "add_record", None)) else "set_record"
        """How a read fills the cache: only where it holds nothing, where the cache can."""
        self.cache_down = False
        """The cache failed, or said it is down (its ``disconnect`` event): calls skip it until
        it answers again (its ``connect``)."""
        self.stale: dict[str, None] = {}
        """Sessions written while the cache was down (ordered, bounded)."""
        cache.on("disconnect", self._told_down)
        cache.on("connect", self._told_up)

    def _told_down(self, *_: Any) -> None:
        self._went_down("its health check failed")

    def _told_up(self, *_: Any) -> None:
        self.cache_down = False

    # -- the cache, which may fail without failing the request --------------------------------

    def _cached(self, op: Op) -> Steps[Op, Any]:
        """``op`` on the cache: its result, or ``_CacheDown`` raised when the cache failed or is
        known to be down (the entries written meanwhile are dropped first once it answers)."""
        if self.cache_down and self.cache_says_down():
            raise _CacheDown
        try:
            if self.stale:
                yield from self._drop_stale()
            result = yield op
        except StoreUnavailable as exc:
            self._went_down(loggable(exc))
            raise _CacheDown from exc
        except SessionCorrupt as exc:
            logger.warning("the session cache holds no session (%s): replaced", loggable(exc))
            raise _CacheCorrupt from exc
        except Exception as exc:  # a client failing otherwise: used as a miss
            logger.warning("the session cache failed (%s): using the durable store", loggable(exc))
            raise _CacheDown from exc
        self._came_back()
        return result

    def cache_says_down(self) -> bool:
        """Whether the cache's own health says it is down (a store with no health check is
        tried again on the next call)."""
        health = getattr(self.cache, "health", None)
        return health is not None and not health.up

    def _drop_stale(self) -> Steps[Op, None]:
        while self.stale:
            sid = next(iter(self.stale))
            yield Op(CACHE, "destroy", (sid,))
            self.stale.pop(sid, None)

    def _went_down(self, reason: object) -> None:
        if not self.cache_down:
            self.cache_down = True
            logger.warning("the session cache is unavailable (%s): reads go to the store", reason)

    def _came_back(self) -> None:
        if self.cache_down:
            self.cache_down = False
            logger.warning("the session cache is available again")

    def _invalidate(self, sid: str) -> Steps[Op, None]:
        """Mark the cache entry of ``sid`` invalid (after a durable write whose value the cache
        does not know), or remember to drop it once the cache is back."""
        marker = SessionRecord.from_dict(
            {
                "cookie": Cookie(max_age=INVALID_SECONDS).to_json(),
                INVALID_KEY: True,
            }
        )
        try:
            yield from self._cached(Op(CACHE, "set_record", (sid, marker)))
        except _CacheDown:
            self._remember_stale(sid)

    def _remember_stale(self, sid: str) -> None:
        if len(self.stale) >= STALE_LIMIT:
            self.stale.pop(next(iter(self.stale)))
        self.stale[sid] = None

    def _write_through(self, method: str, sid: str, record: SessionRecord) -> Steps[Op, None]:
        """The cache gets what the durable store now holds; if it cannot, its entry is dropped
        once it is back."""
        try:
            yield from self._cached(Op(CACHE, method, (sid, record)))
        except _CacheDown:
            self._remember_stale(sid)

    # -- the store's operations ----------------------------------------------------------------

    def get(self, sid: str, touch_ms: int | None) -> Steps[Op, SessionRecord | None]:
        """The cache's copy, else the durable store's (then cached). A session written or
        touched within ``touch_after`` is read as touched (``touch_ms``): no touch follows."""
        fill = self.fill
        try:
            cached = yield from self._cached(Op(CACHE, "get_record", (sid,)))
        except _CacheCorrupt:
            cached, fill = None, "set_record"
        except _CacheDown:
            cached = None
        hit = self.hit(sid, cached, touch_ms)
        if hit is not None:
            return hit
        invalidated = cached is not None
        record: SessionRecord | None = yield Op(DURABLE, "get_record", (sid,))
        if record is None:
            return None
        if not self.cache_down and not invalidated:
            with contextlib.suppress(_CacheDown):
                yield from self._cached(Op(CACHE, fill, (sid, record)))
        return self._loaded(sid, record, touch_ms)

    def hit(
        self, sid: str, cached: SessionRecord | None, touch_ms: int | None
    ) -> SessionRecord | None:
        """The session the cache answered with, or ``None`` when it must be read from the
        durable store (not cached, or invalidated)."""
        if cached is None or INVALID_KEY in cached.data:
            return None
        cached.token = None  # the cache's token is not the durable store's
        return self._loaded(sid, cached, touch_ms)

    def in_memory_hit(self, sid: str, touch_ms: int | None) -> SessionRecord | None:
        """A cache that does no I/O (MemoryStore) asked directly, as the steps would ask it
        (``None``: take the steps, which handle a miss, stale entries and failures)."""
        if self.stale or self.cache_down:
            return None
        try:
            cached = self.cache.get_record(sid)
        except Exception:
            return None
        return self.hit(sid, cached, touch_ms)

    def _loaded(self, sid: str, record: SessionRecord, touch_ms: int | None) -> SessionRecord:
        throttle = self.throttle
        if touch_ms is not None and throttle.after_ms:
            throttle.loaded(sid, record)
            if throttle.fresh(sid, now_ms()):
                record.touched_ms = touch_ms
        return record

    def set(self, sid: str, record: SessionRecord) -> Steps[Op, None]:
        yield Op(DURABLE, "set_record", (sid, record))
        self.throttle.remember(sid, now_ms())
        yield from self._write_through("set_record", sid, record)

    def touch(self, sid: str, record: SessionRecord) -> Steps[Op, None]:
        """A touch only extends a lifetime: with the durable store down it is skipped (logged),
        so requests that only read are still served from the cache. With ``touch_after``, a
        session written or touched less than that long ago is not touched again."""
        if self.throttle.recently(sid, now_ms()):
            return
        try:
            yield Op(DURABLE, "touch_record", (sid, record))
        except StoreUnavailable as exc:
            logger.warning(
                "session lifetime not extended, the store is unavailable: %s", loggable(exc)
            )
            return
        yield from self._write_through("touch_record", sid, record)

    def merge(self, sid: str, record: SessionRecord, base: Base) -> Steps[Op, None]:
        failure: Exception | None = None
        try:
            yield Op(DURABLE, "merge_record", (sid, record, base))
        except Exception as exc:  # it may have written all the same (a timeout)
            failure = exc
        yield from self._invalidate(sid)
        if failure is not None:
            raise failure
        self.throttle.remember(sid, now_ms())

    def destroy(self, sid: str) -> Steps[Op, None]:
        self.throttle.forget(sid)
        yield Op(DURABLE, "destroy", (sid,))
        yield from self._invalidate(sid)

    def user_sessions(self, user: str) -> Steps[Op, dict[str, SessionData]]:
        found: dict[str, SessionData] = yield Op(DURABLE, "user_sessions", (user,))
        return found

    def destroy_user_sessions(self, user: str, keep: str | None) -> Steps[Op, int]:
        sessions = yield Op(DURABLE, "user_sessions", (user,))
        destroyed: int = yield Op(DURABLE, "destroy_user_sessions", (user, keep))
        for sid in sessions:
            if sid != keep:
                yield from self._invalidate(sid)
        return destroyed

    def clear(self) -> Steps[Op, None]:
        yield Op(DURABLE, "clear")
        try:
            yield from self._cached(Op(CACHE, "clear"))
        except _CacheDown:
            logger.warning("the session cache could not be cleared: it is unavailable")

    def durable(self, method: str, *args: Any) -> Steps[Op, Any]:
        """A call the durable store alone answers (``all``, ``length``, ``ids``, ``prune``)."""
        return (yield Op(DURABLE, method, args))


class _Cached:
    """What both stores share: the rules, and the user index that is the durable store's."""

    rules: CachedRules

    @property
    def cache(self) -> Any:
        return self.rules.cache

    @property
    def store(self) -> Any:
        return self.rules.store

    @property
    def user_key(self) -> str | None:
        """The durable store's per-user index (the cache keeps none)."""
        key: str | None = getattr(self.rules.store, "user_key", None)
        return key

    @user_key.setter
    def user_key(self, key: str | None) -> None:
        if key is not None:
            index_users(self.rules.store, key)

    def _target(self, op: Op) -> Any:
        return getattr(self.rules.cache if op.target == CACHE else self.rules.store, op.method)


class CachedStore(_Cached, RecordStore):
    """A cache in front of a durable store, for ASGI apps: each may be async (RedisStore,
    PostgresStore...) or sync (MemoryStore; a blocking one runs in a worker thread)."""

    def __init__(self, cache: Any, store: Any, *, touch_after: float = 0) -> None:
        self.rules = CachedRules(cache, store, touch_after)
        self._in_thread = {
            role: isinstance(owner, SyncStore) and owner.blocking
            for role, owner in ((CACHE, cache), (DURABLE, store))
        }
        """Which of the two is a sync store that blocks (called in a worker thread)."""
        self._cache_in_memory = isinstance(cache, SyncStore) and not cache.blocking
        """A cache that does no I/O: a hit is answered without the steps' coroutines."""

    async def _perform(self, op: Op) -> Any:
        method = self._target(op)
        if self._in_thread[op.target]:
            return await asyncio.to_thread(method, *op.args)
        result = method(*op.args)
        return await result if inspect.isawaitable(result) else result

    async def _run(self, steps: Steps[Op, Any]) -> Any:
        return await arun_steps(steps, self._perform)

    async def get_record(self, sid: str, touch_ms: int | None = None) -> SessionRecord | None:
        if self._cache_in_memory:
            hit = self.rules.in_memory_hit(sid, touch_ms)
            if hit is not None:
                return hit
        found: SessionRecord | None = await self._run(self.rules.get(sid, touch_ms))
        return found

    async def set_record(self, sid: str, record: SessionRecord) -> None:
        await self._run(self.rules.set(sid, record))

    async def touch_record(self, sid: str, record: SessionRecord) -> None:
        await self._run(self.rules.touch(sid, record))

    async def merge_record(self, sid: str, record: SessionRecord, base: Base) -> None:
        await self._run(self.rules.merge(sid, record, base))

    async def destroy(self, sid: str) -> None:
        await self._run(self.rules.destroy(sid))

    async def user_sessions(self, user: str | int) -> dict[str, SessionData]:
        found: dict[str, SessionData] = await self._run(self.rules.user_sessions(user_name(user)))
        return found

    async def destroy_user_sessions(self, user: str | int, keep: str | None = None) -> int:
        count: int = await self._run(self.rules.destroy_user_sessions(user_name(user), keep))
        return count

    async def all(self) -> dict[str, SessionData]:
        found: dict[str, SessionData] = await self._run(self.rules.durable("all"))
        return found

    async def length(self) -> int:
        count: int = await self._run(self.rules.durable("length"))
        return count

    async def ids(self) -> list[str]:
        found: list[str] = await self._run(self.rules.durable("ids"))
        return found

    async def clear(self) -> None:
        await self._run(self.rules.clear())

    async def prune(self, progress: Callable[[int], None] | None = None) -> int:
        """The durable store's expired sessions deleted now (a SQL store's ``prune``)."""
        prune = getattr(self.rules.store, "prune", None)
        if prune is None:
            return 0
        result = prune(progress)
        pruned: int = await result if inspect.isawaitable(result) else result
        return pruned

    async def aclose(self) -> None:
        """Close both stores."""
        for owner in (self.rules.cache, self.rules.store):
            close = getattr(owner, "aclose", None) or getattr(owner, "close", None)
            if close is not None:
                result = close()
                if inspect.isawaitable(result):
                    await result

    async def close(self) -> None:
        await self.aclose()


class SyncCachedStore(_Cached, SyncRecordStore):
    """A cache in front of a durable store, for WSGI apps: both stores sync (MemoryStore or
    SyncRedisStore in front of SQLiteStore, SyncPostgresStore...)."""

    def __init__(self, cache: Any, store: Any, *, touch_after: float = 0) -> None:
        for role, given in (("cache", cache), ("store", store)):
            if not isinstance(given, SyncStore):
                raise TypeError(f"SyncCachedStore needs a sync {role}: use CachedStore")
        self.rules = CachedRules(cache, store, touch_after)
        self.blocking = bool(cache.blocking or store.blocking)

    def _run(self, steps: Steps[Op, Any]) -> Any:
        return run_steps(steps, lambda op: self._target(op)(*op.args))

    def get_record(self, sid: str, touch_ms: int | None = None) -> SessionRecord | None:
        found: SessionRecord | None = self._run(self.rules.get(sid, touch_ms))
        return found

    def set_record(self, sid: str, record: SessionRecord) -> None:
        self._run(self.rules.set(sid, record))

    def touch_record(self, sid: str, record: SessionRecord) -> None:
        self._run(self.rules.touch(sid, record))

    def merge_record(self, sid: str, record: SessionRecord, base: Base) -> None:
        self._run(self.rules.merge(sid, record, base))

    def destroy(self, sid: str) -> None:
        self._run(self.rules.destroy(sid))

    def user_sessions(self, user: str | int) -> dict[str, SessionData]:
        found: dict[str, SessionData] = self._run(self.rules.user_sessions(user_name(user)))
        return found

    def destroy_user_sessions(self, user: str | int, keep: str | None = None) -> int:
        count: int = self._run(self.rules.destroy_user_sessions(user_name(user), keep))
        return count

    def all(self) -> dict[str, SessionData]:
        found: dict[str, SessionData] = self._run(self.rules.durable("all"))
        return found

    def length(self) -> int:
        count: int = self._run(self.rules.durable("length"))
        return count

    def ids(self) -> list[str]:
        found: list[str] = self._run(self.rules.durable("ids"))
        return found

    def clear(self) -> None:
        self._run(self.rules.clear())

    def prune(self, progress: Callable[[int], None] | None = None) -> int:
        """The durable store's expired sessions deleted now (a SQL store's ``prune``)."""
        prune = getattr(self.rules.store, "prune", None)
        return 0 if prune is None else int(prune(progress))

    def close(self) -> None:
        """Close both stores."""
        for owner in (self.rules.cache, self.rules.store):
            close = getattr(owner, "close", None)
            if close is not None:
                close()

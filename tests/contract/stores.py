"""The stores the contract suite runs against: one factory each. A new store is one line in
``FACTORIES`` (and a factory that says how to make time pass for it)."""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from sessionware import MemoryStore

from ..services import require_mysql, require_postgres, require_redis


class Harness:
    """A store under test, with what the contract needs around it.

    ``call`` runs a store method from sync code (an async store's calls all run on one loop);
    ``advance`` makes time pass for the store; ``plant`` puts raw bytes where a session would be
    (``None`` when the store has no raw form to corrupt).
    """

    def __init__(self, store: Any, advance: Callable[[float], None]) -> None:
        self.store = store
        self.advance = advance
        self.plant: Callable[[str, bytes], None] | None = None
        self.raw_keys: Callable[[], list[bytes]] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.cleanup: list[Callable[[], None]] = []

    def call(self, method: str, *args: Any) -> Any:
        result = getattr(self.store, method)(*args)
        if not asyncio.iscoroutine(result):
            return result
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
        return self.loop.run_until_complete(result)

    def gather(self, calls: list[tuple[str, tuple[Any, ...]]]) -> None:
        """Run calls concurrently: as tasks on one loop, or in threads for a sync store."""
        if asyncio.iscoroutinefunction(getattr(self.store, calls[0][0])):

            async def all_at_once() -> None:
                await asyncio.gather(*(getattr(self.store, m)(*a) for m, a in calls))

            self.call_coroutine(all_at_once())
            return
        import threading

        threads = [threading.Thread(target=getattr(self.store, m), args=a) for m, a in calls]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def call_coroutine(self, coroutine: Any) -> Any:
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
        return self.loop.run_until_complete(coroutine)

    def close(self) -> None:
        close = getattr(self.store, "close", None)
        if close is not None:
            self.call("close")
        for step in self.cleanup:
            step()
        if self.loop is not None:
            self.loop.close()


class FakeClock:
    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def memory() -> Harness:
    clock = FakeClock()
    return Harness(MemoryStore(clock=clock), clock.advance)


def _redis(store_class_name: str) -> Harness:
    from sessionware.stores import redis as redis_stores

    url = require_redis()
    prefix = f"sw-contract:{uuid.uuid4().hex[:12]}:"
    client = redis.Redis.from_url(url)

    def keys() -> list[bytes]:
        """The sessions and the per-user indexes (``user_prefix`` is derived from ``prefix``)."""
        index_prefix = redis_stores.RedisRules(prefix=prefix).user_prefix
        return [
            key for match in (prefix, index_prefix) for key in client.scan_iter(match=match + "*")
        ]

    def advance(seconds: float) -> None:
        """Time passes on the server: every key's TTL shrinks by ``seconds``."""
        for key in keys():
            left = client.pttl(key)
            if left < 0:
                continue
            if left - seconds * 1000 <= 0:
                client.delete(key)
            else:
                client.pexpire(key, int(left - seconds * 1000))

    def remove_keys() -> None:
        found = keys()
        if found:
            client.delete(*found)
        client.close()

    store = getattr(redis_stores, store_class_name)(url=url, prefix=prefix)
    harness = Harness(store, advance)
    harness.plant = lambda sid, raw: client.set(prefix + sid, raw, ex=60)
    harness.raw_keys = keys
    harness.cleanup.append(remove_keys)
    return harness


def sqlite(tmp: Path) -> Harness:
    from sessionware.stores.sqlite import SQLiteStore

    clock = FakeClock()
    path = tmp / "sessions.db"
    store = SQLiteStore(str(path), clock=clock)
    harness = Harness(store, clock.advance)

    def plant(sid: str, raw: bytes) -> None:
        with sqlite3.connect(path) as connection:
            connection.execute(
                "INSERT OR REPLACE INTO sessions (sid, expired, sess) VALUES (?, ?, ?)",
                (sid, int(clock() * 1000) + 60_000, raw.decode()),
            )

    store.length()
    harness.plant = plant
    return harness


def _sql_table() -> str:
    return f"sw_contract_{uuid.uuid4().hex[:10]}"


def postgres(store_class_name: str) -> Harness:
    import psycopg

    from sessionware.stores import postgres as module

    url = require_postgres()
    table = _sql_table()
    clock = FakeClock()
    store = getattr(module, store_class_name)(url=url, table=table, clock=clock)
    harness = Harness(store, clock.advance)

    def plant(sid: str, raw: bytes) -> None:
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(
                f'INSERT INTO "{table}" (sid, sess, expire) VALUES (%s, %s,'
                " to_timestamp(%s) AT TIME ZONE 'UTC')",
                (sid, raw.decode(), clock() + 60),
            )

    def drop() -> None:
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(f'DROP TABLE IF EXISTS "{table}"')

    harness.call("length")
    harness.plant = plant
    harness.cleanup.append(drop)
    return harness


def mysql(store_class_name: str) -> Harness:
    import pymysql

    from sessionware.stores import mysql as module

    url = require_mysql()
    table = _sql_table()
    clock = FakeClock()
    store = getattr(module, store_class_name)(url=url, table=table, clock=clock)
    harness = Harness(store, clock.advance)
    options = module.connection_options(url, 5)

    def plant(sid: str, raw: bytes) -> None:
        with pymysql.connect(**options) as connection, connection.cursor() as cursor:
            cursor.execute(
                f"REPLACE INTO `{table}` (session_id, expires, data) VALUES (%s, %s, %s)",
                (sid, round(clock()) + 60, raw.decode()),
            )

    def drop() -> None:
        with pymysql.connect(**options) as connection, connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS `{table}`")

    harness.call("length")
    harness.plant = plant
    harness.cleanup.append(drop)
    return harness


def sqlalchemy(kind: str) -> Harness:
    """A store on an engine of the test's own, on its own table (dropped afterwards)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.ext.asyncio import create_async_engine

    from sessionware.stores.sqlalchemy import AsyncSQLAlchemyStore, SQLAlchemyStore

    database, mode = kind.rsplit("-", 1)
    table = _sql_table()
    urls = {
        "sqlite": f"sqlite:///{tempfile.mkdtemp()}/sa.db",
        "postgres": require_postgres().replace("postgresql://", "postgresql+psycopg://"),
        "mysql": require_mysql().replace("mysql://", "mysql+pymysql://") + "?charset=utf8mb4",
    }
    url = urls[database]
    clock = FakeClock()
    if mode == "async":
        async_url = url.replace("sqlite://", "sqlite+aiosqlite://").replace(
            "mysql+pymysql://", "mysql+asyncmy://"
        )
        engine: Any = create_async_engine(async_url)
        store: Any = AsyncSQLAlchemyStore(engine, table=table, clock=clock)
    else:
        engine = create_engine(url)
        store = SQLAlchemyStore(engine, table=table, clock=clock)
    harness = Harness(store, clock.advance)
    harness.call("length")
    sync_engine = create_engine(url)
    quote = "`" if database == "mysql" else '"'

    def drop() -> None:
        with sync_engine.begin() as connection:
            connection.execute(text(f"DROP TABLE IF EXISTS {quote}{table}{quote}"))
        sync_engine.dispose()
        if mode == "async":
            harness.call_coroutine(engine.dispose())
        else:
            engine.dispose()

    harness.cleanup.append(drop)
    return harness


class SealedJar:
    """CookieStore as the store contract sees a store: ``set`` seals a session into the
    cookies a browser would hold (one jar per id), ``get`` opens them. What a cookie cannot do
    (list, index, merge) is in ``EXCLUDED``."""

    NAME = "connect.sid"

    def __init__(self, store: Any) -> None:
        self.store = store
        self.jar: dict[str, str] = {}

    def set(self, sid: str, data: dict[str, Any]) -> None:
        from sessionware.stores.base import SessionRecord

        self._seal(sid, SessionRecord.from_dict(data))

    def _seal(self, sid: str, record: Any) -> None:
        from sessionware.stores.toolkit import valid_sid

        values = self.store.seal(self.NAME, valid_sid(sid), record)
        names = [self.NAME, *(f"{self.NAME}.{i}" for i in range(1, len(values)))]
        self.jar[sid] = "; ".join(f"{n}={v}" for n, v in zip(names, values, strict=True))

    def get_record(self, sid: str) -> Any:
        header = self.jar.get(sid)
        opened = None if header is None else self.store.open(self.NAME, header)
        if opened is None or opened[0] != sid:
            self.jar.pop(sid, None)
            return None
        return opened[1]

    def get(self, sid: str) -> dict[str, Any] | None:
        record = self.get_record(sid)
        return None if record is None else record.as_dict()

    def touch(self, sid: str, data: dict[str, Any]) -> None:
        from sessionware.stores.base import SessionRecord

        found = self.get_record(sid)
        if found is not None:
            cookie = SessionRecord.from_dict(data).cookie
            self._seal(sid, SessionRecord(cookie, found.data, found.data_json))

    def destroy(self, sid: str) -> None:
        self.jar.pop(sid, None)

    def all(self) -> dict[str, Any]:
        """The sessions the browsers hold that still open."""
        found = {sid: self.get(sid) for sid in list(self.jar)}
        return {sid: data for sid, data in found.items() if data is not None}

    def length(self) -> int:
        return len(self.all())


def cookie() -> Harness:
    from sessionware.stores.cookie import CookieStore

    clock = FakeClock()
    key = "a key for the store contract's cookie store, 32+"
    return Harness(SealedJar(CookieStore([key], clock=clock)), clock.advance)


EXCLUDED: dict[str, dict[str, str]] = {
    "cookie": {
        "test_all_length_and_clear": "a cookie store lists nothing: sessions are in browsers",
        "test_a_users_sessions_are_listed_and_no_one_elses": "no per-user index",
        "test_a_session_follows_its_user_when_they_change": "no per-user index",
        "test_a_merged_save_indexes_the_merged_user": "no per-user index",
        "test_destroyed_and_expired_sessions_leave_the_list": "no per-user index",
        "test_destroy_user_sessions_keeps_the_one_asked_for": "no per-user index",
        "test_users_are_non_empty_text_or_ints": "no per-user index",
        "test_a_store_without_user_key_refuses_to_list": "no per-user index: user_key is refused",
        "test_concurrent_merges_never_store_more_than_max_size": "no merge: the last response wins",
    }
}
"""The contract tests a store shape cannot pass, each with why (deselected, not skipped)."""


def cached_memory_sqlite(tmp: Path) -> Harness:
    """A MemoryStore in front of SQLite, on one clock (WSGI's shape)."""
    from sessionware.stores.cached import SyncCachedStore
    from sessionware.stores.sqlite import SQLiteStore

    clock = FakeClock()
    store = SyncCachedStore(MemoryStore(clock=clock), SQLiteStore(str(tmp / "s.db"), clock=clock))
    return Harness(store, clock.advance)


def cached_redis_postgres() -> Harness:
    """A RedisStore in front of PostgreSQL (ASGI's shape): time passes on both."""
    from sessionware.stores.cached import CachedStore

    cache, durable = _redis("RedisStore"), postgres("PostgresStore")
    harness = Harness(CachedStore(cache.store, durable.store), cache.advance)
    harness.loop = durable.loop  # the pool was opened on it

    def advance(seconds: float) -> None:
        cache.advance(seconds)
        durable.advance(seconds)

    harness.advance = advance
    harness.cleanup += [*cache.cleanup, *durable.cleanup]
    return harness


FACTORIES: dict[str, Callable[[], Harness]] = {
    "memory": memory,
    "redis-async": lambda: _redis("RedisStore"),
    "redis-sync": lambda: _redis("SyncRedisStore"),
    "sqlite": lambda: sqlite(Path(tempfile.mkdtemp())),
    "postgres-async": lambda: postgres("PostgresStore"),
    "postgres-sync": lambda: postgres("SyncPostgresStore"),
    "mysql-async": lambda: mysql("MySQLStore"),
    "mysql-sync": lambda: mysql("SyncMySQLStore"),
    "cached-memory-sqlite": lambda: cached_memory_sqlite(Path(tempfile.mkdtemp())),
    "cached-redis-postgres": cached_redis_postgres,
    "cookie": cookie,
    **{
        f"sqlalchemy-{database}-{mode}": (lambda kind=f"{database}-{mode}": sqlalchemy(kind))
        for database in ("sqlite", "postgres", "mysql")
        for mode in ("sync", "async")
    },
}
PLANTABLE = (
    "redis-async",
    "redis-sync",
    "sqlite",
    "postgres-async",
    "postgres-sync",
    "mysql-async",
    "mysql-sync",
)
JSON_COLUMNS = ("postgres-async", "postgres-sync")
"""Stores whose column only holds valid JSON: only JSON that is not a session can be planted."""


@contextmanager
def harness_for(name: str) -> Iterator[Harness]:
    harness = FACTORIES[name]()
    try:
        yield harness
    finally:
        harness.close()

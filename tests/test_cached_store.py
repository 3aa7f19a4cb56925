"""CachedStore / SyncCachedStore under outages, for real: a Redis of the test's own as the cache
(paused, killed), PostgreSQL behind a proxy the test stops as the durable store. The contract
and merge suites run them too (tests/contract, tests/test_merge.py)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sessionware import MemoryStore, SessionMiddleware, StoreUnavailable
from sessionware.stores.cached import INVALID_KEY, CachedStore, SyncCachedStore
from sessionware.stores.sqlite import SQLiteStore

from .services import RedisServer, TcpProxy, require_postgres

SECRET = "a secret for the cached store's tests, 32 bytes+"


def session(**data: Any) -> dict[str, Any]:
    return {"cookie": {"originalMaxAge": 60_000, "expires": _in(60)}, **data}


def _in(seconds: int) -> str:
    from datetime import datetime, timedelta, timezone

    moment = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@pytest.fixture
def cache_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "cache").start()
    yield server
    server.stop()


def test_a_read_fills_the_cache_and_a_write_goes_through_it(tmp_path: Path) -> None:
    cache, durable = MemoryStore(), SQLiteStore(str(tmp_path / "s.db"))
    store = SyncCachedStore(cache, durable)
    durable.set("a", session(user="ann"))
    assert cache.get("a") is None
    assert store.get("a")["user"] == "ann"
    assert cache.get("a")["user"] == "ann", "a miss did not fill the cache"
    store.set("a", session(user="bob"))
    assert durable.get("a")["user"] == cache.get("a")["user"] == "bob"
    store.destroy("a")
    assert durable.get("a") is None and store.get("a") is None
    assert INVALID_KEY in cache.get("a"), "the cache entry was not invalidated"
    durable.close()


def test_a_warm_read_does_not_reach_the_durable_store(tmp_path: Path) -> None:
    durable = SQLiteStore(str(tmp_path / "s.db"))
    store = SyncCachedStore(MemoryStore(), durable)
    store.set("a", session(user="ann"))
    durable.close()  # any read of it now fails
    assert store.get("a")["user"] == "ann"


def test_a_cache_that_stalls_is_skipped_and_its_stale_entries_dropped(
    cache_server: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The cache stalls while a session is rewritten: the write lands in the durable store and
    is acknowledged; once the cache answers again, the entry it held from before is dropped, so
    the next read gives the new value, not the cached old one."""
    from sessionware.stores.redis import SyncRedisStore

    cache = SyncRedisStore(url=cache_server.url, timeout=0.5, retry_interval=0.1)
    durable = SQLiteStore(str(tmp_path / "s.db"))
    store = SyncCachedStore(cache, durable)
    store.set("a", session(user="ann"))
    assert cache.get("a")["user"] == "ann"
    caplog.set_level(logging.WARNING, logger="sessionware")
    cache_server.pause()
    try:
        store.set("a", session(user="bob"))
        assert store.get("a")["user"] == "bob", "a stalled cache failed the read"
        store.set("b", session(user="cy"))
    finally:
        cache_server.resume()
    assert durable.get("a")["user"] == "bob"
    deadline = time.monotonic() + 10
    while not cache.health.up:
        assert time.monotonic() < deadline, "the cache's health never came back"
        time.sleep(0.05)
    assert store.get("a")["user"] == "bob", "the cache served the value from before its outage"
    assert cache.get("a")["user"] == "bob"
    unavailable = [r for r in caplog.records if "cache is unavailable" in r.getMessage()]
    assert len(unavailable) == 1, "the outage was not logged once"
    store.close()


def test_a_killed_cache_leaves_the_app_serving_from_the_durable_store(
    cache_server: RedisServer, tmp_path: Path
) -> None:
    from sessionware.stores.redis import RedisStore

    store = CachedStore(
        RedisStore(url=cache_server.url, timeout=0.5, retry_interval=0.1),
        SQLiteStore(str(tmp_path / "s.db")),
    )
    app = _app(store)

    async def run() -> list[Any]:
        async with _client(app) as client:
            await client.post("/login")
            before = (await client.get("/me")).json()
            cache_server.kill()
            during = [(await client.get("/me")).json() for _ in range(3)]
            written = (await client.post("/count")).json()
            after = (await client.get("/me")).json()
            await store.aclose()
            return [before, during, written, after]

    before, during, written, after = asyncio.run(run())
    assert before == {"user": "ann", "count": 0}
    assert during == [before] * 3
    assert (written, after) == (1, {"user": "ann", "count": 1})


def test_a_stopped_durable_store_still_serves_cached_reads_and_refuses_writes(
    cache_server: RedisServer,
) -> None:
    """PostgreSQL unreachable: a session the cache holds is still read; saving it, or reading
    one the cache does not hold, is StoreUnavailable (nothing acknowledged that is not
    durable). The app answers reads 200 and writes 503."""
    from sessionware.stores.postgres import PostgresStore
    from sessionware.stores.redis import RedisStore

    url = require_postgres()
    proxy = TcpProxy(5432).start()
    table = f"sw_cached_{uuid.uuid4().hex[:10]}"
    proxied = url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    durable = PostgresStore(url=proxied, table=table, timeout=1, retry_interval=0.1)
    store = CachedStore(RedisStore(url=cache_server.url, timeout=1), durable)
    app = _app(store)

    async def run() -> list[Any]:
        async with _client(app) as client:
            await client.post("/login")
            proxy.stop()
            read = await client.get("/me")
            write = await client.post("/count")
            try:
                await store.get_record("never-cached")
                missed = "read"
            except StoreUnavailable:
                missed = "StoreUnavailable"
            await store.aclose()
            return [read.status_code, read.json(), write.status_code, missed]

    try:
        read_status, read_body, write_status, missed = asyncio.run(run())
    finally:
        proxy.stop()
        import psycopg

        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(f'DROP TABLE IF EXISTS "{table}"')
    assert (read_status, read_body) == (200, {"user": "ann", "count": 0})
    assert write_status == 503
    assert missed == "StoreUnavailable"


def test_stores_that_are_not_sessionwares_are_refused() -> None:
    with pytest.raises(TypeError, match="record store"):
        CachedStore(object(), MemoryStore())
    with pytest.raises(TypeError, match="use CachedStore"):
        from sessionware.stores.redis import RedisStore

        SyncCachedStore(RedisStore(url="redis://127.0.0.1:1/0"), MemoryStore())


def _app(store: Any) -> Starlette:
    async def login(request: Request) -> JSONResponse:
        request.session["user"] = "ann"
        request.session["count"] = 0
        return JSONResponse("ok")

    async def me(request: Request) -> JSONResponse:
        return JSONResponse(
            {"user": request.session.get("user"), "count": request.session.get("count")}
        )

    async def count(request: Request) -> JSONResponse:
        request.session["count"] = request.session.get("count", 0) + 1
        return JSONResponse(request.session["count"])

    app = Starlette(
        routes=[
            Route("/login", login, methods=["POST"]),
            Route("/me", me),
            Route("/count", count, methods=["POST"]),
        ]
    )
    app.add_middleware(SessionMiddleware, secret=SECRET, store=store)
    return app


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def test_touch_after_spares_the_durable_store_a_write_per_read(tmp_path: Path) -> None:
    """With ``touch_after``, a read soon after a write is read as touched (no touch call
    follows), and a touch that does come is skipped; after ``touch_after`` it goes through."""
    from sessionware.stores.base import SessionRecord

    durable = SQLiteStore(str(tmp_path / "s.db"))
    store = SyncCachedStore(MemoryStore(), durable, touch_after=60)
    store.set("a", session(user="ann"))
    record = store.get_record("a", 60_000)
    assert record is not None and record.touched_ms == 60_000
    stored = durable.get("a")["cookie"]["expires"]
    later = {**session(user="ann"), "cookie": {"originalMaxAge": 60_000, "expires": _in(120)}}
    store.touch_record("a", SessionRecord.from_dict(later))
    assert durable.get("a")["cookie"]["expires"] == stored, "a touch within touch_after wrote"
    every_time = SyncCachedStore(MemoryStore(), durable)
    assert every_time.get_record("a", 60_000).touched_ms is None  # type: ignore[union-attr]
    durable.close()


def test_a_cached_url_names_both_stores(tmp_path: Path) -> None:
    from urllib.parse import quote

    from sessionware.stores.urls import from_url

    durable = quote(f"sqlite:///{tmp_path}/s.db", safe="")
    store = from_url(f"cached://?cache=memory://&store={durable}&touch_after=5", user_key="u")
    assert isinstance(store, CachedStore) and isinstance(store.cache, MemoryStore)
    assert isinstance(store.store, SQLiteStore) and store.user_key == "u"
    assert isinstance(
        from_url(f"cached://?cache=memory://&store={durable}", sync=True), SyncCachedStore
    )
    with pytest.raises(ValueError, match="needs both"):
        from_url("cached://?cache=memory://")
    with pytest.raises(ValueError, match="unknown store URL option"):
        from_url(f"cached://?cache=memory://&store={durable}&ttl=5")


@pytest.mark.parametrize("write", ["set", "merge", "destroy"])
def test_a_slow_fill_never_overwrites_a_newer_write(write: str, tmp_path: Path) -> None:
    """A read misses the cache and takes v1 from the durable store; before it fills the cache,
    another request writes (a save, a merged save, a logout). The fill must not bring v1 back:
    the next read gives what the durable store holds."""
    from sessionware.stores.base import Base, SessionRecord

    durable = SQLiteStore(str(tmp_path / "s.db"))
    store = SyncCachedStore(MemoryStore(), durable)
    durable.set("a", session(user="ann"))
    reading = store.rules.get("a", None)
    op = next(reading)
    assert op.method == "get_record" and op.target == "cache"
    op = reading.send(store._target(op)(*op.args))
    assert op.target == "store"
    old = store._target(op)(*op.args)
    newer = SessionRecord.from_dict(session(user="bob"))
    if write == "set":
        store.set_record("a", newer)
    elif write == "merge":
        store.merge_record("a", newer, Base(None, '{"user":"ann"}'))
    else:
        store.destroy("a")
    op = reading.send(old)
    assert op.method == "add_record", "the fill may overwrite"
    store._target(op)(*op.args)
    with pytest.raises(StopIteration):
        reading.send(None)
    expected = None if write == "destroy" else "bob"
    found = store.get("a")
    assert (found and found["user"]) == expected, "a stale fill was read back"
    durable.close()


def test_redis_fills_only_an_empty_key(redis_prefix: str) -> None:
    from sessionware.stores.base import SessionRecord
    from sessionware.stores.redis import SyncRedisStore

    from .services import require_redis

    cache = SyncRedisStore(url=require_redis(), prefix=redis_prefix)
    cache.add_record("a", SessionRecord.from_dict(session(user="ann")))
    cache.add_record("a", SessionRecord.from_dict(session(user="old")))
    assert cache.get("a")["user"] == "ann"
    cache.close()


def test_a_corrupt_cache_entry_is_a_miss_logged_without_the_id(
    redis_prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import redis

    from sessionware.stores.redis import SyncRedisStore

    from .services import require_redis

    sid = "a-session-id-no-log-may-show"
    durable = SQLiteStore(str(tmp_path / "s.db"))
    durable.set(sid, session(user="ann"))
    client = redis.Redis.from_url(require_redis())
    client.set(redis_prefix + sid, b"not json", ex=60)
    store = SyncCachedStore(SyncRedisStore(url=require_redis(), prefix=redis_prefix), durable)
    caplog.set_level(logging.WARNING, logger="sessionware")
    assert store.get(sid)["user"] == "ann"
    assert "holds no session" in caplog.text and sid not in caplog.text
    assert store.cache.get(sid)["user"] == "ann", "the corrupt entry was not replaced"
    store.close()
    client.close()

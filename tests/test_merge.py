"""No lost updates: concurrent requests on one session keep each other's changes, on every store
that merges (MemoryStore, RedisStore, SyncRedisStore), through the real middlewares.

Each request loads the session, waits (so that every request has loaded before any saves), then
changes its own key: without merging, the last save wins and the others' keys vanish.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from sessionware import MemoryStore, SessionEvent
from sessionware.stores.redis import RedisStore, SyncRedisStore
from sessionware.wsgi import SESSION_KEY

from .harness import SECRET, wrap
from .services import require_redis

REQUESTS = 100


def asgi_app(scope: Any, receive: Any, send: Any) -> Any:
    async def app() -> None:
        session = scope["session"]
        query = parse_qs(scope.get("query_string", b"").decode())
        await asyncio.sleep(float(query.get("wait", ["0"])[0]))
        action = scope["path"].strip("/")
        if action == "set":
            session[query["key"][0]] = query["value"][0]
        elif action == "destroy":
            await session.destroy()
        body = b"ok"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return app()


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    session = environ[SESSION_KEY]
    query = parse_qs(environ.get("QUERY_STRING", ""))
    time.sleep(float(query.get("wait", ["0"])[0]))
    action = environ["PATH_INFO"].strip("/")
    if action == "set":
        session[query["key"][0]] = query["value"][0]
    elif action == "destroy":
        session.destroy()
    start_response("200 OK", [])
    return [b"ok"]


class Harness:
    """One app on one store, with a session to share between concurrent requests."""

    def __init__(self, transport: str, store: Any, **options: Any) -> None:
        self.transport = transport
        self.store = store
        self.app = wrap(transport, asgi_app, wsgi_app, secret=SECRET, store=store, **options)
        self.loop = asyncio.new_event_loop()
        self.cookie = ""
        self.cookie = (
            self.run([("/set?key=start&value=1", 0)])[0].headers["set-cookie"].split(";")[0]
        )

    def run(self, requests: list[tuple[str, float]]) -> list[httpx.Response]:
        """Each request (path, seconds before it starts) at once, with the shared cookie."""
        headers = {"cookie": self.cookie} if self.cookie else {}
        if self.transport == "asgi":
            return self.loop.run_until_complete(self._run_asgi(requests, headers))
        results: list[Any] = [None] * len(requests)

        def one(index: int, path: str, delay: float) -> None:
            time.sleep(delay)
            with httpx.Client(transport=httpx.WSGITransport(app=self.app)) as client:
                results[index] = client.get("http://t" + path, headers=headers)

        threads = [
            threading.Thread(target=one, args=(index, path, delay))
            for index, (path, delay) in enumerate(requests)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results

    async def _run_asgi(
        self, requests: list[tuple[str, float]], headers: dict[str, str]
    ) -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:

            async def one(path: str, delay: float) -> httpx.Response:
                await asyncio.sleep(delay)
                return await client.get(path, headers=headers)

            return list(await asyncio.gather(*(one(path, delay) for path, delay in requests)))

    def stored(self) -> dict[str, Any] | None:
        sid = self.cookie.split("s%3A", 1)[1].split(".", 1)[0]
        if asyncio.iscoroutinefunction(self.store.get):
            result: dict[str, Any] | None = self.loop.run_until_complete(self.store.get(sid))
            self.loop.run_until_complete(self.store.aclose())
            self.loop.close()
            return result
        result = self.store.get(sid)
        return result


def _memory(transport: str, prefix: str) -> Any:
    return MemoryStore()


def _redis(transport: str, prefix: str) -> Any:
    store_class = RedisStore if transport == "asgi" else SyncRedisStore
    return store_class(url=require_redis(), prefix=prefix)


def _sqlite(transport: str, prefix: str) -> Any:
    import tempfile

    from sessionware.stores.sqlite import SQLiteStore

    return SQLiteStore(tempfile.mkdtemp() + "/sessions.db")


def _postgres(transport: str, prefix: str) -> Any:
    from sessionware.stores.postgres import PostgresStore, SyncPostgresStore

    from .services import require_postgres

    store_class = PostgresStore if transport == "asgi" else SyncPostgresStore
    return store_class(url=require_postgres(), table=_table(prefix), max_size=20)


def _mysql(transport: str, prefix: str) -> Any:
    from sessionware.stores.mysql import MySQLStore, SyncMySQLStore

    from .services import require_mysql

    store_class = MySQLStore if transport == "asgi" else SyncMySQLStore
    return store_class(url=require_mysql(), table=_table(prefix), max_size=20)


def _table(prefix: str) -> str:
    import uuid

    return f"sw_merge_{uuid.uuid4().hex[:10]}"


def _sqlalchemy(transport: str, prefix: str) -> Any:
    import tempfile

    from sqlalchemy import create_engine
    from sqlalchemy.ext.asyncio import create_async_engine

    from sessionware.stores.sqlalchemy import AsyncSQLAlchemyStore, SQLAlchemyStore

    path = tempfile.mkdtemp() + "/sa.db"
    if transport == "asgi":
        return AsyncSQLAlchemyStore(create_async_engine(f"sqlite+aiosqlite:///{path}"))
    return SQLAlchemyStore(create_engine(f"sqlite:///{path}"))


def _cached(transport: str, prefix: str) -> Any:
    """Redis in front of SQLite: the merge runs on the durable store."""
    from sessionware.stores.cached import CachedStore, SyncCachedStore

    store_class = CachedStore if transport == "asgi" else SyncCachedStore
    return store_class(_redis(transport, prefix), _sqlite(transport, prefix))


STORES: dict[str, Callable[[str, str], Any]] = {
    "memory": _memory,
    "redis": _redis,
    "sqlite": _sqlite,
    "postgres": _postgres,
    "mysql": _mysql,
    "sqlalchemy": _sqlalchemy,
    "cached": _cached,
}


@pytest.fixture(params=["asgi", "wsgi"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=list(STORES))
def make(request: pytest.FixtureRequest, transport: str) -> Iterator[Callable[..., Harness]]:
    uses_redis = request.param in ("redis", "cached")
    prefix = request.getfixturevalue("redis_prefix") if uses_redis else ""
    harnesses: list[Harness] = []

    def build(**options: Any) -> Harness:
        harness = Harness(transport, STORES[request.param](transport, prefix), **options)
        harnesses.append(harness)
        return harness

    yield build
    for harness in harnesses:
        _drop_table(harness.store)


def _drop_table(store: Any) -> None:
    """SQL stores here each got a table of their own: drop it."""
    table = getattr(getattr(store, "rules", None), "dialect", None)
    if table is None or store.rules.dialect.name == "sqlite":
        return
    name = store.rules.dialect.clear.removeprefix("DELETE FROM ")
    if store.rules.dialect.name == "postgres":
        import psycopg

        from .services import require_postgres

        with psycopg.connect(require_postgres(), autocommit=True) as connection:
            connection.execute(f"DROP TABLE IF EXISTS {name}")
    else:
        import pymysql

        from sessionware.stores.mysql import connection_options

        from .services import require_mysql

        with pymysql.connect(**connection_options(require_mysql(), 5)) as connection:
            connection.cursor().execute(f"DROP TABLE IF EXISTS {name}")


def test_concurrent_requests_each_setting_a_key_keep_every_key(
    make: Callable[..., Harness],
) -> None:
    harness = make()
    responses = harness.run(
        [(f"/set?key=k{index}&value={index}&wait=0.3", 0) for index in range(REQUESTS)]
    )
    assert {response.status_code for response in responses} == {200}
    stored = harness.stored()
    assert stored is not None
    kept = [index for index in range(REQUESTS) if stored.get(f"k{index}") == str(index)]
    assert len(kept) == REQUESTS
    assert stored["start"] == "1"


def test_a_save_merged_onto_another_requests_changes_is_told(
    make: Callable[..., Harness],
) -> None:
    events: list[SessionEvent] = []
    harness = make(on_event=events.append)
    harness.run([("/set?key=a&value=1&wait=0.3", 0), ("/set?key=b&value=2", 0.1)])
    merged = [event for event in events if event.kind == "merged"]
    assert len(merged) == 1 and merged[0].sid_hash is not None
    stored = harness.stored()
    assert stored is not None and (stored["a"], stored["b"]) == ("1", "2")


def test_whole_session_overwrite_loses_keys_as_express_does(make: Callable[..., Harness]) -> None:
    harness = make(merge=False)
    harness.run([(f"/set?key=k{index}&value={index}&wait=0.3", 0) for index in range(20)])
    stored = harness.stored()
    assert stored is not None
    assert sum(1 for index in range(20) if f"k{index}" in stored) < 20


def test_a_destroy_during_a_slow_save_wins(make: Callable[..., Harness]) -> None:
    harness = make()
    slow, logout = harness.run([("/set?key=late&value=1&wait=0.5", 0), ("/destroy", 0.15)])
    assert (slow.status_code, logout.status_code) == (200, 200)
    assert harness.stored() is None


def test_the_last_writer_of_a_key_wins(make: Callable[..., Harness]) -> None:
    harness = make()
    harness.run([("/set?key=color&value=red&wait=0.5", 0), ("/set?key=color&value=blue", 0.15)])
    stored = harness.stored()
    assert stored is not None
    assert stored["color"] == "red"


def test_a_conflict_on_one_key_can_be_an_error(make: Callable[..., Harness]) -> None:
    harness = make(on_conflict="error")
    slow, fast = harness.run(
        [("/set?key=color&value=red&wait=0.5", 0), ("/set?key=color&value=blue", 0.15)]
    )
    assert (slow.status_code, fast.status_code) == (409, 200)
    stored = harness.stored()
    assert stored is not None
    assert stored["color"] == "blue"

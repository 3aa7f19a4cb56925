"""Lazy sessions (``lazy=True``): the store is read on the session's first use, so a request
that never uses it makes no store call, sends no cookie, and is served while the store is down;
on both adapters, the frameworks, and a real Redis counted by its own command statistics."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from sessionware import (
    MemoryStore,
    Session,
    SessionError,
    SessionMiddleware,
    WSGISessionMiddleware,
)
from sessionware.integrations.fastapi import SessionDep
from sessionware.stores.sqlite import SQLiteStore

from .harness import SECRET, Client, Req, SpyStore, middleware_for
from .services import RedisServer


def _app(req: Req) -> None:
    if req.path == "/write":
        req.session["n"] = req.session.get("n", 0) + 1
        req.end(str(req.session["n"]))
    elif req.path == "/read":
        req.end(str(req.session.get("n")))
    elif req.path == "/login":
        req.regenerate()
        req.session["user"] = "ann"
        req.end("ok")
    else:
        req.end("untouched")


@pytest.mark.parametrize("transport", ["asgi", "wsgi"])
def test_an_untouched_request_costs_no_store_call_and_sends_nothing(transport: str) -> None:
    store = SpyStore()
    app = middleware_for(transport, _app, secret=SECRET, store=store, lazy=True, rolling=True)
    client = Client(app, transport)
    first = client.get("/write")
    assert first.text == "1" and first.set_cookie is not None
    store.reset()

    untouched = client.get("/", cookie=first.cookie())
    assert untouched.text == "untouched"
    assert store.calls == [], "an untouched request called the store"
    assert untouched.set_cookie is None, "an untouched session was rolled"
    assert untouched.header("vary") is None

    read = client.get("/read", cookie=first.cookie())
    assert read.text == "1" and store.count("get") == 1
    assert read.set_cookie is not None, "a used session is rolled as before"
    assert client.get("/write", cookie=first.cookie()).text == "2"
    login = client.get("/login", cookie=first.cookie())
    assert login.set_cookie is not None and login.cookie() != first.cookie()
    client.close()


@pytest.mark.parametrize("transport", ["asgi", "wsgi"])
def test_lazy_is_off_by_default(transport: str) -> None:
    store = SpyStore()
    app = middleware_for(transport, _app, secret=SECRET, store=store)
    client = Client(app, transport)
    cookie = client.get("/write").cookie()
    store.reset()
    client.get("/", cookie=cookie)
    assert store.count("get") == 1
    client.close()


def test_an_async_view_must_load_a_store_that_does_io(tmp_path: Path) -> None:
    """On the event loop a first plain access cannot read a store that does I/O: it says to
    ``await session.load()``; after that, plain access works. From a worker thread it loads."""
    store = SQLiteStore(str(tmp_path / "lazy.db"))

    async def app(scope: Any, receive: Any, send: Any) -> None:
        session = scope["session"]
        if scope["path"] == "/loaded":
            await session.load()
            session["n"] = session.get("n", 0) + 1
            body = str(session["n"])
        elif scope["path"] == "/thread":
            body = str(await asyncio.to_thread(lambda: session.get("n")))
        else:
            try:
                session.get("n")
                body = "read"
            except SessionError as exc:
                body = str(exc)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body.encode()})

    middleware = SessionMiddleware(app, secret=SECRET, store=store, lazy=True)

    async def run() -> list[str]:
        transport = httpx.ASGITransport(app=middleware)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return [(await client.get(path)).text for path in ("/unloaded", "/loaded", "/thread")]

    unloaded, loaded, thread = asyncio.run(run())
    store.close()
    assert "await session.load()" in unloaded
    assert loaded == "1"
    assert thread == "1", "a worker thread did not load the session on the request's loop"


def test_redis_sees_no_command_and_an_outage_leaves_untouched_routes_alone(
    tmp_path: Path,
) -> None:
    """Counted by the server itself (``INFO commandstats``): an untouched route sends Redis no
    command; with Redis stopped it still answers 200, and a route that uses the session 503."""
    import redis

    from sessionware.stores.redis import RedisStore

    server = RedisServer(tmp_path / "redis").start()
    store = RedisStore(url=server.url, timeout=0.5)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/write":
            session = scope["session"]
            await session.load()
            session["n"] = session.get("n", 0) + 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    middleware = SessionMiddleware(app, secret=SECRET, store=store, lazy=True)
    counter = redis.Redis.from_url(server.url)

    def commands() -> int:
        stats = counter.info("commandstats")
        return sum(
            int(value["calls"])
            for name, value in stats.items()
            if name not in ("cmdstat_info", "cmdstat_config|resetstat", "cmdstat_config")
        )

    async def run() -> tuple[int, int, list[int]]:
        transport = httpx.ASGITransport(app=middleware)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await client.get("/write")
            counter.config_resetstat()
            for _ in range(20):
                await client.get("/")
            untouched = commands()
            await client.get("/write")
            used = commands()
            server.kill()
            statuses = [(await client.get(path)).status_code for path in ("/", "/write", "/")]
            await store.aclose()
            return untouched, used, statuses

    try:
        untouched, used, statuses = asyncio.run(run())
    finally:
        counter.close()
        server.stop()
    assert untouched == 0, f"untouched requests sent Redis {untouched} commands"
    assert used > 0
    assert statuses == [200, 503, 200]


def test_flask_loads_on_first_access() -> None:
    import flask

    from sessionware.integrations.flask import init_app, session

    store = SpyStore()
    app = flask.Flask("lazy")
    app.secret_key = SECRET

    @app.get("/write")
    def write() -> str:
        session["n"] = session.get("n", 0) + 1
        return str(session["n"])

    @app.get("/")
    def untouched() -> str:
        return "untouched"

    init_app(app, store=store, lazy=True)
    client = app.test_client()
    assert client.get("/write").text == "1"
    store.reset()
    response = client.get("/")
    assert store.calls == [] and "Set-Cookie" not in response.headers
    assert client.get("/write").text == "2"


def test_fastapi_and_litestar_load_what_a_handler_declares(tmp_path: Path) -> None:
    from fastapi import FastAPI
    from litestar import Litestar, get

    from sessionware.integrations.litestar import SessionwareConfig

    store = SQLiteStore(str(tmp_path / "lazy.db"))
    api = FastAPI()

    async def count(session: SessionDep) -> int:
        session["n"] = session.get("n", 0) + 1
        return int(session["n"])

    api.get("/count")(count)
    api.get("/")(lambda: "untouched")
    api.add_middleware(SessionMiddleware, secret=SECRET, store=store, lazy=True)

    @get("/count")
    async def litestar_count(session: Session) -> int:
        session["n"] = session.get("n", 0) + 1
        return int(session["n"])

    sessions = SessionwareConfig(secret=SECRET, store=store, lazy=True)
    star = Litestar(
        route_handlers=[litestar_count],
        middleware=[sessions.middleware],
        dependencies=sessions.dependencies,
    )

    async def run(app: Any) -> list[str]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return [(await client.get("/count")).text, (await client.get("/count")).text]

    assert asyncio.run(run(api)) == ["1", "2"]
    assert asyncio.run(run(star)) == ["1", "2"]
    store.close()


def test_a_lazy_session_reads_as_its_data_once_loaded() -> None:
    """Every way to read a lazy session loads it first: the app never sees it empty."""
    store = MemoryStore()
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = environ["sessionware.session"]
        if environ["PATH_INFO"] == "/write":
            session.update(a=1, b=2)
            session.cookie.max_age = 120
        else:
            repr_before = repr(session)
            seen.update(
                max_age=session.cookie.original_max_age,
                repr_before=repr_before,
                items=sorted(session.items()),
                length=len(session),
                contains="a" in session,
                json=json.loads(json.dumps(session)),
                copy=dict(session),
                modified=session.modified,
            )
        start_response("200 OK", [])
        return [b"ok"]

    middleware = WSGISessionMiddleware(app, secret=SECRET, store=store, lazy=True)
    client = Client(middleware, "wsgi")
    cookie = client.get("/write").cookie()
    client.get("/read", cookie=cookie)
    assert seen["repr_before"] == "LazySyncSession(not loaded yet)"
    assert seen["items"] == [("a", 1), ("b", 2)] and seen["length"] == 2 and seen["contains"]
    assert seen["json"] == seen["copy"] == {"a": 1, "b": 2}
    assert seen["modified"] is False
    assert seen["max_age"] == 120, "the cookie read first was not the stored one"


def test_lazy_must_be_a_flag() -> None:
    with pytest.raises(TypeError, match="lazy must be True or False"):
        middleware_for("asgi", _app, secret=SECRET, lazy="yes")

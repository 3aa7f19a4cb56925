"""What the re-layering added or fixed: Vary, the headers-sent guard, one failure policy (Flask
included), store ownership and context managers, a URL where a client goes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import flask
import httpx
import pytest
import redis
import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from sessionware import (
    HeadersAlreadySent,
    MemoryStore,
    Session,
    SessionMiddleware,
    StoreUnavailable,
    SyncSession,
    WSGISessionMiddleware,
)
from sessionware._engine import Flow
from sessionware.integrations.flask import init_app
from sessionware.session import SessionBase
from sessionware.stores.redis import RedisStore, SyncRedisStore
from sessionware.wsgi import SESSION_KEY

from .harness import SECRET, Client, Req, middleware_for
from .services import require_redis


def _handler(req: Req) -> None:
    if req.path == "/write":
        req.session["n"] = 1
    if req.path == "/vary":
        req.header("Vary", "Accept-Encoding")
    if req.path == "/vary-cookie":
        req.header("Vary", "cookie")
    req.end("ok")


@pytest.mark.parametrize("transport", ["asgi", "wsgi"])
class TestVary:
    def test_no_vary_when_the_session_played_no_part(self, transport: str) -> None:
        client = Client(middleware_for(transport, _handler, secret=SECRET), transport)
        assert client.get("/").all_headers("vary") == []

    def test_vary_cookie_when_a_cookie_is_set_or_a_session_loaded(self, transport: str) -> None:
        client = Client(middleware_for(transport, _handler, secret=SECRET), transport)
        first = client.get("/write")
        assert first.all_headers("vary") == ["Cookie"]
        assert client.get("/", cookie=first.cookie()).all_headers("vary") == ["Cookie"]

    def test_an_apps_own_vary_is_kept_and_not_doubled(self, transport: str) -> None:
        client = Client(middleware_for(transport, _handler, secret=SECRET), transport)
        cookie = client.get("/write").cookie()
        assert client.get("/vary", cookie=cookie).all_headers("vary") == [
            "Accept-Encoding",
            "Cookie",
        ]
        assert client.get("/vary-cookie", cookie=cookie).all_headers("vary") == ["cookie"]


async def _regenerate_while_streaming(request: Request) -> StreamingResponse:
    session = request.session
    assert isinstance(session, Session)
    session["n"] = 1

    async def chunks() -> Any:
        yield b"first"
        await session.regenerate()
        yield b"second"

    return StreamingResponse(chunks())


def test_regenerate_after_the_headers_went_out_is_refused_under_asgi() -> None:
    store = MemoryStore()
    app = SessionMiddleware(
        Starlette(routes=[Route("/", _regenerate_while_streaming)]), secret=SECRET, store=store
    )

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await client.get("/")

    with pytest.raises(BaseException) as raised:
        asyncio.run(scenario())
    error = raised.value
    while hasattr(error, "exceptions"):  # Starlette before 0.28 wraps it in a group
        (error,) = error.exceptions
    assert isinstance(error, HeadersAlreadySent)
    assert "regenerate" in str(error)


def test_destroy_after_the_headers_went_out_is_refused_under_wsgi() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        session = environ[SESSION_KEY]
        assert isinstance(session, SyncSession)
        session["n"] = 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first"
        yield b"second"  # held one chunk behind until here: the headers go out now
        session.destroy()
        yield b"third"

    client = Client(WSGISessionMiddleware(app, secret=SECRET), "wsgi")
    with pytest.raises(HeadersAlreadySent, match="destroy"):
        client.get("/")


def test_flasks_503_carries_none_of_the_apps_headers() -> None:
    class Down(MemoryStore):
        def set(self, sid: str, data: Any) -> None:
            raise StoreUnavailable("down")

    app = flask.Flask(__name__)
    app.secret_key = SECRET
    init_app(app, store=Down())

    @app.post("/login")
    def login() -> Any:
        flask.session["user"] = "ann"
        response = flask.redirect("/home")
        response.headers["X-App"] = "yes"
        return response

    response = app.test_client().post("/login")
    assert response.status_code == 503
    assert "Location" not in response.headers
    assert "X-App" not in response.headers
    assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize("store_class", [RedisStore, SyncRedisStore])
def test_a_url_where_the_client_goes_says_what_to_write(store_class: type) -> None:
    with pytest.raises(TypeError, match=r"url='redis://127.0.0.1:6379'"):
        store_class("redis://127.0.0.1:6379")


def test_closing_a_sync_store_never_closes_a_client_it_was_given() -> None:
    client = redis.Redis.from_url(require_redis())
    with SyncRedisStore(client) as store:
        store.get("abc")
    assert store.health.closed
    assert client.ping()
    client.close()


def test_closing_an_async_store_never_closes_a_client_it_was_given() -> None:
    async def scenario() -> None:
        client = aioredis.Redis.from_url(require_redis())
        async with RedisStore(client) as store:
            await store.get("abc")
        assert store.health.closed
        assert await client.ping()
        await client.aclose()

    asyncio.run(scenario())


def test_a_store_that_built_its_client_closes_it() -> None:
    store = SyncRedisStore(url=require_redis())
    store.get("abc")
    connections = list(store.client.connection_pool._available_connections)
    assert [c._sock is not None for c in connections] == [True]
    store.close()
    assert [c._sock is not None for c in connections] == [False]


def _path_of(request: Any) -> str:
    return str(request.get("path") or request.get("PATH_INFO"))


@pytest.mark.parametrize("transport", ["asgi", "wsgi"])
@pytest.mark.parametrize(
    "skip",
    [["/static", "/health"], lambda request: _path_of(request).startswith(("/static/", "/health"))],
    ids=["prefixes", "predicate"],
)
def test_skipped_requests_get_no_session_and_cost_no_store_call(transport: str, skip: Any) -> None:
    from .harness import SpyStore

    def handler(req: Req) -> None:
        if req.session is None:
            req.end("none")
            return
        req.session["seen"] = True
        req.end("session")

    store = SpyStore()
    app = middleware_for(transport, handler, secret=SECRET, store=store, skip=skip)
    client = Client(app, transport)
    cookie = client.get("/page").cookie()
    store.reset()
    assert client.get("/static/app.css", cookie=cookie).text == "none"
    assert client.get("/health", cookie=cookie).text == "none"
    assert store.calls == []
    assert client.get("/page", cookie=cookie).text == "session"
    assert store.count("get") == 1


def test_path_prefixes_match_whole_segments() -> None:
    from .harness import SpyStore

    def handler(req: Req) -> None:
        req.end("none" if req.session is None else "session")

    app = middleware_for("asgi", handler, secret=SECRET, store=SpyStore(), skip=["/static"])
    client = Client(app, "asgi")
    assert client.get("/static").text == "none"
    assert client.get("/staticfiles").text == "session"


def test_skip_rejects_what_it_cannot_use() -> None:
    with pytest.raises(TypeError, match="skip"):
        SessionMiddleware(lambda *a: None, secret=SECRET, skip="/static")
    with pytest.raises(TypeError, match="skip"):
        SessionMiddleware(lambda *a: None, secret=SECRET, skip=["static"])


@pytest.mark.parametrize("transport", ["asgi", "wsgi"])
@pytest.mark.parametrize("path", ["/write", "/read"])
def test_a_finished_request_leaves_no_cycle_for_the_garbage_collector(
    transport: str, path: str
) -> None:
    """Under load the cyclic collector runs every few hundred allocations; a request whose
    scope, session and flow point at each other leaves garbage only it can free."""
    import gc

    def handler(req: Req) -> None:
        if req.path == "/write":
            req.session["n"] = req.session.get("n", 0) + 1
        req.end("ok")

    client = Client(
        middleware_for(transport, handler, secret=SECRET, cookie={"max_age": 60}), transport
    )
    cookie = client.get("/write").cookie()
    for _ in range(5):
        client.get(path, cookie=cookie)
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(50):
            client.get(path, cookie=cookie)
        gc.collect()
        ours = [found for found in gc.garbage if isinstance(found, (Flow, SessionBase))]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
        client.close()
    assert not ours, f"{len(ours)} flows and sessions in reference cycles after 50 requests"


def test_the_implicit_memory_store_is_announced_once(caplog: Any) -> None:
    """Several workers each with its own MemoryStore log users out at random, silently: the
    implicit default says so at start-up; an explicit one is a choice and says nothing."""
    from sessionware import MemoryStore, SessionMiddleware, WSGISessionMiddleware

    SessionMiddleware(_noop_asgi, secret=LONG_SECRET)
    WSGISessionMiddleware(_noop_wsgi, secret=LONG_SECRET)
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 2
    assert all("MemoryStore" in r.getMessage() for r in warned)
    assert all("store=RedisStore" in r.getMessage() for r in warned)
    caplog.clear()
    SessionMiddleware(_noop_asgi, secret=LONG_SECRET, store=MemoryStore())
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def _noop_asgi(scope: Any, receive: Any, send: Any) -> None:
    pass


def _noop_wsgi(environ: Any, start_response: Any) -> list[bytes]:
    return []


LONG_SECRET = "a-secret-of-at-least-32-bytes!!!"

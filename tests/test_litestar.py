"""Litestar 2: request.session, set_session() and clear_session() as Litestar documents them,
and one store shared by the middleware instances Litestar builds per route handler."""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Request, get, post
from litestar.testing import TestClient

from sessionware import MemoryStore, Session
from sessionware.integrations.litestar import SessionwareConfig

from .harness import SECRET


@post("/login")
async def login(request: Request[Any, Any, Any]) -> str:
    session = request.session
    assert isinstance(session, Session)
    await session.regenerate()
    session["user"] = "ann"
    return session.id


@get("/me")
async def me(request: Request[Any, Any, Any]) -> str:
    return str(request.session.get("user"))


@post("/replace")
async def replace(request: Request[Any, Any, Any]) -> str:
    request.set_session({"user": "bob", "role": "admin"})
    return "ok"


@post("/logout")
async def logout(request: Request[Any, Any, Any]) -> str:
    request.clear_session()
    return "bye"


def make(store: MemoryStore | None = None) -> tuple[Litestar, SessionwareConfig]:
    config = SessionwareConfig(secret=SECRET, store=store, cookie={"max_age": 600})
    app = Litestar(route_handlers=[login, me, replace, logout], middleware=[config.middleware])
    return app, config


def test_a_session_set_on_one_route_is_there_on_another_with_the_default_store() -> None:
    app, config = make()
    with TestClient(app) as client:
        sid = client.post("/login").text
        assert client.get("/me").text == "ann"
    assert isinstance(config.store, MemoryStore)
    assert config.store.ids() == [sid]


def test_set_session_replaces_the_data() -> None:
    store = MemoryStore()
    app, _ = make(store)
    with TestClient(app) as client:
        sid = client.post("/login").text
        client.post("/replace")
        assert client.get("/me").text == "bob"
    assert store.get(sid)["role"] == "admin"
    assert "cookie" in store.get(sid)


def test_clear_session_logs_out() -> None:
    store = MemoryStore()
    app, _ = make(store)
    with TestClient(app) as client:
        client.post("/login")
        response = client.post("/logout")
        assert "connect.sid=;" in response.headers["set-cookie"]
        assert store.ids() == []
        assert client.get("/me").text == "None"


def test_the_generic_asgi_middleware_understands_clear_and_set_session() -> None:
    """``DefineMiddleware(SessionMiddleware, ...)``, the README's way for any ASGI app:
    ``clear_session()`` empties the session (the user is logged out), ``set_session()``
    replaces its data, and anything else put there fails the request naming it."""
    from litestar.middleware import DefineMiddleware

    from sessionware import SessionMiddleware

    @post("/odd")
    async def odd(request: Request[Any, Any, Any]) -> str:
        request.scope["session"] = 42
        return "odd"

    store = MemoryStore()
    middleware = DefineMiddleware(SessionMiddleware, secret=SECRET, store=store)
    app = Litestar(route_handlers=[login, me, replace, logout, odd], middleware=[middleware])
    with TestClient(app) as client:
        sid = client.post("/login").text
        assert client.get("/me").text == "ann"
        client.post("/logout")
        assert client.get("/me").text == "None"
        assert store.get(sid) is not None and "user" not in store.get(sid)
        client.post("/replace")
        assert client.get("/me").text == "bob"
        assert client.post("/odd").status_code == 500

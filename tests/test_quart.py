"""Quart: quart.session is a sessionware session (async and sync views, login, logout)."""

from __future__ import annotations

import asyncio
from typing import Any

import quart
from quart import Quart

from sessionware import MemoryStore
from sessionware.integrations.quart import QuartSession, init_app, session

from .harness import SECRET


def make_app(store: MemoryStore, **options: Any) -> Quart:
    app = Quart(__name__)
    app.secret_key = SECRET
    init_app(app, store=store, **options)

    @app.post("/login")
    async def login() -> str:
        old = session.id
        await session.regenerate()
        session["user"] = "ann"
        return f"{old} {session.id}"

    @app.get("/me")
    async def me() -> str:
        current = quart.session._get_current_object()  # type: ignore[attr-defined]
        assert isinstance(current, QuartSession)
        return str(session.get("user"))

    @app.post("/logout")
    async def logout() -> str:
        await session.destroy()
        return "bye"

    @app.post("/sync-login")
    def sync_login() -> str:
        session.regenerate(keep=True)
        session["user"] = "bob"
        return session.id

    @app.post("/boom")
    async def boom() -> str:
        session["half"] = "done"
        raise RuntimeError("view failed")

    return app


def test_login_me_logout() -> None:
    store = MemoryStore()

    async def scenario() -> None:
        client = make_app(store).test_client()
        old, new = (await (await client.post("/login")).get_data(as_text=True)).split()
        assert old != new
        assert store.ids() == [new]
        assert await (await client.get("/me")).get_data(as_text=True) == "ann"
        logout = await client.post("/logout")
        assert (
            "connect.sid=;" in logout.headers["Set-Cookie"]
            or "session=;" in logout.headers["Set-Cookie"]
        )
        assert store.ids() == []
        assert await (await client.get("/me")).get_data(as_text=True) == "None"

    asyncio.run(scenario())


def test_a_sync_view_calls_lifecycle_methods_plainly() -> None:
    store = MemoryStore()

    async def scenario() -> None:
        client = make_app(store).test_client()
        await client.get("/me")
        sid = await (await client.post("/sync-login")).get_data(as_text=True)
        assert store.ids() == [sid]
        assert store.get(sid)["user"] == "bob"

    asyncio.run(scenario())


def test_a_view_that_raises_saves_nothing() -> None:
    store = MemoryStore()

    async def scenario() -> None:
        response = await make_app(store).test_client().post("/boom")
        assert response.status_code == 500
        assert "Set-Cookie" not in response.headers
        assert store.length() == 0

    asyncio.run(scenario())


def test_a_store_that_is_down_gives_503_when_asked() -> None:
    store = MemoryStore()

    async def scenario() -> None:
        client = make_app(store, store_unavailable="error").test_client()
        store.emit("disconnect")
        assert (await client.get("/me")).status_code == 503

    asyncio.run(scenario())

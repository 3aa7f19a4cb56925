"""FastAPI: request.session works unchanged, and the session is a typed dependency."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, WebSocket

from sessionware import MemoryStore, SessionMiddleware
from sessionware.integrations.fastapi import OptionalSessionDep, SessionDep

from .harness import SECRET


def build(store: MemoryStore) -> FastAPI:
    app = FastAPI()

    @app.post("/login")
    async def login(session: SessionDep) -> dict[str, Any]:
        await session.regenerate()
        session["user"] = "ann"
        return {"id": session.id}

    @app.get("/me")
    async def me(request: Request) -> dict[str, Any]:
        return {"user": request.session.get("user")}

    @app.get("/maybe")
    async def maybe(session: OptionalSessionDep) -> dict[str, Any]:
        return {"has_session": session is not None}

    app.add_middleware(SessionMiddleware, secret=SECRET, store=store, cookie={"max_age": 60})
    return app


def run(app: FastAPI, calls: list[tuple[str, str]]) -> list[httpx.Response]:
    async def scenario() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return [await client.request(method, path) for method, path in calls]

    return asyncio.run(scenario())


def test_session_dependency_and_request_session() -> None:
    store = MemoryStore()
    login, me = run(build(store), [("POST", "/login"), ("GET", "/me")])
    assert me.json() == {"user": "ann"}
    assert store.ids() == [login.json()["id"]]


def test_without_a_session_the_dependency_answers_503() -> None:
    store = MemoryStore()
    app = build(store)
    (warm_up,) = run(app, [("GET", "/maybe")])
    assert warm_up.json() == {"has_session": True}
    store.emit("disconnect")
    login, maybe = run(app, [("POST", "/login"), ("GET", "/maybe")])
    assert login.status_code == 503
    assert maybe.json() == {"has_session": False}


def sync_app(store: MemoryStore) -> FastAPI:
    app = FastAPI()

    @app.post("/login")
    def login(session: SessionDep) -> dict[str, Any]:
        old = session.id
        session.regenerate()
        session["user"] = "ann"
        return {"old": old, "id": session.id}

    @app.post("/logout")
    def logout(session: SessionDep) -> dict[str, Any]:
        session.destroy()
        return {}

    @app.post("/counter")
    def counter(session: SessionDep) -> dict[str, Any]:
        session["n"] = session.get("n", 0) + 1
        session.save()
        session.reload()
        return {"n": session["n"]}

    @app.post("/forgot-await")
    async def forgot(session: SessionDep) -> dict[str, Any]:
        session.regenerate()  # type: ignore[unused-awaitable]
        return {}

    app.add_middleware(SessionMiddleware, secret=SECRET, store=store, cookie={"max_age": 60})
    return app


def test_lifecycle_calls_work_without_await_in_a_sync_endpoint() -> None:
    store = MemoryStore()

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=sync_app(store))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            first = await client.post("/counter")
            assert first.json() == {"n": 1}
            login = (await client.post("/login")).json()
            assert login["old"] != login["id"]
            assert store.ids() == [login["id"]], "the pre-login session was not destroyed"
            assert store.get(login["id"])["user"] == "ann"
            logout = await client.post("/logout")
            assert logout.headers["set-cookie"].startswith("connect.sid=;")
            assert store.ids() == []

    asyncio.run(scenario())


def test_a_lifecycle_call_never_awaited_fails_the_request_instead_of_being_skipped() -> None:
    store = MemoryStore()

    async def scenario() -> httpx.Response:
        transport = httpx.ASGITransport(app=sync_app(store))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            await client.post("/counter")
            return await client.post("/forgot-await")

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        response = asyncio.run(scenario())
    assert response.status_code == 500
    assert "set-cookie" not in response.headers


def test_session_dependencies_in_a_websocket_endpoint() -> None:
    from starlette.testclient import TestClient

    store = MemoryStore()
    app = build(store)

    @app.websocket("/ws")
    async def socket(websocket: WebSocket, session: SessionDep) -> None:
        await websocket.accept()
        session["seen"] = session.get("seen", 0) + 1
        await session.save()
        await websocket.send_json({"user": session.get("user"), "seen": session["seen"]})
        await websocket.close()

    with TestClient(app) as client:
        client.post("/login")
        with client.websocket_connect("/ws") as websocket:
            assert websocket.receive_json() == {"user": "ann", "seen": 1}
        with client.websocket_connect("/ws") as websocket:
            assert websocket.receive_json() == {"user": "ann", "seen": 2}


def test_a_missing_middleware_is_named_not_taken_for_an_outage() -> None:
    from starlette.testclient import TestClient

    app = FastAPI()

    @app.get("/")
    async def home(session: SessionDep) -> dict[str, Any]:
        return {}

    with TestClient(app) as client, pytest.raises(RuntimeError, match="add_middleware"):
        client.get("/")

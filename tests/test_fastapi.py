"""FastAPI: request.session works unchanged, and the session is a typed dependency."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import FastAPI, Request

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

"""A real Starlette app: request.session, redirects after login, websockets, mounts."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket

from sessionware import MemoryStore, NoSession, Session, SessionMiddleware

from .harness import SECRET


async def login(request: Request) -> RedirectResponse:
    session = request.session
    assert isinstance(session, Session)
    await session.regenerate()
    session["user"] = "alice"
    return RedirectResponse("/me", status_code=303)


async def me(request: Request) -> PlainTextResponse:
    return PlainTextResponse(str(request.session.get("user")))


async def logout(request: Request) -> PlainTextResponse:
    await request.session.destroy()
    return PlainTextResponse("bye")


async def stream(request: Request) -> StreamingResponse:
    request.session["streamed"] = True

    async def chunks() -> Any:
        for part in (b"a", b"b", b"c"):
            yield part

    return StreamingResponse(chunks())


async def socket(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(str(websocket.session.get("user")))
    await websocket.close()


def build(store: MemoryStore) -> Starlette:
    app = Starlette(
        routes=[
            Route("/login", login, methods=["POST"]),
            Route("/me", me),
            Route("/logout", logout),
            Route("/stream", stream),
            WebSocketRoute("/ws", socket),
        ]
    )
    app.add_middleware(SessionMiddleware, secret=SECRET, store=store, cookie={"max_age": 60})
    return app


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_login_redirect_sees_the_saved_session() -> None:
    store = MemoryStore()

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=build(store))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            anonymous = await client.get("/me")
            assert anonymous.text == "None"
            response = await client.post("/login", follow_redirects=True)
            assert response.text == "alice"
            assert store.length() == 1
            assert (await client.get("/logout")).text == "bye"
            assert store.length() == 0
            assert (await client.get("/me")).text == "None"

    run(scenario())


def test_streaming_response_is_saved_before_its_last_chunk() -> None:
    store = MemoryStore()

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=build(store))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get("/stream")
            assert response.text == "abc"
            assert "connect.sid" in response.headers["set-cookie"]
            assert [data["streamed"] for data in store.all().values()] == [True]

    run(scenario())


def test_websocket_scope_gets_the_session() -> None:
    store = MemoryStore()
    app = build(store)
    sent: list[dict[str, Any]] = []

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            await client.post("/login")
            cookie = client.cookies.get("connect.sid")
        assert cookie
        messages = [{"type": "websocket.connect"}, {"type": "websocket.disconnect"}]

        async def receive() -> dict[str, Any]:
            return messages.pop(0)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "websocket",
            "path": "/ws",
            "raw_path": b"/ws",
            "root_path": "",
            "scheme": "ws",
            "query_string": b"",
            "headers": [(b"cookie", f"connect.sid={cookie}".encode())],
            "subprotocols": [],
        }
        await app(scope, receive, send)

    run(scenario())
    assert {"type": "websocket.send", "text": "alice"} in [
        {k: v for k, v in m.items() if k in ("type", "text")} for m in sent
    ]


@pytest.mark.parametrize(("path", "expected"), [("/admin/me", True), ("/other/me", False)])
def test_mounted_app_uses_the_full_path(path: str, expected: bool) -> None:
    async def handler(request: Request) -> PlainTextResponse:
        session = request.scope.get("session")
        if session is not None:
            session["x"] = 1
        return PlainTextResponse(str(session is not None))

    inner = Starlette(routes=[Route("/me", handler)])
    wrapped = SessionMiddleware(inner, secret=SECRET, cookie={"path": "/admin"})
    app = Starlette(routes=[Mount("/admin", app=wrapped), Mount("/other", app=wrapped)])

    async def scenario() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(path)

    response = run(scenario())
    assert response.text == str(expected)
    assert ("set-cookie" in response.headers) is expected


def test_an_app_error_outside_the_cookie_path_is_not_taken_for_a_session_error() -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("app bug")

    app = SessionMiddleware(broken, secret=SECRET, cookie={"path": "/admin"})
    scope = {"type": "http", "path": "/public", "headers": [], "scheme": "http"}
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    with pytest.raises(RuntimeError, match="app bug"):
        asyncio.run(app(scope, None, send))  # type: ignore[arg-type]
    assert sent == []


def _outage_app(store: Any) -> Starlette:
    async def public(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def login_down(request: Request) -> PlainTextResponse:
        await request.session.regenerate()
        return PlainTextResponse("in")

    app = Starlette(
        routes=[Route("/public", public), Route("/me", me), Route("/login", login_down)]
    )
    app.add_middleware(SessionMiddleware, secret=SECRET, store=store)
    return app


@pytest.mark.parametrize("kind", ["redis", "memory"])
def test_a_store_outage_is_a_503_where_the_session_is_used(kind: str) -> None:
    """``store_unavailable="pass"`` (the default): a request that never touches the session is
    served; one that does gets the failure policy's 503, and its error says the store is
    unavailable (Starlette's own said the middleware is not installed)."""
    from sessionware.errors import StoreUnavailable

    from .services import free_port

    if kind == "redis":  # a real client at a port where nothing listens
        from sessionware.stores.redis import RedisStore

        store: Any = RedisStore(url=f"redis://127.0.0.1:{free_port()}/0", timeout=1)
    else:  # the store's own "disconnect" event marks it down
        store = MemoryStore()
    app = _outage_app(store)
    signer = SessionMiddleware(app, secret=SECRET, store=MemoryStore())
    cookie = {"connect.sid": signer.engine.cookie_value("a" * 32)}

    async def scenario() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            client.cookies.update(cookie)
            public = await client.get("/public")  # the app's middleware is built now
            if kind == "memory":
                store.emit("disconnect")
            return [public, await client.get("/me"), await client.get("/login")]

    public, used, method = run(scenario())
    assert (public.status_code, public.text) == (200, "ok")
    assert (used.status_code, used.text) == (503, "Service Unavailable")
    assert (method.status_code, method.text) == (503, "Service Unavailable")

    with pytest.raises(StoreUnavailable, match="store is unavailable"):
        NoSession("the session store is unavailable", unavailable=True).get("user")


def test_session_of_gives_the_session_or_says_why_there_is_none() -> None:
    from sessionware import StoreUnavailable, session_of
    from sessionware.asgi import RUNTIME_KEY
    from sessionware.errors import SessionError

    with pytest.raises(RuntimeError, match="add_middleware"):
        session_of({"type": "http"})
    with pytest.raises(StoreUnavailable, match="store is unavailable"):
        session_of(
            {
                RUNTIME_KEY: object(),
                "session": NoSession("the store is unavailable", unavailable=True),
            }
        )
    with pytest.raises(SessionError, match="skip option"):
        session_of({RUNTIME_KEY: object()})


def test_an_unawaited_lifecycle_call_is_named_as_the_app_wrote_it() -> None:
    """Python's own "never awaited" warning names the call, not an internal coroutine (a
    compiled build has no such warning; the 500's error names it either way)."""
    import gc
    import warnings

    async def forgot(request: Request) -> PlainTextResponse:
        request.session.regenerate()  # no await
        return PlainTextResponse("x")

    app = Starlette(routes=[Route("/", forgot)])
    app.add_middleware(SessionMiddleware, secret=SECRET, store=MemoryStore())
    from starlette.testclient import TestClient

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert TestClient(app, raise_server_exceptions=False).get("/").status_code == 500
        gc.collect()
    texts = [str(warning.message) for warning in caught if "never awaited" in str(warning.message)]
    assert all("session.regenerate()" in text for text in texts), texts
    assert not any("_run" in text for text in texts), texts

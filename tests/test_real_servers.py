"""The middlewares behind real HTTP servers (uvicorn for ASGI, wsgiref for WSGI) on loopback."""

from __future__ import annotations

import http.cookiejar
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import flask
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, StreamingResponse
from starlette.routing import Route

from sessionware import MemoryStore, SessionMiddleware
from sessionware.integrations.flask import init_app

from .harness import SECRET
from .services import free_port


def browser() -> urllib.request.OpenerDirector:
    """An HTTP client with a cookie jar, following redirects, like a browser."""
    return urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )


def fetch(client: urllib.request.OpenerDirector, url: str, data: bytes | None = None) -> str:
    with client.open(url, data=data, timeout=10) as response:
        return response.read().decode()


def starlette_app(store: MemoryStore) -> Starlette:
    async def login(request: Request) -> RedirectResponse:
        await request.session.regenerate()
        request.session["user"] = "ann"
        return RedirectResponse("/me", status_code=303)

    async def me(request: Request) -> PlainTextResponse:
        request.session["hits"] = request.session.get("hits", 0) + 1
        return PlainTextResponse(f"{request.session.get('user')} {request.session['hits']}")

    async def stream(request: Request) -> StreamingResponse:
        request.session["streamed"] = True

        async def chunks() -> Any:
            for part in (b"one ", b"two ", b"three"):
                yield part

        return StreamingResponse(chunks(), media_type="text/plain")

    app = Starlette(
        routes=[
            Route("/login", login, methods=["POST"]),
            Route("/me", me),
            Route("/stream", stream),
        ]
    )
    app.add_middleware(SessionMiddleware, secret=SECRET, store=store, cookie={"max_age": 60})
    return app


@pytest.fixture
def uvicorn_url() -> Iterator[tuple[str, MemoryStore]]:
    store = MemoryStore()
    port = free_port()
    config = uvicorn.Config(
        starlette_app(store), host="127.0.0.1", port=port, log_level="error", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", store
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_uvicorn_login_redirect_and_streaming(uvicorn_url: tuple[str, MemoryStore]) -> None:
    url, store = uvicorn_url
    client = browser()
    assert fetch(client, url + "/me") == "None 1"
    assert fetch(client, url + "/login", data=b"") == "ann 1"
    assert fetch(client, url + "/me") == "ann 2"
    assert fetch(client, url + "/stream") == "one two three"
    (data,) = store.all().values()
    assert data["streamed"] is True
    assert data["hits"] == 2


def test_uvicorn_serves_parallel_clients(uvicorn_url: tuple[str, MemoryStore]) -> None:
    url, store = uvicorn_url
    results: list[str] = []
    errors: list[BaseException] = []

    def visitor() -> None:
        client = browser()
        try:
            for _ in range(10):
                text = fetch(client, url + "/me")
            results.append(text)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=visitor) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert results == ["None 10"] * 8
    assert store.length() == 8


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_wsgiref_with_flask() -> None:
    app = flask.Flask(__name__)
    app.secret_key = SECRET
    store = MemoryStore()
    init_app(app, store=store)

    @app.post("/login")
    def login() -> Any:
        flask.session.regenerate()
        flask.session["user"] = "bob"
        return flask.redirect("/me", code=303)

    @app.get("/me")
    def me() -> str:
        flask.session["hits"] = flask.session.get("hits", 0) + 1
        return f"{flask.session.get('user')} {flask.session['hits']}"

    server = make_server("127.0.0.1", free_port(), app, handler_class=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        client = browser()
        assert fetch(client, url + "/me") == "None 1"
        assert fetch(client, url + "/login", data=b"") == "bob 1"
        assert fetch(client, url + "/me") == "bob 2"
        assert store.length() == 1
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)

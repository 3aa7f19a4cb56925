"""One way to write a session scenario, run over both adapters.

A scenario handler is plain synchronous code that receives a ``Req``; under ASGI it runs in a
worker thread and its lifecycle calls (``req.save()``...) are awaited on the app's event loop,
under WSGI it runs as is. The client calls the app in-process and returns every header.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import unquote

from sessionware import MemoryStore, NoSession, SessionMiddleware, WSGISessionMiddleware
from sessionware.wsgi import SESSION_KEY

SECRET = "keyboard cat"
TRANSPORTS = ("asgi", "wsgi")


class Req:
    """What a scenario handler sees: the request, its session and a response to fill."""

    def __init__(self, transport: str, env: Any, loop: asyncio.AbstractEventLoop | None):
        self.transport = transport
        self.env = env
        self.loop = loop
        if transport == "asgi":
            self.path = env["path"]
            self.method = env["method"]
            self.headers = {k.decode(): v.decode("latin-1") for k, v in env["headers"]}
        else:
            self.path = env.get("PATH_INFO", "/")
            self.method = env["REQUEST_METHOD"]
            self.headers = {
                k[5:].lower().replace("_", "-"): v for k, v in env.items() if k.startswith("HTTP_")
            }
        self.status = 200
        self.response_headers: list[tuple[str, str]] = []
        self.chunks: list[bytes] = []

    @property
    def session(self) -> Any:
        """The request's session; ``None`` when it has none (express: ``req.session`` unset;
        under ASGI a ``NoSession`` that says why stands there for Starlette's sake)."""
        found = self.env.get("session" if self.transport == "asgi" else SESSION_KEY)
        return None if isinstance(found, NoSession) else found

    @session.setter
    def session(self, value: Any) -> None:
        self.env["session" if self.transport == "asgi" else SESSION_KEY] = value

    def has_session(self) -> bool:
        return self.session is not None

    def _run(self, method: str, *args: Any, **kwargs: Any) -> None:
        bound = getattr(self.session, method)
        if self.transport == "asgi":
            assert self.loop is not None

            async def awaited() -> None:
                await bound(*args, **kwargs)

            asyncio.run_coroutine_threadsafe(awaited(), self.loop).result()
        else:
            bound(*args, **kwargs)

    def save(self) -> None:
        self._run("save")

    def reload(self) -> None:
        self._run("reload")

    def destroy(self) -> None:
        self._run("destroy")

    def regenerate(self, *, keep: bool = False) -> None:
        self._run("regenerate", keep=keep)

    def login(self, user: str | int) -> None:
        self._run("login", user)

    def logout(self) -> None:
        self._run("logout")

    def header(self, name: str, value: str) -> None:
        self.response_headers.append((name, value))

    def write(self, data: str | bytes) -> None:
        self.chunks.append(data.encode() if isinstance(data, str) else data)

    def end(self, data: str | bytes = b"") -> None:
        self.write(data)


Handler = Callable[[Req], None]


def default_handler(req: Req) -> None:
    req.end()


def account_handler(req: Req) -> None:
    """A small account app: ``/login`` (a new id, user ann), ``/logout``, ``/others`` (sign out
    the other devices: WSGI only, a plain call) and ``/write`` (a counter); every answer is the
    session's data as JSON."""
    if req.path == "/login":
        req.regenerate()
        req.session["user"] = "ann"
    elif req.path == "/logout":
        req.destroy()
    elif req.path == "/others":
        req.session.destroy_other_sessions()
    elif req.path == "/write":
        req.session["n"] = req.session.get("n", 0) + 1
    session = req.session
    req.end(json.dumps({} if session is None or session.destroyed else dict(session)))


def asgi_app(handler: Handler) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        req = Req("asgi", scope, asyncio.get_running_loop())
        await asyncio.to_thread(handler, req)
        headers = [(k.lower().encode(), v.encode("latin-1")) for k, v in req.response_headers]
        await send({"type": "http.response.start", "status": req.status, "headers": headers})
        chunks = req.chunks or [b""]
        for index, chunk in enumerate(chunks):
            more = index < len(chunks) - 1
            await send({"type": "http.response.body", "body": chunk, "more_body": more})

    return app


def wsgi_app(handler: Handler) -> Any:
    def app(environ: Any, start_response: Any) -> Any:
        req = Req("wsgi", environ, None)
        handler(req)
        start_response(f"{req.status} Status", req.response_headers)
        return list(req.chunks)

    return app


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()

    def header(self, name: str) -> str | None:
        values = self.all_headers(name)
        return values[0] if values else None

    def all_headers(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def set_cookie(self) -> str | None:
        """The first Set-Cookie header, as express's tests read it."""
        return self.header("set-cookie")

    def cookie(self) -> str:
        """``name=value`` of the first Set-Cookie, to send back as a Cookie header."""
        assert self.set_cookie, "expected a Set-Cookie header"
        return self.set_cookie.split(";", 1)[0]

    def cookie_attributes(self) -> dict[str, str]:
        assert self.set_cookie
        parts = [p.strip() for p in self.set_cookie.split(";")[1:]]
        return {p.split("=", 1)[0].lower(): [*p.split("=", 1), ""][1] for p in parts}

    def sid(self) -> str:
        value = unquote(self.cookie().split("=", 1)[1])
        return value[2 : value.rindex(".")]


@dataclass
class Client:
    """Calls an app in-process, over ASGI or WSGI."""

    app: Any
    transport: str
    _loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop

    def request(
        self,
        path: str = "/",
        *,
        method: str = "GET",
        cookie: str | None = None,
        headers: dict[str, str] | None = None,
        scheme: str = "http",
        root_path: str = "",
    ) -> Response:
        all_headers = dict(headers or {})
        if cookie is not None:
            all_headers["cookie"] = cookie
        if self.transport == "asgi":
            return self.loop.run_until_complete(
                self._asgi(method, path, all_headers, scheme, root_path)
            )
        return self._wsgi(method, path, all_headers, scheme, root_path)

    get = request

    async def _asgi(
        self, method: str, path: str, headers: dict[str, str], scheme: str, root_path: str
    ) -> Response:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": scheme,
            "path": root_path + path,
            "raw_path": (root_path + path).encode(),
            "root_path": root_path,
            "query_string": b"",
            "headers": [(k.lower().encode(), v.encode("latin-1")) for k, v in headers.items()],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        messages: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)

        await self.app(scope, receive, send)
        start = next(m for m in messages if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        decoded = [(k.decode(), v.decode("latin-1")) for k, v in start.get("headers", [])]
        return Response(start["status"], decoded, body)

    def _wsgi(
        self, method: str, path: str, headers: dict[str, str], scheme: str, root_path: str
    ) -> Response:
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": root_path,
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "testserver",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": scheme,
            "wsgi.input": None,
            "wsgi.errors": None,
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in headers.items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value
        started: dict[str, Any] = {}
        written: list[bytes] = []

        def start_response(status: str, response_headers: Any, exc_info: Any = None) -> Any:
            started["status"] = int(status.split(maxsplit=1)[0])
            started["headers"] = list(response_headers)
            return written.append

        iterable = self.app(environ, start_response)
        try:
            for chunk in iterable:
                assert started, "a body chunk was yielded before start_response"
                written.append(chunk)
        finally:
            close = getattr(iterable, "close", None)
            if close:
                close()
        return Response(started["status"], started["headers"], b"".join(written))

    def close(self) -> None:
        """Close the loop as ``asyncio.run`` does: what is still pending is cancelled and
        finished first, so nothing of this test is destroyed mid-flight during a later one."""
        if self._loop is None:
            return
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        if pending:
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.close()


def express_options(**options: Any) -> dict[str, Any]:
    """express's own test harness defaults: secret 'keyboard cat', cookie maxAge 60 s, and
    express 1.x's resave/saveUninitialized defaults (true), unless a test says otherwise."""
    options.setdefault("secret", SECRET)
    options.setdefault("cookie", {"max_age": 60})
    options.setdefault("resave", True)
    options.setdefault("save_uninitialized", True)
    return options


def wrap(transport: str, asgi: Any, wsgi: Any, /, **options: Any) -> Any:
    """The session middleware of ``transport`` around that transport's app."""
    if transport == "asgi":
        return SessionMiddleware(asgi, **options)
    return WSGISessionMiddleware(wsgi, **options)


def middleware_for(transport: str, handler: Handler, /, **options: Any) -> Any:
    """``transport`` (positional) is the adapter; a ``transport=`` keyword is the option."""
    return wrap(transport, asgi_app(handler), wsgi_app(handler), **options)


class SpyStore(MemoryStore):
    """A MemoryStore that records which methods were called, to assert store traffic."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls: list[str] = []

    def count(self, method: str) -> int:
        return self.calls.count(method)

    def reset(self) -> None:
        self.calls.clear()

    def get(self, sid: str) -> Any:
        self.calls.append("get")
        return super().get(sid)

    def set(self, sid: str, data: Any) -> None:
        self.calls.append("set")
        super().set(sid, data)

    def touch(self, sid: str, data: Any) -> None:
        self.calls.append("touch")
        super().touch(sid, data)

    def destroy(self, sid: str) -> None:
        self.calls.append("destroy")
        super().destroy(sid)


def parse_set_cookie(header: str) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    jar.load(header)
    return jar

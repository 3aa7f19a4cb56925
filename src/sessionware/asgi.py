"""The ASGI adapter: drives the engine over scope / receive / send.

The session is loaded before the app runs and put at ``scope["session"]``. ``http.response.start``
is held back until the app sends its final body chunk; then the store call (save, touch or
destroy) runs, and only when it has succeeded does the response go out, with its Set-Cookie. A
redirect therefore never reaches the browser before the session it depends on is stored, and a
failed save turns into a 500 (503 if the store is down) instead of a silent loss. A streamed
response gets its cookie with the first chunk and its store call before the last one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from ._engine import Engine, Flow, Outcome
from ._native import mypyc_attr
from ._records import ReadOld, StoreCall
from ._runtime import NOT_HERE, STORE_DOWN, BaseSessionMiddleware, Failure, NoSession
from ._wire import adds_cache_control, vary_missing
from .errors import SessionError, StoreUnavailable
from .session import Session, SessionBase

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_FINAL_TYPES = ("http.response.body", "http.response.pathsend")
RUNTIME_KEY = "sessionware"
"""Set in every scope the middleware handles, session or not: integrations tell a missing
middleware from a request that has no session."""


@mypyc_attr(allow_interpreted_subclasses=True)
class SessionMiddleware(BaseSessionMiddleware[ASGIApp]):
    """express-session for any ASGI app: ``app.add_middleware(SessionMiddleware, secret=...)``."""

    session_class = Session

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket") or (
            scope.get("session") is not None and not isinstance(scope["session"], NoSession)
        ):
            await self.app(scope, receive, send)
            return
        runtime = self.runtime
        scope[RUNTIME_KEY] = runtime
        engine = self.engine
        if not runtime.store_ready and not engine.lazy:
            await self._without_session(runtime.when_down(), scope, receive, send, STORE_DOWN)
            return
        driver = self.driver
        try:
            path, cookie, scheme, forwarded_proto = scope_facts(scope)
            flow = engine.begin(scope, path, cookie, scheme, forwarded_proto)
            if flow is not None and engine.lazy:
                session = flow.pending()
            elif flow is not None:
                load = flow.load_call()
                if load is None:
                    data = None
                elif driver.inline and not isinstance(load, ReadOld):
                    data = driver.call(load)
                else:
                    data = await driver.acall(load)
                session = flow.loaded(data)
        except Exception as exc:
            await self._without_session(runtime.load_failed(exc), scope, receive, send, STORE_DOWN)
            return
        if flow is None:
            await self.app(scope, receive, send)
            return
        scope["session"] = session
        session._state.loop = asyncio.get_running_loop()
        if kind == "websocket":
            await self.app(scope, receive, send)
            return
        await self._serve(scope, receive, _SendWithSession(self, scope, flow, send))

    async def _serve(
        self, scope: Scope, receive: Receive, send: _Tracked | _SendWithSession
    ) -> None:
        """Run the app; a store outage it ran into (a session method, or the session of a
        request the store could not serve) is the failure policy's 503 while nothing has been
        sent, not the framework's 500."""
        try:
            await self.app(scope, receive, send)
        except StoreUnavailable as exc:
            if send.started:
                raise
            await _send_failure(scope, send.send, self.runtime.app_ran_into(exc))

    def _perform(self, call: StoreCall | None) -> Awaitable[Any] | None:
        """Start a store call: a sync store that does no I/O is called right here (no
        coroutine to build and await), any other store's call is returned to be awaited."""
        if call is None:
            return None
        if self.driver.inline:
            self.driver.call(call)
            return None
        return self.driver.acall(call)

    def current_session(self, scope: Scope, session: object) -> object:
        """What the app left as the request's session (``session`` is the one it was given):
        that session, ``None`` (unset: the ``unset`` option decides), or new data (a mapping,
        or Litestar's empty marker from ``clear_session()``: no data) put in the session. Any
        other value is an error that names it, never ignored."""
        value = scope.get("session")
        if value is session or value is None or not isinstance(session, SessionBase):
            return value
        if _is_litestar_empty(value):
            value = {}
        if not isinstance(value, Mapping):
            raise TypeError(
                f"scope['session'] holds {type(value).__name__}: the session middleware takes "
                "the request's session, None (unset) or a mapping (the session's new data)"
            )
        session.clear()
        session.update(value)
        scope["session"] = session
        return session

    async def _without_session(
        self, failure: Failure | None, scope: Scope, receive: Receive, send: Send, why: str
    ) -> None:
        if failure is not None:
            await _send_failure(scope, send, failure)
            return
        scope["session"] = NoSession(why, unavailable=True)
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        await self._serve(scope, receive, _Tracked(send))


class _Tracked:
    """A ``send`` that notes whether the response has started."""

    __slots__ = ("send", "started")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        self.started = True
        await self.send(message)


MISSING_MIDDLEWARE = (
    "no sessionware SessionMiddleware ran for this request: add "
    "app.add_middleware(SessionMiddleware, secret=...) (from sessionware import SessionMiddleware)"
)


def scope_session(scope: Scope) -> Session | None:
    """The request's session, or ``None`` when it has none (store down, skipped, outside the
    cookie's path); a ``RuntimeError`` when the middleware never saw the request."""
    if RUNTIME_KEY not in scope:
        raise RuntimeError(MISSING_MIDDLEWARE)
    session = scope.get("session")
    return session if isinstance(session, Session) else None


async def aload_session_of(connection: Any) -> Session:
    """``session_of(connection)``, loaded from the store if it is lazy: what a framework's
    session dependency hands a handler."""
    session = session_of(connection)
    await session.load()
    return session


def session_of(connection: Any) -> Session:
    """The session of a Starlette / FastAPI request or websocket (or an ASGI scope), typed:
    Starlette types ``request.session`` as a plain dict, so typed code cannot call
    ``regenerate()`` on it. A request without a session raises why (``StoreUnavailable`` when
    the store is down)."""
    scope = getattr(connection, "scope", connection)
    session = scope_session(scope)
    if session is None:
        found = scope.get("session")
        if isinstance(found, NoSession):
            found._refuse()
        raise SessionError(NOT_HERE)
    return session


def _is_litestar_empty(value: object) -> bool:
    """Litestar's ``Empty`` sentinel (a class in Litestar 2.0, an enum member later),
    recognised without importing Litestar."""
    kind = value if isinstance(value, type) else type(value)
    return kind.__module__ == "litestar.types.empty"


class _SendWithSession:
    """The ``send`` the app sees: holds the response start until the store call is done."""

    __slots__ = ("flow", "middleware", "scope", "send", "start", "started", "streaming")

    def __init__(self, middleware: SessionMiddleware, scope: Scope, flow: Flow, send: Send):
        self.middleware = middleware
        self.scope = scope
        self.flow = flow
        self.send = send
        self.start: Message | None = None
        self.started = False
        """Whether anything went to the server (until then a failure can still answer)."""
        self.streaming = False

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.start = message
            return
        start = self.start
        if start is None or not _is_final(kind, message):
            await self._stream(kind, message)
            return
        self.start = None
        middleware, flow = self.middleware, self.flow
        try:
            outcome = flow.finish(middleware.current_session(self.scope, flow.session))
            pending = middleware._perform(outcome.call)
            if pending is not None:
                await pending
        except Exception as exc:
            failure = middleware.runtime.save_failed(exc)
            assert failure is not None
            self.started = True
            await _send_failure(self.scope, self.send, failure)
            return
        self.started = True
        await self.send(_with_session_headers(start, outcome, flow.engine))
        await self.send(message)

    async def _stream(self, kind: str, message: Message) -> None:
        """Any message but a whole response's body: a streamed response gets its cookie with
        its first chunk and its store call before its last one."""
        self.started = True
        if kind not in _FINAL_TYPES:
            await self.send(message)
            return
        middleware, flow = self.middleware, self.flow
        start = self.start
        if start is not None:
            self.start = None
            outcome = flow.finish(middleware.current_session(self.scope, flow.session), call=False)
            self.streaming = True
            await self.send(_with_session_headers(start, outcome, flow.engine))
        elif self.streaming and _is_final(kind, message):
            self.streaming = False
            outcome = flow.finish(
                middleware.current_session(self.scope, flow.session), header=False
            )
            try:
                pending = middleware._perform(outcome.call)
                if pending is not None:
                    await pending
            except Exception as exc:
                middleware.runtime.save_failed(exc, headers_sent=True)
        await self.send(message)


def _is_final(kind: str, message: Message) -> bool:
    return kind == "http.response.pathsend" or (
        kind == "http.response.body" and not message.get("more_body", False)
    )


def _with_session_headers(start: Message, outcome: Outcome, engine: Engine) -> Message:
    """The start message with what the session adds: Vary, Set-Cookie, the token's header,
    Cache-Control, Clear-Site-Data (ASGI header names are lowercase)."""
    set_cookie, vary = outcome.set_cookie, outcome.vary
    if not vary and set_cookie is None:
        return start
    headers: list[Any] = list(start.get("headers", ()))  # pairs: tuples, or lists (ASGI allows)
    if vary:
        _add_vary(headers, engine)
    if set_cookie is not None:
        headers.append((b"set-cookie", set_cookie.encode("latin-1")))
    for header_name, header_value in outcome.headers:
        headers.append((header_name.lower().encode("latin-1"), header_value.encode("latin-1")))
    cache_header = engine.cache_header
    if cache_header is not None and outcome.private:
        app_set_one = False
        for header in headers:
            key = header[0]
            if isinstance(key, bytes) and len(key) == 13 and key == b"cache-control":
                app_set_one = True
                break
        if adds_cache_control(True, app_set_one):
            headers.append(cache_header)
    start["headers"] = headers
    return start


def _add_vary(headers: list[Any], engine: Engine) -> None:
    """``Vary`` on the request headers the session came from, unless the app named them."""
    values = [value.decode("latin-1") for name, value in headers if name == b"vary"]
    if not values:
        headers.append(engine.vary_header)
        return
    missing = vary_missing(values, engine.vary_on)
    if missing is not None:
        headers.append((b"vary", missing.encode("latin-1")))


def scope_facts(scope: Scope) -> tuple[str, bytes | None, str, str | None]:
    """What the engine reads of an ASGI request: the path the browser asked for (mount prefix
    included: the cookie path is the browser's), the Cookie header as sent (several joined, as
    HTTP/2 may split it; the engine decodes it only when it has not seen it before), the scheme,
    and X-Forwarded-Proto."""
    cookie: bytes | None = None
    forwarded_proto: str | None = None
    for name, value in scope["headers"]:
        if name == b"cookie":
            cookie = value if cookie is None else cookie + b"; " + value
        elif name == b"x-forwarded-proto" and forwarded_proto is None:
            forwarded_proto = value.decode("latin-1")
    path: str = scope.get("path") or "/"
    root: str = scope.get("root_path") or ""
    if root and not path.startswith(root):
        path = root + path
    return path, cookie, scope.get("scheme", "http"), forwarded_proto


async def _send_failure(scope: Scope, send: Send, failure: Failure) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": failure.websocket_close_code})
        return
    await send(
        {
            "type": "http.response.start",
            "status": failure.status,
            "headers": [(k.lower().encode(), v.encode()) for k, v in failure.headers],
        }
    )
    await send({"type": "http.response.body", "body": failure.body})

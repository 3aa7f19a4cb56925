"""The WSGI adapter: drives the engine over environ / start_response / the response iterable.

As under ASGI, the app's ``start_response`` is held back and the first chunk of the body with it;
when the iterable is exhausted the store call runs, and only then do the headers (with the
Set-Cookie) and the last chunk reach the server. A failed store call becomes a 500 (503 when the
store is down) while nothing has been sent yet. A streamed body (two chunks or more, or the
legacy ``write()``) gets its cookie with the first chunk and its store call before the last one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Iterable, Iterator
from types import TracebackType
from typing import Any

from .engine import Engine, Flow
from .errors import StoreUnavailable
from .middleware import BaseSessionMiddleware
from .session import SyncSession

ExcInfo = tuple[type[BaseException], BaseException, TracebackType]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

SESSION_KEY = "sessionware.session"
logger = logging.getLogger("sessionware")

_ERRORS = {
    500: ("500 Internal Server Error", b"Internal Server Error"),
    503: ("503 Service Unavailable", b"Service Unavailable"),
}


class WSGISessionMiddleware(BaseSessionMiddleware[WSGIApp]):
    """express-session for any WSGI app; the session is ``environ["sessionware.session"]``."""

    session_class = SyncSession

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get(SESSION_KEY) is not None:
            return self.app(environ, start_response)
        if not self.store_ready:
            return self._store_down(environ, start_response)
        try:
            flow = open_flow(self.engine, environ)
        except StoreUnavailable:
            logger.warning("session store unavailable while loading a session", exc_info=True)
            return self._store_down(environ, start_response)
        except Exception:
            logger.exception("could not load the session")
            return _error(start_response, 500)
        if flow is None or flow.session is None:
            return self.app(environ, start_response)
        environ[SESSION_KEY] = flow.session
        return _Response(self, environ, flow, start_response)

    def _store_down(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        if self.options.store_unavailable == "error":
            return _error(start_response, 503)
        return self.app(environ, start_response)


def open_flow(engine: Engine, environ: dict[str, Any]) -> Flow | None:
    """Read the request's session from a WSGI environ (``None`` outside the cookie path); the
    WSGI middleware and the Flask integration both start here."""
    flow = engine.begin(
        environ,
        (environ.get("SCRIPT_NAME") or "") + (environ.get("PATH_INFO") or ""),
        environ.get("HTTP_COOKIE"),
        environ.get("wsgi.url_scheme", "http"),
        environ.get("HTTP_X_FORWARDED_PROTO"),
    )
    if flow is not None:
        load = flow.load_call()
        flow.loaded(engine.driver.call(load) if load else None)
    return flow


class _Response:
    """The response iterable handed to the server; it runs the app's iterable one chunk behind."""

    def __init__(
        self,
        middleware: WSGISessionMiddleware,
        environ: dict[str, Any],
        flow: Flow,
        start_response: StartResponse,
    ) -> None:
        self.middleware = middleware
        self.environ = environ
        self.flow = flow
        self.server_start_response = start_response
        self.held: tuple[str, list[tuple[str, str]], ExcInfo | None] | None = None
        self.committed = False
        self.server_write: Callable[[bytes], object] | None = None
        self.running: Generator[bytes, None, None] | None = None
        self.closed = False
        self.iterable = middleware.app(environ, self.start_response)

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], object]:
        if exc_info is not None and self.committed:
            raise exc_info[1].with_traceback(exc_info[2])
        self.held = (status, headers, exc_info)
        return self.write

    def write(self, data: bytes) -> None:
        """The legacy ``write()`` callable: the response is streaming from here on."""
        self.commit(self.flow.finish(self.environ.get(SESSION_KEY), call=False).set_cookie)
        assert self.server_write is not None
        self.server_write(data)

    def commit(self, set_cookie: str | None) -> None:
        if self.committed:
            return
        if self.held is None:
            raise RuntimeError("the WSGI app produced a body before calling start_response")
        status, headers, exc_info = self.held
        if set_cookie is not None:
            headers = [*headers, ("Set-Cookie", set_cookie)]
        self.server_write = self.server_start_response(status, headers, exc_info)
        self.committed = True

    def __iter__(self) -> Iterator[bytes]:
        self.running = self._run()
        return self.running

    def close(self) -> None:
        """PEP 3333: the server closes what it was given, also when it stops early."""
        if self.running is not None:
            self.running.close()
        elif not self.closed:
            self._close_app_iterable()

    def _close_app_iterable(self) -> None:
        self.closed = True
        close = getattr(self.iterable, "close", None)
        if close is not None:
            close()

    def _run(self) -> Generator[bytes, None, None]:
        try:
            chunks = iter(self.iterable)
            pending: bytes | None = None
            for chunk in chunks:
                if pending is not None:
                    if not self.committed:
                        session = self.environ.get(SESSION_KEY)
                        self.commit(self.flow.finish(session, call=False).set_cookie)
                    yield pending
                pending = chunk
            yield from self.finish(pending)
        finally:
            self._close_app_iterable()

    def finish(self, last: bytes | None) -> Iterator[bytes]:
        session = self.environ.get(SESSION_KEY)
        if self.committed:
            try:
                call = self.flow.finish(session, header=False).call
                if call is not None:
                    self.middleware.driver.call(call)
            except Exception:
                logger.exception("could not store the session at the end of a streamed response")
        else:
            try:
                outcome = self.flow.finish(session)
                if outcome.call is not None:
                    self.middleware.driver.call(outcome.call)
            except StoreUnavailable:
                logger.warning("session store unavailable while saving a session", exc_info=True)
                yield from _error(self.server_start_response, 503)
                return
            except Exception:
                logger.exception("could not store the session")
                yield from _error(self.server_start_response, 500)
                return
            self.commit(outcome.set_cookie)
        if last is not None:
            yield last


def _error(start_response: StartResponse, status: int) -> list[bytes]:
    line, body = _ERRORS[status]
    start_response(
        line,
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [body]

"""The WSGI adapter: drives the engine over environ / start_response / the response iterable.

As under ASGI, the app's ``start_response`` is held back and the first chunk of the body with it;
when the iterable is exhausted the store call runs, and only then do the headers (with the
Set-Cookie) and the last chunk reach the server. A failed store call becomes a 500 (503 when the
store is down) while nothing has been sent yet. A streamed body (two chunks or more, or the
legacy ``write()``) gets its cookie with the first chunk and its store call before the last one.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator
from types import TracebackType
from typing import Any

from ._engine import Engine, Flow, Outcome
from ._runtime import BaseSessionMiddleware, Failure, SessionRuntime
from ._wire import adds_cache_control, vary_missing
from .session import SessionBase, SyncSession

ExcInfo = tuple[type[BaseException], BaseException, TracebackType]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

SESSION_KEY = "sessionware.session"


class WSGISessionMiddleware(BaseSessionMiddleware[WSGIApp]):
    """express-session for any WSGI app; the session is ``environ["sessionware.session"]``."""

    session_class = SyncSession

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get(SESSION_KEY) is not None:
            return self.app(environ, start_response)
        runtime = self.runtime
        if not runtime.store_ready and not runtime.engine.lazy:
            return self._without_session(runtime.when_down(), environ, start_response)
        try:
            opened = open_flow(runtime, environ)
        except Exception as exc:
            return self._without_session(runtime.load_failed(exc), environ, start_response)
        if opened is None:
            return self.app(environ, start_response)
        flow, environ[SESSION_KEY] = opened
        return _Response(self, environ, flow, start_response)

    def _without_session(
        self, failure: Failure | None, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        if failure is None:
            return self.app(environ, start_response)
        return render_failure(start_response, failure)


def environ_facts(environ: dict[str, Any]) -> tuple[str, str | None, str, str | None]:
    """What the engine reads of a WSGI request: path (mount prefix included), Cookie header,
    scheme and X-Forwarded-Proto."""
    return (
        (environ.get("SCRIPT_NAME") or "") + (environ.get("PATH_INFO") or ""),
        environ.get("HTTP_COOKIE"),
        environ.get("wsgi.url_scheme", "http"),
        environ.get("HTTP_X_FORWARDED_PROTO"),
    )


def open_flow(runtime: SessionRuntime, environ: dict[str, Any]) -> tuple[Flow, SessionBase] | None:
    """The request's flow and session, read from the store unless lazy (``None`` outside the
    cookie path)."""
    flow = runtime.engine.begin(environ, *environ_facts(environ))
    if flow is None:
        return None
    if runtime.engine.lazy:
        return flow, flow.pending()
    load = flow.load_call()
    return flow, flow.loaded(None if load is None else runtime.driver.call(load))


def session_headers(
    headers: list[tuple[str, str]], outcome: Outcome, engine: Engine
) -> list[tuple[str, str]]:
    """The app's headers plus what the session adds."""
    added: list[tuple[str, str]] = []
    if outcome.vary:
        vary = vary_missing(
            (value for name, value in headers if name.lower() == "vary"), engine.vary_on
        )
        if vary is not None:
            added.append(("Vary", vary))
    if outcome.set_cookie is not None:
        added.append(("Set-Cookie", outcome.set_cookie))
    added.extend(outcome.headers)
    cache_control = engine.options.cache_control
    if cache_control is not None and outcome.private:
        app_set_one = any(name.lower() == "cache-control" for name, _ in headers)
        if adds_cache_control(True, app_set_one):
            added.append(("Cache-Control", cache_control))
    return [*headers, *added] if added else headers


def render_failure(start_response: StartResponse, failure: Failure) -> list[bytes]:
    start_response(failure.status_line, list(failure.headers))
    return [failure.body]


class _Response:
    """The response iterable handed to the server; it runs the app's iterable one chunk behind."""

    def __init__(
        self,
        middleware: WSGISessionMiddleware,
        environ: dict[str, Any],
        flow: Flow,
        start_response: StartResponse,
    ) -> None:
        self.middleware, self.environ, self.flow = middleware, environ, flow
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
        self.commit_streaming()
        assert self.server_write is not None
        self.server_write(data)

    def commit_streaming(self) -> None:
        if not self.committed:
            self.commit(self.flow.finish(self.environ.get(SESSION_KEY), call=False))

    def commit(self, outcome: Outcome) -> None:
        if self.committed:
            return
        if self.held is None:
            raise RuntimeError("the WSGI app produced a body before calling start_response")
        status, headers, exc_info = self.held
        headers = session_headers(headers, outcome, self.flow.engine)
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
                    self.commit_streaming()
                    yield pending
                pending = chunk
            yield from self.finish(pending)
        finally:
            self._close_app_iterable()

    def finish(self, last: bytes | None) -> Iterator[bytes]:
        session = self.environ.get(SESSION_KEY)
        runtime = self.middleware.runtime
        headers_sent = self.committed
        try:
            outcome = self.flow.finish(session, header=not headers_sent)
            if outcome.call is not None:
                runtime.driver.call(outcome.call)
        except Exception as exc:
            failure = runtime.save_failed(exc, headers_sent=headers_sent)
            if failure is not None:
                yield from render_failure(self.server_start_response, failure)
                return
        else:
            self.commit(outcome)
        if last is not None:
            yield last

"""WSGI specifics: close() always called, exc_info, the legacy write(), HTTPS detection."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from sessionware import MemoryStore, WSGISessionMiddleware
from sessionware.wsgi import SESSION_KEY

from .harness import SECRET, Client


class Body:
    """A response iterable that records whether the server closed it."""

    def __init__(self, chunks: list[bytes], fail_at: int | None = None) -> None:
        self.chunks = chunks
        self.fail_at = fail_at
        self.closed = False

    def __iter__(self) -> Any:
        for index, chunk in enumerate(self.chunks):
            if index == self.fail_at:
                raise RuntimeError("broken body")
            yield chunk

    def close(self) -> None:
        self.closed = True


def test_close_is_called_after_a_normal_response() -> None:
    body = Body([b"a", b"b"])

    def app(environ: Any, start_response: Any) -> Any:
        environ[SESSION_KEY]["x"] = 1
        start_response("200 OK", [])
        return body

    response = Client(WSGISessionMiddleware(app, secret=SECRET), "wsgi").get("/")
    assert response.text == "ab"
    assert body.closed


def test_close_is_called_when_the_body_raises() -> None:
    body = Body([b"a", b"b", b"c"], fail_at=1)
    store = MemoryStore()

    def app(environ: Any, start_response: Any) -> Any:
        environ[SESSION_KEY]["x"] = 1
        start_response("200 OK", [])
        return body

    client = Client(WSGISessionMiddleware(app, secret=SECRET, store=store), "wsgi")
    with pytest.raises(RuntimeError, match="broken body"):
        client.get("/")
    assert body.closed
    assert store.length() == 0


def test_nothing_is_saved_when_the_app_raises() -> None:
    store = MemoryStore()

    def app(environ: Any, start_response: Any) -> Any:
        environ[SESSION_KEY]["x"] = 1
        raise RuntimeError("view failed")

    with pytest.raises(RuntimeError):
        Client(WSGISessionMiddleware(app, secret=SECRET, store=store), "wsgi").get("/")
    assert store.length() == 0


def test_exc_info_replaces_a_held_start_response() -> None:
    def app(environ: Any, start_response: Any) -> Any:
        environ[SESSION_KEY]["x"] = 1
        start_response("200 OK", [("X-First", "1")])
        try:
            raise ValueError("late failure")
        except ValueError:
            start_response("500 Error", [("X-Second", "1")], sys.exc_info())
        return [b"failed"]

    response = Client(WSGISessionMiddleware(app, secret=SECRET), "wsgi").get("/")
    assert response.status == 500
    assert response.header("X-Second") == "1"
    assert response.header("X-First") is None
    assert response.set_cookie is not None


def test_exc_info_after_headers_went_out_is_raised() -> None:
    def app(environ: Any, start_response: Any) -> Any:
        write = start_response("200 OK", [])
        write(b"streamed")
        try:
            raise ValueError("too late")
        except ValueError:
            start_response("500 Error", [], sys.exc_info())
        return []

    with pytest.raises(ValueError, match="too late"):
        Client(WSGISessionMiddleware(app, secret=SECRET), "wsgi").get("/")


def test_legacy_write_streams_with_the_cookie() -> None:
    store = MemoryStore()

    def app(environ: Any, start_response: Any) -> Any:
        environ[SESSION_KEY]["x"] = 1
        write = start_response("200 OK", [])
        write(b"hello ")
        return [b"world"]

    response = Client(WSGISessionMiddleware(app, secret=SECRET, store=store), "wsgi").get("/")
    assert response.text == "hello world"
    assert response.set_cookie is not None
    assert store.length() == 1


def test_generator_apps_are_driven_lazily() -> None:
    store = MemoryStore()

    def app(environ: Any, start_response: Any) -> Any:
        start_response("200 OK", [])
        yield b"one"
        environ[SESSION_KEY]["late"] = True
        yield b"two"

    client = Client(WSGISessionMiddleware(app, secret=SECRET, store=store), "wsgi")
    response = client.get("/")
    assert response.text == "onetwo"
    assert [data["late"] for data in store.all().values()] == [True]


def test_an_app_error_outside_the_cookie_path_propagates_unchanged() -> None:
    def broken(environ: Any, start_response: Any) -> Any:
        raise RuntimeError("app bug")

    app = WSGISessionMiddleware(broken, secret=SECRET, cookie={"path": "/admin"})
    with pytest.raises(RuntimeError, match="app bug"):
        Client(app, "wsgi").get("/public")


def test_a_server_that_stops_early_closes_the_app_iterable() -> None:
    body = Body([b"a", b"b", b"c"])

    def app(environ: Any, start_response: Any) -> Any:
        environ[SESSION_KEY]["x"] = 1
        start_response("200 OK", [])
        return body

    middleware = WSGISessionMiddleware(app, secret=SECRET)
    environ = {"PATH_INFO": "/", "wsgi.url_scheme": "http", "REQUEST_METHOD": "GET"}
    result = middleware(environ, lambda status, headers, exc_info=None: None)
    iterator = iter(result)
    next(iterator)
    result.close()  # type: ignore[attr-defined]
    assert body.closed


def test_a_server_that_never_iterates_still_closes_the_app_iterable() -> None:
    body = Body([b"a"])

    def app(environ: Any, start_response: Any) -> Any:
        start_response("200 OK", [])
        return body

    middleware = WSGISessionMiddleware(app, secret=SECRET)
    environ = {"PATH_INFO": "/", "wsgi.url_scheme": "http", "REQUEST_METHOD": "GET"}
    result = middleware(environ, lambda status, headers, exc_info=None: None)
    result.close()  # type: ignore[attr-defined]
    assert body.closed

"""Security behaviour that OWASP's session cheat sheet and ASVS ask of a session library, on
every adapter: a response that sets the session cookie is not kept by shared caches."""

from __future__ import annotations

from typing import Any

import pytest

from .harness import SECRET, Client, Req, middleware_for


def _login(req: Req) -> None:
    if req.path == "/cached":
        req.header("Cache-Control", "no-store")
    if req.path != "/read":
        req.session["user"] = "ann"
    req.end("ok")


@pytest.mark.parametrize("transport", ["asgi", "wsgi"])
def test_a_response_that_sets_the_cookie_is_private_to_the_browser(transport: str) -> None:
    """By default ``Cache-Control: private`` goes with the session's Set-Cookie (a shared cache
    would hand the cookie to the next client); an app's own Cache-Control stays as it is; a
    response with no Set-Cookie gets nothing."""
    client = Client(middleware_for(transport, _login, secret=SECRET), transport)
    login = client.get("/login")
    assert login.set_cookie is not None
    assert login.header("cache-control") == "private"
    own = client.get("/cached")
    assert own.set_cookie is not None
    assert own.header("cache-control") == "no-store"
    read = client.get("/read", cookie=login.cookie())
    assert read.set_cookie is None
    assert read.header("cache-control") is None
    client.close()


@pytest.mark.parametrize("transport", ["asgi", "wsgi"])
@pytest.mark.parametrize(("option", "expected"), [("no-store", "no-store"), (None, None)])
def test_cache_control_is_an_option(transport: str, option: Any, expected: str | None) -> None:
    app = middleware_for(transport, _login, secret=SECRET, cache_control=option)
    client = Client(app, transport)
    assert client.get("/login").header("cache-control") == expected
    client.close()


def test_a_cache_control_value_on_two_lines_is_refused() -> None:
    with pytest.raises(ValueError, match="cache_control"):
        middleware_for("asgi", _login, secret=SECRET, cache_control="private\r\nX-Evil: 1")


def test_flask_quart_and_django_responses_are_private_too() -> None:
    import asyncio

    import flask
    from quart import Quart
    from quart import session as quart_session

    from sessionware.integrations.flask import init_app as flask_init
    from sessionware.integrations.flask import session as flask_session
    from sessionware.integrations.quart import init_app as quart_init

    flask_app = flask.Flask("cache")
    flask_app.secret_key = SECRET

    @flask_app.get("/login")
    def flask_login() -> str:
        flask_session["user"] = "ann"
        return "ok"

    flask_init(flask_app)
    assert flask_app.test_client().get("/login").headers["Cache-Control"] == "private"

    quart_app = Quart("cache")
    quart_app.secret_key = SECRET

    @quart_app.get("/login")
    async def quart_login() -> str:
        quart_session["user"] = "ann"
        return "ok"

    quart_init(quart_app)

    async def quart_get() -> Any:
        return await quart_app.test_client().get("/login")

    assert asyncio.run(quart_get()).headers["Cache-Control"] == "private"

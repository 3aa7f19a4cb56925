"""Sessions for API clients: the session id in a request header (``transport="header"`` or
``"both"``), the same signed value as the cookie's, on both adapters and the frameworks."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from starlette.requests import Request

from sessionware import MemoryStore, SessionEvent, SessionMiddleware, session_of
from sessionware.integrations.fastapi import SessionDep

from .harness import SECRET, Client, Response, account_handler, middleware_for

HEADER = "X-Session-Token"


_app = account_handler


class CountingStore(MemoryStore):
    """A MemoryStore that counts reads: an unsigned token must never reach the store."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    def get_record(self, sid: str, touch_ms: int | None = None) -> Any:
        self.reads.append(sid)
        return super().get_record(sid, touch_ms)


def _token(response: Response, name: str = HEADER) -> str | None:
    return response.header(name)


@pytest.fixture(params=["asgi", "wsgi"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_an_api_client_logs_in_reads_is_regenerated_and_logs_out(transport: str) -> None:
    store = CountingStore()
    app = middleware_for(transport, _app, secret=SECRET, store=store, transport="header")
    client = Client(app, transport)

    untouched = client.get("/me")
    assert _token(untouched) is None and untouched.set_cookie is None
    assert store.length() == 0, "a request with no token that wrote nothing was stored"

    first = client.get("/write")
    token = _token(first)
    assert token is not None and token.startswith("s:")
    assert first.set_cookie is None, "header transport sent a cookie"
    assert first.header("cache-control") == "private"
    assert first.header("vary") == HEADER

    read = client.get("/me", headers={HEADER: token})
    assert json.loads(read.text) == {"n": 1}
    assert _token(read) is None, "a known token was handed out again"
    assert read.header("vary") == HEADER

    login = client.get("/login", headers={HEADER: token})
    new_token = _token(login)
    assert new_token is not None and new_token != token
    assert json.loads(client.get("/me", headers={HEADER: new_token}).text) == {"user": "ann"}
    assert json.loads(client.get("/me", headers={HEADER: token}).text) == {}, "old id alive"

    logout = client.get("/logout", headers={HEADER: new_token})
    assert _token(logout) == "", "the response does not say the token is gone"
    assert logout.set_cookie is None
    assert json.loads(client.get("/me", headers={HEADER: new_token}).text) == {}
    assert store.length() == 0
    client.close()


def test_authorization_carries_a_bearer_token(transport: str) -> None:
    app = middleware_for(
        transport, _app, secret=SECRET, transport="header", header_name="Authorization"
    )
    client = Client(app, transport)
    given = _token(client.get("/write"), "authorization")
    assert given is not None and given.startswith("Bearer s:")
    again = client.get("/write", headers={"Authorization": given})
    assert json.loads(again.text) == {"n": 2}
    lower = client.get("/me", headers={"Authorization": "bearer " + given.split(" ", 1)[1]})
    assert json.loads(lower.text) == {"n": 2}, "the scheme is case-insensitive"
    basic = client.get("/me", headers={"Authorization": "Basic YW5uOnB3"})
    assert json.loads(basic.text) == {}, "another scheme is not a session"
    assert client.get("/write", headers={"Authorization": "Basic YW5uOnB3"}).status == 200
    client.close()


def test_both_transports_share_one_store_and_answer_in_kind(transport: str) -> None:
    store = MemoryStore()
    app = middleware_for(transport, _app, secret=SECRET, store=store, transport="both")
    client = Client(app, transport)

    fresh = client.get("/write")
    assert fresh.set_cookie is not None and _token(fresh) is not None, "neither: answer in both"
    assert fresh.header("vary") == f"Cookie, {HEADER}"

    browser = client.get("/login", cookie=fresh.cookie())
    assert browser.set_cookie is not None and _token(browser) is None
    api = client.get("/login", headers={HEADER: _token(fresh) or ""})
    assert api.set_cookie is None and _token(api) is not None
    assert store.length() == 2, "the browser's and the API client's sessions in one store"

    other = client.get("/write")
    disagreeing = client.get("/me", cookie=browser.cookie(), headers={HEADER: _token(other) or ""})
    assert json.loads(disagreeing.text) == {"user": "ann"}, "the cookie did not win"
    client.close()


def test_a_token_moves_between_transports(transport: str) -> None:
    store = MemoryStore()
    app = middleware_for(transport, _app, secret=SECRET, store=store, transport="both")
    client = Client(app, transport)
    token = _token(client.get("/write", headers={HEADER: "nonsense"}))
    assert token is not None
    as_cookie = client.get("/write", cookie=f"connect.sid={quote(token, safe='')}")
    assert json.loads(as_cookie.text) == {"n": 2}
    cookie_value = client.get("/write").cookie().split("=", 1)[1]
    assert cookie_value.startswith("s%3A")
    as_header = client.get("/write", headers={HEADER: cookie_value})
    assert json.loads(as_header.text) == {"n": 2}, "a cookie's value was refused as a token"
    client.close()


@pytest.mark.parametrize(
    "token",
    [
        "not-signed",
        "s:forged.signature",
        "s:" + "u" * 32,
        "s:" + "x" * 5000 + ".sig",
        "s:\u00ff\u00fe.\x00",
        "",
        " ",
    ],
)
def test_a_bad_token_is_a_fresh_session_and_never_reaches_the_store(
    transport: str, token: str
) -> None:
    store = CountingStore()
    events: list[SessionEvent] = []
    app = middleware_for(
        transport, _app, secret=SECRET, store=store, transport="header", on_event=events.append
    )
    client = Client(app, transport)
    response = client.get("/write", headers={HEADER: token})
    assert response.status == 200 and json.loads(response.text) == {"n": 1}
    assert store.reads == [], "an unsigned token reached the store"
    assert _token(response) is not None
    if token.strip():
        assert (events[0].kind, events[0].reason) == ("invalid_cookie", "bad_signature")
    client.close()


def test_a_token_signed_with_an_older_secret_still_works(transport: str) -> None:
    store = MemoryStore()
    old = middleware_for(transport, _app, secret="an-old-secret-32-bytes-long-too!!", store=store,
                         transport="header")  # fmt: skip
    token = _token(Client(old, transport).get("/write"))
    assert token is not None
    rotated = middleware_for(
        transport,
        _app,
        secret=["a-new-secret-of-32-bytes-or-more!", "an-old-secret-32-bytes-long-too!!"],
        store=store,
        transport="header",
    )
    assert json.loads(Client(rotated, transport).get("/me", headers={HEADER: token}).text) == {
        "n": 1
    }


def test_a_users_sessions_through_tokens() -> None:
    """``user_key`` works unchanged: two API clients of one user, one signs the other out."""
    store = MemoryStore()
    app = middleware_for(
        "wsgi", _app, secret=SECRET, store=store, transport="header", user_key="user"
    )
    client = Client(app, "wsgi")
    phone = _token(client.get("/login"))
    laptop = _token(client.get("/login"))
    assert phone and laptop
    assert sorted(store.user_sessions("ann")) and len(store.user_sessions("ann")) == 2
    client.get("/others", headers={HEADER: laptop})
    assert json.loads(client.get("/me", headers={HEADER: phone}).text) == {}
    assert json.loads(client.get("/me", headers={HEADER: laptop}).text) == {"user": "ann"}


def test_the_options_are_checked() -> None:
    with pytest.raises(ValueError, match="transport must be 'cookie', 'header' or 'both'"):
        middleware_for("asgi", _app, secret=SECRET, transport="query")
    with pytest.raises(ValueError, match="header_name must be a header name"):
        middleware_for("asgi", _app, secret=SECRET, transport="header", header_name="X Bad")


# -- the frameworks ------------------------------------------------------------------------------


def api_round_trip(call: Any) -> list[Any]:
    """Log in, read, log in again (a new id), log out, read: through the header only."""
    answers = []
    login = call("POST", "/login", None)
    token = login.headers["x-session-token"]
    answers.append(call("GET", "/me", token).json())
    again = call("POST", "/login", token)
    new_token = again.headers["x-session-token"]
    answers.append(new_token != token)
    answers.append(call("GET", "/me", token).json())
    logout = call("POST", "/logout", new_token)
    answers.append(logout.headers["x-session-token"])
    answers.append(call("GET", "/me", new_token).json())
    return answers


EXPECTED = [{"user": "ann"}, True, {"user": None}, "", {"user": None}]


def test_starlette_and_fastapi_over_the_header() -> None:
    import asyncio

    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/login")
    async def login(session: SessionDep) -> str:
        await session.login("ann")
        return "ok"

    @app.get("/me")
    async def me(request: Request) -> dict[str, Any]:
        return {"user": session_of(request).get("user")}

    @app.post("/logout")
    async def logout(session: SessionDep) -> str:
        await session.logout()
        return "bye"

    app.add_middleware(
        SessionMiddleware, secret=SECRET, store=MemoryStore(), user_key="user", transport="header"
    )

    assert _replayed(lambda plan: asyncio.run(_collect_async(app, plan))) == EXPECTED


def _replayed(runner: Any) -> list[Any]:
    """Run ``api_round_trip`` with each call made by ``runner`` (a function of one call)."""
    return api_round_trip(lambda method, path, token: runner([(method, path, token)])[0])


async def _collect_async(app: Any, plan: list[tuple[str, str, str | None]]) -> list[Any]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return [
            await client.request(method, path, headers={} if token is None else {HEADER: token})
            for method, path, token in plan
        ]


def _collect_wsgi(app: Any, plan: list[tuple[str, str, str | None]]) -> list[Any]:
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://t") as client:
        return [
            client.request(method, path, headers={} if token is None else {HEADER: token})
            for method, path, token in plan
        ]


def test_flask_over_the_header() -> None:
    import flask

    from sessionware.integrations.flask import init_app, session

    app = flask.Flask("api")
    app.secret_key = SECRET

    @app.post("/login")
    def login() -> str:
        session.login("ann")
        return "ok"

    @app.get("/me")
    def me() -> dict[str, Any]:
        return {"user": session.get("user")}

    @app.post("/logout")
    def logout() -> str:
        session.logout()
        return "bye"

    init_app(app, store=MemoryStore(), user_key="user", transport="header")
    assert _replayed(lambda plan: _collect_wsgi(app, plan)) == EXPECTED

"""Security behaviour that OWASP's session cheat sheet and ASVS ask of a session library, on
every adapter: a response that sets the session cookie is not kept by shared caches."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sessionware import MemoryStore
from sessionware.errors import sid_tag

from .harness import SECRET, Client, Req, middleware_for


def _login(req: Req) -> None:
    if req.path == "/logout":
        req.destroy()
        req.end("bye")
        return
    if req.path == "/unset":
        req.session = None
        req.end("unset")
        return
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


@pytest.mark.parametrize("transport", ["asgi", "wsgi"])
def test_logout_can_clear_the_sites_cookies(transport: str) -> None:
    """``clear_site_data=True``: the response that ends the session asks the browser to drop
    every cookie of the site (OWASP); other responses, and apps without the option, do not."""
    app = middleware_for(transport, _login, secret=SECRET, clear_site_data=True, unset="destroy")
    client = Client(app, transport)
    login = client.get("/login")
    assert login.header("clear-site-data") is None
    logout = client.get("/logout", cookie=login.cookie())
    assert logout.header("clear-site-data") == '"cookies"'
    assert logout.set_cookie is not None and "Expires=Thu, 01 Jan 1970" in logout.set_cookie
    unset = client.get("/unset", cookie=client.get("/login").cookie())
    assert unset.header("clear-site-data") == '"cookies"'
    assert client.get("/logout").header("clear-site-data") is None, "no cookie, nothing to end"
    client.close()

    plain = Client(middleware_for(transport, _login, secret=SECRET), transport)
    assert (
        plain.get("/logout", cookie=plain.get("/login").cookie()).header("clear-site-data") is None
    )
    plain.close()
    custom = middleware_for(transport, _login, secret=SECRET, clear_site_data='"cache", "cookies"')
    client = Client(custom, transport)
    logout = client.get("/logout", cookie=client.get("/login").cookie())
    assert logout.header("clear-site-data") == '"cache", "cookies"'
    client.close()


def test_a_clear_site_data_value_on_two_lines_is_refused() -> None:
    with pytest.raises(ValueError, match="clear_site_data must be a Clear-Site-Data value"):
        middleware_for("asgi", _login, secret=SECRET, clear_site_data='"cookies"\r\nX: 1')


def _flask_and_quart(**options: Any) -> tuple[Any, Any]:
    """A Flask app and a Quart app with sessionware (``options``): ``/login`` writes the
    session, ``/logout`` ends it; each returns a function giving a path's response headers,
    after a login."""
    import asyncio

    import flask
    from quart import Quart
    from quart import session as quart_session

    from sessionware.integrations.flask import init_app as flask_init
    from sessionware.integrations.flask import session as flask_session
    from sessionware.integrations.quart import init_app as quart_init

    flask_app = flask.Flask("security")
    flask_app.secret_key = SECRET

    @flask_app.get("/login")
    def flask_login() -> str:
        flask_session["user"] = "ann"
        return "ok"

    @flask_app.get("/logout")
    def flask_logout() -> str:
        flask_session.logout()
        return "bye"

    flask_init(flask_app, **options)

    def flask_headers(path: str) -> Any:
        client = flask_app.test_client()
        login = client.get("/login")
        return login.headers if path == "/login" else client.get(path).headers

    quart_app = Quart("security")
    quart_app.secret_key = SECRET

    @quart_app.get("/login")
    async def quart_login() -> str:
        quart_session["user"] = "ann"
        return "ok"

    @quart_app.get("/logout")
    async def quart_logout() -> str:
        await quart_session.logout()
        return "bye"

    quart_init(quart_app, **options)

    def quart_headers(path: str) -> Any:
        async def run() -> Any:
            client = quart_app.test_client()
            login = await client.get("/login")
            return login.headers if path == "/login" else (await client.get(path)).headers

        return asyncio.run(run())

    return flask_headers, quart_headers


def test_flask_and_quart_logouts_clear_site_data() -> None:
    for headers in _flask_and_quart(clear_site_data=True):
        assert headers("/logout")["Clear-Site-Data"] == '"cookies"'
        assert "Clear-Site-Data" not in headers("/login")


def test_flask_quart_and_django_responses_are_private_too() -> None:
    for headers in _flask_and_quart():
        assert headers("/login")["Cache-Control"] == "private"


@pytest.mark.parametrize("transport", ["asgi", "wsgi"])
def test_the_session_cookie_stays_far_under_the_browsers_4096_bytes(transport: str) -> None:
    """ASVS 3.3.5: the longest id ``genid`` may return (255 characters, URI-encoded) with its
    signature and the longest name still fits, so no browser drops the cookie."""
    longest = "%" * 255  # each encodes to three bytes
    name = "n" * 64
    app = middleware_for(transport, _login, secret=SECRET, name=name, genid=lambda request: longest)
    client = Client(app, transport)
    pair = client.get("/login").cookie()
    client.close()
    assert pair.startswith(name + "=")
    assert len(pair.encode()) < 4096


def test_default_ids_carry_192_random_bits() -> None:
    """ASVS 7.2.3: 24 bytes from the CSPRNG (``secrets``), base64url: 32 characters, and no two
    alike in many."""
    from sessionware._engine import default_genid

    ids = {default_genid(None) for _ in range(10_000)}
    assert len(ids) == 10_000
    assert {len(sid) for sid in ids} == {32}


def test_every_test_the_security_page_cites_exists() -> None:
    """docs/security.md proves each requirement with a named test: a renamed or removed test
    must not leave the page citing nothing."""
    import ast
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    page = (root / "docs" / "security.md").read_text()
    cited = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", page)
    assert len(cited) >= 25
    for path, name in cited:
        tree = ast.parse((root / path).read_text())
        names = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
        assert name in names, f"docs/security.md cites {path}::{name}, which does not exist"
    rows = re.findall(r"^\| (\d\.\d\.\d) \|", page, re.MULTILINE)
    assert rows == [
        *(f"7.1.{n}" for n in (1, 2, 3)),
        *(f"7.2.{n}" for n in (1, 2, 3, 4)),
        *(f"7.3.{n}" for n in (1, 2)),
        *(f"7.4.{n}" for n in (1, 2, 3, 4, 5)),
        *(f"7.5.{n}" for n in (1, 2, 3)),
        *(f"7.6.{n}" for n in (1, 2)),
        *(f"3.3.{n}" for n in (1, 2, 3, 4, 5)),
    ]


def _auth_app(req: Req) -> None:
    if req.path == "/login":
        req.login("ann")
    elif req.path == "/logout":
        req.logout()
    elif req.path == "/cycle":
        req.regenerate(keep=True)
    elif req.path == "/fresh":
        req.regenerate()
    at = req.session.authenticated_at
    req.end(json.dumps({"at": None if at is None else at.timestamp(), "data": dict(req.session)}))


def _signing_in(transport: str, **options: Any) -> tuple[list[float], MemoryStore, Client]:
    """An app of ``_auth_app`` on a MemoryStore, its users under ``uid``, with a clock the test
    moves."""
    clock = [1_000_000.0]
    store = MemoryStore()
    app = middleware_for(
        transport,
        _auth_app,
        secret=SECRET,
        store=store,
        user_key="uid",
        clock=lambda: clock[0],
        **options,
    )
    return clock, store, Client(app, transport)


@pytest.mark.parametrize("transport", ["asgi", "wsgi"])
@pytest.mark.parametrize("timeouts", [{}, {"idle_timeout": 600, "absolute_timeout": 3600}])
def test_login_renews_the_id_names_the_user_and_stamps_the_time(
    transport: str, timeouts: dict[str, Any]
) -> None:
    """``login()`` cannot be done wrong (ASVS 7.2.4): a new id, the old session gone, the user
    under ``user_key``; ``authenticated_at`` lets the app ask for the password again before a
    sensitive change (ASVS 7.5.1), and survives the next requests, hidden from the data."""
    clock, store, client = _signing_in(transport, **timeouts)
    before = client.get("/")
    assert json.loads(before.text)["at"] is None
    assert before.set_cookie is None
    first = client.get("/login")
    login = client.get("/login", cookie=first.cookie())
    assert login.cookie() != first.cookie()
    assert store.get(first.cookie().split("=", 1)[1][4:].rsplit(".", 1)[0]) is None
    assert json.loads(login.text) == {"at": clock[0], "data": {"uid": "ann"}}
    clock[0] += 30
    later = client.get("/", cookie=login.cookie())
    assert json.loads(later.text) == {"at": clock[0] - 30, "data": {"uid": "ann"}}
    cycled = client.get("/cycle", cookie=login.cookie())
    assert json.loads(cycled.text)["at"] == clock[0] - 30, "regenerate(keep=True) keeps it"
    fresh = client.get("/fresh", cookie=cycled.cookie())
    assert json.loads(fresh.text) == {"at": None, "data": {}}
    again = client.get("/login", cookie=fresh.cookie())
    client.get("/logout", cookie=again.cookie())
    assert store.length() == 0, "logout destroyed the session"
    client.close()


def test_login_needs_user_key() -> None:
    from sessionware.errors import SessionError

    app = middleware_for("wsgi", _auth_app, secret=SECRET)
    with pytest.raises(SessionError, match="login\\(\\) needs the user_key option"):
        Client(app, "wsgi").get("/login")


@pytest.mark.parametrize("transport", ["asgi", "wsgi"])
def test_a_login_over_the_limit_ends_the_least_recently_active_session(transport: str) -> None:
    """ASVS 7.1.2: ``max_sessions_per_user=2``: a third device's login signs out the one used
    least recently, and an event says why."""
    from sessionware import SessionEvent

    events: list[SessionEvent] = []
    clock, store, client = _signing_in(
        transport, max_sessions_per_user=2, idle_timeout=3600, on_event=events.append
    )
    devices = []
    for _ in range(2):
        devices.append(client.get("/login").cookie())
        clock[0] += 1000
    client.get("/", cookie=devices[0])  # the first device is used again: the second is older
    clock[0] += 1000
    devices.append(client.get("/login").cookie())
    alive = [json.loads(client.get("/", cookie=cookie).text)["data"] for cookie in devices]
    assert alive == [{"uid": "ann"}, {}, {"uid": "ann"}]
    assert [(e.kind, e.reason, e.user) for e in events if e.reason == "limit"] == [
        ("destroyed", "limit", "ann")
    ]
    ended = devices[1].split("=", 1)[1].replace("s%3A", "", 1).rsplit(".", 1)[0]
    assert [e.sid_hash for e in events if e.reason == "limit"] == [sid_tag(ended)]
    assert store.length() == 2
    client.close()


def test_the_limit_needs_user_key() -> None:
    with pytest.raises(ValueError, match="max_sessions_per_user needs user_key"):
        middleware_for("asgi", _auth_app, secret=SECRET, max_sessions_per_user=2)


def test_an_asgi_app_may_send_its_headers_as_lists() -> None:
    """ASGI allows any iterable of pairs; the compiled build once checked for tuples while
    looking for the app's Cache-Control."""
    import asyncio

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["session"]["n"] = 1
        headers = [[b"content-type", b"text/plain"], [b"cache-control", b"no-store"]]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    from sessionware import SessionMiddleware

    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.request"}

    middleware = SessionMiddleware(app, secret=SECRET, store=MemoryStore())
    scope = {"type": "http", "path": "/", "headers": [], "scheme": "http"}
    asyncio.run(middleware(scope, receive, send))
    names = [bytes(name) for name, _ in sent[0]["headers"]]
    assert names.count(b"cache-control") == 1
    assert b"set-cookie" in names and b"vary" in names

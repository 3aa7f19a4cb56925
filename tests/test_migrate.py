"""Switching to sessionware without signing anyone out (``migrate_from``): the real Starlette and
Flask sign a user in with their own cookie sessions; the app then runs sessionware, and the same
cookie jar is still signed in, on its next request and after. Tampered, expired and foreign
cookies give no session and no error."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware.sessions import SessionMiddleware as StarletteSessions
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sessionware import MemoryStore, SessionMiddleware
from sessionware.migrate import FlaskCookieSessions, StarletteCookieSessions

OLD_SECRET = "the secret the app signed its cookie sessions with"
NEW_SECRET = "a new secret for sessionware, 32 bytes or more!!"


async def login(request: Request) -> JSONResponse:
    request.session["user_id"] = "ann"
    request.session["cart"] = [1, 2]
    return JSONResponse("ok")


async def me(request: Request) -> JSONResponse:
    return JSONResponse(request.session.get("user_id"))


ROUTES = [Route("/login", login, methods=["POST"]), Route("/me", me)]


def _starlette_old() -> Starlette:
    app = Starlette(routes=ROUTES)
    app.add_middleware(StarletteSessions, secret_key=OLD_SECRET)
    return app


def _starlette_new(store: MemoryStore, **options: Any) -> Starlette:
    app = Starlette(routes=ROUTES)
    app.add_middleware(
        SessionMiddleware, secret=NEW_SECRET, store=store, user_key="user_id", **options
    )
    return app


async def _call(app: Any, jar: httpx.Cookies, method: str, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", cookies=jar) as c:
        response = await c.request(method, path)
        jar.update(c.cookies)
        for name in list(jar.keys()):
            if name not in c.cookies:
                jar.delete(name)
        return response


def test_a_starlette_user_stays_signed_in_after_the_switch() -> None:
    store = MemoryStore()
    source = StarletteCookieSessions(secret_key=OLD_SECRET)
    new = _starlette_new(store, migrate_from=source)

    async def run() -> list[Any]:
        jar = httpx.Cookies()
        await _call(_starlette_old(), jar, "POST", "/login")
        before = (await _call(_starlette_old(), jar, "GET", "/me")).json()
        switched = await _call(new, jar, "GET", "/me")
        after = (await _call(new, jar, "GET", "/me")).json()
        return [before, switched, after, dict(jar)]

    before, switched, after, jar = asyncio.run(run())
    assert before == "ann"
    assert switched.json() == "ann", "the user was signed out by the switch"
    set_cookies = switched.headers.get_list("set-cookie")
    assert any(cookie.startswith("connect.sid=s%3A") for cookie in set_cookies)
    assert any(cookie.startswith("session=;") and "Max-Age=0" in cookie for cookie in set_cookies)
    assert after == "ann"
    assert "session" not in jar and "connect.sid" in jar
    [data] = store.user_sessions("ann").values()
    assert data["cart"] == [1, 2]


def test_keeping_the_old_cookie_for_a_gradual_rollout() -> None:
    source = StarletteCookieSessions(secret_key=OLD_SECRET)
    new = _starlette_new(MemoryStore(), migrate_from=[source], migrate_keep=True)

    async def run() -> httpx.Response:
        jar = httpx.Cookies()
        await _call(_starlette_old(), jar, "POST", "/login")
        return await _call(new, jar, "GET", "/me")

    switched = asyncio.run(run())
    assert switched.json() == "ann"
    assert not any(c.startswith("session=") for c in switched.headers.get_list("set-cookie"))


def _signed(secret: str, data: object, age: float = 0) -> str:
    from itsdangerous import TimestampSigner

    class Dated(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - age)

    payload = base64.b64encode(json.dumps(data).encode())
    return Dated(secret).sign(payload).decode()


@pytest.mark.parametrize(
    "cookie",
    [
        _signed(OLD_SECRET, {"user_id": "ann"})[:-2] + "xx",  # tampered
        _signed(OLD_SECRET, {"user_id": "ann"}, age=15 * 24 * 3600),  # expired
        _signed("another app's secret", {"user_id": "ann"}),  # foreign
        _signed(OLD_SECRET, ["not", "an", "object"]),
        "garbage",
        "",
    ],
)
def test_a_bad_old_cookie_is_no_session_and_no_error(cookie: str) -> None:
    store = MemoryStore()
    new = _starlette_new(store, migrate_from=StarletteCookieSessions(secret_key=OLD_SECRET))

    async def run() -> httpx.Response:
        jar = httpx.Cookies({"session": cookie})
        return await _call(new, jar, "GET", "/me")

    response = asyncio.run(run())
    assert response.status_code == 200 and response.json() is None
    assert store.length() == 0


def test_a_sessionware_cookie_wins_over_an_old_one() -> None:
    store = MemoryStore()
    new = _starlette_new(store, migrate_from=StarletteCookieSessions(secret_key=OLD_SECRET))

    async def run() -> Any:
        jar = httpx.Cookies()
        await _call(_starlette_old(), jar, "POST", "/login")
        await _call(new, jar, "GET", "/me")
        jar.set("session", _signed(OLD_SECRET, {"user_id": "bob"}))
        return (await _call(new, jar, "GET", "/me")).json()

    assert asyncio.run(run()) == "ann", "an old cookie replaced a migrated session"


def test_a_flask_user_stays_signed_in_after_the_switch() -> None:
    import flask

    from sessionware.integrations.flask import init_app, session

    old = flask.Flask("old")
    old.secret_key = OLD_SECRET

    @old.post("/login")
    def old_login() -> str:
        flask.session["user_id"] = "ann"
        flask.session["pair"] = (1, "a")
        return "ok"

    old_client = old.test_client()
    old_client.post("/login")
    cookie = old_client.get_cookie("session")
    assert cookie is not None

    new = flask.Flask("new")
    new.secret_key = NEW_SECRET
    store = MemoryStore()

    @new.get("/me")
    def new_me() -> dict[str, Any]:
        return {"user": session.get("user_id"), "pair": session.get("pair")}

    init_app(
        new,
        store=store,
        user_key="user_id",
        migrate_from=FlaskCookieSessions(secret_key=["a newer key", OLD_SECRET]),
    )
    client = new.test_client()
    client.set_cookie("session", cookie.value)
    switched = client.get("/me")
    assert switched.json == {"user": "ann", "pair": [1, "a"]}
    [set_cookie] = switched.headers.getlist("Set-Cookie")
    assert set_cookie.startswith("session=s%3A"), "the cookie name now holds sessionware's id"
    assert client.get("/me").json == {"user": "ann", "pair": [1, "a"]}
    assert len(store.user_sessions("ann")) == 1

    stranger = new.test_client()
    stranger.set_cookie("session", cookie.value[:-3] + "abc")
    assert stranger.get("/me").json == {"user": None, "pair": None}


def test_migrate_from_takes_sources_only() -> None:
    with pytest.raises(TypeError, match="migrate_from takes sources"):
        _starlette_new(MemoryStore(), migrate_from="session").build_middleware_stack()


# -- server-side sources on Redis, written by the real libraries ---------------------------------


def test_a_flask_session_user_stays_signed_in_after_the_switch(redis_prefix: str) -> None:
    import flask
    import redis
    from flask_session import Session as FlaskSession

    from sessionware.integrations.flask import init_app, session
    from sessionware.migrate import FlaskSessionStore

    from .services import require_redis

    url = require_redis()
    client = redis.Redis.from_url(url)
    old = flask.Flask("old")
    old.config.update(
        SECRET_KEY=OLD_SECRET,
        SESSION_TYPE="redis",
        SESSION_REDIS=client,
        SESSION_KEY_PREFIX=redis_prefix,
    )
    FlaskSession(old)

    @old.post("/login")
    def old_login() -> str:
        flask.session["user_id"] = "ann"
        return "ok"

    old_client = old.test_client()
    old_client.post("/login")
    cookie = old_client.get_cookie("session")
    assert cookie is not None and client.exists(redis_prefix + cookie.value)

    new = flask.Flask("new")
    new.secret_key = NEW_SECRET
    store = MemoryStore()

    @new.get("/me")
    def new_me() -> str:
        return str(session.get("user_id"))

    source = FlaskSessionStore(url, key_prefix=redis_prefix)
    init_app(new, store=store, user_key="user_id", migrate_from=source)
    browser = new.test_client()
    browser.set_cookie("session", cookie.value)
    assert browser.get("/me").text == "ann", "the switch signed ann out"
    assert browser.get("/me").text == "ann"
    assert not client.exists(redis_prefix + cookie.value), "the old session was left behind"

    client.set(redis_prefix + "pickled", b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00}\x94.")
    stranger = new.test_client()
    stranger.set_cookie("session", "pickled")
    assert stranger.get("/me").text == "None", "a pickled session was opened"
    source.close()
    client.close()


def test_a_starsessions_user_stays_signed_in_after_the_switch(redis_prefix: str) -> None:
    import redis
    from starsessions import SessionAutoloadMiddleware
    from starsessions import SessionMiddleware as StarSessions
    from starsessions.stores.redis import RedisStore as StarRedisStore

    from sessionware.migrate import StarsessionsStore

    from .services import require_redis

    url = require_redis()
    old = Starlette(routes=ROUTES)
    old.add_middleware(SessionAutoloadMiddleware)
    old.add_middleware(
        StarSessions, store=StarRedisStore(url=url, prefix=redis_prefix), cookie_https_only=False
    )
    store = MemoryStore()
    source = StarsessionsStore(url, prefix=redis_prefix)
    new = _starlette_new(store, migrate_from=source)

    async def run() -> list[Any]:
        jar = httpx.Cookies()
        await _call(old, jar, "POST", "/login")
        old_id = jar["session"]
        before = (await _call(old, jar, "GET", "/me")).json()
        switched = (await _call(new, jar, "GET", "/me")).json()
        after = (await _call(new, jar, "GET", "/me")).json()
        await source.aclose()
        return [before, switched, after, old_id]

    before, switched, after, old_id = asyncio.run(run())
    assert before == switched == after == "ann"
    client = redis.Redis.from_url(url)
    assert not client.exists(redis_prefix + old_id)
    client.close()
    [data] = store.user_sessions("ann").values()
    assert data["cart"] == [1, 2] and "__metadata__" not in data


# -- sessionware migrate: copied ahead of the deploy ------------------------------------------


def _flask_session_logins(url: str, prefix: str, users: list[str]) -> list[str]:
    """Flask-Session 0.8 on Redis signs ``users`` in: their cookies' values."""
    import flask
    import redis
    from flask_session import Session as FlaskSession

    client = redis.Redis.from_url(url)
    old = flask.Flask("old")
    old.config.update(
        SECRET_KEY=OLD_SECRET, SESSION_TYPE="redis", SESSION_REDIS=client, SESSION_KEY_PREFIX=prefix
    )
    FlaskSession(old)

    @old.post("/login/<name>")
    def old_login(name: str) -> str:
        flask.session["user_id"] = name
        return "ok"

    values = []
    for name in users:
        browser = old.test_client()
        browser.post(f"/login/{name}")
        cookie = browser.get_cookie("session")
        assert cookie is not None
        values.append(cookie.value)
    client.set(prefix + "pickled", b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00}\x94.")
    client.close()
    return values


def _starsessions_logins(url: str, prefix: str, users: list[str]) -> list[str]:
    from starsessions import SessionAutoloadMiddleware
    from starsessions import SessionMiddleware as StarSessions
    from starsessions.stores.redis import RedisStore as StarRedisStore

    async def old_login(request: Request) -> JSONResponse:
        request.session["user_id"] = request.path_params["name"]
        return JSONResponse("ok")

    old = Starlette(routes=[Route("/login/{name}", old_login, methods=["POST"])])
    old.add_middleware(SessionAutoloadMiddleware)
    old.add_middleware(
        StarSessions, store=StarRedisStore(url=url, prefix=prefix), cookie_https_only=False
    )

    async def run() -> list[str]:
        values = []
        for name in users:
            jar = httpx.Cookies()
            await _call(old, jar, "POST", f"/login/{name}")
            values.append(jar["session"])
        return values

    return asyncio.run(run())


@pytest.mark.parametrize("library", ["flask-session", "starsessions"])
def test_sessionware_migrate_copies_the_sessions_ahead_of_the_deploy(
    library: str, redis_prefix: str, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The old library signs ann and bob in; ``sessionware migrate`` copies their sessions
    (a dry run first, then with ``--keep``, then again to clean up); the deployed app finds
    ann's copy through her old cookie, adopts it and signs her in, with no read of the old
    store."""
    import redis

    from sessionware.cli import main
    from sessionware.migrate import copy_id, source_from_url
    from sessionware.stores.urls import from_url

    from .services import require_redis

    url = require_redis()
    writers = {"flask-session": _flask_session_logins, "starsessions": _starsessions_logins}
    ann, bob = writers[library](url, redis_prefix, ["ann", "bob"])
    option = "key_prefix" if library == "flask-session" else "prefix"
    source_url = f"{library}+{url}?{option}={redis_prefix}"
    target = f"sqlite:///{tmp_path}/sessions.db"
    command = ["migrate", "--from", source_url, "--to", target, "--user-key", "user_id"]
    command += ["--secret", NEW_SECRET, "--json"]
    unreadable = 1 if library == "flask-session" else 0

    def run(*extra: str) -> dict[str, Any]:
        assert main([*command, *extra]) == 0, capsys.readouterr().err
        answer: dict[str, Any] = json.loads(capsys.readouterr().out)
        return answer

    store = from_url(target, sync=True, user_key="user_id")
    client = redis.Redis.from_url(url)
    old_keys = [f"{redis_prefix}{value}" for value in (ann, bob)]
    assert run("--dry-run") == {
        "copied": 2,
        "already": 0,
        "unreadable": unreadable,
        "dry_run": True,
    }
    assert store.length() == 0
    assert run("--keep")["copied"] == 2
    assert store.length() == 2 and client.exists(*old_keys) == 2
    assert run() == {"copied": 0, "already": 2, "unreadable": unreadable, "dry_run": False}
    assert client.exists(*old_keys) == 0, "the copied sessions were left in the old store"
    if unreadable:
        assert client.exists(redis_prefix + "pickled"), "an unreadable session was deleted"
    copied = copy_id(NEW_SECRET.encode(), source_from_url(source_url), old_keys[0])
    assert list(store.user_sessions("ann")) == [copied]

    source = source_from_url(source_url)
    new = _starlette_new(from_url(target), migrate_from=source)  # type: ignore[arg-type]

    async def browse(cookie: str) -> list[Any]:
        jar = httpx.Cookies()
        jar.set("session", cookie, domain="t.local")
        first = await _call(new, jar, "GET", "/me")
        second = await _call(new, jar, "GET", "/me")
        await source.aclose()
        return [first.json(), second.json(), dict(jar)]

    first, second, jar = asyncio.run(browse(ann))
    assert first == second == "ann", "the copy did not sign ann in"
    assert "session" not in jar, "the old cookie was not expired"
    assert jar["connect.sid"].startswith("s%3A" + copied + ".")
    assert store.length() == 2, "the copy was not adopted as it is"
    tampered, _, _ = asyncio.run(browse(ann[:-1] + ("A" if ann[-1] != "A" else "B")))
    assert tampered is None
    store.close()
    client.close()


def test_sessionware_migrate_says_what_is_wrong(capsys: pytest.CaptureFixture[str]) -> None:
    from sessionware.cli import main

    base = ["migrate", "--to", "memory://"]
    assert main([*base, "--from", "starsessions+redis://127.0.0.1:1/0"]) == 2
    assert "no secret" in capsys.readouterr().err
    assert main([*base, "--from", "beaker+redis://x", "--secret", NEW_SECRET]) == 2
    assert "flask-session+redis://" in capsys.readouterr().err
    assert main([*base, "--from", "starsessions+redis://h/0?key_prefix=x", "--secret", "s"]) == 2
    assert "only prefix" in capsys.readouterr().err

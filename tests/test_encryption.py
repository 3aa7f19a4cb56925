"""Encryption at rest on the real stores: what the server holds has no plaintext, rotated keys
still open old sessions, and a wrong key gives a fresh session, never a crash."""

from __future__ import annotations

import logging
import sqlite3
import tempfile
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from sessionware import SessionCorrupt, SessionMiddleware, WSGISessionMiddleware
from sessionware.stores.encryption import Encryption
from sessionware.wsgi import SESSION_KEY

from .harness import SECRET
from .services import require_mysql, require_postgres, require_redis

OLD_KEY = "old-key-" + "o" * 32
NEW_KEY = "new-key-" + "n" * 32
PLAIN = "hunter2-plaintext-marker"


def session(**data: Any) -> dict[str, Any]:
    return {"cookie": {"originalMaxAge": None, "expires": None, "path": "/"}, **data}


class Place:
    """Where one store keeps its sessions: ``make(keys)`` opens a store there, ``raw(sid)`` reads
    what the server holds, ``put(sid, text)`` writes raw text."""

    def __init__(
        self,
        make: Callable[[Any], Any],
        raw: Callable[[str], bytes],
        put: Callable[[str, str], None],
        cleanup: Callable[[], None],
    ) -> None:
        self.make, self.raw, self.put, self.cleanup = make, raw, put, cleanup


def _redis() -> Place:
    import redis

    from sessionware.stores.redis import RedisRules, SyncRedisStore

    url = require_redis()
    prefix = f"sw-enc:{uuid.uuid4().hex[:10]}:"
    client = redis.Redis.from_url(url)

    def cleanup() -> None:
        index_prefix = RedisRules(prefix=prefix).user_prefix
        keys = [
            key for match in (prefix, index_prefix) for key in client.scan_iter(match=match + "*")
        ]
        if keys:
            client.delete(*keys)
        client.close()

    return Place(
        lambda keys: SyncRedisStore(url=url, prefix=prefix, encryption_keys=keys),
        lambda sid: client.get(prefix + sid) or b"",
        lambda sid, text: client.set(prefix + sid, text),
        cleanup,
    )


def _sqlite() -> Place:
    from sessionware.stores.sqlite import SQLiteStore

    path = tempfile.mkdtemp() + "/enc.db"

    def query(sql: str, *args: Any) -> Any:
        with sqlite3.connect(path) as connection:
            return connection.execute(sql, args).fetchone()

    return Place(
        lambda keys: SQLiteStore(path, encryption_keys=keys),
        lambda sid: query("SELECT sess FROM sessions WHERE sid = ?", sid)[0].encode(),
        lambda sid, text: query("UPDATE sessions SET sess = ? WHERE sid = ?", text, sid),
        lambda: None,
    )


def _postgres() -> Place:
    import psycopg

    from sessionware.stores.postgres import SyncPostgresStore

    url, table = require_postgres(), f"sw_enc_{uuid.uuid4().hex[:10]}"

    def query(sql: str, *args: Any) -> Any:
        with psycopg.connect(url, autocommit=True) as connection:
            return (
                connection.execute(sql, args).fetchone()
                if "SELECT" in sql
                else (connection.execute(sql, args))
            )

    return Place(
        lambda keys: SyncPostgresStore(url=url, table=table, encryption_keys=keys),
        lambda sid: query(f'SELECT sess::text FROM "{table}" WHERE sid = %s', sid)[0].encode(),
        lambda sid, text: query(f'UPDATE "{table}" SET sess = %s WHERE sid = %s', text, sid),
        lambda: query(f'DROP TABLE IF EXISTS "{table}"'),
    )


def _mysql() -> Place:
    import pymysql

    from sessionware.stores.mysql import SyncMySQLStore, connection_options

    url, table = require_mysql(), f"sw_enc_{uuid.uuid4().hex[:10]}"

    def query(sql: str, *args: Any) -> Any:
        with pymysql.connect(**connection_options(url, 5)) as connection:
            with connection.cursor() as cursor:
                cursor.execute(sql, args)
                row = cursor.fetchone() if sql.startswith("SELECT") else None
            connection.commit()
            return row

    return Place(
        lambda keys: SyncMySQLStore(url=url, table=table, encryption_keys=keys),
        lambda sid: query(f"SELECT data FROM `{table}` WHERE session_id = %s", sid)[0].encode(),
        lambda sid, text: query(f"UPDATE `{table}` SET data = %s WHERE session_id = %s", text, sid),
        lambda: query(f"DROP TABLE IF EXISTS `{table}`"),
    )


PLACES = {"redis": _redis, "sqlite": _sqlite, "postgres": _postgres, "mysql": _mysql}


@pytest.fixture(params=list(PLACES))
def place(request: pytest.FixtureRequest) -> Iterator[Place]:
    found = PLACES[request.param]()
    stores: list[Any] = []
    make = found.make
    found.make = lambda keys: stores.append(make(keys)) or stores[-1]
    yield found
    for store in stores:
        store.close()
    found.cleanup()


def test_the_server_holds_no_plaintext(place: Place) -> None:
    store = place.make([NEW_KEY])
    store.set("s1", session(password_hint=PLAIN, uid=7))
    raw = place.raw("s1")
    assert PLAIN.encode() not in raw and b"password_hint" not in raw and b"cookie" not in raw
    assert raw.startswith(b'"sw1:')
    assert store.get("s1")["password_hint"] == PLAIN


def test_a_rotated_key_still_opens_old_sessions(place: Place) -> None:
    place.make([OLD_KEY]).set("s1", session(n=1))
    rotated = place.make([NEW_KEY, OLD_KEY])
    assert rotated.get("s1")["n"] == 1
    rotated.set("s1", session(n=2))
    assert place.make([NEW_KEY]).get("s1")["n"] == 2, "the first key did not encrypt"
    with pytest.raises(SessionCorrupt, match="any of the encryption keys"):
        place.make([OLD_KEY]).get("s1")


def test_a_sealed_value_does_not_open_under_another_id(place: Place) -> None:
    store = place.make([NEW_KEY])
    store.set("victim", session(uid="admin"))
    store.set("attacker", session(uid="nobody"))
    place.put("attacker", place.raw("victim").decode())
    with pytest.raises(SessionCorrupt):
        store.get("attacker")


def test_an_unencrypted_value_is_refused(place: Place) -> None:
    store = place.make([NEW_KEY])
    store.set("s1", session(n=1))
    place.put("s1", '{"cookie":{"path":"/"},"uid":"admin"}')
    with pytest.raises(SessionCorrupt, match="not encrypted"):
        store.get("s1")


def test_a_wrong_key_gives_a_fresh_session(place: Place, caplog: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = environ[SESSION_KEY]
        if environ["PATH_INFO"] == "/login":
            session["uid"] = "ada"
        start_response("200 OK", [])
        return [str(session.get("uid")).encode()]

    writer = WSGISessionMiddleware(app, secret=SECRET, store=place.make([OLD_KEY]))
    with httpx.Client(transport=httpx.WSGITransport(app=writer), base_url="http://t") as client:
        client.get("/login")
        cookie = client.cookies["connect.sid"]
    reader = WSGISessionMiddleware(app, secret=SECRET, store=place.make([NEW_KEY]))
    with (
        httpx.Client(
            transport=httpx.WSGITransport(app=reader),
            base_url="http://t",
            cookies={"connect.sid": cookie},
        ) as client,
        caplog.at_level(logging.ERROR, logger="sessionware"),
    ):
        response = client.get("/me")
    assert (response.status_code, response.text) == (200, "None")
    assert "does not decrypt" in caplog.text


def test_encryption_under_asgi_with_the_async_redis_store(redis_prefix: str) -> None:
    import asyncio

    import redis

    from sessionware.stores.redis import RedisStore

    async def app(scope: Any, receive: Any, send: Any) -> None:
        session = scope["session"]
        session["secret_note"] = PLAIN
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": session.id.encode()})

    async def run() -> str:
        store = RedisStore(url=require_redis(), prefix=redis_prefix, encryption_keys=NEW_KEY)
        middleware = SessionMiddleware(app, secret=SECRET, store=store)
        transport = httpx.ASGITransport(app=middleware)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            sid = (await client.get("/")).text
        await store.aclose()
        return sid

    sid = asyncio.run(run())
    raw = redis.Redis.from_url(require_redis()).get(redis_prefix + sid)
    assert raw is not None and PLAIN.encode() not in raw


def test_keys_must_be_strong() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        Encryption(["short"])
    with pytest.raises(ValueError, match="at least one key"):
        Encryption([])


def test_the_user_index_works_on_sealed_sessions(place: Place) -> None:
    from sessionware.stores.base import index_users

    store = place.make([NEW_KEY])
    index_users(store, "uid")
    for sid in ("a", "b"):
        store.set(sid, session(uid="ann"))
    store.set("c", session(uid="bob"))
    assert sorted(store.user_sessions("ann")) == ["a", "b"]
    assert store.destroy_user_sessions("ann", keep="a") == 1
    assert list(store.user_sessions("ann")) == ["a"]
    assert PLAIN.encode() not in place.raw("a")

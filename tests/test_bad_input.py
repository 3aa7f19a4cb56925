"""Bad input from the network gives a fresh session: never an exception, never a store call with
an invalid sid."""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessionware import MemoryStore, SessionTooLarge
from sessionware._wire import encode_uri_component
from sessionware.options import is_valid_sid
from sessionware.signing import sign

from .harness import SECRET, Client, Req, middleware_for


class ValidatingStore(MemoryStore):
    """Fails the test if the middleware ever hands it a sid that did not pass validation."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def get(self, sid: str) -> Any:
        assert is_valid_sid(sid), f"invalid sid reached the store: {sid!r}"
        self.seen.append(sid)
        return super().get(sid)

    def set(self, sid: str, data: Any) -> None:
        assert is_valid_sid(sid), f"invalid sid reached the store: {sid!r}"
        super().set(sid, data)


def _visit(req: Req) -> None:
    req.session["visits"] = req.session.get("visits", 0) + 1
    req.end(str(req.session["visits"]))


def _client(transport: str, store: Any = None, **options: Any) -> Client:
    app = middleware_for(
        transport, _visit, secret=SECRET, store=store or ValidatingStore(), **options
    )
    return Client(app, transport)


def signed_cookie(sid: str, name: str = "connect.sid") -> str:
    return f"{name}={encode_uri_component('s:' + sign(sid, SECRET.encode()))}"


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.binary(max_size=300))
def test_arbitrary_cookie_bytes_give_a_fresh_session(transport: str, header: bytes) -> None:
    client = _client(transport)
    try:
        text = header.decode("latin-1")
        response = client.get("/", cookie=text)
    finally:
        client.close()
    assert response.status == 200
    assert response.text == "1"


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sid=st.text(min_size=1, max_size=80))
def test_signed_sids_with_odd_characters_never_reach_the_store(transport: str, sid: str) -> None:
    store = ValidatingStore()
    client = _client(transport, store=store)
    try:
        cookie = signed_cookie(sid)
        response = client.get("/", cookie=cookie)
    finally:
        client.close()
    assert response.status == 200
    assert store.seen == ([sid] if is_valid_sid(sid) else [])


@pytest.mark.parametrize(
    "cookie",
    [
        "connect.sid=" + "s%3A" + "a" * 10_000,
        "connect.sid=s:" + "\x00" * 40,
        "connect.sid=%ff%fe%fd",
        "connect.sid=s%3A%E0%80%80.sig",
        'connect.sid="s:unterminated',
        "connect.sid=; connect.sid=s:x.y",
        "connect.sid",
        ";;;;;=;=;",
        "connect.sid=s:" + "." * 50,
    ],
)
def test_malformed_cookies_give_a_fresh_session(transport: str, cookie: str) -> None:
    store = ValidatingStore()
    client = _client(transport, store=store)
    response = client.get("/", cookie=cookie)
    client.close()
    assert response.status == 200
    assert response.text == "1"
    assert response.set_cookie is not None
    assert store.seen == []


def test_unknown_but_valid_sid_is_never_adopted(transport: str) -> None:
    client = _client(transport)
    response = client.get("/", cookie=signed_cookie("attacker-chosen-session-id"))
    client.close()
    assert response.sid() != "attacker-chosen-session-id"


def test_duplicate_cookies_first_one_wins(transport: str) -> None:
    client = _client(transport)
    first = client.get("/")
    stale = signed_cookie("stale-sid")
    newest = client.get("/", cookie=f"{first.cookie()}; {stale}")
    assert newest.text == "2"
    other_order = client.get("/", cookie=f"{stale}; {first.cookie()}")
    client.close()
    assert other_order.text == "1"


def test_a_session_over_max_size_fails_and_keeps_the_stored_copy(
    transport: str, caplog: Any
) -> None:
    store = MemoryStore()

    def handler(req: Req) -> None:
        req.session["blob"] = "x" * int(req.headers.get("x-size", "10"))
        req.end()

    client = Client(
        middleware_for(transport, handler, secret=SECRET, store=store, max_size=1000), transport
    )
    first = client.get("/")
    assert first.status == 200
    before = store.get(first.sid())
    with caplog.at_level(logging.ERROR, logger="sessionware"):
        too_big = client.get("/", cookie=first.cookie(), headers={"x-size": "5000"})
    client.close()
    assert too_big.status == 500
    assert "max_size=1000" in caplog.text
    assert store.get(first.sid()) == before


def test_explicit_save_of_an_oversized_session_raises(transport: str) -> None:
    errors: list[Exception] = []

    def handler(req: Req) -> None:
        req.session["blob"] = "\u00e9" * 400
        try:
            req.save()
        except SessionTooLarge as exc:
            errors.append(exc)
        req.session.clear()
        req.end()

    client = Client(middleware_for(transport, handler, secret=SECRET, max_size=500), transport)
    response = client.get("/")
    client.close()
    assert response.status == 200
    assert len(errors) == 1


def test_non_json_values_fail_the_request_clearly(transport: str, caplog: Any) -> None:
    def handler(req: Req) -> None:
        req.session["tags"] = {"a", "b"}
        req.end()

    client = Client(middleware_for(transport, handler, secret=SECRET), transport)
    with caplog.at_level(logging.ERROR, logger="sessionware"):
        response = client.get("/")
    client.close()
    assert response.status == 500
    assert "cannot be stored as JSON" in caplog.text


def test_the_reserved_cookie_key_cannot_be_overwritten(transport: str) -> None:
    def handler(req: Req) -> None:
        try:
            req.session["cookie"] = "x"
        except KeyError as exc:
            req.end(str(exc))

    client = Client(middleware_for(transport, handler, secret=SECRET), transport)
    response = client.get("/")
    client.close()
    assert "reserved" in response.text


@pytest.mark.parametrize(
    "cookie",
    [
        '{"originalMaxAge":NaN,"expires":null,"path":"/"}',
        '{"originalMaxAge":Infinity,"expires":null,"path":"/"}',
        '{"originalMaxAge":1e300,"expires":"2026-01-01T00:00:00.000Z","path":"/"}',
        '{"originalMaxAge":100000000000000000000000,"expires":null,"path":"/"}',
        '{"originalMaxAge":null,"expires":"9999-12-31T23:59:59.999-05:00","path":"/"}',
    ],
)
def test_a_stored_cookie_out_of_range_gives_a_fresh_session(
    transport: str, cookie: str, tmp_path: Any, caplog: Any
) -> None:
    """A stored lifetime or expiry no date can hold (NaN, huge) is a corrupt session: logged, and
    a fresh session, never a 500 on every request with that cookie."""
    from sessionware.stores.sqlite import SQLiteStore

    store = SQLiteStore(str(tmp_path / "s.db"))
    client = _client(transport, store, cookie={"max_age": 60000})
    first = client.get("/")
    sid = first.sid()
    with sqlite3.connect(tmp_path / "s.db") as connection:
        (text,) = connection.execute("SELECT sess FROM sessions WHERE sid = ?", (sid,)).fetchone()
        start = text.index('"cookie":') + len('"cookie":')
        corrupt = text[:start] + cookie + text[text.index("}", start) + 1 :]
        connection.execute("UPDATE sessions SET sess = ? WHERE sid = ?", (corrupt, sid))
    with caplog.at_level(logging.WARNING, logger="sessionware"):
        response = client.get("/", cookie=first.cookie())
    client.close()
    store.close()
    assert response.status == 200
    assert response.text == "1"
    assert response.sid() != sid


def test_logs_name_a_session_by_a_hash_never_by_its_id(
    transport: str, tmp_path: Any, caplog: Any
) -> None:
    """A session id is a credential: a corrupt session's log line ties to it by ``sid#<hash>``,
    while the exception the app may catch keeps the id."""
    from sessionware import SessionCorrupt
    from sessionware.errors import sid_tag
    from sessionware.stores.sqlite import SQLiteStore

    path = tmp_path / "s.db"
    store = SQLiteStore(str(path))
    client = _client(transport, store, cookie={"max_age": 60000})
    first = client.get("/")
    sid = first.sid()
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE sessions SET sess = 'not json' WHERE sid = ?", (sid,))
    with caplog.at_level(logging.WARNING, logger="sessionware"):
        assert client.get("/", cookie=first.cookie()).status == 200
    client.close()
    assert sid_tag(sid) in caplog.text
    assert sid not in caplog.text
    with pytest.raises(SessionCorrupt, match=sid):
        store.get(sid)
    store.close()

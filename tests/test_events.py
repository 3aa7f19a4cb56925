"""The on_event option: what an operator is told about sessions, and never a session id."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sessionware import MemoryStore, SessionEvent
from sessionware.errors import sid_tag

from .harness import SECRET, Client, account_handler, middleware_for

_app = account_handler


def _events(events: list[SessionEvent]) -> list[tuple[str, str | None, str | None]]:
    return [(event.kind, event.reason, event.user) for event in events]


@pytest.mark.parametrize("transport", ["asgi", "wsgi"])
def test_login_logout_and_a_new_session_are_told(transport: str) -> None:
    events: list[SessionEvent] = []
    app = middleware_for(transport, _app, secret=SECRET, user_key="user", on_event=events.append)
    client = Client(app, transport)
    first = client.get("/write")
    assert _events(events) == [("created", None, None)]
    login = client.get("/login", cookie=first.cookie())
    assert _events(events)[1:] == [("regenerated", None, None)]
    client.get("/logout", cookie=login.cookie())
    assert _events(events)[2:] == [("destroyed", "logout", "ann")]
    sids = [first.cookie().split("=", 1)[1], login.cookie().split("=", 1)[1]]
    _assert_no_session_id(events, sids)
    assert events[0].sid_hash is not None and events[0].sid_hash.startswith("sid#")
    client.close()


@pytest.mark.parametrize("transport", ["asgi", "wsgi"])
def test_bad_and_unknown_cookies_are_told(transport: str) -> None:
    events: list[SessionEvent] = []
    app = middleware_for(transport, _app, secret=SECRET, on_event=events.append)
    client = Client(app, transport)
    client.get("/", cookie="connect.sid=s%3Aforged.signature")
    signed = app.engine.cookie_value("u" * 32)
    client.get("/", cookie=f"connect.sid={signed}")
    assert _events(events) == [
        ("invalid_cookie", "bad_signature", None),
        ("invalid_cookie", "unknown_id", None),
    ]
    assert all(event.sid_hash is None for event in events)
    client.close()


def test_an_idle_timeout_and_the_store_going_down_and_up_are_told() -> None:
    clock = [1000.0]
    store = MemoryStore(clock=lambda: clock[0])
    events: list[SessionEvent] = []
    app = middleware_for(
        "wsgi",
        _app,
        secret=SECRET,
        store=store,
        idle_timeout=60,
        user_key="user",
        clock=lambda: clock[0],
        on_event=events.append,
    )
    client = Client(app, "wsgi")
    login = client.get("/login")
    clock[0] += 61
    client.get("/", cookie=login.cookie())
    assert ("destroyed", "idle_timeout", "ann") in _events(events)
    store.emit("disconnect")
    store.emit("connect")
    assert _events(events)[-2:] == [
        ("store_unavailable", None, None),
        ("store_available", None, None),
    ]


def test_a_listener_that_raises_is_logged_and_the_request_served(caplog: Any) -> None:
    def broken(event: SessionEvent) -> None:
        raise RuntimeError("listener bug")

    app = middleware_for("asgi", _app, secret=SECRET, on_event=broken)
    client = Client(app, "asgi")
    response = client.get("/write")
    client.close()
    assert response.status == 200 and response.set_cookie is not None
    assert "the on_event listener failed on a 'created' event" in caplog.text


def test_on_event_must_be_callable() -> None:
    with pytest.raises(TypeError, match="on_event"):
        middleware_for("asgi", _app, secret=SECRET, on_event="print")


def _assert_no_session_id(events: list[SessionEvent], cookies: list[str]) -> None:
    """Every session is named by its hash, never by its id."""
    text = json.dumps([event.__dict__ for event in events])
    for cookie in cookies:
        sid = cookie.replace("s%3A", "", 1).rsplit(".", 1)[0]
        assert sid not in text
        assert sid_tag(sid) in text


def test_signing_out_the_other_devices_is_told() -> None:
    events: list[SessionEvent] = []
    store = MemoryStore()
    app = middleware_for(
        "wsgi", _app, secret=SECRET, store=store, user_key="user", on_event=events.append
    )
    client = Client(app, "wsgi")
    phone = client.get("/login")
    laptop = client.get("/login")
    client.get("/others", cookie=laptop.cookie())
    assert _events(events)[-1] == ("destroyed", "revoked", "ann")
    assert events[-1].sid_hash is None, "several sessions ended: none is named"
    assert store.get(phone.cookie().split("=", 1)[1].replace("s%3A", "").rsplit(".", 1)[0]) is None

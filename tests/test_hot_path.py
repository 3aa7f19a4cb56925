"""What the hot path's shortcuts must never change (the performance issue): a cached Cookie
header resolves as parsing it would, a session that reuses its loaded JSON is still saved
whenever it changed, and data the memory store shares never changes through a session."""

from __future__ import annotations

from typing import Any

import pytest

from sessionware import MemoryStore

from .harness import SECRET, Client, Req, middleware_for


def _echo_sid(req: Req) -> None:
    if req.path == "/write":
        req.session["n"] = 1
    req.end(req.session.id)


@pytest.mark.parametrize("transport", ["asgi", "wsgi"])
def test_a_cached_cookie_header_resolves_as_parsing_it_does(transport: str) -> None:
    app = middleware_for(transport, _echo_sid, secret=SECRET, store=MemoryStore())
    client = Client(app, transport)
    first = client.get("/write")
    header = first.cookie()
    tampered = header[:-1] + ("A" if header[-1] != "A" else "B")
    long = f"{header}; other={'x' * 600}"
    for _ in range(2):  # the first time parsed and verified, then from the cache
        assert client.get("/", cookie=header).text == first.sid()
        assert client.get("/", cookie=long).text == first.sid()
        assert client.get("/", cookie=tampered).text != first.sid()
    cached = app.engine._sid_by_header
    assert len(cached) == 1, "only the valid, short header is remembered"


def _change(req: Req) -> None:
    session = req.session
    if req.path.startswith("/init"):
        session["a"] = 1
        session["b"] = 1
        if req.path == "/init-list":
            session["items"] = [1]
    elif req.path == "/append":
        session["items"].append(2)
    elif req.path == "/reorder":
        dict.__setitem__(session, "a", dict.pop(session, "a"))
    elif req.path == "/pop":
        session.pop("a")
    req.end("ok")


@pytest.mark.parametrize("transport", ["asgi", "wsgi"])
@pytest.mark.parametrize("kind", ["flat", "list"])
def test_a_session_changed_without_an_assignment_is_still_saved(transport: str, kind: str) -> None:
    """A flat session (all values immutable) takes the no-encoding shortcut on every request
    here; one holding a list never does."""
    store = MemoryStore()
    client = Client(
        middleware_for(transport, _change, secret=SECRET, store=store, resave=False), transport
    )
    first = client.get(f"/init-{kind}")
    cookie, sid = first.cookie(), first.sid()

    def stored() -> dict[str, Any]:
        data = dict(store.get(sid))
        del data["cookie"]
        return data

    expected: dict[str, Any] = {"a": 1, "b": 1, **({"items": [1]} if kind == "list" else {})}
    client.get("/", cookie=cookie)
    assert stored() == expected
    if kind == "list":
        client.get("/append", cookie=cookie)
        assert stored()["items"] == [1, 2]
    client.get("/reorder", cookie=cookie)
    order = list(stored())
    assert (order[0], order[-1]) == ("b", "a"), "the same values in another order is a change"
    client.get("/pop", cookie=cookie)
    assert "a" not in stored()


def test_data_the_memory_store_shares_never_changes_through_a_session() -> None:
    store = MemoryStore()
    engine = middleware_for("asgi", _echo_sid, secret=SECRET, store=store).engine
    cookie = {"originalMaxAge": None, "path": "/"}
    store.set("s" * 32, {"cookie": cookie, "n": 1})
    shared = store.get_record("s" * 32)
    again = store.get_record("s" * 32)
    assert shared is not None and again is not None
    assert again.data is shared.data, "flat data is shared, not decoded for each reader"
    session = engine.flow_for("s" * 32).loaded(shared)
    session["n"] = 5
    assert shared.data == {"n": 1} and store.get("s" * 32)["n"] == 1
    store.set("t" * 32, {"cookie": cookie, "items": [1]})
    first, second = store.get_record("t" * 32), store.get_record("t" * 32)
    assert first is not None and second is not None
    assert first.data is not second.data, "data with a list in it is decoded for each reader"

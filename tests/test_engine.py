"""express-session's end-of-request decisions, at the engine, with no adapter and no store: a
request's facts in (the options, the store's ``touch``, the cookie presented, what the app did),
the Set-Cookie and the store calls out. One row per case of express's own tests (its ids, as in
test_express_session.py) and of its outcome table; the rows sessionware adds say why."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest

from sessionware._engine import Engine, Flow, Outcome
from sessionware._records import Calls, Get, SessionRecord, StoreCall
from sessionware._wire import now_ms
from sessionware.cookie import _iso_from_ms
from sessionware.options import session_options
from sessionware.session import SessionBase, SyncSession

SECRET = "a secret of thirty-two bytes or more!"
KNOWN = "K" * 32
UNKNOWN = "U" * 32


@dataclass
class Recorder:
    """A store runner: answers reads from ``stored`` and records every call."""

    stored: dict[str, Any] = field(default_factory=dict)
    calls: list[StoreCall] = field(default_factory=list)

    def call(self, call: StoreCall) -> Any:
        self.calls.append(call)
        return self.stored.get(call.sid) if isinstance(call, Get) else None

    async def acall(self, call: StoreCall) -> Any:
        return self.call(call)


def stored_session(*, persistent: bool, active_ms: int | None = None) -> dict[str, Any]:
    if persistent:
        cookie = {"originalMaxAge": 60_000, "expires": _iso_from_ms(now_ms() + 60_000)}
    else:
        cookie = {"originalMaxAge": None, "expires": None}
    data: dict[str, Any] = {"cookie": {**cookie, "httpOnly": True, "path": "/"}, "n": 1}
    if active_ms is not None:
        data["__sessionware"] = {"created": active_ms, "active": active_ms}
    return data


def names(calls: list[StoreCall] | StoreCall | None) -> list[str]:
    if calls is None:
        return []
    if isinstance(calls, Calls):
        return names(list(calls.calls))
    if not isinstance(calls, list):
        return [type(calls).__name__.lower()]
    return [name for call in calls for name in names(call)]


def cookie_kind(outcome: Outcome) -> str | None:
    if outcome.set_cookie is None:
        return None
    return "expire" if "=;" in outcome.set_cookie else "set"


# What the app does with the session during the request.
def nothing(session: SessionBase) -> object:
    return session


def write(session: SessionBase) -> object:
    session["n"] = 2
    return session


def save(session: SessionBase) -> object:
    assert isinstance(session, SyncSession)
    session.save()
    return session


def write_and_save(session: SessionBase) -> object:
    return save(write(session))


def regenerate(session: SessionBase) -> object:
    assert isinstance(session, SyncSession)
    session.regenerate()
    return session


def destroy(session: SessionBase) -> object:
    assert isinstance(session, SyncSession)
    session.destroy()
    return session


def unset(session: SessionBase) -> object:
    return None


@dataclass
class Row:
    case: str
    presented: str  # "none", "known" (in the store) or "unknown" (signed, not in the store)
    app: Callable[[SessionBase], object]
    cookie: str | None  # "set", "expire" or None
    during: list[str]  # the calls the session's own methods made
    end: list[str]  # the calls the end of the request asks for
    options: dict[str, Any] = field(default_factory=dict)
    touch: bool = True
    persistent: bool = False


ROWS = [
    Row("S072", "none", nothing, "set", [], ["set"], {"save_uninitialized": True}),
    Row("S071", "none", nothing, None, [], [], {"save_uninitialized": False}),
    Row("S085", "none", nothing, None, [], [], {"save_uninitialized": False, "rolling": True}),
    Row("S073", "none", write, "set", [], ["set"], {"save_uninitialized": False}),
    Row("S113", "none", write_and_save, "set", ["set"], [], {"save_uninitialized": False}),
    Row("saved-new", "none", save, "set", ["set"], [], {"save_uninitialized": True}),
    Row("S022", "unknown", nothing, "set", ["get"], ["set"], {"save_uninitialized": True}),
    Row("S076", "known", nothing, None, ["get"], ["touch"], {"resave": False}),
    Row("no-touch", "known", nothing, None, ["get"], [], {"resave": False}, touch=False),
    Row("S077", "known", write, None, ["get"], ["set"], {"resave": False}),
    Row("S101", "known", write, "set", ["get"], ["set"], {"resave": False}, persistent=True),
    Row("S075", "known", nothing, None, ["get"], ["set"], {"resave": True}),
    Row("resaved", "known", save, None, ["get", "set"], ["touch"], {"resave": True}),
    Row("S111", "known", write_and_save, None, ["get", "set"], ["touch"], {"resave": False}),
    Row("S070", "known", nothing, "set", ["get"], ["touch"], {"rolling": True}),
    Row("S106", "known", regenerate, "set", ["get", "destroy"], ["set"]),
    Row("S105", "known", destroy, "expire", ["get", "destroy"], []),
    Row("S093", "known", unset, None, ["get"], [], {"unset": "keep"}),
    Row("S094", "known", unset, "expire", ["get"], ["destroy"], {"unset": "destroy"}),
    Row("S095", "none", unset, None, [], ["destroy"], {"unset": "destroy"}),
]


def run_request(row: Row, *, streamed: bool, stored: object = None) -> Any:
    recorder = Recorder({KNOWN: stored or stored_session(persistent=row.persistent)})
    options = session_options({"secret": SECRET, **row.options})
    engine = Engine(options, partial(SyncSession, recorder), has_touch=row.touch, on_corrupt=print)
    sid = {"none": None, "known": KNOWN, "unknown": UNKNOWN}[row.presented]
    header = None if sid is None else f"connect.sid={engine.cookie_value(sid)}"
    flow = engine.begin(None, "/", header, "http", None)
    assert isinstance(flow, Flow)
    read = flow.load_call()
    session = flow.loaded(None if read is None else recorder.call(read))
    current = row.app(session)
    if streamed:  # the header goes with the first chunk, the store call before the last
        headers = flow.finish(current, call=False)
        outcome = flow.finish(current, header=False)
        assert outcome.set_cookie is None
        outcome = Outcome(headers.set_cookie, outcome.call, headers.vary)
    else:
        outcome = flow.finish(current)
    return cookie_kind(outcome), names(recorder.calls), names(outcome.call)


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("row", ROWS, ids=[row.case for row in ROWS])
def test_the_end_of_a_request_decides_as_express_does(row: Row, streamed: bool) -> None:
    assert run_request(row, streamed=streamed) == (row.cookie, row.during, row.end)


def test_a_session_past_its_idle_timeout_is_destroyed_and_replaced() -> None:
    """sessionware's timeouts: the expired session is destroyed with the end-of-request call,
    before the fresh one is saved."""
    row = Row("idle", "known", write, "set", ["get"], ["destroy", "set"], {"idle_timeout": 60})
    stored = stored_session(persistent=False, active_ms=now_ms() - 61_000)
    assert run_request(row, streamed=False, stored=stored) == (row.cookie, row.during, row.end)


@pytest.mark.parametrize(("lifetime_at_read", "end"), [(60_000, []), (30_000, ["touch"])])
def test_a_session_the_store_touched_as_it_read_needs_no_touch(
    lifetime_at_read: int, end: list[str]
) -> None:
    """sessionware's read path: a store that reset the expiry as it read (Redis ``GETEX``)
    marks the record, and a read-only request then ends with no store call, unless the lifetime
    it gave differs from the session's."""
    data = stored_session(persistent=True)
    record = SessionRecord(data.pop("cookie"), data, '{"n":1}')
    record.touched_ms = lifetime_at_read
    row = Row("touched", "known", nothing, None, ["get"], end, persistent=True)
    assert run_request(row, streamed=False, stored=record) == (row.cookie, row.during, row.end)


def test_a_decision_is_made_once_per_request() -> None:
    """A second ``finish`` (an adapter that ends twice) asks for nothing: the flow let go of the
    session with its first store decision."""
    recorder = Recorder()
    engine = Engine(
        session_options({"secret": SECRET, "save_uninitialized": True}),
        partial(SyncSession, recorder),
        has_touch=True,
        on_corrupt=print,
    )
    flow = engine.begin(None, "/", None, "http", None)
    assert flow is not None
    session = flow.loaded(None)
    assert names(flow.finish(session).call) == ["set"]
    again = flow.finish(session)
    assert (again.set_cookie, again.call) == (None, None)

"""The store contract, run against every store (``stores.FACTORIES``), sync and async.

What the seed's Store interface promises: get/set/destroy, touch moves only the expiry,
all/length/clear, expiry honoured (time moved by the harness, never slept through), unknown ids,
concurrent sets, and what a store does with data that is not a session.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sessionware import SessionCorrupt
from sessionware._records import Base, SessionRecord
from sessionware._wire import now_ms
from sessionware.cookie import _iso_from_ms
from sessionware.stores.base import index_users

from .stores import FACTORIES, JSON_COLUMNS, PLANTABLE, Harness, harness_for


def session(seconds: float | None = 60, **data: Any) -> dict[str, Any]:
    expires = None if seconds is None else _iso_from_ms(now_ms() + round(seconds * 1000))
    original = None if seconds is None else round(seconds * 1000)
    return {
        "cookie": {"originalMaxAge": original, "expires": expires, "httpOnly": True, "path": "/"},
        **data,
    }


@pytest.fixture(params=list(FACTORIES))
def store(request: pytest.FixtureRequest) -> Iterator[Harness]:
    with harness_for(request.param) as harness:
        yield harness


@pytest.fixture(params=PLANTABLE)
def plantable(request: pytest.FixtureRequest) -> Iterator[Harness]:
    with harness_for(request.param) as harness:
        yield harness


NAN = b'{"cookie":{"originalMaxAge":null,"path":"/"},"n":NaN}'
NOT_SESSIONS = [b"not json", b"[1,2]", b"42", b'"text"', b"{", NAN]
CORRUPT_CASES = [
    pytest.param(name, raw, id=f"{name}-{raw.decode()}")
    for name in PLANTABLE
    for raw in NOT_SESSIONS
    if name not in JSON_COLUMNS or raw not in (b"not json", b"{", NAN)
]


def test_unknown_ids_are_none(store: Harness) -> None:
    assert store.call("get", "never-stored") is None
    store.call("destroy", "never-stored")
    assert store.call("get", "never-stored") is None


def test_set_then_get_gives_the_session_back(store: Harness) -> None:
    stored = session(user={"id": 7, "roles": ["a", "b"]}, n=1.5, flag=None, text="é")
    store.call("set", "abc", stored)
    assert store.call("get", "abc") == stored


def test_set_replaces_the_whole_session(store: Harness) -> None:
    store.call("set", "abc", session(a=1, b=2))
    store.call("set", "abc", session(a=3))
    got = store.call("get", "abc")
    assert (got["a"], "b" in got) == (3, False)


def test_what_get_returns_is_a_copy(store: Harness) -> None:
    store.call("set", "abc", session(items=[1]))
    store.call("get", "abc")["items"].append(2)
    assert store.call("get", "abc")["items"] == [1]


def test_destroy_removes_only_that_session(store: Harness) -> None:
    store.call("set", "a", session(n=1))
    store.call("set", "b", session(n=2))
    store.call("destroy", "a")
    assert store.call("get", "a") is None
    assert store.call("get", "b")["n"] == 2


def test_expiry_is_honoured(store: Harness) -> None:
    store.call("set", "abc", session(60, n=1))
    store.advance(30)
    assert store.call("get", "abc")["n"] == 1
    store.advance(35)  # past the expiry, with room for stores that count whole seconds
    assert store.call("get", "abc") is None
    assert store.call("length") == 0
    assert "abc" not in store.call("all")


def test_a_session_expired_when_written_is_not_kept(store: Harness) -> None:
    store.call("set", "abc", session(-5, n=1))
    assert store.call("get", "abc") is None


def test_touch_moves_only_the_expiry(store: Harness) -> None:
    store.call("set", "abc", session(60, n=1))
    store.call("touch", "abc", session(120, n=999))
    store.advance(90)
    got = store.call("get", "abc")
    assert got is not None, "touch did not extend the session's lifetime"
    assert got["n"] == 1, "touch rewrote the session's data"


def test_touch_never_brings_back_a_gone_session(store: Harness) -> None:
    store.call("touch", "ghost", session(60, n=1))
    assert store.call("get", "ghost") is None


def test_all_length_and_clear(store: Harness) -> None:
    for index in range(3):
        store.call("set", f"s{index}", session(n=index))
    assert store.call("length") == 3
    everything = store.call("all")
    assert {sid: data["n"] for sid, data in everything.items()} == {"s0": 0, "s1": 1, "s2": 2}
    store.call("clear")
    assert store.call("length") == 0
    assert store.call("all") == {}


def test_concurrent_sets_of_different_sessions_all_land(store: Harness) -> None:
    store.gather([("set", (f"c{index}", session(n=index))) for index in range(50)])
    assert store.call("length") == 50
    assert all(store.call("get", f"c{index}")["n"] == index for index in range(50))


def test_concurrent_sets_of_one_session_leave_one_whole_value(store: Harness) -> None:
    store.gather([("set", ("one", session(n=index, pad="x" * 1000))) for index in range(30)])
    got = store.call("get", "one")
    assert got["n"] in range(30)
    assert got["pad"] == "x" * 1000


def test_a_stored_null_is_not_found(plantable: Harness) -> None:
    plantable.plant("abc", b"null")  # type: ignore[misc]
    assert plantable.call("get", "abc") is None


@pytest.mark.parametrize(("name", "raw"), CORRUPT_CASES)
def test_data_that_is_not_a_session_is_session_corrupt(name: str, raw: bytes) -> None:
    with harness_for(name) as plantable:
        plantable.plant("abc", raw)  # type: ignore[misc]
        with pytest.raises(SessionCorrupt, match="abc"):
            plantable.call("get", "abc")
        plantable.call("set", "ok", session(n=1))
        assert plantable.call("all") == {"ok": plantable.call("get", "ok")}


# -- the per-user index (user_key) -------------------------------------------------------------


@pytest.fixture
def indexed(store: Harness) -> Harness:
    index_users(store.store, "uid")
    return store


def test_a_users_sessions_are_listed_and_no_one_elses(indexed: Harness) -> None:
    indexed.call("set", "a1", session(uid=7, device="phone"))
    indexed.call("set", "a2", session(uid="7", device="laptop"))
    indexed.call("set", "b1", session(uid=8))
    indexed.call("set", "anon", session(n=1))
    listed = indexed.call("user_sessions", 7)
    assert {sid: data["device"] for sid, data in listed.items()} == {
        "a1": "phone",
        "a2": "laptop",
    }
    assert listed == indexed.call("user_sessions", "7")
    assert list(indexed.call("user_sessions", 8)) == ["b1"]
    assert indexed.call("user_sessions", 9) == {}


def test_a_session_follows_its_user_when_they_change(indexed: Harness) -> None:
    indexed.call("set", "s", session(uid="alice"))
    indexed.call("set", "s", session(uid="bob"))
    assert indexed.call("user_sessions", "alice") == {}
    assert list(indexed.call("user_sessions", "bob")) == ["s"]
    indexed.call("set", "s", session(n=1))  # signed out: the key is gone
    assert indexed.call("user_sessions", "bob") == {}


def test_a_merged_save_indexes_the_merged_user(indexed: Harness) -> None:
    indexed.call("set", "s", session(uid="alice"))
    loaded = indexed.call("get_record", "s")
    indexed.call("set", "s", session(uid="alice", other=1))  # another request wrote meanwhile
    changed = SessionRecord.from_dict(session(uid="bob"))
    indexed.call("merge_record", "s", changed, Base(loaded.token, loaded.data_json))
    assert indexed.call("get", "s")["other"] == 1
    assert indexed.call("user_sessions", "alice") == {}
    assert list(indexed.call("user_sessions", "bob")) == ["s"]


def test_destroyed_and_expired_sessions_leave_the_list(indexed: Harness) -> None:
    indexed.call("set", "short", session(30, uid="u"))
    indexed.call("set", "long", session(600, uid="u"))
    indexed.call("set", "gone", session(600, uid="u"))
    indexed.call("destroy", "gone")
    assert sorted(indexed.call("user_sessions", "u")) == ["long", "short"]
    indexed.advance(45)
    assert list(indexed.call("user_sessions", "u")) == ["long"]


def test_destroy_user_sessions_keeps_the_one_asked_for(indexed: Harness) -> None:
    for sid in ("here", "phone", "laptop"):
        indexed.call("set", sid, session(uid=42))
    indexed.call("set", "someone-else", session(uid=43))
    assert indexed.call("destroy_user_sessions", 42, "here") == 2
    assert indexed.call("get", "phone") is None
    assert indexed.call("get", "laptop") is None
    assert indexed.call("get", "here")["uid"] == 42
    assert indexed.call("get", "someone-else")["uid"] == 43
    assert list(indexed.call("user_sessions", 42)) == ["here"]
    assert indexed.call("destroy_user_sessions", 42) == 1
    assert indexed.call("user_sessions", 42) == {}


def test_a_store_without_user_key_refuses_to_list(store: Harness) -> None:
    with pytest.raises(TypeError, match="user_key"):
        store.call("user_sessions", 1)


def test_users_are_non_empty_text_or_ints(indexed: Harness) -> None:
    for user in ("", None, 1.5, True):
        with pytest.raises(TypeError):
            indexed.call("user_sessions", user)


def test_every_string_json_carries_is_stored_and_read_back(store: Harness) -> None:
    """A lone surrogate is valid JSON (``"\\ud800"``) but no UTF-8: it is stored escaped, as
    JSON.stringify writes it, and read back as it was, in every store."""
    data = {"name": "\ud800", "tail": "x\udfff", "list": ["\udc00", "ok"]}
    store.call("set", "surrogates", session(60, **data))
    got = store.call("get", "surrogates")
    assert {key: got[key] for key in data} == data


@pytest.mark.parametrize("sid", ["victim ", "victim\n", "victim\r", " victim", "", "a b"])
def test_an_id_no_cookie_could_carry_never_reaches_the_database(
    plantable: Harness, sid: str
) -> None:
    """MySQL's PAD SPACE collations would find "victim" for "victim ": such an id is refused
    before any query, by every method that takes one."""
    plantable.call("set", "victim", session(60, user="victim"))
    record = SessionRecord.from_dict(session(60, user="attacker"))
    for method, args in [
        ("get", ()),
        ("destroy", ()),
        ("set", (session(60, user="attacker"),)),
        ("touch", (session(60),)),
        ("merge_record", (record, Base(None, "{}"))),
    ]:
        with pytest.raises(ValueError, match="not a valid session id"):
            plantable.call(method, sid, *args)
    assert plantable.call("get", "victim")["user"] == "victim"


def test_concurrent_merges_never_store_more_than_max_size(store: Harness) -> None:
    """Ten requests loaded the same session and each adds its own 40 KB key: each alone is under
    the limit, together they are not. The merges that would pass it fail (``SessionTooLarge``)
    and no stored copy is ever over it."""
    from sessionware import SessionTooLarge

    limit = 100_000
    store.call("set", "big", session(60, n=0))
    loaded = store.call("get_record", "big")
    base = Base(loaded.token, loaded.data_json, max_size=limit)
    refused = 0
    for index in range(10):
        record = SessionRecord.from_dict(session(60, n=0, **{f"k{index}": "x" * 40_000}))
        try:
            store.call("merge_record", "big", record, base)
        except SessionTooLarge:
            refused += 1
        stored = store.call("get_record", "big")
        assert len(stored.json.encode()) <= limit
    assert refused == 8
    assert sorted(store.call("get", "big")) == ["cookie", "k0", "k1", "n"]

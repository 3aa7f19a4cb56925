"""Store contracts: custom stores in both styles under both adapters, MemoryStore, events."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import Any

import pytest

from sessionware import (
    MemoryStore,
    Session,
    Store,
    StoreUnavailable,
    SyncSession,
    SyncStore,
    aload_session,
    load_session,
)

from .contract.stores import FakeClock
from .harness import SECRET, Client, Req, middleware_for


class DictAsyncStore(Store):
    """An async store written with only the three required methods."""

    def __init__(self) -> None:
        self.sessions: dict[str, str] = {}
        self.loops: set[int] = set()

    async def get(self, sid: str) -> Any:
        self.loops.add(id(asyncio.get_running_loop()))
        text = self.sessions.get(sid)
        return None if text is None else json.loads(text)

    async def set(self, sid: str, data: Any) -> None:
        self.loops.add(id(asyncio.get_running_loop()))
        self.sessions[sid] = json.dumps(data)

    async def destroy(self, sid: str) -> None:
        self.sessions.pop(sid, None)


class ThreadRecordingStore(SyncStore):
    def __init__(self) -> None:
        self.sessions: dict[str, Any] = {}
        self.threads: set[str] = set()

    def get(self, sid: str) -> Any:
        self.threads.add(threading.current_thread().name)
        return self.sessions.get(sid)

    def set(self, sid: str, data: Any) -> None:
        self.threads.add(threading.current_thread().name)
        self.sessions[sid] = json.loads(json.dumps(data))

    def destroy(self, sid: str) -> None:
        self.sessions.pop(sid, None)


def _counter(req: Req) -> None:
    if req.path == "/regenerate":
        req.regenerate()
    req.session["n"] = req.session.get("n", 0) + 1
    req.end(str(req.session["n"]))


@pytest.mark.parametrize("store_class", [DictAsyncStore, ThreadRecordingStore])
def test_custom_stores_work_under_both_adapters(transport: str, store_class: type) -> None:
    store = store_class()
    client = Client(middleware_for(transport, _counter, secret=SECRET, store=store), transport)
    first = client.get("/")
    second = client.get("/", cookie=first.cookie())
    renewed = client.get("/regenerate", cookie=first.cookie())
    client.close()
    assert (first.text, second.text, renewed.text) == ("1", "2", "1")
    assert list(store.sessions) == [renewed.sid()]


def test_async_store_under_wsgi_keeps_one_event_loop() -> None:
    store = DictAsyncStore()
    client = Client(middleware_for("wsgi", _counter, secret=SECRET, store=store), "wsgi")
    cookie = client.get("/").cookie()
    for _ in range(3):
        client.get("/", cookie=cookie)
    assert len(store.loops) == 1


def test_blocking_sync_store_under_asgi_runs_off_the_event_loop() -> None:
    store = ThreadRecordingStore()
    client = Client(middleware_for("asgi", _counter, secret=SECRET, store=store), "asgi")
    client.get("/")
    client.close()
    assert threading.main_thread().name not in store.threads


def test_store_load_and_create_session_give_usable_sessions() -> None:
    store = MemoryStore()
    client = Client(middleware_for("wsgi", _counter, secret=SECRET, store=store), "wsgi")
    sid = client.get("/").sid()
    session = load_session(store, sid)
    assert isinstance(session, SyncSession)
    assert session["n"] == 1
    session["n"] = 41
    session.save()
    assert store.get(sid)["n"] == 41
    session.destroy()
    assert store.get(sid) is None
    assert load_session(store, "missing") is None


def test_async_store_load_gives_an_async_session() -> None:
    async def scenario() -> None:
        store = DictAsyncStore()
        await store.set("abc", {"cookie": {"originalMaxAge": None, "expires": None}, "x": 1})
        session = await aload_session(store, "abc")
        assert isinstance(session, Session)
        session["x"] = 2
        await session.save()
        assert (await store.get("abc"))["x"] == 2

    asyncio.run(scenario())


class TestMemoryStore:
    def record(self, expires: str | None = None, **data: Any) -> dict[str, Any]:
        return {"cookie": {"originalMaxAge": None, "expires": expires, "path": "/"}, **data}

    def test_returns_copies_not_references(self) -> None:
        store = MemoryStore()
        data = self.record(items=[1])
        store.set("a", data)
        data["items"].append(2)
        copy = store.get("a")
        copy["items"].append(3)
        assert store.get("a")["items"] == [1]

    def test_expired_sessions_are_invisible_and_dropped(self) -> None:
        store = MemoryStore()
        store.set("old", self.record("2000-01-01T00:00:00.000Z"))
        store.set("new", self.record("2999-01-01T00:00:00.000Z"))
        store.set("forever", self.record(None))
        assert store.get("old") is None
        assert sorted(store.all()) == ["forever", "new"]
        assert store.length() == 2

    def test_browser_session_cookies_sessions_live_for_the_ttl(self) -> None:
        """Sessions whose cookie has no expiry get the other stores' lifetime (``ttl``, one
        day by default) from their last write or touch, so memory is bounded by live sessions."""
        now = [1_000_000.0]
        store = MemoryStore(clock=lambda: now[0])
        for index in range(300):
            store.set(f"s{index}", self.record(None, n=index))
        now[0] += 86400 - 1
        store.touch("s0", self.record(None))
        assert store.length() == 300
        now[0] += 2
        assert store.length() == 1
        store.set("s1", self.record(None))  # a write drops expired entries as it goes
        assert sorted(store.ids()) == ["s0", "s1"]
        now[0] += 86400
        assert store.length() == 0
        short = MemoryStore(clock=lambda: now[0], ttl=60)
        short.set("a", self.record(None))
        now[0] += 61
        assert short.get("a") is None
        with pytest.raises(ValueError, match="ttl"):
            MemoryStore(ttl=0)

    def test_touch_replaces_the_cookie_and_never_resurrects(self) -> None:
        store = MemoryStore()
        store.set("a", self.record(None, x=1))
        store.touch("a", self.record("2999-01-01T00:00:00.000Z", x=99))
        assert store.get("a") == self.record("2999-01-01T00:00:00.000Z", x=1)
        store.destroy("a")
        store.touch("a", self.record(None, x=1))
        assert store.get("a") is None

    def test_a_read_only_request_is_touched_as_it_reads(self) -> None:
        """A read renews the session in the same store call (as Redis's GETEX): the request
        needs no touch at its end, and the session lives on from the read."""
        clock = FakeClock()

        class Counting(MemoryStore):
            touches = 0

            def touch_record(self, sid: str, record: Any) -> None:
                Counting.touches += 1
                super().touch_record(sid, record)

        store = Counting(clock=clock)
        app = middleware_for(
            "asgi", _count_handler, secret=SECRET, store=store, cookie={"max_age": 60}
        )
        client = Client(app, "asgi")
        cookie = client.get("/login").cookie()
        for _ in range(3):
            clock.advance(50)
            assert client.get("/", cookie=cookie).text == "1"
        assert Counting.touches == 0
        clock.advance(61)
        assert client.get("/", cookie=cookie).text == "None"
        client.close()

    def test_clear_and_ids(self) -> None:
        store = MemoryStore()
        store.set("a", self.record())
        store.set("b", self.record())
        assert sorted(store.ids()) == ["a", "b"]
        store.clear()
        assert store.length() == 0

    def test_expired_entries_are_swept_without_being_read(self) -> None:
        store = MemoryStore()
        for index in range(2000):
            store.set(f"old{index}", self.record("2000-01-01T00:00:00.000Z"))
        for index in range(2100):
            store.set(f"new{index}", self.record())
        assert len(store._entries) < 4100
        assert all(not sid.startswith("old") for sid in store._entries)

    def test_max_sessions_evicts_the_least_recently_written(self) -> None:
        store = MemoryStore(max_sessions=2)
        store.set("a", self.record())
        store.set("b", self.record())
        store.set("a", self.record(v=2))
        store.set("c", self.record())
        assert sorted(store.ids()) == ["a", "c"]

    def test_max_sessions_prefers_dropping_expired_sessions(self) -> None:
        store = MemoryStore(max_sessions=2)
        store.set("live", self.record())
        store.set("dead", self.record("2000-01-01T00:00:00.000Z"))
        store.set("new", self.record())
        assert sorted(store.ids()) == ["live", "new"]

    def test_rejects_a_bad_bound(self) -> None:
        with pytest.raises(ValueError, match="max_sessions"):
            MemoryStore(max_sessions=0)

    def test_is_safe_under_concurrent_writers(self) -> None:
        store = MemoryStore(max_sessions=500)

        def writer(prefix: str) -> None:
            for index in range(2000):
                store.set(f"{prefix}{index}", self.record())
                store.length()

        threads = [threading.Thread(target=writer, args=(p,)) for p in "abcd"]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert store.length() <= 500


class FlakyStore(MemoryStore):
    down = False
    writes_down = False

    def get(self, sid: str) -> Any:
        if self.down:
            raise StoreUnavailable("connection refused")
        return super().get(sid)

    def set(self, sid: str, data: Any) -> None:
        if self.down or self.writes_down:
            raise StoreUnavailable("connection refused")
        super().set(sid, data)


def _has_session(req: Req) -> None:
    if req.session is not None:
        req.session["seen"] = True
    req.end(str(req.session is not None))


@pytest.mark.parametrize("mode", ["pass", "error"])
def test_disconnect_event_passes_through_or_fails_fast(transport: str, mode: str) -> None:
    store = MemoryStore()
    client = Client(
        middleware_for(transport, _has_session, secret=SECRET, store=store, store_unavailable=mode),
        transport,
    )
    store.emit("disconnect")
    down = client.get("/")
    store.emit("connect")
    up = client.get("/")
    client.close()
    if mode == "pass":
        assert (down.status, down.text) == (200, "False")
    else:
        assert down.status == 503
    assert (up.status, up.text) == (200, "True")


@pytest.mark.parametrize("mode", ["pass", "error"])
def test_an_unavailable_store_on_load_behaves_like_a_disconnect(
    transport: str, mode: str, caplog: Any
) -> None:
    store = FlakyStore()
    client = Client(
        middleware_for(transport, _has_session, secret=SECRET, store=store, store_unavailable=mode),
        transport,
    )
    cookie = client.get("/").cookie()
    store.down = True
    with caplog.at_level(logging.WARNING, logger="sessionware"):
        response = client.get("/", cookie=cookie)
    client.close()
    assert response.status == (200 if mode == "pass" else 503)
    if mode == "pass":
        assert response.text == "False"


def test_an_unavailable_store_on_save_is_a_503(transport: str) -> None:
    store = FlakyStore()
    client = Client(middleware_for(transport, _counter, secret=SECRET, store=store), transport)
    cookie = client.get("/").cookie()
    store.writes_down = True
    response = client.get("/", cookie=cookie)
    client.close()
    assert response.status == 503
    assert response.set_cookie is None


def test_unhandled_store_errors_are_logged(caplog: Any) -> None:
    store = MemoryStore()
    with caplog.at_level(logging.ERROR, logger="sessionware"):
        store.emit("error", RuntimeError("lost connection"))
    assert "lost connection" in caplog.text


def test_streamed_response_store_failure_is_logged_and_the_body_completes(
    transport: str, caplog: Any
) -> None:
    class BadSet(MemoryStore):
        def set(self, sid: str, data: Any) -> None:
            raise RuntimeError("boom!")

    def handler(req: Req) -> None:
        req.session["x"] = 1
        req.write("a")
        req.end("b")

    client = Client(middleware_for(transport, handler, secret=SECRET, store=BadSet()), transport)
    with caplog.at_level(logging.ERROR, logger="sessionware"):
        response = client.get("/")
    client.close()
    assert (response.status, response.text) == (200, "ab")
    assert "boom!" in caplog.text


def test_a_slow_async_store_does_not_block_other_requests() -> None:
    class SlowAsyncStore(DictAsyncStore):
        in_flight = 0
        most_in_flight = 0

        async def get(self, sid: str) -> Any:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            await asyncio.sleep(0.05)
            self.in_flight -= 1
            return await super().get(sid)

    store = SlowAsyncStore()
    client = Client(middleware_for("asgi", _counter, secret=SECRET, store=store), "asgi")
    cookie = client.get("/").cookie()

    async def both() -> None:
        await asyncio.gather(
            client._asgi("GET", "/", {"cookie": cookie}, "http", ""),
            client._asgi("GET", "/", {"cookie": cookie}, "http", ""),
        )

    client.loop.run_until_complete(both())
    client.close()
    assert store.most_in_flight == 2


def test_a_destroyed_session_cannot_be_saved_or_written(transport: str) -> None:
    from sessionware import SessionDestroyed

    store = MemoryStore()
    outcomes: list[str] = []

    def handler(req: Req) -> None:
        req.session["x"] = 1
        req.save()
        req.destroy()
        for attempt in (req.save, lambda: req.session.__setitem__("y", 2)):
            try:
                attempt()
            except SessionDestroyed:
                outcomes.append("refused")
        req.end()

    client = Client(middleware_for(transport, handler, secret=SECRET, store=store), transport)
    client.get("/")
    client.close()
    assert outcomes == ["refused", "refused"]
    assert store.length() == 0


def _count_handler(req: Req) -> None:
    if req.path == "/login":
        req.session["n"] = 1
    req.end(str(req.session.get("n")))

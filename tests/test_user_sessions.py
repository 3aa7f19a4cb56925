"""A user's sessions through the real middlewares, on every store: list them, sign out the other
devices (two browsers, one revokes the other), and the timeouts with an injected clock."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from sessionware import Device, MemoryStore, SessionEvent, SessionMiddleware
from sessionware._records import TIMES_KEY
from sessionware.cookie import _iso_from_ms
from sessionware.errors import sid_tag
from sessionware.wsgi import SESSION_KEY

from .contract.stores import FakeClock
from .harness import SECRET, wrap
from .test_merge import STORES, _drop_table


def _answer(session: Any, path: str, query: dict[str, list[str]]) -> Any:
    """What each route does, as steps: the ASGI app awaits the session calls, the WSGI app
    makes them plainly."""
    if path == "/login":
        yield session.regenerate()
        session["uid"] = query["user"][0]
        return {"sid": session.id}
    if path == "/me":
        return {"user": session.get("uid"), "keys": sorted(session)}
    if path == "/devices":
        sessions = yield session.user_sessions()
        return {"sessions": sorted(sessions), "current": session.id}
    if path == "/others":
        destroyed = yield session.destroy_other_sessions()
        return {"destroyed": destroyed}
    if path == "/logout":
        yield session.destroy()
        return {}
    if path == "/device-list":
        devices = yield session.devices()
        return [_device_json(device) for device in devices]
    if path == "/end":
        ended = yield session.end_device(query["handle"][0])
        return {"ended": ended}
    raise AssertionError(path)


def _device_json(device: Device) -> dict[str, Any]:
    return {
        "handle": device.handle,
        "current": device.current,
        "address": device.address,
        "agent": device.user_agent,
        "created": None if device.created is None else device.created.timestamp(),
        "seen": None if device.last_seen is None else device.last_seen.timestamp(),
    }


def asgi_app(scope: Any, receive: Any, send: Any) -> Any:
    async def app() -> None:
        steps = _answer(scope["session"], scope["path"], parse_qs(scope["query_string"].decode()))
        result: Any = None
        try:
            while True:
                result = await steps.send(result)
        except StopIteration as done:
            body = json.dumps(done.value).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return app()


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    steps = _answer(
        environ[SESSION_KEY], environ["PATH_INFO"], parse_qs(environ.get("QUERY_STRING", ""))
    )
    result: Any = None
    try:
        while True:
            result = steps.send(result)
    except StopIteration as done:
        body = json.dumps(done.value).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


class Site:
    """One app on one store; ``browser()`` gives a client with a cookie jar of its own."""

    def __init__(self, transport: str, store: Any, **options: Any) -> None:
        self.transport = transport
        self.store = store
        self.app = wrap(transport, asgi_app, wsgi_app, secret=SECRET, store=store, **options)
        self.loop = asyncio.new_event_loop()

    def browser(self, agent: str = "test") -> Callable[[str], Any]:
        headers = {"User-Agent": agent}
        if self.transport == "asgi":
            client: Any = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=self.app, client=("192.0.2.7", 4000)),
                base_url="http://t",
                headers=headers,
            )
            return lambda path: self.loop.run_until_complete(client.get(path)).json()
        sync = httpx.Client(
            transport=httpx.WSGITransport(app=self.app, remote_addr="192.0.2.7"),
            base_url="http://t",
            headers=headers,
        )
        return lambda path: sync.get(path).json()

    def store_call(self, method: str, *args: Any) -> Any:
        result = getattr(self.store, method)(*args)
        if asyncio.iscoroutine(result):
            return self.loop.run_until_complete(result)
        return result

    def close(self) -> None:
        close = getattr(self.store, "aclose", None)
        if close is not None:
            self.loop.run_until_complete(close())
        self.loop.close()


@pytest.fixture(params=["asgi", "wsgi"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=list(STORES))
def site(request: pytest.FixtureRequest, transport: str) -> Iterator[Site]:
    prefix = request.getfixturevalue("redis_prefix") if request.param == "redis" else ""
    site = Site(transport, STORES[request.param](transport, prefix), user_key="uid")
    yield site
    _drop_table(site.store)
    site.close()


def test_one_browser_signs_the_other_out(site: Site) -> None:
    laptop, phone = site.browser(), site.browser()
    laptop_sid = laptop("/login?user=ada")["sid"]
    phone_sid = phone("/login?user=ada")["sid"]
    site.browser()("/login?user=bob")
    devices = laptop("/devices")
    assert devices == {"sessions": sorted([laptop_sid, phone_sid]), "current": laptop_sid}
    assert sorted(site.store_call("user_sessions", "ada")) == sorted([laptop_sid, phone_sid])

    assert laptop("/others") == {"destroyed": 1}
    assert phone("/me")["user"] is None, "the revoked browser is still signed in"
    assert laptop("/me")["user"] == "ada"
    assert laptop("/devices")["sessions"] == [laptop_sid]
    assert len(site.store_call("user_sessions", "bob")) == 1


@pytest.fixture(params=list(STORES))
def device_site(request: pytest.FixtureRequest, transport: str) -> Iterator[Site]:
    prefix = request.getfixturevalue("redis_prefix") if request.param == "redis" else ""
    store = STORES[request.param](transport, prefix)
    site = Site(transport, store, user_key="uid", device_info=True, on_event=EVENTS.append)
    EVENTS.clear()
    yield site
    _drop_table(site.store)
    site.close()


EVENTS: list[SessionEvent] = []


def test_a_user_sees_their_two_browsers_and_ends_one(device_site: Site) -> None:
    laptop, phone = device_site.browser("Firefox/140"), device_site.browser("Chrome/150")
    laptop_sid = laptop("/login?user=ada")["sid"]
    phone_sid = phone("/login?user=ada")["sid"]
    device_site.browser("Safari")("/login?user=bob")

    devices = phone("/device-list")
    assert [(d["current"], d["agent"], d["address"]) for d in devices] == [
        (True, "Chrome/150", "192.0.2.7"),
        (False, "Firefox/140", "192.0.2.7"),
    ]
    assert all(d["created"] and d["seen"] for d in devices)
    text = json.dumps(devices)
    assert laptop_sid not in text and phone_sid not in text, "a device list shows a session id"

    laptop_handle = devices[1]["handle"]
    assert phone(f"/end?handle={laptop_handle}") == {"ended": True}
    assert laptop("/me")["user"] is None, "the ended device is still signed in"
    assert [d["agent"] for d in phone("/device-list")] == ["Chrome/150"]
    ended = [e for e in EVENTS if e.kind == "destroyed"]
    assert [(e.reason, e.user, e.sid_hash) for e in ended] == [
        ("revoked", "ada", sid_tag(laptop_sid))
    ]


def test_a_handle_ends_only_the_signed_in_users_own_sessions(device_site: Site) -> None:
    ada, bob = device_site.browser(), device_site.browser()
    ada("/login?user=ada")
    bob("/login?user=bob")
    bob_handle = bob("/device-list")[0]["handle"]
    assert ada(f"/end?handle={bob_handle}") == {"ended": False}
    assert ada("/end?handle=nonsense") == {"ended": False}
    assert bob("/me")["user"] == "bob"
    assert device_site.browser()(f"/end?handle={bob_handle}") == {"ended": False}
    assert bob("/me")["user"] == "bob"


def test_ending_this_device_logs_out(device_site: Site) -> None:
    browser = device_site.browser()
    browser("/login?user=ada")
    [device] = browser("/device-list")
    assert browser(f"/end?handle={device['handle']}") == {"ended": True}
    assert browser("/me")["user"] is None
    assert device_site.store_call("user_sessions", "ada") == {}


def test_last_seen_and_address_follow_the_device(clock: FakeClock, transport: str) -> None:
    site = timed_site(clock, transport, user_key="uid", device_info=True)
    browser = site.browser("Firefox/140")
    sid = browser("/login?user=ada")["sid"]
    times = site.store.get(sid)[TIMES_KEY]
    assert times["address"] == "192.0.2.7" and times["agent"] == "Firefox/140"
    clock.advance(30)
    browser("/me")
    assert site.store.get(sid)[TIMES_KEY] == times, "last seen was rewritten within the minute"
    clock.advance(31)
    browser("/me")
    assert site.store.get(sid)[TIMES_KEY]["active"] == int(clock() * 1000)
    [device] = browser("/device-list")
    now = int(clock() * 1000) / 1000
    assert device["seen"] == now and device["created"] == pytest.approx(now - 61, abs=0.002)


def test_a_long_user_agent_is_cut(transport: str) -> None:
    site = Site(transport, MemoryStore(), user_key="uid", device_info=True)
    browser = site.browser("x" * 5000)
    browser("/login?user=ada")
    [device] = browser("/device-list")
    assert device["agent"] == "x" * 256
    site.close()


def test_without_device_info_devices_say_only_which_is_current(transport: str) -> None:
    site = Site(transport, MemoryStore(), user_key="uid")
    laptop, phone = site.browser(), site.browser()
    laptop("/login?user=ada")
    phone("/login?user=ada")
    devices = phone("/device-list")
    assert [(d["current"], d["address"], d["agent"]) for d in devices] == [
        (True, None, None),
        (False, None, None),
    ]
    assert phone(f"/end?handle={devices[1]['handle']}") == {"ended": True}
    assert laptop("/me")["user"] is None
    assert site.browser()("/device-list") == []
    site.close()


def test_device_info_needs_a_user_key() -> None:
    with pytest.raises(ValueError, match="device_info needs user_key"):
        SessionMiddleware(asgi_app, secret=SECRET, device_info=True)
    with pytest.raises(TypeError, match="device_info must be True or False"):
        SessionMiddleware(asgi_app, secret=SECRET, user_key="uid", device_info="yes")


def test_logging_out_leaves_the_index(site: Site) -> None:
    browser = site.browser()
    browser("/login?user=ada")
    browser("/logout")
    assert site.store_call("user_sessions", "ada") == {}
    assert site.store_call("destroy_user_sessions", "ada") == 0


def test_a_session_without_a_user_lists_nothing(site: Site) -> None:
    browser = site.browser()
    assert browser("/devices")["sessions"] == []
    assert browser("/others") == {"destroyed": 0}


def test_the_store_must_keep_an_index() -> None:
    class PlainStore:
        def get(self, sid: str) -> None:
            return None

        def set(self, sid: str, data: Any) -> None:
            pass

        def destroy(self, sid: str) -> None:
            pass

    with pytest.raises(TypeError, match="per-user index"):
        SessionMiddleware(asgi_app, secret=SECRET, store=PlainStore(), user_key="uid")
    with pytest.raises(ValueError, match="already indexes"):
        SessionMiddleware(
            asgi_app, secret=SECRET, store=MemoryStore(user_key="user_id"), user_key="uid"
        )


def test_the_memory_index_drops_expired_sessions() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock, user_key="uid")
    site = Site("asgi", store, user_key="uid", clock=clock, cookie={"max_age": 60})
    for user in range(50):
        site.browser()(f"/login?user={user}")
    assert len(store._users) == 50
    clock.advance(61)
    expires = _iso_from_ms(int(clock() * 1000) + 60_000)
    store.set("late", {"cookie": {"originalMaxAge": 60_000, "expires": expires}, "uid": "late"})
    store.length()
    assert list(store._users) == ["late"], "expired sessions stayed in the index"
    site.close()


def test_the_redis_index_expires_with_its_sessions(redis_prefix: str) -> None:
    import redis

    from sessionware.stores.redis import RedisSessions, RedisStore

    from .services import require_redis

    client = redis.Redis.from_url(require_redis())
    store = RedisStore(url=require_redis(), prefix=redis_prefix)
    site = Site("asgi", store, user_key="uid", cookie={"max_age": 60})
    site.browser()("/login?user=ada")
    index = RedisSessions(prefix=redis_prefix).index_key("ada")
    assert client.zcard(index) == 1
    assert 60_000 < client.pttl(index) <= 120_000, "the index outlives its session forever"
    site.close()
    client.close()


# -- timeouts ------------------------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def timed_site(clock: FakeClock, transport: str = "asgi", **options: Any) -> Site:
    return Site(transport, MemoryStore(clock=clock), clock=clock, **options)


def test_an_idle_session_ends_and_is_destroyed(clock: FakeClock, transport: str) -> None:
    site = timed_site(clock, transport, idle_timeout=600)
    browser = site.browser()
    sid = browser("/login?user=ada")["sid"]
    clock.advance(590)
    assert browser("/me")["user"] == "ada"
    clock.advance(590)
    assert browser("/me")["user"] == "ada", "activity did not renew the idle timeout"
    clock.advance(601)
    assert browser("/me")["user"] is None
    assert site.store.get(sid) is None, "the timed-out session was left in the store"


def test_the_absolute_timeout_ends_even_a_busy_session(clock: FakeClock) -> None:
    site = timed_site(clock, idle_timeout=600, absolute_timeout=3600)
    browser = site.browser()
    browser("/login?user=ada")
    for _ in range(11):
        clock.advance(300)
        assert browser("/me")["user"] == "ada"
    clock.advance(300)
    assert browser("/me")["user"] is None


def test_logging_in_again_restarts_the_absolute_timeout(clock: FakeClock) -> None:
    site = timed_site(clock, absolute_timeout=3600)
    browser = site.browser()
    browser("/login?user=ada")
    clock.advance(3000)
    browser("/login?user=ada")
    clock.advance(3000)
    assert browser("/me")["user"] == "ada"


def test_renewal_is_throttled_and_the_times_stay_hidden(clock: FakeClock) -> None:
    site = timed_site(clock, idle_timeout=600)
    browser = site.browser()
    sid = browser("/login?user=ada")["sid"]
    stored = site.store.get(sid)[TIMES_KEY]
    assert stored["created"] == stored["active"] == int(clock() * 1000)
    clock.advance(30)
    assert browser("/me") == {"user": "ada", "keys": ["uid"]}
    assert site.store.get(sid)[TIMES_KEY] == stored, "a request soon after rewrote the session"
    clock.advance(40)
    browser("/me")
    renewed = site.store.get(sid)[TIMES_KEY]
    assert renewed == {"created": stored["created"], "active": int(clock() * 1000)}


def test_a_session_stored_without_times_starts_them(clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    plain = Site("asgi", store)
    browser = plain.browser()
    sid = browser("/login?user=ada")["sid"]
    timed = Site("asgi", store, idle_timeout=600, clock=clock)
    timed.app.engine._verified = plain.app.engine._verified
    cookie = {"connect.sid": plain.app.engine.cookie_value(sid)}
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=timed.app), base_url="http://t", cookies=cookie
    )
    assert timed.loop.run_until_complete(client.get("/me")).json()["user"] == "ada"
    assert store.get(sid)[TIMES_KEY]["created"] == int(clock() * 1000)


def test_the_index_with_the_redis_client_cache(redis_prefix: str) -> None:
    """The index commands must bypass the client cache (it tracks session keys only)."""
    from sessionware.stores.redis import RedisStore

    from .services import require_redis

    store = RedisStore(url=require_redis(), prefix=redis_prefix, client_cache=True, user_key="uid")
    site = Site("asgi", store, user_key="uid", cookie={"max_age": 60})
    laptop, phone = site.browser(), site.browser()
    laptop_sid = laptop("/login?user=ada")["sid"]
    phone_sid = phone("/login?user=ada")["sid"]
    assert laptop("/devices")["sessions"] == sorted([laptop_sid, phone_sid])
    phone("/logout")
    assert laptop("/devices")["sessions"] == [laptop_sid]
    assert site.store_call("destroy_user_sessions", "ada") == 1
    assert laptop("/me")["user"] is None
    site.close()


def test_a_reload_mid_request_does_not_time_the_session_out(clock: FakeClock) -> None:
    """Whether a session timed out is decided as the request starts: a ``reload()`` later in a
    long request must not destroy the session the request goes on using."""
    store = MemoryStore(clock=clock)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        session = scope["session"]
        if scope["path"] == "/slow":
            clock.advance(700)
            await session.reload()
        session["n"] = session.get("n", 0) + 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": session.id.encode()})

    middleware = SessionMiddleware(app, secret=SECRET, store=store, idle_timeout=600, clock=clock)

    async def run() -> tuple[str, str]:
        transport = httpx.ASGITransport(app=middleware)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            first = (await client.get("/")).text
            return first, (await client.get("/slow")).text

    first, second = asyncio.run(run())
    assert first == second
    assert store.get(first)["n"] == 2, "the session was destroyed under the request using it"

"""RedisStore and SyncRedisStore against real Redis servers (never a fake)."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel

from sessionware import SessionCorrupt, SessionRecord, StoreUnavailable
from sessionware._records import Base
from sessionware._wire import now_ms
from sessionware.stores.redis import RedisRules, RedisStore, SyncRedisStore
from sessionware.stores.redis._hiredis import HIREDIS
from sessionware.stores.redis.transport import connection_getter

from .harness import SECRET, Client, Req, middleware_for
from .services import RedisServer, free_port, require_binary, require_redis

STORE_KINDS = {"async": RedisStore, "sync": SyncRedisStore}


def iso_in(seconds: float) -> str:
    from sessionware.cookie import _iso_from_ms

    return _iso_from_ms(now_ms() + round(seconds * 1000))


def stored(seconds: float | None = 60, **data: Any) -> dict[str, Any]:
    expires = None if seconds is None else iso_in(seconds)
    original = None if seconds is None else round(seconds * 1000)
    return {
        "cookie": {"originalMaxAge": original, "expires": expires, "httpOnly": True, "path": "/"},
        **data,
    }


class TestRules:
    """connect-redis's rules, without a server."""

    def record(self, seconds: float | None = 60, **data: Any) -> SessionRecord:
        return SessionRecord.from_dict(stored(seconds, **data))

    def test_ttl_is_seconds_until_expires_rounded_up(self) -> None:
        command = RedisRules().set_command("abc", self.record(10.2))
        assert command[:2] == ("SET", "sess:abc")
        assert command[3:] == ("EX", 11)

    def test_ttl_falls_back_to_the_option_for_browser_session_cookies(self) -> None:
        assert RedisRules(ttl=300).set_command("abc", self.record(None))[3:] == ("EX", 300)
        assert RedisRules().set_command("abc", self.record(None))[3:] == ("EX", 86400)

    def test_a_callable_ttl_wins(self) -> None:
        sessions = RedisRules(ttl=lambda data: 42)
        assert sessions.set_command("abc", self.record(10))[3:] == ("EX", 42)

    def test_an_expired_session_is_deleted_not_set(self) -> None:
        assert RedisRules().set_command("abc", self.record(-5)) == ("DEL", "sess:abc")

    def test_disable_ttl_sets_without_expiry_and_never_touches(self) -> None:
        sessions = RedisRules(disable_ttl=True)
        assert len(sessions.set_command("abc", self.record(10))) == 3
        assert sessions.touch_command("abc", self.record(10)) is None

    def test_touch_moves_only_the_expiry(self) -> None:
        assert RedisRules(prefix="p:").touch_command("abc", self.record(30)) == (
            "EXPIRE",
            "p:abc",
            30,
        )

    def test_disable_touch(self) -> None:
        assert RedisRules(disable_touch=True).touch_command("abc", self.record(30)) is None

    def test_touch_after_skips_touches_soon_after_a_write_or_touch(self) -> None:
        sessions = RedisRules(touch_after=60)
        record = self.record(3600)
        assert sessions.touch_command("abc", record) is not None
        assert sessions.touch_command("abc", record) is None
        other = RedisRules(touch_after=60)
        loaded = other.parse("xyz", json.dumps(stored(3600)))
        assert loaded is not None
        assert other.touch_command("xyz", loaded) is None
        stale = RedisRules(touch_after=60)
        old = stored(3600)
        old["cookie"]["expires"] = iso_in(3600 - 120)
        stale.parse("old", json.dumps(old))
        assert stale.touch_command("old", self.record(3600)) is not None

    def test_value_is_the_express_json_with_the_cookie_first(self) -> None:
        value = RedisRules().set_command("abc", self.record(60, user={"id": 1}))[2]
        assert isinstance(value, str)
        assert value.startswith('{"cookie":{"originalMaxAge":60000,"expires":"')
        assert value.endswith('"httpOnly":true,"path":"/"},"user":{"id":1}}')

    def test_a_custom_serializer(self) -> None:
        class Reversed:
            def dumps(self, data: Any) -> str:
                return json.dumps(data)[::-1]

            def loads(self, text: str) -> Any:
                return json.loads(text[::-1])

        sessions = RedisRules(serializer=Reversed())
        value = sessions.set_command("abc", self.record(60, n=1))[2]
        record = sessions.parse("abc", value)
        assert record is not None
        assert record.data == {"n": 1}

    def test_prefix_glob_characters_are_escaped_for_scan(self) -> None:
        assert RedisRules(prefix="a*b?[c]:").match == "a\\*b\\?\\[c\\]:*"

    @pytest.mark.parametrize(
        "options",
        [{"ttl": 0}, {"ttl": "1"}, {"touch_after": -1}, {"scan_count": 0}, {"prefix": 1}],
    )
    def test_bad_options(self, options: dict[str, Any]) -> None:
        with pytest.raises((TypeError, ValueError)):
            RedisRules(**options)


@pytest.fixture(params=list(STORE_KINDS))
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


_loops: dict[int, asyncio.AbstractEventLoop] = {}


def call(store: Any, method: str, *args: Any) -> Any:
    """Call a store's public method; an async store's calls all run on one loop of its own."""
    result = getattr(store, method)(*args)
    if not asyncio.iscoroutine(result):
        return result
    loop = _loops.setdefault(id(store), asyncio.new_event_loop())
    return loop.run_until_complete(result)


def eventually(store: Any, condition: Callable[[], bool], seconds: float = 5) -> None:
    """Wait for what a store's probe does in the background (on the store's own loop for an
    async store)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition never came true"
        if isinstance(store, RedisStore):
            _on_loop(store, asyncio.sleep(0.02))
        else:
            time.sleep(0.02)


class TestStoreContract:
    def test_get_set_touch_destroy(self, store_kind: str, redis_prefix: str) -> None:
        store = STORE_KINDS[store_kind](url=require_redis(), prefix=redis_prefix)
        assert call(store, "get", "missing") is None
        call(store, "set", "abc", stored(60, n=1))
        assert call(store, "get", "abc")["n"] == 1
        call(store, "touch", "abc", stored(600, n=1))
        raw = redis.Redis.from_url(require_redis())
        assert 590 < raw.ttl(redis_prefix + "abc") <= 600
        call(store, "destroy", "abc")
        assert call(store, "get", "abc") is None

    def test_all_ids_length_clear(self, store_kind: str, redis_prefix: str) -> None:
        store = STORE_KINDS[store_kind](url=require_redis(), prefix=redis_prefix, scan_count=3)
        for index in range(25):
            call(store, "set", f"s{index}", stored(60, i=index))
        assert sorted(call(store, "ids")) == sorted(f"s{i}" for i in range(25))
        assert call(store, "length") == 25
        everything = call(store, "all")
        assert everything["s7"]["i"] == 7
        call(store, "clear")
        assert call(store, "length") == 0

    def test_the_layout_is_connect_redis(self, store_kind: str, redis_prefix: str) -> None:
        store = STORE_KINDS[store_kind](url=require_redis(), prefix=redis_prefix)
        data = stored(100.5, user={"name": "ann"})
        call(store, "set", "abc", data)
        raw = redis.Redis.from_url(require_redis())
        value = raw.get(redis_prefix + "abc")
        assert value is not None
        assert json.loads(value) == data
        assert value.startswith(b'{"cookie":')
        assert (
            raw.ttl(redis_prefix + "abc") == math.ceil(100.5)
            or raw.ttl(redis_prefix + "abc") == 100
        )

    def test_an_unreachable_redis_is_store_unavailable(self, store_kind: str) -> None:
        events: list[str] = []
        store = STORE_KINDS[store_kind](url="redis://127.0.0.1:1/0", timeout=0.5)
        store.on("disconnect", lambda: events.append("disconnect"))
        with pytest.raises(StoreUnavailable):
            call(store, "get", "abc")
        eventually(store, lambda: events == ["disconnect"])


def _counter(req: Req) -> None:
    session = req.session
    if session is None:
        req.end("no session")
        return
    if req.path == "/logout":
        req.destroy()
        req.end("bye")
        return
    if req.path == "/login":
        req.regenerate()
    if req.path != "/read":
        session["n"] = session.get("n", 0) + 1
    req.end(str(session.get("n")))


def redis_store_for(transport: str, url: str, **options: Any) -> Any:
    return (RedisStore if transport == "asgi" else SyncRedisStore)(url=url, **options)


def test_sessions_through_the_middleware(transport: str, redis_prefix: str) -> None:
    store = redis_store_for(transport, require_redis(), prefix=redis_prefix)
    client = Client(
        middleware_for(transport, _counter, secret=SECRET, store=store, cookie={"max_age": 60}),
        transport,
    )
    first = client.get("/")
    assert first.text == "1"
    assert client.get("/", cookie=first.cookie()).text == "2"
    assert client.get("/read", cookie=first.cookie()).text == "2"
    login = client.get("/login", cookie=first.cookie())
    assert login.sid() != first.sid()
    assert client.get("/read", cookie=first.cookie()).text == "None"
    assert client.get("/read", cookie=login.cookie()).text == "1"
    assert client.get("/logout", cookie=login.cookie()).text == "bye"
    assert client.get("/read", cookie=login.cookie()).text == "None"
    client.close()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", "--appendonly", "yes", "--appendfsync", "always")
    server.start()
    yield server
    server.stop()


_CONNECTION_SETUP = {"hello", "client|setinfo", "select", "info", "config|resetstat", "ping"}


def command_counts(stats_client: redis.Redis) -> dict[str, int]:
    """Commands since the last reset, leaving out per-connection set-up and our own INFO."""
    stats = stats_client.info("commandstats")
    counts = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
    return {name: calls for name, calls in counts.items() if name not in _CONNECTION_SETUP}


@pytest.mark.parametrize("merge", [True, False], ids=["merge", "overwrite"])
@pytest.mark.parametrize("touch_after", [0, 60])
def test_one_command_per_store_operation(
    transport: str, private_redis: RedisServer, touch_after: int, merge: bool
) -> None:
    store = redis_store_for(transport, private_redis.url, touch_after=touch_after)
    client = Client(
        middleware_for(
            transport, _counter, secret=SECRET, store=store, cookie={"max_age": 60}, merge=merge
        ),
        transport,
    )
    stats_client = redis.Redis.from_url(private_redis.url)
    client.get("/read")

    def counted(path: str, cookie: str | None = None) -> tuple[Any, dict[str, int]]:
        stats_client.config_resetstat()
        response = client.get(path, cookie=cookie)
        return response, command_counts(stats_client)

    new, counts = counted("/")
    assert counts == {"set": 1}
    client.get("/", cookie=new.cookie())  # the first compare-and-set loads the script
    _, counts = counted("/", new.cookie())
    # a write is GETEX (the read, which also renews the expiry) then one command: SET, or the
    # compare-and-set script (whose own GET and SET run inside Redis)
    merged = {"getex": 1, "evalsha": 1, "get": 1, "set": 1}
    assert counts == (merged if merge else {"getex": 1, "set": 1})
    read, counts = counted("/read", new.cookie())
    assert read.text == "3"
    assert counts == {"getex": 1}, "a read-only request is one command"


def test_a_server_without_getex_gets_get_and_expire(transport: str, tmp_path: Path) -> None:
    """Redis before 6.2 (GETEX renamed away here): GET + EXPIRE, from the first refusal on."""
    server = RedisServer(tmp_path / "old", "--rename-command", "GETEX", '""').start()
    try:
        store = redis_store_for(transport, server.url)
        client = Client(
            middleware_for(transport, _counter, secret=SECRET, store=store, cookie={"max_age": 60}),
            transport,
        )
        stats = redis.Redis.from_url(server.url)
        cookie = client.get("/").cookie()
        assert client.get("/read", cookie=cookie).text == "1"
        stats.config_resetstat()
        assert client.get("/read", cookie=cookie).text == "1"
        assert command_counts(stats) == {"get": 1, "expire": 1}
        client.close()
    finally:
        server.stop()


def test_a_session_with_its_own_lifetime_is_corrected_after_getex(
    transport: str, private_redis: RedisServer
) -> None:
    def handler(req: Req) -> None:
        if req.path == "/short":
            req.session.cookie.max_age = 10
            req.session["short"] = True
        req.end("ok")

    store = redis_store_for(transport, private_redis.url)
    client = Client(
        middleware_for(transport, handler, secret=SECRET, store=store, cookie={"max_age": 600}),
        transport,
    )
    cookie = client.get("/short").cookie()
    stats = redis.Redis.from_url(private_redis.url)
    stats.config_resetstat()
    client.get("/", cookie=cookie)
    assert command_counts(stats) == {"getex": 1, "expire": 1}
    key = next(iter(stats.scan_iter(match="sess:*")))
    assert 0 < stats.ttl(key) <= 10, "the session's own lifetime wins over the static one"
    client.close()
    client.close()


@pytest.mark.parametrize("mode", ["pass", "error"])
def test_redis_killed_mid_traffic_loses_no_acknowledged_save(
    transport: str, private_redis: RedisServer, mode: str
) -> None:
    outage_scenario(transport, private_redis, mode)


@pytest.mark.parametrize("mode", ["pass", "error"])
def test_redis_killed_mid_traffic_with_the_client_cache(
    private_redis: RedisServer, mode: str
) -> None:
    outage_scenario("asgi", private_redis, mode, client_cache=True)


def outage_scenario(
    transport: str, private_redis: RedisServer, mode: str, **store_options: Any
) -> None:
    """Traffic on several sessions; SIGKILL Redis mid-traffic; restart it on the same data."""
    store = redis_store_for(
        transport, private_redis.url, timeout=0.5, retry_interval=0.1, **store_options
    )
    events: list[str] = []
    store.on("disconnect", lambda: events.append("disconnect"))
    store.on("connect", lambda: events.append("connect"))
    app = middleware_for(
        transport,
        _counter,
        secret=SECRET,
        store=store,
        cookie={"max_age": 600},
        store_unavailable=mode,
    )
    client = Client(app, transport)
    cookies: list[str] = []
    acknowledged: dict[str, int] = {}
    for _ in range(8):
        response = client.get("/")
        cookies.append(response.cookie())
        acknowledged[response.cookie()] = int(response.text)

    def traffic(seconds: float) -> list[tuple[int, str]]:
        answers = []
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            for cookie in cookies:
                started = time.monotonic()
                response = client.get("/", cookie=cookie)
                assert time.monotonic() - started < 2.5, "a request hung past the timeout"
                answers.append((response.status, response.text))
                if response.status == 200 and response.text != "no session":
                    acknowledged[cookie] = int(response.text)
        return answers

    killer = threading.Timer(0.15, private_redis.kill)
    killer.start()
    during = traffic(0.6)
    killer.join()
    statuses = {status for status, _ in during}
    assert 500 not in statuses
    assert statuses <= {200, 503}
    degraded = "no session" if mode == "pass" else "Service Unavailable"
    assert any(text == degraded for _, text in during), "no request ran while Redis was down"
    private_redis.start()
    deadline = time.monotonic() + 10
    while not store.health.up and time.monotonic() < deadline:
        if transport == "asgi":
            client.loop.run_until_complete(asyncio.sleep(0.05))
        else:
            time.sleep(0.05)
    assert events[:2] == ["disconnect", "connect"]
    after = traffic(0.2)
    assert {status for status, _ in after} == {200}
    assert all(text != "no session" for _, text in after)
    for cookie, count in acknowledged.items():
        response = client.get("/read", cookie=cookie)
        assert response.status == 200
        assert int(response.text) >= count
    client.close()


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_binary("redis-cli", "redis-tools")
    base = tmp_path_factory.mktemp("cluster")
    nodes = [
        RedisServer(base / f"node{index}", "--cluster-enabled", "yes", "--appendonly", "no")
        for index in range(3)
    ]
    try:
        for node in nodes:
            node.start()
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{node.port}" for node in nodes),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            states = [
                redis.Redis(port=node.port).cluster("info")["cluster_state"] for node in nodes
            ]
            if states == ["ok"] * 3:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError("the test cluster did not become ready")
        yield f"redis://127.0.0.1:{nodes[0].port}/0"
    finally:
        for node in nodes:
            node.stop()


def test_cluster_get_set_touch_all_clear(store_kind: str, redis_cluster: str) -> None:
    store = STORE_KINDS[store_kind](url=redis_cluster, cluster=True, prefix="c:", scan_count=5)
    sids = [f"sid{index}" for index in range(40)]
    for index, sid in enumerate(sids):
        call(store, "set", sid, stored(60, i=index))
    client = redis.RedisCluster.from_url(redis_cluster)
    owners = {client.get_node_from_key(f"c:{sid}").name for sid in sids}
    assert len(owners) == 3, "the keys should live on every primary"
    assert call(store, "get", "sid3")["i"] == 3
    call(store, "touch", "sid3", stored(900, i=3))
    assert 890 < client.ttl("c:sid3") <= 900
    assert sorted(call(store, "ids")) == sorted(sids)
    assert call(store, "length") == 40
    assert {sid: data["i"] for sid, data in call(store, "all").items()} == {
        sid: index for index, sid in enumerate(sids)
    }
    call(store, "destroy", "sid0")
    assert call(store, "get", "sid0") is None
    call(store, "clear")
    assert call(store, "length") == 0
    client.close()


def test_cluster_user_index(store_kind: str, redis_cluster: str) -> None:
    """On a Cluster the session and its user's set live on different nodes: two commands."""
    store = STORE_KINDS[store_kind](url=redis_cluster, cluster=True, prefix="u:", user_key="uid")
    sids = [f"dev{index}" for index in range(12)]
    for sid in sids:
        call(store, "set", sid, stored(60, uid="ann"))
    client = redis.RedisCluster.from_url(redis_cluster)
    assert len({client.get_node_from_key(f"u:{sid}").name for sid in sids}) > 1
    assert sorted(call(store, "user_sessions", "ann")) == sorted(sids)
    loaded = call(store, "get_record", "dev0")
    changed = SessionRecord.from_dict(stored(60, uid="bob"))
    call(store, "merge_record", "dev0", changed, Base(loaded.token, loaded.data_json))
    assert list(call(store, "user_sessions", "bob")) == ["dev0"]
    call(store, "destroy", "dev1")
    assert call(store, "destroy_user_sessions", "ann", "dev2") == 9
    assert list(call(store, "user_sessions", "ann")) == ["dev2"]
    call(store, "clear")
    assert client.exists("u-user:ann", "u-user:bob") == 0, "clear() removes the user indexes"
    client.close()


@pytest.mark.parametrize("store_kind", ["sync", "async"])
def test_clear_removes_the_user_indexes_and_nothing_else(
    store_kind: str, redis_prefix: str
) -> None:
    """The indexes live under ``user_prefix``, beside the sessions (a Node app scanning the
    session prefix never meets one); ``clear()`` removed the sessions and left every index."""
    url = require_redis()
    store = STORE_KINDS[store_kind](url=url, prefix=redis_prefix, user_key="uid")
    other_prefix = redis_prefix[:-1] + "-other:"
    other = STORE_KINDS[store_kind](url=url, prefix=other_prefix, user_key="uid")
    for index in range(3):
        call(store, "set", f"s{index}", stored(60, uid=f"user{index}"))
    call(other, "set", "kept", stored(60, uid="user0"))
    call(store, "clear")
    client = redis.Redis.from_url(url)
    try:
        assert list(client.scan_iter(match=redis_prefix + "*")) == []
        assert list(client.scan_iter(match=store.rules.user_prefix + "*")) == []
        assert list(call(other, "user_sessions", "user0")) == ["kept"]
    finally:
        call(other, "clear")
        client.close()


class TestClientCache:
    """RedisStore(client_cache=True): reads answered locally, kept right by Redis tracking."""

    def test_repeat_reads_send_no_command(self, private_redis: RedisServer) -> None:
        store = RedisStore(url=private_redis.url, client_cache=True)
        record = SessionRecord.from_dict(stored(60, n=1))
        stats = redis.Redis.from_url(private_redis.url)
        _on_loop(store, store.set_record("abc", record))
        stats.config_resetstat()
        for _ in range(5):
            assert _on_loop(store, store.get_record("abc")).data == {"n": 1}
        assert store.cache is not None
        if store.cache.available:
            assert command_counts(stats) == {}
        else:  # a redis-py without the cache's hooks (before 5.1): the public path
            assert command_counts(stats) == {"get": 5}
        _on_loop(store, store.close())

    def test_a_redis_py_without_the_hooks_serves_through_the_pool(
        self, redis_prefix: str, caplog: Any
    ) -> None:
        """As a release that renamed the parser's push handler would: the cache steps aside,
        says so once at INFO, and sessions are served through the client's pool."""
        from redis._parsers import _AsyncHiredisParser, _AsyncRESP3Parser

        class NoPushHook(_AsyncHiredisParser if HIREDIS else _AsyncRESP3Parser):  # type: ignore[misc]
            def __getattribute__(self, name: str) -> Any:
                if name == "invalidation_push_handler_func":
                    raise AttributeError(name)
                return super().__getattribute__(name)

        client = redis.asyncio.Redis.from_url(require_redis(), parser_class=NoPushHook)
        with caplog.at_level(logging.INFO, logger="sessionware"):
            store = RedisStore(client, prefix=redis_prefix, client_cache=True)
        assert store.cache is not None and not store.cache.available
        assert "reads go through the client's pool" in caplog.text
        app = middleware_for("asgi", _counter, secret=SECRET, store=store, cookie={"max_age": 60})
        browser = Client(app, "asgi")
        first = browser.get("/")
        assert browser.get("/", cookie=first.cookie()).text == "2"
        redis.Redis.from_url(require_redis()).delete(redis_prefix + first.sid())
        assert browser.get("/read", cookie=first.cookie()).text == "None"
        browser.close()

    def test_writes_and_deletes_by_other_clients_are_seen_at_once(self, redis_prefix: str) -> None:
        store = RedisStore(url=require_redis(), prefix=redis_prefix, client_cache=True)
        other = redis.Redis.from_url(require_redis())
        call(store, "set", "abc", stored(60, n=1))
        assert call(store, "get", "abc")["n"] == 1
        other.set(redis_prefix + "abc", json.dumps(stored(60, n=2)))
        assert call(store, "get", "abc")["n"] == 2
        other.expire(redis_prefix + "abc", 30)
        assert call(store, "get", "abc")["n"] == 2
        other.delete(redis_prefix + "abc")
        assert call(store, "get", "abc") is None
        other.set(redis_prefix + "new", json.dumps(stored(60, n=3)))
        assert call(store, "get", "new")["n"] == 3
        other.delete(redis_prefix + "new")
        assert call(store, "get", "new") is None

    def test_an_entry_does_not_outlive_its_key(self, redis_prefix: str) -> None:
        store = RedisStore(url=require_redis(), prefix=redis_prefix, client_cache=True)
        call(store, "set", "abc", stored(1, n=1))
        assert call(store, "get", "abc")["n"] == 1
        time.sleep(1.3)
        assert call(store, "get", "abc") is None

    def test_a_killed_server_drops_the_cache(self, private_redis: RedisServer) -> None:
        store = RedisStore(url=private_redis.url, client_cache=True, timeout=0.5)
        call(store, "set", "abc", stored(600, n=1))
        assert call(store, "get", "abc")["n"] == 1
        private_redis.kill()
        with pytest.raises(StoreUnavailable):
            call(store, "get", "abc")
        assert store.cache is not None
        assert store.cache.entries == {}
        private_redis.start()
        assert call(store, "get", "abc")["n"] == 1

    def test_sessions_through_the_middleware(self, redis_prefix: str) -> None:
        store = RedisStore(url=require_redis(), prefix=redis_prefix, client_cache=True)
        client = Client(
            middleware_for("asgi", _counter, secret=SECRET, store=store, cookie={"max_age": 60}),
            "asgi",
        )
        first = client.get("/")
        assert client.get("/", cookie=first.cookie()).text == "2"
        other = redis.Redis.from_url(require_redis())
        other.delete(redis_prefix + first.sid())
        assert client.get("/read", cookie=first.cookie()).text == "None"
        client.close()

    def test_is_refused_with_a_cluster(self) -> None:
        from redis.asyncio.cluster import RedisCluster

        client = RedisCluster.__new__(RedisCluster)
        with pytest.raises(ValueError, match="Cluster"):
            RedisStore(client, client_cache=True)


def _on_loop(store: Any, coroutine: Any) -> Any:
    loop = _loops.setdefault(id(store), asyncio.new_event_loop())
    return loop.run_until_complete(coroutine)


def test_unix_socket_urls_and_passed_clients(store_kind: str, tmp_path: Path) -> None:
    socket_path = tmp_path / "redis.sock"
    server = RedisServer(
        tmp_path / "unix", "--unixsocket", str(socket_path), "--unixsocketperm", "700"
    )
    server.start()
    try:
        by_url = STORE_KINDS[store_kind](url=f"unix://{socket_path}")
        call(by_url, "set", "abc", stored(60, n=1))
        client_class = redis.Redis if store_kind == "sync" else redis.asyncio.Redis
        by_client = STORE_KINDS[store_kind](client_class(unix_socket_path=str(socket_path)))
        assert call(by_client, "get", "abc")["n"] == 1
    finally:
        server.stop()


def test_an_expired_session_gives_a_new_one(transport: str, redis_prefix: str) -> None:
    store = redis_store_for(transport, require_redis(), prefix=redis_prefix)
    client = Client(
        middleware_for(transport, _counter, secret=SECRET, store=store, cookie={"max_age": 1}),
        transport,
    )
    first = client.get("/")
    time.sleep(1.2)
    second = client.get("/", cookie=first.cookie())
    client.close()
    assert second.text == "1"
    assert second.sid() != first.sid()


def test_sentinel_through_a_client_the_user_passes(store_kind: str, tmp_path: Path) -> None:
    primary = RedisServer(tmp_path / "primary").start()
    sentinel_port = free_port()
    config = tmp_path / "sentinel.conf"
    config.write_text(
        f"port {sentinel_port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor sessions 127.0.0.1 {primary.port} 1\n"
    )
    sentinel_process = subprocess.Popen(
        [require_binary("redis-server", "redis-server"), str(config), "--sentinel"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if store_kind == "sync":
            sentinel: Any = redis.sentinel.Sentinel([("127.0.0.1", sentinel_port)])
        else:
            sentinel = redis.asyncio.sentinel.Sentinel([("127.0.0.1", sentinel_port)])
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", sentinel_port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        store = STORE_KINDS[store_kind](sentinel.master_for("sessions"))
        call(store, "set", "abc", stored(60, n=7))
        assert call(store, "get", "abc")["n"] == 7
        assert redis.Redis(port=primary.port).exists("sess:abc") == 1
    finally:
        sentinel_process.terminate()
        sentinel_process.wait(timeout=10)
        primary.stop()


class TestAutoPipeline:
    """RedisStore sends the commands of concurrent requests together (``auto_pipeline``)."""

    @staticmethod
    def _connections(server: RedisServer) -> int:
        admin = redis.Redis.from_url(server.url)
        count = len(admin.client_list()) - 1
        admin.close()
        return count

    def test_concurrent_requests_share_connections(self, private_redis: RedisServer) -> None:
        """16 concurrent reads: the first read goes at once and the other 15 follow as one batch
        on a second connection; without ``auto_pipeline`` each read takes a connection."""
        stores = [
            (lambda: RedisStore(url=private_redis.url), 2),
            (lambda: RedisStore(redis.asyncio.Redis.from_url(private_redis.url)), 2),
            (lambda: RedisStore(url=private_redis.url, auto_pipeline=False), 16),
        ]
        for make, expected in stores:
            store = make()
            sids = [f"s{index}" for index in range(16)]

            async def burst(store: Any = store, sids: list[str] = sids) -> list[Any]:
                for sid in sids:
                    await store.set(sid, stored(60, sid=sid))
                return await asyncio.gather(*(store.get(sid) for sid in sids))

            got = _on_loop(store, burst())
            assert [data["sid"] for data in got] == sids
            assert self._connections(private_redis) == expected
            _on_loop(store, store.aclose())
            if not store.owns_client:
                _on_loop(store, store.client.aclose())

    def test_a_given_clients_connections_go_back_to_its_pool_as_they_came(
        self, private_redis: RedisServer
    ) -> None:
        """The pipeliner lifts the socket timeout off the connections it keeps (it bounds each
        batch itself) and puts it back when they return to the client's pool at close."""
        client = redis.asyncio.Redis.from_url(private_redis.url, socket_timeout=1.5)
        store = RedisStore(client)

        async def scenario() -> tuple[set[Any], Any]:
            await asyncio.gather(
                *(store.set(f"s{index}", stored(60, n=index)) for index in range(8))
            )
            await asyncio.gather(*(store.get(f"s{index}") for index in range(8)))
            await store.aclose()
            pool = client.connection_pool
            get_connection = connection_getter(pool)
            connections = [await get_connection() for _ in range(3)]
            timeouts = {connection.socket_timeout for connection in connections}
            for connection in connections:
                await pool.release(connection)
            value = await client.get("sess:s7")
            await client.aclose()
            return timeouts, value

        timeouts, value = _on_loop(store, scenario())
        assert timeouts == {1.5}
        assert json.loads(value)["n"] == 7

    def test_a_command_given_up_on_leaves_the_others_replies_in_order(
        self, private_redis: RedisServer
    ) -> None:
        """Replies come back in the order commands went: a request that stops waiting (its task
        cancelled) must not shift the replies of the commands behind it."""
        store = RedisStore(url=private_redis.url)
        pipeliner = store.pipeliner
        assert pipeliner is not None

        async def scenario() -> list[Any]:
            for index in range(6):
                await pipeliner.send("SET", f"k{index}", str(index))
            sends = [asyncio.ensure_future(pipeliner.send("GET", f"k{i}")) for i in range(6)]
            await asyncio.sleep(0)
            sends[2].cancel()
            replies = await asyncio.gather(*sends, return_exceptions=True)
            after = await pipeliner.send("GET", "k5")
            await store.aclose()
            return [*replies, after]

        replies = _on_loop(store, scenario())
        assert isinstance(replies[2], asyncio.CancelledError)
        assert [replies[i] for i in (0, 1, 3, 4, 5, 6)] == [b"0", b"1", b"3", b"4", b"5", b"5"]

    def test_replies_are_what_redis_pys_client_gives(self, private_redis: RedisServer) -> None:
        """Each reply goes through the client's own response callback, as ``execute_command``
        gives it (``SET`` -> True, ``EXPIRE`` on a missing key -> False)."""
        store = RedisStore(url=private_redis.url)
        pipeliner = store.pipeliner
        assert pipeliner is not None

        async def replies() -> list[Any]:
            written = await pipeliner.send("SET", "sess:x", "1")
            together = await asyncio.gather(
                pipeliner.send("EXPIRE", "sess:missing", 10),
                pipeliner.send("GET", "sess:x"),
                pipeliner.send("INCR", "sess:counter"),
                pipeliner.send("SET", "sess:y", "2"),
            )
            return [written, *together]

        assert _on_loop(store, replies()) == [True, False, b"1", 1, True]
        _on_loop(store, store.aclose())

    def test_one_commands_error_stays_its_own(self, private_redis: RedisServer) -> None:
        admin = redis.Redis.from_url(private_redis.url)
        admin.hset("sess:wrong-type", "a", "1")
        store = RedisStore(url=private_redis.url)

        async def together() -> list[Any]:
            await store.set("good", stored(60, n=1))
            return await asyncio.gather(
                store.get("good"), store.get("wrong-type"), return_exceptions=True
            )

        good, wrong = _on_loop(store, together())
        assert good["n"] == 1
        assert isinstance(wrong, SessionCorrupt)
        _on_loop(store, store.aclose())
        admin.close()

    def test_a_script_missing_from_the_server_is_loaded_in_a_batch(
        self, private_redis: RedisServer
    ) -> None:
        store = RedisStore(url=private_redis.url)
        record = SessionRecord.from_dict(stored(60, n=1))

        async def merges() -> None:
            for sid in ("a", "b"):
                await store.set_record(sid, record)
            loaded = [await store.get_record(sid) for sid in ("a", "b")]
            redis.Redis.from_url(private_redis.url).script_flush()
            changed = SessionRecord.from_dict(stored(60, n=2))
            await asyncio.gather(
                *(
                    store.merge_record(sid, changed, Base(got.token, got.data_json))
                    for sid, got in zip(("a", "b"), loaded, strict=True)
                )
            )

        _on_loop(store, merges())
        assert [_on_loop(store, store.get(sid))["n"] for sid in ("a", "b")] == [2, 2]
        _on_loop(store, store.aclose())


def test_the_stores_own_connections_pack_commands_with_hiredis_as_redis_py_does() -> None:
    """Same bytes on the wire as redis-py's own packer, for what the store sends; a command
    name with a space (``"CONFIG GET"``) is left to redis-py, which splits it."""
    store = RedisStore(url=require_redis())
    connection_class = store.client.connection_pool.connection_class
    assert connection_class.__name__.startswith("HiredisPacked")
    ours = connection_class()
    theirs = redis.asyncio.Connection()
    for command in (
        ("GETEX", "sess:abc", "EX", 3600),
        ("EVALSHA", "f" * 40, 1, "sess:abc", b'{"n":1}', "é-\x00-json", 60),
        ("CONFIG GET", "maxmemory"),
    ):
        assert b"".join(ours.pack_command(*command)) == b"".join(theirs.pack_command(*command))
    batch = [("GETEX", "sess:a", "EX", 60), ("EVALSHA", "f" * 40, 1, "sess:b", b"{}", "{}", 60)]
    for commands in (batch, [*batch, ("CONFIG GET", "maxmemory")]):
        assert b"".join(ours.pack_commands(commands)) == b"".join(theirs.pack_commands(commands))
    given = RedisStore(redis.asyncio.Redis())
    assert given.client.connection_pool.connection_class is redis.asyncio.Connection


@pytest.mark.parametrize("client", ["own", "given"])
def test_a_garbled_reply_is_an_outage_not_a_crash_or_a_hang(client: str) -> None:
    """Something on the Redis port that answers the handshake but then sends bytes that are
    not RESP: the read fails as ``StoreUnavailable``, promptly, and nothing waits forever;
    the store's own client retries once on a fresh connection first."""
    connections = []

    async def fake_redis(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        while data := await reader.read(65536):
            if b"GET" in data:
                writer.write(b"?this is not RESP\r\n")
            else:
                writer.write(b"+OK\r\n" * data.count(b"*"))

    async def scenario() -> tuple[type[BaseException], float]:
        server = await asyncio.start_server(fake_redis, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        url = f"redis://127.0.0.1:{port}/0"
        given = redis.asyncio.Redis.from_url(url, socket_timeout=10) if client == "given" else None
        store = RedisStore(given) if given is not None else RedisStore(url=url, timeout=10)
        started = time.monotonic()
        try:
            await store.get("abc")
        except BaseException as exc:
            failure = type(exc)
        else:
            failure = type(None)
        elapsed = time.monotonic() - started
        await store.aclose()
        if given is not None:
            await given.aclose()
        for writer in connections:
            writer.close()
        server.close()
        return failure, elapsed

    failure, elapsed = asyncio.run(scenario())
    assert failure is StoreUnavailable
    assert elapsed < 5, "well within the 10 s timeout: the garbled reply itself is the failure"
    assert len(connections) >= (2 if client == "own" else 1), "retried on a fresh connection"


REDIS_TRANSPORTS = ["own", "given", "unpipelined", "sync"]


def _store_on(url: str, transport: str) -> Any:
    if transport == "sync":
        return SyncRedisStore(url=url, timeout=0.5)
    if transport == "given":
        client = redis.asyncio.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        return RedisStore(client)
    return RedisStore(url=url, timeout=0.5, auto_pipeline=transport == "own")


async def _fake_server(answer: Callable[[bytes], bytes | None]) -> tuple[Any, str]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            reply = answer(data)
            if reply is not None:
                writer.write(reply)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0"


@pytest.mark.parametrize("transport", REDIS_TRANSPORTS)
@pytest.mark.parametrize("peer", ["garbled-handshake", "silent", "closed-port"])
def test_a_server_that_cannot_serve_is_an_outage_on_every_transport(
    transport: str, peer: str
) -> None:
    """Whatever redis-py meets on connecting (a handshake reply it cannot parse, a server that
    never answers, nothing listening), every transport reports ``StoreUnavailable`` within its
    timeout: never a 500, never a hang."""
    answers: dict[str, Callable[[bytes], bytes | None]] = {
        "garbled-handshake": lambda data: b"*1\r\n$-7\r\n%3\r\n" * data.count(b"*"),
        "silent": lambda data: None,
    }

    async def scenario() -> tuple[type[BaseException], float]:
        if peer == "closed-port":
            server, url = None, f"redis://127.0.0.1:{free_port()}/0"
        else:
            server, url = await _fake_server(answers[peer])
        store = _store_on(url, transport)
        started = time.monotonic()
        try:
            if transport == "sync":
                await asyncio.to_thread(store.get, "abc")
            else:
                await store.get("abc")
        except BaseException as exc:
            failure: type[BaseException] = type(exc)
        else:
            failure = type(None)
        elapsed = time.monotonic() - started
        closing = store.close() if transport == "sync" else store.aclose()
        if asyncio.iscoroutine(closing):
            await closing
        if transport == "given":
            await store.client.aclose()
        if server is not None:
            server.close()
        return failure, elapsed

    failure, elapsed = asyncio.run(scenario())
    assert failure is StoreUnavailable
    assert elapsed < 5


def test_an_error_raised_inside_redis_py_is_an_outage_logged_once(caplog: Any) -> None:
    """As a redis-py release whose internals moved would fail (an AttributeError deep in its
    handshake): the store is unavailable, and the traceback is logged once, not per request."""
    from sessionware.stores.redis import classify
    from sessionware.stores.toolkit import BROKEN, Health, OutageGuard

    inside: dict[str, Any] = {"__name__": "redis._parsers.helpers"}
    exec("def parse(reply):\n    return reply.get('server')\n", inside)  # noqa: S102

    def failure() -> BaseException:
        try:
            inside["parse"](b"+OK")
        except AttributeError as error:
            return error
        raise AssertionError("unreachable")

    ours = AttributeError("a bug of ours")
    assert classify(failure()) == BROKEN
    assert classify(ours) is None
    store = RedisStore(url="redis://127.0.0.1:1/0")
    guard = OutageGuard(Health(store, "redis", 1, asynchronous=True), classify)
    with caplog.at_level(logging.ERROR, logger="sessionware"):
        for _ in range(3):
            with pytest.raises(StoreUnavailable):
                guard.check(failure())
    assert caplog.text.count("the client failed inside itself") == 1
    assert "in parse" in caplog.text
    guard.check(ours)  # returns: the caller re-raises a bug as it is

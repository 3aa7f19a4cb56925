"""Fault injection, for every store and transport: many clients at once, each with its own
session, while the store's connection is cut in the middle of replies, garbled, stalled past the
timeout, the server restarted, and some clients send values no UTF-8 can hold.

The invariant: no client ever reads another client's session, and each request either succeeds
(200, its own session) or fails on its own (503); no request hangs, and once the faults stop
every client is served its own session again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sessionware import MemoryStore

from .harness import SECRET, Client, Req, middleware_for
from .services import FaultyProxy, RedisServer, require_mysql, require_postgres

CLIENTS = 12
ROUNDS = 8
ATTACKERS = {0, 5}
"""Clients whose every request puts a lone surrogate into their session."""
DEADLINE = 8.0
"""Longer than any store's timeout plus its one retry: a request still running then hangs."""


def handler(req: Req) -> None:
    me = req.headers["x-client"]
    session = req.session
    session.setdefault("owner", me)
    session["n"] = session.get("n", 0) + 1
    if req.headers.get("x-attack"):
        session["name"] = "\ud800" + me
    req.end(json.dumps({"owner": session["owner"], "n": session["n"]}))


class Subject:
    """A store behind the app of its side (ASGI or WSGI), reached through a ``FaultyProxy``
    where it talks to a server."""

    def __init__(self, store: Any, transport: str, proxy: FaultyProxy | None = None) -> None:
        self.store = store
        self.transport = transport
        self.proxy = proxy
        self.restart: Callable[[], None] | None = None
        self.cleanup: list[Callable[[], None]] = []
        app = middleware_for(
            transport,
            handler,
            secret=SECRET,
            store=store,
            cookie={"max_age": 600},
            store_unavailable="error",
        )
        self.client = Client(app, transport)

    def one_round(self, cookies: dict[int, str | None]) -> dict[int, tuple[int, Any, str | None]]:
        """Every client's request at once: its status, its body (parsed) and its cookie."""

        def headers(index: int) -> dict[str, str]:
            found = {"x-client": str(index)}
            if index in ATTACKERS:
                found["x-attack"] = "1"
            if cookies[index] is not None:
                found["cookie"] = str(cookies[index])
            return found

        if self.transport == "asgi":

            async def everyone() -> list[Any]:
                return list(
                    await asyncio.gather(
                        *(
                            asyncio.wait_for(
                                self.client._asgi("GET", "/", headers(index), "http", ""),
                                DEADLINE,
                            )
                            for index in cookies
                        )
                    )
                )

            responses = dict(
                zip(cookies, self.client.loop.run_until_complete(everyone()), strict=True)
            )
        else:
            responses = {}

            def one(index: int) -> None:
                responses[index] = self.client._wsgi("GET", "/", headers(index), "http", "")

            threads = [threading.Thread(target=one, args=(index,)) for index in cookies]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(DEADLINE)
                assert not thread.is_alive(), "a request hung past the deadline"
        results = {}
        for index, response in responses.items():
            body = json.loads(response.text) if response.status == 200 else None
            cookie = response.cookie() if response.set_cookie else None
            results[index] = (response.status, body, cookie)
        return results

    def close(self) -> None:
        with contextlib.suppress(Exception):
            close = self.store.aclose if hasattr(self.store, "aclose") else self.store.close
            result = close()
            if asyncio.iscoroutine(result):
                self.client.loop.run_until_complete(result)
        self.client.close()
        if self.proxy is not None:
            self.proxy.stop()
        for step in self.cleanup:
            step()


def _redis(kind: str, tmp_path: Path) -> Subject:
    import redis.asyncio

    from sessionware.stores.redis import RedisStore, SyncRedisStore

    server = RedisServer(tmp_path / "redis").start()
    proxy = FaultyProxy(server.port).start()
    url = f"redis://127.0.0.1:{proxy.port}/0"
    options: dict[str, Any] = {"timeout": 0.5, "retry_interval": 0.1}
    if kind == "redis-sync":
        subject = Subject(SyncRedisStore(url=url, **options), "wsgi", proxy)
    elif kind == "redis-given":
        given = redis.asyncio.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        subject = Subject(RedisStore(given, retry_interval=0.1), "asgi", proxy)
    elif kind == "redis-resp3":
        subject = Subject(RedisStore(url=url + "?protocol=3", **options), "asgi", proxy)
    else:
        pipelined = kind == "redis-own"
        subject = Subject(RedisStore(url=url, auto_pipeline=pipelined, **options), "asgi", proxy)

    def restart() -> None:
        server.kill()
        server.start()

    subject.restart = restart
    subject.cleanup.append(server.stop)
    return subject


def _sql(kind: str) -> Subject:
    database, mode = kind.split("-")
    table = f"sw_faults_{uuid.uuid4().hex[:10]}"
    if database == "postgres":
        from sessionware.stores import postgres

        url, port = require_postgres(), 5432
        store_class: Any = postgres.PostgresStore if mode == "async" else postgres.SyncPostgresStore
    else:
        from sessionware.stores import mysql

        url, port = require_mysql(), 3306
        store_class = mysql.MySQLStore if mode == "async" else mysql.SyncMySQLStore
    proxy = FaultyProxy(port, stall=2.5).start()
    proxied = url.replace(f"127.0.0.1:{port}", f"127.0.0.1:{proxy.port}")
    store = store_class(url=proxied, table=table, timeout=1, retry_interval=0.1)
    subject = Subject(store, "asgi" if mode == "async" else "wsgi", proxy)

    def drop() -> None:
        if database == "postgres":
            import psycopg

            with psycopg.connect(url, autocommit=True) as connection:
                connection.execute(f'DROP TABLE IF EXISTS "{table}"')
        else:
            import pymysql

            from sessionware.stores.mysql import connection_options

            with pymysql.connect(**connection_options(url, 5)) as connection:
                connection.cursor().execute(f"DROP TABLE IF EXISTS `{table}`")

    subject.cleanup.append(drop)
    return subject


NETWORKED = [
    "redis-own",
    "redis-given",
    "redis-unpipelined",
    "redis-resp3",
    "redis-sync",
    "postgres-async",
    "postgres-sync",
    "mysql-async",
    "mysql-sync",
]


@pytest.fixture
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    kind: str = request.param
    if kind.startswith("redis"):
        made = _redis(kind, tmp_path)
    elif kind == "memory":
        made = Subject(MemoryStore(), "asgi")
    elif kind == "sqlite":
        from sessionware.stores.sqlite import SQLiteStore

        made = Subject(SQLiteStore(str(tmp_path / "s.db")), "wsgi")
    else:
        made = _sql(kind)
    try:
        yield made
    finally:
        made.close()


def _check(results: dict[int, tuple[int, Any, str | None]], allowed: set[int]) -> None:
    for index, (status, body, _) in results.items():
        assert status in allowed, f"client {index}: {status}"
        if status == 200:
            assert body["owner"] == str(index), f"client {index} read {body['owner']}'s session"


def _until_everyone_is_served(subject: Subject, cookies: dict[int, str | None]) -> None:
    """After the faults: the store recovers (its probe), and every client gets its own."""
    waiting = dict(cookies)
    for _ in range(50):
        results = subject.one_round(waiting)
        _check(results, {200, 503})
        for index, (status, _, cookie) in results.items():
            if status == 200:
                del waiting[index]
                cookies[index] = cookie or cookies[index]
        if not waiting:
            return
        subject.client.loop.run_until_complete(asyncio.sleep(0.1))
    raise AssertionError(f"clients {sorted(waiting)} were never served again")


@pytest.mark.parametrize("subject", [*NETWORKED, "sqlite", "memory"], indirect=True)
def test_no_client_ever_reads_another_clients_session(subject: Subject) -> None:
    cookies: dict[int, str | None] = dict.fromkeys(range(CLIENTS))
    first = subject.one_round(cookies)
    _check(first, {200})
    cookies = {index: cookie for index, (_, _, cookie) in first.items()}
    proxy = subject.proxy
    faults = ["cut", "garble", "stall"] if proxy is not None else []
    chooser = random.Random(0)
    planted = 0
    deadline = time.monotonic() + 90
    round_number = 0
    while round_number < ROUNDS or (
        proxy is not None and (planted < 2 * len(faults) or proxy.faults)
    ):
        assert time.monotonic() < deadline, f"faults still to go in: {proxy and proxy.faults}"
        if proxy is not None and not proxy.faults:
            fault = faults[planted % len(faults)]
            planted += 1
            proxy.inject(fault)
            threading.Timer(chooser.uniform(0, 0.01), proxy.inject, [fault]).start()
        if subject.restart is not None and round_number == ROUNDS // 2:
            subject.restart()
        results = subject.one_round(cookies)
        _check(results, {200, 503})
        for index, (status, _, cookie) in results.items():
            if status == 200 and cookie is not None:
                cookies[index] = cookie
        if all(status == 503 for status, _, _ in results.values()):
            subject.client.loop.run_until_complete(asyncio.sleep(0.1))  # the probe's turn
        round_number += 1
    if proxy is not None:
        assert all(proxy.injected.values()), proxy.injected
    _until_everyone_is_served(subject, cookies)

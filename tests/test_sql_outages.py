"""SQL stores under outages, for real: the connection to PostgreSQL or MariaDB goes through a
proxy that the test stops and starts (the shared servers are never touched), and connections
are killed server-side (pg_terminate_backend, KILL)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sessionware import StoreUnavailable

from .services import TcpProxy, require_mysql, require_postgres

KINDS = ["postgres-async", "postgres-sync", "mysql-async", "mysql-sync"]


class Subject:
    """A SQL store on its own table, reached through a proxy, driven from sync code."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.table = f"sw_outage_{uuid.uuid4().hex[:10]}"
        database, mode = kind.split("-")
        self.database = database
        if database == "postgres":
            from sessionware.stores import postgres

            url = require_postgres()
            self.proxy = TcpProxy(5432).start()
            proxied = url.replace("127.0.0.1:5432", f"127.0.0.1:{self.proxy.port}")
            proxied += f"?application_name={self.table}"
            store_class: Any = (
                postgres.PostgresStore if mode == "async" else postgres.SyncPostgresStore
            )
        else:
            from sessionware.stores import mysql

            url = require_mysql()
            self.proxy = TcpProxy(3306).start()
            proxied = url.replace("127.0.0.1:3306", f"127.0.0.1:{self.proxy.port}")
            store_class = mysql.MySQLStore if mode == "async" else mysql.SyncMySQLStore
        self.direct_url = url
        self.store = store_class(url=proxied, table=self.table, timeout=1, retry_interval=0.1)
        self.loop = asyncio.new_event_loop()
        self.events: list[str] = []
        self.store.on("disconnect", lambda: self.events.append("disconnect"))
        self.store.on("connect", lambda: self.events.append("connect"))

    def call(self, method: str, *args: Any) -> Any:
        result = getattr(self.store, method)(*args)
        return self.loop.run_until_complete(result) if asyncio.iscoroutine(result) else result

    def wait_for(self, condition: Callable[[], bool], seconds: float = 10) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            assert time.monotonic() < deadline, f"timed out; events so far: {self.events}"
            self.loop.run_until_complete(asyncio.sleep(0.05))

    def kill_connections(self) -> None:
        """End the store's connections from the server's side."""
        if self.database == "postgres":
            import psycopg

            with psycopg.connect(self.direct_url, autocommit=True) as connection:
                connection.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = %s",
                    (self.table,),
                )
            return
        import pymysql

        from sessionware.stores.mysql import connection_options

        with pymysql.connect(**connection_options(self.direct_url, 5)) as connection:
            cursor = connection.cursor()
            cursor.execute(
                "SELECT id FROM information_schema.processlist"
                " WHERE id <> CONNECTION_ID() AND command = 'Sleep' AND db = DATABASE()"
            )
            for (thread_id,) in cursor.fetchall():
                with contextlib_suppress():
                    cursor.execute(f"KILL {int(thread_id)}")

    def close(self) -> None:
        self.proxy.stop()
        self.proxy = TcpProxy(self.proxy.target_port)
        with contextlib_suppress():
            self.call("close")
        self.loop.close()
        if self.database == "postgres":
            import psycopg

            with psycopg.connect(self.direct_url, autocommit=True) as connection:
                connection.execute(f'DROP TABLE IF EXISTS "{self.table}"')
        else:
            import pymysql

            from sessionware.stores.mysql import connection_options

            with pymysql.connect(**connection_options(self.direct_url, 5)) as connection:
                connection.cursor().execute(f"DROP TABLE IF EXISTS `{self.table}`")


def contextlib_suppress() -> Any:
    import contextlib

    return contextlib.suppress(Exception)


SESSION = {"cookie": {"originalMaxAge": None, "expires": None}, "n": 1}


@pytest.fixture(params=KINDS)
def subject(request: pytest.FixtureRequest) -> Iterator[Subject]:
    subject = Subject(request.param)
    try:
        yield subject
    finally:
        subject.close()


def test_connections_killed_by_the_server_are_replaced_without_an_outage(
    subject: Subject,
) -> None:
    subject.call("set", "abc", SESSION)
    subject.kill_connections()
    time.sleep(0.2)
    assert subject.call("get", "abc") == SESSION
    assert subject.events == []


def test_a_lost_database_is_reported_and_recovered_with_no_restart(
    subject: Subject, caplog: pytest.LogCaptureFixture
) -> None:
    """...in one warning line each way: the pool's own reconnection attempts (psycopg_pool
    logs each one) stay at DEBUG."""
    caplog.set_level(logging.INFO)
    subject.call("set", "abc", SESSION)
    subject.proxy.stop()
    with pytest.raises(StoreUnavailable):
        subject.call("get", "abc")
    subject.wait_for(lambda: subject.events == ["disconnect"])
    port = subject.proxy.port
    subject.proxy = TcpProxy(subject.proxy.target_port)
    subject.proxy.port = port
    subject.proxy.start()
    subject.wait_for(lambda: subject.events == ["disconnect", "connect"])
    assert subject.call("get", "abc") == SESSION
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert [w for w in warnings if "error connecting" in w] == []
    assert len([w for w in warnings if "store unreachable:" in w]) == 1, warnings

"""Interop with real Node apps on the same SQL table: express-session + connect-pg-simple on
PostgreSQL, express-session + express-mysql-session on MariaDB. A session written by either side
is read and changed by the other, and both send byte-identical cookies for it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from .harness import Client, middleware_for
from .node_app import SECRET, NodeApp, cookie_pair, node_app_on, python_handler
from .services import require_mysql, require_postgres


@dataclass
class Pair:
    node: NodeApp
    python: Client
    row: Any  # sid -> (stored JSON text, expiry in epoch seconds)
    store: Any = None


def _python_client(store: Any, **options: Any) -> Client:
    app = middleware_for(
        "asgi", python_handler, secret=SECRET, store=store, cookie={"max_age": 3600}, **options
    )
    return Client(app, "asgi")


def _postgres(table: str, **options: Any) -> Iterator[Pair]:
    import psycopg

    from sessionware.stores.postgres import PostgresStore

    url = require_postgres()
    store = PostgresStore(url=url, table=table)
    python = _python_client(store, **options)
    python.loop.run_until_complete(store.length())  # creates connect-pg-simple's table

    def row(sid: str) -> tuple[str, float]:
        with psycopg.connect(url) as connection:
            found = connection.execute(
                f'SELECT sess::text, extract(epoch from expire) FROM "{table}" WHERE sid = %s',
                (sid,),
            ).fetchone()
        assert found is not None
        return found[0], float(found[1])

    try:
        with node_app_on(STORE="pg", PG_URL=url, TABLE=table) as node:
            yield Pair(node, python, row, store)
    finally:
        python.loop.run_until_complete(store.aclose())
        python.close()
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(f'DROP TABLE IF EXISTS "{table}"')


def _mysql(table: str, **options: Any) -> Iterator[Pair]:
    import pymysql

    from sessionware.stores.mysql import MySQLStore, connection_options

    url = require_mysql()
    store = MySQLStore(url=url, table=table)
    python = _python_client(store, **options)
    python.loop.run_until_complete(store.length())  # creates the table (+ an expiry index)
    options = connection_options(url, 5)

    def row(sid: str) -> tuple[str, float]:
        with pymysql.connect(**options) as connection, connection.cursor() as cursor:
            cursor.execute(f"SELECT data, expires FROM `{table}` WHERE session_id = %s", (sid,))
            found = cursor.fetchone()
        assert found is not None
        return found[0], float(found[1])

    try:
        with node_app_on(STORE="mysql", MYSQL_URL=url, TABLE=table) as node:
            yield Pair(node, python, row, store)
    finally:
        python.loop.run_until_complete(store.aclose())
        python.close()
        with pymysql.connect(**options) as connection:
            connection.cursor().execute(f"DROP TABLE IF EXISTS `{table}`")


def _pair(kind: str) -> Iterator[Pair]:
    table = f"sw_node_{uuid.uuid4().hex[:10]}"
    database, _, indexed = kind.partition("-")
    options = {"user_key": "by"} if indexed else {}
    yield from (_postgres if database == "postgres" else _mysql)(table, **options)


@pytest.fixture(params=["postgres", "mysql", "postgres-indexed", "mysql-indexed"])
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    """Each database twice: the Node store's own table, and the table with the per-user index
    column a Python app with ``user_key`` adds to it (the Node app must not notice)."""
    yield from _pair(request.param)


@pytest.fixture(params=["postgres-indexed", "mysql-indexed"])
def indexed_pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    yield from _pair(request.param)


def test_a_node_session_is_read_and_changed_by_python(pair: Pair) -> None:
    created, node_cookie = pair.node.get("/inc")
    cookie = cookie_pair(node_cookie)
    seen = json.loads(pair.python.get("/get", cookie=cookie).text)
    assert seen == {"count": 1, "by": "node", "id": created["id"]}
    changed = pair.python.get("/inc", cookie=cookie)
    assert json.loads(changed.text)["count"] == 2
    assert changed.cookie() == cookie, "Python must re-issue the very same cookie"
    back, _ = pair.node.get("/get", cookie=cookie)
    assert back == {"count": 2, "by": "python", "id": created["id"]}


def test_a_python_session_is_read_and_changed_by_node(pair: Pair) -> None:
    created = pair.python.get("/inc")
    cookie = created.cookie()
    sid = json.loads(created.text)["id"]
    seen, _ = pair.node.get("/get", cookie=cookie)
    assert seen == {"count": 1, "by": "python", "id": sid}
    changed, node_cookie = pair.node.get("/inc", cookie=cookie)
    assert changed["count"] == 2
    assert cookie_pair(node_cookie) == cookie, "Node must re-issue the very same cookie"
    back = json.loads(pair.python.get("/get", cookie=cookie).text)
    assert back == {"count": 2, "by": "node", "id": sid}


def test_both_write_the_same_row_shape(pair: Pair) -> None:
    node_body, _ = pair.node.get("/inc")
    python_sid = json.loads(pair.python.get("/inc").text)["id"]
    node_json, node_expiry = pair.row(node_body["id"])
    python_json, python_expiry = pair.row(python_sid)
    node_value, python_value = json.loads(node_json), json.loads(python_json)
    assert list(node_value) == list(python_value) == ["cookie", "count", "by"]
    assert list(node_value["cookie"]) == list(python_value["cookie"])
    assert abs(node_expiry - python_expiry) < 5


def test_the_user_index_beside_a_node_app(indexed_pair: Pair) -> None:
    """Node's writes leave the ``user_id`` column as it was: a session Node moved to another
    user leaves the old user's list (checked against the data), and is not indexed under the
    new one (documented)."""
    pair = indexed_pair
    created = pair.python.get("/inc")
    cookie, sid = created.cookie(), json.loads(created.text)["id"]
    listed = pair.python.loop.run_until_complete(pair.store.user_sessions("python"))
    assert list(listed) == [sid]
    pair.node.get("/inc", cookie=cookie)
    for user in ("python", "node"):
        assert pair.python.loop.run_until_complete(pair.store.user_sessions(user)) == {}

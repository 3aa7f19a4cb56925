"""from_url: every scheme gives the right store, sync or async; bad URLs say what is accepted."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from sessionware import MemoryStore
from sessionware.stores import from_url
from sessionware.stores.mysql import MySQLStore, SyncMySQLStore
from sessionware.stores.postgres import PostgresStore, SyncPostgresStore
from sessionware.stores.redis import RedisStore, SyncRedisStore
from sessionware.stores.sqlite import SQLiteStore


def _close(store: Any) -> None:
    result = store.close()
    if asyncio.iscoroutine(result):
        asyncio.run(result)


@pytest.mark.parametrize(
    ("url", "sync", "expected"),
    [
        ("memory://", False, MemoryStore),
        ("redis://127.0.0.1:6379/0", False, RedisStore),
        ("redis://127.0.0.1:6379/0", True, SyncRedisStore),
        ("rediss://example.invalid:6380/0", True, SyncRedisStore),
        ("unix:///tmp/redis.sock", False, RedisStore),
        ("postgresql://postgres@127.0.0.1/test", False, PostgresStore),
        ("postgres://postgres@127.0.0.1/test", True, SyncPostgresStore),
        ("mysql://root@127.0.0.1/test", False, MySQLStore),
        ("mariadb://root@127.0.0.1/test", True, SyncMySQLStore),
    ],
)
def test_each_scheme_gives_its_store(url: str, sync: bool, expected: type) -> None:
    store = from_url(url, sync=sync)
    assert type(store) is expected
    if not isinstance(store, MemoryStore):
        _close(store)


def test_sqlite_paths_relative_and_absolute(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    relative = from_url("sqlite:///sessions.db")
    absolute = from_url(f"sqlite:///{tmp_path}/other.db")
    assert isinstance(relative, SQLiteStore)
    assert relative.path == "sessions.db"
    assert absolute.path == f"{tmp_path}/other.db"
    relative.set("abc", {"cookie": {"originalMaxAge": None, "expires": None}, "n": 1})
    assert (tmp_path / "sessions.db").exists()
    relative.close()
    absolute.close()


def test_options_reach_the_store() -> None:
    store = from_url("redis://127.0.0.1:6379/0", prefix="app:", sync=True)
    assert store.rules.prefix == "app:"
    store.close()


def test_the_cluster_form() -> None:
    store = from_url("redis+cluster://127.0.0.1:7000/0")
    assert store.is_cluster


@pytest.mark.parametrize("url", ["mongodb://x", "nonsense", "", "http://example.com"])
def test_a_bad_url_names_the_accepted_schemes(url: str) -> None:
    with pytest.raises(ValueError, match=r"accepted: memory://, sqlite://"):
        from_url(url)


def test_the_stores_options_come_in_the_query(tmp_path: Path) -> None:
    """Where a URL is the only way in (a setting, the CLI): the store's options in the query
    reach the store, read as their types, and the driver's parameters stay in its URL."""
    sqlite = from_url(f"sqlite:///{tmp_path}/s.db?table=app_sessions&ttl=60&disable_touch=true")
    assert (sqlite.path, sqlite.rules.ttl, sqlite.rules.disable_touch) == (
        f"{tmp_path}/s.db",
        60,
        True,
    )
    assert "app_sessions" in sqlite.rules.dialect.clear
    sqlite.close()
    memory = from_url("memory://?max_sessions=3&user_key=uid")
    assert (memory.max_sessions, memory.user_key) == (3, "uid")
    postgres = from_url(
        "postgresql://postgres@127.0.0.1/test?schema=app&table=s&sslmode=disable", sync=True
    )
    assert postgres.rules.dialect.clear == 'DELETE FROM "app"."s"'
    assert postgres.pool.conninfo.endswith("/test?sslmode=disable")
    _close(postgres)
    redis_store = from_url("redis://127.0.0.1:6379/0?prefix=app:&protocol=3&timeout=1.5")
    assert redis_store.rules.prefix == "app:"
    _close(redis_store)
    keyword = from_url("memory://?ttl=60", ttl=120)
    assert keyword.ttl_ms == 120_000, "a keyword option wins over the URL's"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://h/db?shema=app", r"unknown store URL option 'shema' .*accepted: .*schema"),
        ("sqlite:///s.db?tabel=x", r"unknown store URL option 'tabel' .*accepted: .*table"),
        ("mysql://root@h/db?sslmode=x", r"unknown store URL option 'sslmode'"),
        ("memory://?ttl=soon", r"store URL option ttl='soon'"),
        ("redis://h/0?disable_ttl=maybe", r"disable_ttl='maybe': not a flag"),
    ],
)
def test_an_unknown_or_unreadable_option_is_refused_at_once(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        from_url(url)

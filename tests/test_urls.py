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

"""SQLite: several processes on one file at once, and a process SIGKILLed mid-write leaves the
file intact with every acknowledged save in it."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sessionware.stores.sqlite import SQLiteStore

WRITER = """
import sys, time
from sessionware.stores.sqlite import SQLiteStore
store = SQLiteStore(sys.argv[1])
prefix = sys.argv[2]
index = 0
while True:
    store.set(f"{prefix}{index}", {"cookie": {"originalMaxAge": None, "expires": None}, "n": index})
    print(index, flush=True)
    index += 1
    time.sleep(0.002)  # a request's own work between two saves
"""


def _writers(path: Path, prefixes: list[str]) -> list[subprocess.Popen[str]]:
    return [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), prefix],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        for prefix in prefixes
    ]


def test_processes_killed_mid_write_lose_no_acknowledged_save(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    SQLiteStore(str(path)).length()  # the table exists before the writers race to create it
    writers = _writers(path, ["a", "b", "c"])
    try:
        time.sleep(1.5)
    finally:
        for writer in writers:
            writer.send_signal(signal.SIGKILL)
    acknowledged: dict[str, int] = {}
    for writer, prefix in zip(writers, "abc", strict=True):
        writer.wait(timeout=10)
        assert writer.stdout is not None
        assert writer.stderr is not None
        assert writer.stderr.read() == "", "a writer failed before it was killed"
        lines = writer.stdout.read().split()
        acknowledged[prefix] = int(lines[-1]) if lines else -1
    assert all(count > 10 for count in acknowledged.values()), acknowledged
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    store = SQLiteStore(str(path))
    for prefix, last in acknowledged.items():
        missing = [i for i in range(last + 1) if store.get(f"{prefix}{i}") is None]
        assert missing == [], f"acknowledged saves of {prefix} lost: {missing[:5]}"
    store.close()


def test_a_memory_database_is_one_database_for_every_thread() -> None:
    import threading

    store = SQLiteStore(":memory:")
    threads = [
        threading.Thread(
            target=store.set,
            args=(f"s{index}", {"cookie": {"originalMaxAge": None, "expires": None}}),
        )
        for index in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.length() == 8
    store.close()


def test_touch_after_spares_a_write_for_reads_soon_after_a_save(tmp_path: Path) -> None:
    """A read-only request right after a save sends no UPDATE with touch_after; without it, it
    moves the expiry (express's behaviour)."""
    from sessionware._records import SessionRecord

    def expiry_after_a_touch(touch_after: float) -> tuple[int, int]:
        path = tmp_path / f"t{touch_after}.db"
        store = SQLiteStore(str(path), touch_after=touch_after)
        saved = {"cookie": {"originalMaxAge": 60_000, "expires": "2030-01-01T00:00:00.000Z"}}
        store.set("abc", saved)
        before = store._connection().execute("SELECT expired FROM sessions").fetchone()[0]
        store.get("abc")
        later = {"cookie": {"originalMaxAge": 60_000, "expires": "2030-06-01T00:00:00.000Z"}}
        store.touch_record("abc", SessionRecord.from_dict(later))
        after = store._connection().execute("SELECT expired FROM sessions").fetchone()[0]
        store.close()
        return before, after

    before, after = expiry_after_a_touch(60)
    assert after == before, "touched again within touch_after"
    before, after = expiry_after_a_touch(0)
    assert after > before


def test_the_user_index_leaves_connect_sqlite3s_insert_working(tmp_path: Path) -> None:
    """connect-sqlite3 writes ``INSERT OR REPLACE INTO sessions VALUES (?, ?, ?)``, with no
    column list: a fourth, written column would break every save of a Node app sharing the
    file. The index is a column SQLite derives from the JSON, so the Node app's statement still
    works, and its sessions are indexed too."""
    import json

    path = tmp_path / "shared.db"
    store = SQLiteStore(str(path), user_key="uid")
    store.set("ours", {"cookie": {"originalMaxAge": None, "expires": None}, "uid": "ann"})
    expires = int(time.time() * 1000) + 60_000
    with sqlite3.connect(path) as node:
        node.execute(
            "INSERT OR REPLACE INTO sessions VALUES (?, ?, ?)",
            ("theirs", expires, json.dumps({"cookie": {"expires": None}, "uid": "ann"})),
        )
    assert sorted(store.user_sessions("ann")) == ["ours", "theirs"]
    assert store.destroy_user_sessions("ann", keep="ours") == 1
    store.close()


def test_an_unusable_user_key_for_the_derived_index_is_refused(tmp_path: Path) -> None:
    import pytest

    with pytest.raises(ValueError, match="user_key"):
        SQLiteStore(str(tmp_path / "s.db"), user_key='a"b')


def stored(**data: Any) -> dict[str, Any]:
    return {"cookie": {"originalMaxAge": None, "expires": None, "path": "/"}, **data}


def test_the_portable_sql_never_loses_a_write_it_could_not_make(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dialect without an upsert (SQLAlchemy on a database no Node store covers) writes with
    UPDATE, then INSERT: an INSERT the database refuses (here a trigger) is the save's error, not
    a save that returns as if the session were stored."""
    from sqlalchemy import create_engine, text

    from sessionware.stores import sqlalchemy as module

    monkeypatch.setattr(module, "_DIALECTS", {})  # SQLite through the portable SQL
    engine = create_engine(f"sqlite:///{tmp_path / 'generic.db'}")
    store = module.SQLAlchemyStore(engine)
    store.set("kept", stored(n=1))
    with engine.begin() as connection:
        connection.execute(
            text(
                'CREATE TRIGGER refuse BEFORE INSERT ON "sessions" '
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        )
    with pytest.raises(Exception, match="refused"):
        store.set("refused", stored(n=2))
    assert store.get("refused") is None
    store.set("kept", stored(n=3))  # an existing row is updated: no INSERT
    assert store.get("kept")["n"] == 3
    store.close()
    engine.dispose()

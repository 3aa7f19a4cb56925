"""The `sessionware store` command over any store URL: every command, --json, and the error paths
(exit codes, one-line errors, ids that start with '-', a closed pipe)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sessionware._records import TIMES_KEY
from sessionware.cli import main
from sessionware.stores.sqlite import SQLiteStore

COOKIE = {"originalMaxAge": 3600000, "expires": "2030-01-01T00:00:00.000Z", "path": "/"}


@pytest.fixture
def url(tmp_path: Path) -> str:
    path = tmp_path / "s.db"
    store = SQLiteStore(str(path))
    store.set("a1", {"cookie": COOKIE, "user": "ann", "n": 1})
    store.set("b2", {"cookie": COOKIE, "user_id": 7})
    store.set("-dash", {"cookie": COOKIE})
    store.close()
    return f"sqlite:///{path}"


def run(capsys: Any, *words: str) -> tuple[int, str, str]:
    code = main(list(words))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_count_ids_and_list(url: str, capsys: Any) -> None:
    assert run(capsys, "store", "--url", url, "count") == (
        0,
        f'3 sessions ({url}, table "sessions")\n',
        "",
    )
    assert run(capsys, "store", "--url", url, "ids")[1] == "-dash\na1\nb2\n"
    code, table, _ = run(capsys, "store", "--url", url, "list")
    lines = table.splitlines()
    assert code == 0
    assert lines[0].split() == ["ID", "USER", "EXPIRES", "SIZE"]
    assert any(line.split()[:2] == ["a1", "ann"] for line in lines)
    assert any(line.split()[:2] == ["b2", "7"] for line in lines)
    code, out, _ = run(capsys, "store", "--url", url, "--json", "list", "--user", "ann")
    assert [row["id"] for row in json.loads(out)] == ["a1"]
    assert json.loads(run(capsys, "store", "--url", url, "--json", "count")[1]) == {"count": 3}


def test_show_and_destroy_take_ids_that_start_with_a_dash(url: str, capsys: Any) -> None:
    code, out, _ = run(capsys, "store", "--url", url, "show", "-dash")
    assert (code, json.loads(out)["cookie"]["path"]) == (0, "/")
    assert run(capsys, "store", "--url", url, "destroy", "-dash", "a1") == (
        0,
        "destroyed 2 sessions\n",
        "",
    )
    assert run(capsys, "store", "--url", url, "count")[1].startswith("1 session (")


def test_an_option_value_that_looks_like_a_command_stays_a_value(capsys: Any) -> None:
    from .services import require_redis

    assert run(capsys, "store", "--redis", require_redis(), "--prefix", "show", "count")[0] == 0


def test_unknown_ids_exit_1_and_say_so(url: str, capsys: Any) -> None:
    code, _, err = run(capsys, "store", "--url", url, "show", "nope")
    assert (code, err) == (1, "no session 'nope'\n")
    code, out, err = run(capsys, "store", "--url", url, "--json", "destroy", "a1", "nope")
    assert code == 1
    assert json.loads(out) == {"destroyed": ["a1"], "missing": ["nope"]}
    assert "nope" in err


def test_clear_asks_and_gc_prunes(url: str, capsys: Any, tmp_path: Path) -> None:
    code, _, err = run(capsys, "store", "--url", url, "clear")
    assert code == 2 and "--yes" in err
    assert run(capsys, "store", "--url", url, "clear", "--yes") == (0, "cleared 3 sessions\n", "")
    store = SQLiteStore(str(tmp_path / "s.db"))
    store.set("old", {"cookie": {**COOKIE, "expires": "2001-01-01T00:00:00.000Z"}})
    store._connection().execute(
        "INSERT INTO sessions (sid, expired, sess) VALUES ('gone', 1, '{}')"
    )
    store.close()
    assert run(capsys, "store", "--url", url, "gc") == (0, "pruned 1 expired sessions\n", "")


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["--url", "nosuch://x", "count"], "bad store URL 'nosuch://x'"),
        (
            ["--url", "redis://127.0.0.1:1/0", "count"],
            "cannot use the store at redis://127.0.0.1:1/0",
        ),
        (["count"], "no store: pass --url URL or set SESSIONWARE_STORE"),
    ],
)
def test_errors_are_one_line_and_exit_2(
    words: list[str], message: str, capsys: Any, monkeypatch: Any
) -> None:
    monkeypatch.delenv("SESSIONWARE_STORE", raising=False)
    code, _, err = run(capsys, "store", *words)
    assert code == 2
    assert err.startswith(f"sessionware: {message}")
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_the_environment_names_the_store_and_redis_stays_an_alias(
    url: str, capsys: Any, monkeypatch: Any, redis_prefix: str
) -> None:
    from .services import require_redis

    monkeypatch.setenv("SESSIONWARE_STORE", url)
    assert run(capsys, "store", "count")[1].startswith("3 sessions (")
    redis_url = require_redis()
    index = redis_prefix[:-1] + "-user:"
    assert run(capsys, "store", "--redis", redis_url, "--prefix", redis_prefix, "count") == (
        0,
        f"0 sessions ({redis_url}, keys {redis_prefix}*, user indexes {index}*)\n",
        "",
    )


def test_a_closed_pipe_is_quiet(url: str, tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "s.db"))
    for index in range(3000):
        store.set(f"s{index:05}", {"cookie": COOKIE})
    store.close()
    command = f"{sys.executable} -m sessionware store --url {url} ids | head -1"
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, check=False
    )
    assert result.stdout.strip() == "-dash"
    assert result.stderr == ""
    assert result.returncode == 0


def test_gc_and_clear_show_progress_on_a_terminal(tmp_path: Path) -> None:
    import os
    import pty

    path = tmp_path / "big.db"
    store = SQLiteStore(str(path), prune_batch=100)
    store.length()
    store._connection().executemany(
        "INSERT INTO sessions (sid, expired, sess) VALUES (?, ?, ?)",
        [(f"x{i:05}", 1 if i < 1500 else 4102444800000, '{"cookie":{}}') for i in range(3000)],
    )
    store.close()

    def on_a_terminal(*words: str) -> tuple[str, str]:
        main_end, terminal = pty.openpty()
        result = subprocess.run(
            [sys.executable, "-m", "sessionware", "store", "--url", f"sqlite:///{path}", *words],
            stderr=terminal,
            stdout=subprocess.PIPE,
            text=True,
            check=True,
        )
        os.close(terminal)
        shown = os.read(main_end, 65536).decode()
        os.close(main_end)
        return result.stdout, shown

    out, shown = on_a_terminal("gc")
    assert out == "pruned 1500 expired sessions\n"
    assert "\rpruned 1000..." in shown and "\rpruned 1500..." in shown
    out, shown = on_a_terminal("clear", "--yes")
    assert out == "cleared 1500 sessions\n"
    assert "] 1500/1500" in shown


@pytest.fixture(params=["sqlite", "redis"])
def indexed_url(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A store whose app indexed its sessions by ``uid``."""
    if request.param == "sqlite":
        path = tmp_path / "indexed.db"
        store: Any = SQLiteStore(str(path), user_key="uid")
        url, extra = f"sqlite:///{path}", []
    else:
        from sessionware.stores.redis import SyncRedisStore

        from .services import require_redis

        prefix = request.getfixturevalue("redis_prefix")
        store = SyncRedisStore(url=require_redis(), prefix=prefix, user_key="uid")
        url, extra = require_redis(), ["--prefix", prefix]
    store.set("here", {"cookie": COOKIE, "uid": "ann"})
    store.set("phone", {"cookie": COOKIE, "uid": "ann"})
    store.set("other", {"cookie": COOKIE, "uid": "bob"})
    store.close()
    return ["store", "--url", url, *extra]


def test_a_users_sessions_listed_and_revoked(indexed_url: list[str], capsys: Any) -> None:
    code, out, _ = run(capsys, *indexed_url, "--user-key", "uid", "--json", "user", "ann")
    assert code == 0
    assert [row["id"] for row in json.loads(out)] == ["here", "phone"]
    code, out, _ = run(capsys, *indexed_url, "--user-key", "uid", "revoke", "ann", "--keep", "here")
    assert (code, out.strip()) == (0, "destroyed 1 session of ann")
    code, out, _ = run(capsys, *indexed_url, "--user-key", "uid", "--json", "user", "ann")
    assert [row["id"] for row in json.loads(out)] == ["here"]
    code, out, _ = run(capsys, *indexed_url, "--user-key", "uid", "--json", "user", "bob")
    assert [row["id"] for row in json.loads(out)] == ["other"]


def test_user_shows_the_devices_an_app_recorded(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "devices.db"
    store = SQLiteStore(str(path), user_key="uid")
    device = {"created": 1_700_000_000_000, "active": 1_700_000_600_000}
    laptop = {**device, "address": "192.0.2.7", "agent": "Firefox/140"}
    store.set("laptop", {"cookie": COOKIE, "uid": "ann", TIMES_KEY: laptop})
    store.set("phone", {"cookie": COOKIE, "uid": "ann"})
    store.close()
    url = ["store", "--url", f"sqlite:///{path}", "--user-key", "uid"]
    code, out, _ = run(capsys, *url, "--json", "user", "ann")
    assert code == 0
    rows = {row["id"]: row for row in json.loads(out)}
    assert (rows["laptop"]["address"], rows["laptop"]["agent"]) == ("192.0.2.7", "Firefox/140")
    assert rows["laptop"]["last_seen"] == "2023-11-14T22:23:20+00:00"
    assert (rows["phone"]["address"], rows["phone"]["last_seen"]) == (None, None)
    _, out, _ = run(capsys, *url, "user", "ann")
    header, first, second = out.splitlines()
    assert header.split() == ["ID", "EXPIRES", "SIZE", "LAST_SEEN", "ADDRESS", "AGENT"]
    assert first.split()[-2:] == ["192.0.2.7", "Firefox/140"] and second.split()[-3:] == ["-"] * 3


def test_the_index_commands_need_the_user_key(indexed_url: list[str], capsys: Any) -> None:
    code, _, err = run(capsys, *indexed_url, "user", "ann")
    assert code == 2 and "--user-key" in err


def test_an_encrypted_store_opens_with_the_keys_in_the_environment(
    tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    path = tmp_path / "sealed.db"
    key = "k" * 40
    store = SQLiteStore(str(path), encryption_keys=[key])
    store.set("a1", {"cookie": COOKIE, "secret": "s3"})
    store.close()
    code, out, err = run(capsys, "store", "--url", f"sqlite:///{path}", "show", "a1")
    assert (code, out) == (2, "") and "needs its encryption_keys" in err
    monkeypatch.setenv("SESSIONWARE_ENCRYPTION_KEYS", f"{'x' * 40},{key}")
    code, out, _ = run(capsys, "store", "--url", f"sqlite:///{path}", "show", "a1")
    assert code == 0 and json.loads(out)["secret"] == "s3"


def test_the_store_options_may_follow_the_command(url: str, capsys: Any) -> None:
    """As people type them: ``list --json``, ``count --url URL``."""
    code, out, _ = run(capsys, "store", "list", "--json", "--url", url, "--user", "ann")
    assert code == 0
    assert [row["id"] for row in json.loads(out)] == ["a1"]
    assert json.loads(run(capsys, "store", "count", f"--url={url}", "--json")[1]) == {"count": 3}
    code, out, _ = run(capsys, "store", "--url", url, "show", "--json", "-dash")
    assert (code, json.loads(out)["cookie"]["path"]) == (0, "/")


def test_keep_takes_an_id_that_starts_with_a_dash(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "users.db"
    store = SQLiteStore(str(path), user_key="uid")
    for sid in ("-Xy", "phone"):
        store.set(sid, {"cookie": COOKIE, "uid": "ann"})
    store.close()
    words = ["store", "--url", f"sqlite:///{path}", "--user-key", "uid"]
    code, out, _ = run(capsys, *words, "revoke", "ann", "--keep", "-Xy")
    assert (code, out.strip()) == (0, "destroyed 1 session of ann")
    assert run(capsys, *words, "ids")[1] == "-Xy\n"


@pytest.mark.parametrize("scheme", ["postgresql://nobody@", "mysql://root@", "redis://"])
def test_an_unreachable_server_is_one_line_at_the_first_refusal(scheme: str) -> None:
    """As a person runs it: the drivers' and the store's own log lines stay quiet (``-v`` shows
    them), and a refused connection is the answer, not a pool's timeout after its retries."""
    from .services import free_port

    url = f"{scheme}127.0.0.1:{free_port()}/x"

    def cli(*extra: str) -> subprocess.CompletedProcess[str]:
        words = [sys.executable, "-m", "sessionware", "store", "--url", url, "count", *extra]
        return subprocess.run(words, capture_output=True, text=True, check=False, timeout=60)

    quiet = cli()
    assert quiet.returncode == 2
    assert quiet.stdout == ""
    [line] = quiet.stderr.splitlines()
    assert line.startswith(f"sessionware: cannot use the store at {url}: ")
    assert "refused" in line.lower()
    loud = cli("-v")
    assert loud.returncode == 2
    assert loud.stderr.splitlines()[-1] == line


def test_the_log_lines_are_for_verbose(caplog: Any) -> None:
    import logging

    from sessionware.cli import _logs_shown

    for verbose in (False, True):
        with _logs_shown(verbose):
            logging.getLogger("psycopg.pool").warning("error connecting in 'pool-1'")
    assert [record.getMessage() for record in caplog.records] == ["error connecting in 'pool-1'"]
    logging.getLogger("sessionware").warning("shown again")
    assert len(caplog.records) == 2


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_user_and_revoke_find_the_user_key_as_list_does(
    kind: str, tmp_path: Path, capsys: Any, request: pytest.FixtureRequest
) -> None:
    """One rule for the three: without ``--user-key``, the key that names the user is the
    first of the usual ones a session holds (``user_id`` here)."""
    if kind == "sqlite":
        path = tmp_path / "indexed.db"
        store: Any = SQLiteStore(str(path), user_key="user_id")
        words = ["store", "--url", f"sqlite:///{path}"]
    else:
        from sessionware.stores.redis import SyncRedisStore

        from .services import require_redis

        prefix = request.getfixturevalue("redis_prefix")
        store = SyncRedisStore(url=require_redis(), prefix=prefix, user_key="user_id")
        words = ["store", "--url", require_redis(), "--prefix", prefix]
    store.set("here", {"cookie": COOKIE, "user_id": "ann"})
    store.set("phone", {"cookie": COOKIE, "user_id": "ann"})
    store.set("other", {"cookie": COOKIE, "user_id": "bob"})
    store.close()
    listed = json.loads(run(capsys, *words, "--json", "list", "--user", "ann")[1])
    code, out, err = run(capsys, *words, "--json", "user", "ann")
    assert code == 0 and "'user_id'" in err
    assert [row["id"] for row in json.loads(out)] == [row["id"] for row in listed]
    assert run(capsys, *words, "revoke", "ann", "--keep", "here")[1] == (
        "destroyed 1 session of ann\n"
    )
    code, _, err = run(capsys, *words, "user", "nobody")
    assert code == 2 and "pass --user-key" in err


def test_closing_a_sync_store_waits_for_its_probe_thread() -> None:
    """The CLI crashed (SIGSEGV) about one run in ten against an unreachable MySQL: the store's
    probe thread was still inside the driver when the interpreter exited. Closing a sync store
    now waits for its probe to finish the ping in flight."""
    import threading
    import time

    from sessionware.stores.base import EventEmitter
    from sessionware.stores.toolkit import Health

    pinging = threading.Event()

    def slow_refused_ping() -> None:
        pinging.set()
        time.sleep(0.3)
        raise ConnectionRefusedError("refused")

    health = Health(EventEmitter(), "test", 60, asynchronous=False)
    health.ping = slow_refused_ping
    health.failed(ConnectionRefusedError("refused"))
    assert pinging.wait(5)
    health.close()
    alive = [t.name for t in threading.enumerate() if t.name == "sessionware-test-probe"]
    assert alive == [], "close() returned with the probe thread still inside a ping"


def test_the_cli_exits_cleanly_however_often_it_meets_a_refused_server() -> None:
    from .services import free_port

    url = f"mysql://root@127.0.0.1:{free_port()}/x"
    words = [sys.executable, "-m", "sessionware", "store", "--url", url, "count"]
    codes = {
        subprocess.run(words, capture_output=True, check=False, timeout=60).returncode
        for _ in range(12)
    }
    assert codes == {2}, "the command crashed on exit"

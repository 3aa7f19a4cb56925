"""The demo app that `python3 dev.py demo` serves: counter, login, logout."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from sessionware.cli import main
from sessionware.demo import create_app


def test_the_demo_counts_visits_and_logs_in_and_out() -> None:
    async def scenario() -> list[str]:
        transport = httpx.ASGITransport(app=create_app(secret="demo secret"))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            pages = [(await client.get("/")).text for _ in range(2)]
            await client.post("/login", data={"user": "ann"}, follow_redirects=True)
            pages.append((await client.get("/")).text)
            await client.post("/logout", follow_redirects=True)
            pages.append((await client.get("/")).text)
            return pages

    first, second, logged_in, logged_out = asyncio.run(scenario())
    assert 'id="visits">1<' in first
    assert 'id="visits">2<' in second
    assert 'id="visits">4<' in logged_in
    assert "Signed in as: <strong>ann</strong>" in logged_in
    assert "Signed in as: <strong>nobody</strong>" in logged_out


def test_the_cli_refuses_unknown_commands() -> None:
    import pytest

    with pytest.raises(SystemExit):
        main(["nonsense"])


def test_store_commands(redis_prefix: str, capsys: Any) -> None:
    from sessionware.stores.redis import SyncRedisStore

    from .services import require_redis

    url = require_redis()
    store = SyncRedisStore(url=url, prefix=redis_prefix)
    cookie = {"originalMaxAge": None, "expires": None, "httpOnly": True, "path": "/"}
    for sid in ("a1", "b2"):
        store.set(sid, {"cookie": cookie, "user": sid})
    base = ["store", "--redis", url, "--prefix", redis_prefix]

    def run(*words: str) -> tuple[int, str]:
        code = main([*base, *words])
        return code, capsys.readouterr().out

    assert run("count") == (0, "2\n")
    assert run("ids") == (0, "a1\nb2\n")
    code, shown = run("show", "a1")
    assert code == 0
    assert json.loads(shown)["user"] == "a1"
    assert run("show", "missing")[0] == 1
    assert run("destroy", "a1") == (0, "")
    assert run("clear")[0] == 2
    assert run("count") == (0, "1\n")
    assert run("clear", "--yes") == (0, "")
    assert run("count") == (0, "0\n")

"""Interop with a real Node app (express-session + connect-redis) on the same Redis."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from sessionware.stores.redis import RedisStore

from .harness import Client, Req, middleware_for
from .services import free_port, require_binary, require_redis, unavailable

NODE_DIR = Path(__file__).parent / "node"
SECRET = "shared secret between node and python"


class NodeApp:
    def __init__(self, port: int) -> None:
        self.port = port

    def get(self, path: str, cookie: str | None = None) -> tuple[dict[str, Any], str | None]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}")
        if cookie:
            request.add_header("Cookie", cookie)
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            body = json.loads(response.read())
            set_cookie = response.headers.get("Set-Cookie")
        return body, set_cookie


@pytest.fixture
def node_app(redis_prefix: str) -> Iterator[NodeApp]:
    node = require_binary("node", "nodejs")
    if not (NODE_DIR / "node_modules" / "express-session").exists():
        unavailable("the Node test app's packages are missing; run: npm ci --prefix tests/node")
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "REDIS_URL": require_redis(),
        "SECRET": SECRET,
        "PREFIX": redis_prefix,
    }
    process = subprocess.Popen(
        [node, "server.js"],
        cwd=NODE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        ready = threading.Event()
        output: list[str] = []

        def watch() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                output.append(line)
                if "listening" in line:
                    ready.set()

        threading.Thread(target=watch, daemon=True).start()
        if not ready.wait(20):
            raise RuntimeError("the Node app did not start: " + "".join(output))
        yield NodeApp(port)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def python_handler(req: Req) -> None:
    session = req.session
    if req.path == "/inc":
        session["count"] = session.get("count", 0) + 1
        session["by"] = "python"
    body = {"count": session.get("count"), "by": session.get("by"), "id": session.id}
    req.header("Content-Type", "application/json")
    req.end(json.dumps(body))


@pytest.fixture
def python_app(redis_prefix: str) -> Iterator[Client]:
    store = RedisStore(url=require_redis(), prefix=redis_prefix)
    app = middleware_for(
        "asgi",
        python_handler,
        secret=SECRET,
        store=store,
        name="connect.sid",
        cookie={"max_age": 3600},
    )
    client = Client(app, "asgi")
    yield client
    client.close()


def cookie_pair(set_cookie: str | None) -> str:
    assert set_cookie, "expected a Set-Cookie header"
    return set_cookie.split(";", 1)[0]


def test_a_node_session_is_read_and_changed_by_python(
    node_app: NodeApp, python_app: Client
) -> None:
    created, node_cookie = node_app.get("/inc")
    assert created["count"] == 1
    cookie = cookie_pair(node_cookie)
    seen = json.loads(python_app.get("/get", cookie=cookie).text)
    assert seen == {"count": 1, "by": "node", "id": created["id"]}
    changed = python_app.get("/inc", cookie=cookie)
    assert json.loads(changed.text)["count"] == 2
    assert changed.cookie() == cookie, "Python must re-issue the very same cookie"
    back, _ = node_app.get("/get", cookie=cookie)
    assert back == {"count": 2, "by": "python", "id": created["id"]}


def test_a_python_session_is_read_and_changed_by_node(
    node_app: NodeApp, python_app: Client, redis_prefix: str
) -> None:
    created = python_app.get("/inc")
    cookie = created.cookie()
    sid = json.loads(created.text)["id"]
    seen, _ = node_app.get("/get", cookie=cookie)
    assert seen == {"count": 1, "by": "python", "id": sid}
    changed, node_cookie = node_app.get("/inc", cookie=cookie)
    assert changed["count"] == 2
    assert cookie_pair(node_cookie) == cookie, "Node must re-issue the very same cookie"
    back = json.loads(python_app.get("/get", cookie=cookie).text)
    assert back == {"count": 2, "by": "node", "id": sid}


def test_both_write_the_same_stored_shape(
    node_app: NodeApp, python_app: Client, redis_prefix: str
) -> None:
    raw = redis.Redis.from_url(require_redis())
    node_body, _ = node_app.get("/inc")
    python_sid = json.loads(python_app.get("/inc").text)["id"]
    node_value = json.loads(raw.get(redis_prefix + node_body["id"]) or b"null")
    python_value = json.loads(raw.get(redis_prefix + python_sid) or b"null")
    assert list(node_value) == list(python_value) == ["cookie", "count", "by"]
    assert list(node_value["cookie"]) == list(python_value["cookie"])
    assert raw.ttl(redis_prefix + python_sid) in (3599, 3600)
    assert raw.ttl(redis_prefix + node_body["id"]) in (3599, 3600)

"""A real express-session app on a Node store, started beside sessionware by interop tests."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .harness import Req
from .services import free_port, require_binary, unavailable

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


@contextmanager
def node_app_on(**environment: str) -> Iterator[NodeApp]:
    """The Node app of tests/node with ``STORE`` and its settings; stopped afterwards."""
    node = require_binary("node", "nodejs")
    if not (NODE_DIR / "node_modules" / "express-session").exists():
        unavailable("the Node test app's packages are missing; run: npm ci --prefix tests/node")
    port = free_port()
    env = {**os.environ, "PORT": str(port), "SECRET": SECRET, **environment}
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
    """The Python side of the interop apps: the same two routes as the Node app."""
    session = req.session
    if req.path == "/inc":
        session["count"] = session.get("count", 0) + 1
        session["by"] = "python"
    body = {"count": session.get("count"), "by": session.get("by"), "id": session.id}
    req.header("Content-Type", "application/json")
    req.end(json.dumps(body))


def cookie_pair(set_cookie: str | None) -> str:
    assert set_cookie, "expected a Set-Cookie header"
    return set_cookie.split(";", 1)[0]

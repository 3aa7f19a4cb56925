"""Every Python block of the README runs as written; each app it defines with a login route is
driven through login, a read and logout, over ASGI or WSGI as the app speaks."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import types
from pathlib import Path
from typing import Any

import httpx
import pytest

from .services import require_redis

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.DOTALL)


def _title(block: str) -> str:
    start = README.index(block)
    heading = README.rfind("\n#", 0, start)
    return README[heading:start].strip().splitlines()[0].lstrip("# ")[:40]


def _is_wsgi(app: Any) -> bool:
    import flask

    from sessionware import WSGISessionMiddleware

    return isinstance(app, (flask.Flask, WSGISessionMiddleware)) or (
        callable(app) and getattr(app, "__name__", "") == "application"
    )


def _drive_asgi(app: Any) -> list[str]:
    async def scenario() -> list[str]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", follow_redirects=True
        ) as client:
            token = (await client.post("/login")).headers.get("x-session-token")
            headers = {"X-Session-Token": token} if token else {}  # a header-transport app
            texts = [(await client.get("/me", headers=headers)).text]
            await client.post("/logout", headers=headers)
            texts.append((await client.get("/me", headers=headers)).text)
            return texts

    return asyncio.run(scenario())


def _stop_telemetry(namespace: dict[str, Any]) -> None:
    """The OpenTelemetry example instruments the process and serves Prometheus: undone here, so
    no later test is instrumented or finds the port taken."""
    if "SessionwareInstrumentor" not in namespace:
        return
    namespace["SessionwareInstrumentor"]().uninstrument()
    namespace["provider"].shutdown()
    namespace["server"].shutdown()
    namespace["thread"].join(timeout=10)


def test_the_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 8


@pytest.mark.parametrize("block", BLOCKS, ids=[_title(block) for block in BLOCKS])
def test_a_readme_example_runs_as_written(block: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if "redis" in block.lower():
        monkeypatch.setenv("REDIS_URL", require_redis())
    monkeypatch.setenv(
        "SESSION_SECRETS", "a-new-secret-of-32-bytes-or-more!,an-old-one-32-bytes-long-too!!"
    )
    module = types.ModuleType("readme_example")
    sys.modules[module.__name__] = module  # frameworks resolve type hints through it
    try:
        exec(compile(block, "README.md", "exec"), module.__dict__)  # noqa: S102 - our README
    finally:
        del sys.modules[module.__name__]
        _stop_telemetry(module.__dict__)
    namespace = module.__dict__
    if '"/login"' not in block:
        return
    app = namespace.get("app") or namespace["application"]
    if _is_wsgi(app):
        with httpx.Client(
            transport=httpx.WSGITransport(app=app), base_url="http://t", follow_redirects=True
        ) as client:
            client.post("/login")
            assert client.get("/me").text.strip('"') == "ann"
            if '"/logout"' in block:
                client.post("/logout")
                assert client.get("/me").text.strip('"') == "None"
        return
    texts = [text.strip('"') for text in _drive_asgi(app)]
    assert texts == ["ann", "None"]


TYPED = [block for block in BLOCKS if "session_of(" in block]


@pytest.mark.parametrize("block", TYPED, ids=[_title(block) for block in TYPED])
def test_the_typed_examples_pass_mypy_strict(block: str, tmp_path: Path) -> None:
    """``session_of`` exists for typed code: its example type-checks as users check theirs."""
    import subprocess

    def mypy_strict(name: str, source: str) -> subprocess.CompletedProcess[str]:
        example = tmp_path / name
        example.write_text(source)
        command = [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(example)]
        return subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)

    done = mypy_strict("typed_example.py", block)
    assert done.returncode == 0, done.stdout + done.stderr
    untyped = block.replace("session_of(request)", "request.session", 1)
    refused = mypy_strict("untyped_example.py", untyped).stdout
    assert re.search(r'"dict\[str, Any\]" has no attribute "(regenerate|login|load)"', refused)


def test_the_node_example_reads_the_python_examples_session(redis_prefix: str) -> None:
    """The README's Node app, as written (its Redis, prefix and port swapped for the test's),
    reads a session stored as the README's Python app beside it stores them (the same Redis,
    prefix, secret and cookie name)."""
    import os
    import subprocess
    import time
    import urllib.request

    from sessionware import MemoryStore, SessionMiddleware
    from sessionware.stores.redis import SyncRedisStore

    from .node_app import NODE_DIR
    from .services import free_port, require_binary, unavailable

    node = require_binary("node", "nodejs")
    if not (NODE_DIR / "node_modules" / "connect-redis").exists():
        unavailable("the Node test app's packages are missing; run: npm ci --prefix tests/node")
    [js] = re.findall(r"```js\n(.*?)```", README, re.DOTALL)
    [python] = [block for block in BLOCKS if 'name="connect.sid"' in block]  # the same settings
    url, port = require_redis(), free_port()
    swap = {'"redis://127.0.0.1:6379/0"': repr(url), '"sess:"': repr(redis_prefix)}
    for old, new in swap.items():
        assert old in js and old in python, old
        js, python = js.replace(old, new), python.replace(old, new)
    assert 'secret: "shared"' in js and 'secret="shared"' in python
    signer = SessionMiddleware(lambda *a: None, secret="shared", store=MemoryStore())
    store = SyncRedisStore(url=url, prefix=redis_prefix)
    sid = "r" * 32
    store.set(sid, {"cookie": {"originalMaxAge": 3600000, "expires": None}, "user": "ann"})
    store.close()
    script = NODE_DIR / f"readme-example-{port}.js"
    script.write_text(js.replace("app.listen(3000)", f"app.listen({port}, '127.0.0.1')"))
    process = subprocess.Popen([node, script.name], cwd=NODE_DIR, env=dict(os.environ))
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/me")
        request.add_header("Cookie", f"connect.sid={signer.engine.cookie_value(sid)}")
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
                    assert response.read() == b"ann"
                    break
            except OSError:
                assert time.monotonic() < deadline, "the README's Node app did not answer"
                time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(timeout=10)
        script.unlink()


def test_the_devices_example_lists_two_browsers_and_ends_one() -> None:
    [block] = [block for block in BLOCKS if "device_info=True" in block]
    namespace: dict[str, Any] = {}
    exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - our README

    async def scenario() -> tuple[list[Any], bool, str, list[Any]]:
        transport = httpx.ASGITransport(app=namespace["app"])
        laptop = httpx.AsyncClient(transport=transport, base_url="http://t")
        phone = httpx.AsyncClient(
            transport=transport, base_url="http://t", headers={"User-Agent": "Phone/1"}
        )
        async with laptop, phone:
            await laptop.post("/login")
            await phone.post("/login")
            seen = (await laptop.get("/devices")).json()
            ended = (await laptop.post("/devices/end", json={"handle": seen[1]["handle"]})).json()
            return seen, ended, (await phone.get("/me")).text, (await laptop.get("/devices")).json()

    seen, ended, phone_user, after = asyncio.run(scenario())
    assert [(d["this one"], d["browser"]) for d in seen] == [
        (True, f"python-httpx/{httpx.__version__}"),
        (False, "Phone/1"),
    ]
    assert ended is True and phone_user == '"None"'
    assert len(after) == 1


def test_the_curl_example_talks_to_the_api_example(tmp_path: Path) -> None:
    """The README's curl commands, as written, against its header-transport app under uvicorn
    (a client with no cookie jar at all)."""
    import shutil
    import socket
    import subprocess
    import time

    from .services import free_port

    if shutil.which("curl") is None:
        pytest.skip("curl is not installed; install it with: apt-get install curl")
    [app_block] = [block for block in BLOCKS if 'transport="header"' in block]
    [shell] = re.findall(r"```bash\n(token=\$\(curl.*?)```", README, re.DOTALL)
    (tmp_path / "api_example.py").write_text(app_block)
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "api_example:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.05)
        done = subprocess.run(
            ["bash", "-c", shell.replace("8000", str(port))],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert done.stdout == '"ann""bye""None"', done.stdout + done.stderr


def test_the_migrate_commands_copy_flask_sessions(tmp_path: Path) -> None:
    """The README's ``sessionware migrate`` commands, as written, on a Redis of the test's own
    where Flask-Session signed two users in: a dry run that copies nothing, then the copy."""
    import subprocess

    from sessionware.stores.redis import SyncRedisStore

    from .services import RedisServer
    from .test_migrate import _flask_session_logins

    [shell] = re.findall(r"```bash\n(export SESSIONWARE_SECRET.*?)```", README, re.DOTALL)
    server = RedisServer(tmp_path / "redis").start()
    try:
        _flask_session_logins(server.url, "session:", ["ann", "bob"])
        bin_folder = str(Path(sys.executable).parent)
        done = subprocess.run(
            ["bash", "-c", shell.replace("6379", str(server.port))],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PATH": bin_folder + os.pathsep + os.environ["PATH"]},
        )
        assert done.returncode == 0, done.stderr
        store = SyncRedisStore(url=server.url, user_key="user_id")
        users = {data["user_id"] for data in store.all().values()}
        store.close()
    finally:
        server.stop()
    url = server.url
    assert done.stdout.splitlines() == [
        f"would copy 2 sessions to {url}; 1 not readable (pickled or corrupt), left in place",
        f"copied 2 sessions to {url}; 1 not readable (pickled or corrupt), left in place",
    ]
    assert users == {"ann", "bob"}

"""Every Python block of the README runs as written; each app it defines with a login route is
driven through login, a read and logout, over ASGI or WSGI as the app speaks."""

from __future__ import annotations

import asyncio
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
            await client.post("/login")
            texts = [(await client.get("/me")).text]
            await client.post("/logout")
            texts.append((await client.get("/me")).text)
            return texts

    return asyncio.run(scenario())


def test_the_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 8


@pytest.mark.parametrize("block", BLOCKS, ids=[_title(block) for block in BLOCKS])
def test_a_readme_example_runs_as_written(block: str) -> None:
    if "redis" in block.lower():
        require_redis()
    module = types.ModuleType("readme_example")
    sys.modules[module.__name__] = module  # frameworks resolve type hints through it
    try:
        exec(compile(block, "README.md", "exec"), module.__dict__)  # noqa: S102 - our README
    finally:
        del sys.modules[module.__name__]
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

    example = tmp_path / "typed_example.py"
    example.write_text(block)
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(example)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    broken = example.with_name("untyped_example.py")
    broken.write_text(block.replace("session_of(request)", "request.session", 1))
    refused = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(broken)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert 'has no attribute "regenerate"' in refused.stdout

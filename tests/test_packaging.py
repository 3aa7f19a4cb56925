"""The package builds (wheel and sdist), installs in a fresh venv with no other package, and
serves a session there."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SMOKE = """
import asyncio
from sessionware import SessionMiddleware

async def app(scope, receive, send):
    scope["session"]["n"] = 1
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})

sent = []

async def main():
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "path": "/", "headers": [], "scheme": "http"}
    await SessionMiddleware(app, secret="s" * 32)(scope, receive, send)

asyncio.run(main())
headers = dict(sent[0]["headers"])
assert headers[b"set-cookie"].startswith(b"connect.sid=s%3A"), headers
print("smoke ok")
"""


@pytest.mark.timeout(600)  # builds and installs twice: minutes on a loaded 2-core machine
def test_wheel_and_sdist_build_install_and_serve(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
    )
    wheel = next(dist.glob("sessionware-*.whl"))
    sdist = next(dist.glob("sessionware-*.tar.gz"))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "sessionware/py.typed" in names
    assert not [name for name in names if name.endswith((".so", ".pyd"))], "a pure wheel"
    assert any(name.endswith("licenses/LICENSE") for name in names)
    with tarfile.open(sdist) as archive:
        assert any(name.endswith("/LICENSE") for name in archive.getnames())
    environment = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(environment)
    python = environment / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
    )
    result = subprocess.run(
        [str(python), "-c", SMOKE], check=False, capture_output=True, text=True, cwd=tmp_path
    )
    assert result.stdout.strip() == "smoke ok", result.stderr


def test_the_version_is_the_distributions_and_the_changelog_names_it() -> None:
    import importlib.metadata
    import re

    import sessionware

    root = Path(__file__).resolve().parent.parent
    found = re.search(r'^version = "([^"]+)"$', (root / "pyproject.toml").read_text(), re.M)
    assert found is not None
    declared = found.group(1)
    assert sessionware.__version__ == importlib.metadata.version("sessionware") == declared
    changelog = (root / "CHANGELOG.md").read_text()
    assert re.search(rf"^## \[{re.escape(declared)}\]", changelog, re.MULTILINE)
    assert "## [Unreleased]" in changelog


@pytest.mark.parametrize(
    ("module", "blocked", "extra"),
    [
        ("sessionware.stores.redis", "redis", "redis"),
        ("sessionware.stores.postgres", "psycopg", "postgres"),
        ("sessionware.stores.postgres", "psycopg_pool", "postgres"),
        ("sessionware.stores.mysql", "pymysql", "mysql"),
        ("sessionware.stores.sqlalchemy", "sqlalchemy", "sqlalchemy"),
        ("sessionware.integrations.fastapi", "fastapi", "fastapi"),
        ("sessionware.integrations.flask", "flask", "flask"),
        ("sessionware.integrations.litestar", "litestar", "litestar"),
        ("sessionware.integrations.quart", "quart", "quart"),
        ("sessionware.integrations.django", "django", "django"),
        ("sessionware.integrations.opentelemetry", "opentelemetry", "otel"),
    ],
)
def test_a_missing_client_names_the_extra_that_installs_it(
    module: str, blocked: str, extra: str
) -> None:
    """As in an environment without the extra: the client's import fails, and the message says
    what to install (a bare ``No module named 'redis'`` did not)."""
    program = (
        f"import sys; sys.modules[{blocked!r}] = None\n"
        "try:\n"
        f"    import {module}\n"
        "except ModuleNotFoundError as exc:\n"
        "    print(type(exc).__name__, exc.name, exc, sep='|')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=60
    )
    kind, name, message = done.stdout.strip().split("|")
    assert (kind, name.partition(".")[0]) == ("ModuleNotFoundError", blocked)
    install = f"pip install 'sessionware[{extra}]'"
    assert message == f"{blocked} is not installed; it comes with: {install}"

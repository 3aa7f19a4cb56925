"""The project's commands: ``python3 dev.py demo``, ``python3 dev.py test`` and
``python3 dev.py lock``.

Only Python 3 is needed: each command creates the virtual environment it uses and installs
exactly what the lock files in ``requirements/`` name, with their hashes:

- ``requirements/uv.txt``: uv itself, bootstrapped with pip (uv then installs the rest: it
  syncs a venv to a lock exactly, removing what the lock does not name, in seconds);
- ``requirements/dev.txt``: everything the tests, checks and the demo install (the ``dev``
  extra, with every store and framework extra at the newest versions on the day it was locked);
- ``requirements/lowest.txt``: the same at the lowest versions the declared ranges allow
  (uv's ``lowest-direct`` resolution), so the lower bounds we promise are tested.

``python3 dev.py lock`` writes all three again (after a change to pyproject.toml's ranges, or to
take newer releases). The newest-versions run resolves afresh on every run instead: it is how a
breaking release of a dependency shows up here the day it appears, not in a user's app.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
LOCKS = ROOT / "requirements"
UV_LOCK = LOCKS / "uv.txt"
DEV_LOCK = LOCKS / "dev.txt"
LOWEST_LOCK = LOCKS / "lowest.txt"
UV_VERSION = "0.13.9"
LOCK_PYTHON = "3.10"
"""The lowest Python the project claims: the locks resolve for it and every later one."""


def bin_of(env: Path) -> Path:
    return env / ("Scripts" if os.name == "nt" else "bin")


VENV = ROOT / ".venv"
BIN = bin_of(VENV)


def run(*args: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], cwd=cwd, check=True, env=env)


def create(env: Path) -> None:
    if not (bin_of(env) / "python").exists():
        venv.EnvBuilder(with_pip=True).create(env)


def ensure_venv() -> None:
    """``.venv`` holding exactly ``requirements/dev.txt`` and the project (editable)."""
    create(VENV)
    if not (BIN / "uv").exists():
        run(BIN / "python", "-m", "pip", "install", "--quiet", "--require-hashes", "--no-deps",
            "-r", UV_LOCK)  # fmt: skip
    sync(VENV, DEV_LOCK)


def sync(env: Path, lock: Path) -> None:
    python = bin_of(env) / "python"
    run(BIN / "uv", "pip", "sync", "--quiet", "--require-hashes", "--python", python, lock)
    run(BIN / "uv", "pip", "install", "--quiet", "--no-deps", "--python", python, "-e", ".")


def install_node_packages() -> None:
    """The interop tests run real express-session apps; their packages come from npm."""
    node_dir = ROOT / "tests" / "node"
    if shutil.which("npm") and (node_dir / "package.json").exists():
        run("npm", "ci", "--no-audit", "--no-fund", "--silent", cwd=node_dir)


def demo() -> None:
    ensure_venv()
    os.execv(BIN / "sessionware", [str(BIN / "sessionware"), "demo", *sys.argv[2:]])


def lock() -> None:
    """Write the three lock files again from pyproject.toml's ranges."""
    ensure_venv()
    compile_ = [BIN / "uv", "pip", "compile", "--quiet", "--generate-hashes", "--upgrade"]
    universal = ["--universal", "--python-version", LOCK_PYTHON]
    run(*compile_, *universal, "pyproject.toml", "--extra", "dev", "-o", DEV_LOCK)
    run(*compile_, *universal, "--resolution", "lowest-direct", "pyproject.toml",
        "--extra", "dev", "-o", LOWEST_LOCK)  # fmt: skip
    uv_spec = LOCKS / "uv.in"
    uv_spec.write_text(f"uv=={UV_VERSION}\n")
    try:
        run(*compile_, *universal, uv_spec, "-o", UV_LOCK)
    finally:
        uv_spec.unlink()


WHEEL_TEST = (
    "tests/test_compiled.py::test_the_compiled_wheel_ships_the_core_compiled_beside_its_sources"
)
"""Run in the first pass only: it builds a wheel, which compiles, from a copy of the sources."""
PYTHON_FILES = ("src", "tests", "bench", "dev.py", "mypyc_build.py", "hatch_build.py")


def test_locked(pytest_args: list[str]) -> None:
    """Checks, then the whole suite twice on the locked versions: on the Python sources, and on
    the same modules compiled with mypyc (what the platform wheels ship)."""
    run(BIN / "ruff", "check", *PYTHON_FILES)
    run(BIN / "ruff", "format", "--check", *PYTHON_FILES)
    run(BIN / "mypy")
    run(BIN / "python", "mypyc_build.py", "--clean")
    run(BIN / "python", "-m", "pytest", *pytest_args)
    run(BIN / "python", "mypyc_build.py")
    try:
        os.environ["SESSIONWARE_EXPECT_COMPILED"] = "1"
        run(BIN / "python", "-m", "pytest", "--deselect", WHEEL_TEST, *pytest_args)
    finally:
        del os.environ["SESSIONWARE_EXPECT_COMPILED"]
        run(BIN / "python", "mypyc_build.py", "--clean")


def test_range_end(name: str, pytest_args: list[str]) -> None:
    """The suite (pure Python) at one end of the declared ranges, in ``.venv-<name>``."""
    env = ROOT / f".venv-{name}"
    create(env)
    if name == "lowest":
        sync(env, LOWEST_LOCK)
    else:
        python = bin_of(env) / "python"
        run(BIN / "uv", "pip", "install", "--quiet", "--upgrade", "--python", python, "-e",
            ".[dev]")  # fmt: skip
    run(BIN / "uv", "pip", "list", "--python", bin_of(env) / "python")
    run(bin_of(env) / "python", "-m", "pytest", "--deselect", WHEEL_TEST, *pytest_args)


def test() -> None:
    """What CI runs: the locked checks and passes, then the suite on the lowest and on the
    newest versions every range allows. ``test locked``, ``test lowest`` or ``test newest``
    runs one of them (further arguments go to pytest)."""
    args = sys.argv[2:]
    parts = ["locked", "lowest", "newest"]
    if args and args[0] in parts:
        parts, args = [args[0]], args[1:]
    ensure_venv()
    install_node_packages()
    for part in parts:
        if part == "locked":
            test_locked(args)
        else:
            test_range_end(part, args)


def main() -> None:
    commands = {"demo": demo, "test": test, "lock": lock}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit("usage: python3 dev.py demo | test [locked|lowest|newest] [pytest args] | lock")
    try:
        commands[sys.argv[1]]()
    except subprocess.CalledProcessError as exc:
        sys.exit(exc.returncode)


if __name__ == "__main__":
    main()

"""The project's two commands: ``python3 dev.py demo`` and ``python3 dev.py test``.

Only Python 3 is needed: each command creates ``.venv`` and installs what it uses first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def run(*args: str | Path, cwd: Path = ROOT) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], cwd=cwd, check=True)


def ensure_venv(extra: str) -> None:
    if not (BIN / "python").exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
        run(BIN / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(BIN / "python", "-m", "pip", "install", "--quiet", "-e", f".[{extra}]")


def install_node_packages() -> None:
    """The interop tests run real express-session apps; their packages come from npm."""
    node_dir = ROOT / "tests" / "node"
    if shutil.which("npm") and (node_dir / "package.json").exists():
        run("npm", "ci", "--no-audit", "--no-fund", "--silent", cwd=node_dir)


def demo() -> None:
    ensure_venv("demo")
    os.execv(BIN / "sessionware", [str(BIN / "sessionware"), "demo", *sys.argv[2:]])


WHEEL_TEST = (
    "tests/test_compiled.py::test_the_compiled_wheel_ships_the_core_compiled_beside_its_sources"
)
"""Run in the pure pass only: it builds a wheel, which compiles, from a copy of the sources."""
PYTHON_FILES = ("src", "tests", "bench", "dev.py", "mypyc_build.py", "hatch_build.py")


def test() -> None:
    """Checks, then the whole suite twice: on the Python sources, and on the same modules
    compiled with mypyc (what the platform wheels ship)."""
    ensure_venv("dev")
    install_node_packages()
    run(BIN / "ruff", "check", *PYTHON_FILES)
    run(BIN / "ruff", "format", "--check", *PYTHON_FILES)
    run(BIN / "mypy")
    run(BIN / "python", "mypyc_build.py", "--clean")
    run(BIN / "python", "-m", "pytest", *sys.argv[2:])
    run(BIN / "python", "mypyc_build.py")
    try:
        os.environ["SESSIONWARE_EXPECT_COMPILED"] = "1"
        run(BIN / "python", "-m", "pytest", "--deselect", WHEEL_TEST, *sys.argv[2:])
    finally:
        del os.environ["SESSIONWARE_EXPECT_COMPILED"]
        run(BIN / "python", "mypyc_build.py", "--clean")


def main() -> None:
    commands = {"demo": demo, "test": test}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit("usage: python3 dev.py demo | test [pytest arguments]")
    try:
        commands[sys.argv[1]]()
    except subprocess.CalledProcessError as exc:
        sys.exit(exc.returncode)


if __name__ == "__main__":
    main()

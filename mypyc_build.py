"""The compiled build: the modules every request runs through, compiled with mypyc.

The Python sources stay the reference and the fallback (as black and charset-normalizer ship):
``pip install sessionware`` on a platform without a compiled wheel runs the very same code
interpreted. ``hatch_build.py`` puts the compiled modules in a wheel when ``SESSIONWARE_COMPILE=1``;
``python3 dev.py test`` compiles them in place to run the whole suite a second time against them.

    .venv/bin/python mypyc_build.py          # compile in place (src/)
    .venv/bin/python mypyc_build.py --clean  # back to pure Python
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
SRC = ROOT / "src"
COMPILED = (
    "sessionware/_engine.py",
    "sessionware/_records.py",
    "sessionware/_wire.py",
    "sessionware/cookie.py",
    "sessionware/signing.py",
    "sessionware/session.py",
    "sessionware/asgi.py",
    "sessionware/_driver.py",
    "sessionware/stores/memory.py",
    "sessionware/stores/toolkit.py",
    "sessionware/stores/redis/rules.py",
    "sessionware/stores/redis/transport.py",
    "sessionware/stores/redis/cache.py",
    "sessionware/stores/redis/stores.py",
    "sessionware/stores/encryption.py",
    "sessionware/stores/cached.py",
)
"""What a request runs through, the Redis store's side included. Not (yet) compiled:
``_runtime.py`` (its compiled middleware base crashed at construction under mypy 2.4),
``options.py`` (read at start-up only), ``stores/base.py`` (the contracts applications subclass),
``stores/redis/_hiredis.py`` (it mixes into classes made at run time) and the SQL stores (their
client's work dominates)."""
GROUP = "sessionware"
MYPY_FLAGS = ("--ignore-missing-imports", "--follow-imports=silent")
"""A wheel builds without the stores' optional clients; the modules compiled do not use them
(``mypy --strict`` with every client installed checks the whole package in CI)."""


def compiled_files(src: Path = SRC) -> list[Path]:
    """The extension modules a compile left in ``src`` (next to their sources)."""
    return sorted(
        path
        for pattern in ("*.so", "*.pyd")
        for path in src.rglob(pattern)
        if path.name.startswith(GROUP) or path.parent != src
    )


def compile_in_place(src: Path = SRC) -> list[Path]:
    """Compile ``COMPILED`` next to their sources; returns the extension files written."""
    from mypyc.build import mypycify
    from setuptools import Distribution

    remove_compiled(src)
    cwd = Path.cwd()
    os.chdir(src)
    try:
        distribution = Distribution(
            {
                "name": "sessionware",
                "ext_modules": mypycify([*MYPY_FLAGS, *COMPILED], opt_level="3", group_name=GROUP),
                "script_args": ["build_ext", "--inplace", "--build-temp", "build/temp"],
            }
        )
        distribution.parse_command_line()
        distribution.run_commands()
    finally:
        shutil.rmtree(src / "build", ignore_errors=True)
        os.chdir(cwd)
    return compiled_files(src)


def remove_compiled(src: Path = SRC) -> None:
    for path in compiled_files(src):
        path.unlink()


if __name__ == "__main__":
    if sys.argv[1:] == ["--clean"]:
        remove_compiled()
    else:
        for path in compile_in_place():
            print(path.relative_to(ROOT))

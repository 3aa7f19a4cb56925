"""The compiled build (``mypyc_build.py``, ``hatch_build.py``).

``python3 dev.py test`` runs the suite twice: on the Python sources, then on the modules
``mypyc_build.py`` compiles in place. The first test checks each run tests what it says it does;
the second builds the platform wheel users install (it runs in the pure pass only, on a copy of
the sources, since the build compiles in place)."""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import sessionware

ROOT = Path(__file__).resolve().parent.parent


def _mypyc_build() -> object:
    spec = importlib.util.spec_from_file_location("mypyc_build", ROOT / "mypyc_build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


COMPILED: tuple[str, ...] = _mypyc_build().COMPILED  # type: ignore[attr-defined]


def test_the_run_imports_the_variant_it_names() -> None:
    expect_compiled = os.environ.get("SESSIONWARE_EXPECT_COMPILED") == "1"
    assert sessionware.compiled is expect_compiled
    for path in COMPILED:
        name = path.removesuffix(".py").replace("/", ".")
        origin = Path(importlib.import_module(name).__file__ or "")
        assert (origin.suffix != ".py") is expect_compiled, (name, origin)


@pytest.mark.timeout(900)  # mypyc compiles the core: minutes on a 2-core machine
def test_the_compiled_wheel_ships_the_core_compiled_beside_its_sources(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in ("pyproject.toml", "hatch_build.py", "mypyc_build.py", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, tree / name)
    shutil.copytree(
        ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("*.so", "__pycache__", "*.pyd")
    )
    environment = {**os.environ, "SESSIONWARE_COMPILE": "1"}
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path / "dist"), str(tree)],
        check=True,
        capture_output=True,
        env=environment,
        timeout=840,
    )
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    assert "none-any" not in wheel.name, "a compiled wheel is platform-specific"
    names = zipfile.ZipFile(wheel).namelist()
    for path in COMPILED:
        stem = path.removesuffix(".py")
        assert path in names, "the Python source stays beside its compiled module"
        assert any(name.startswith(stem + ".") and name.endswith(".so") for name in names), stem
    assert any(name.startswith("sessionware__mypyc") for name in names)
    assert not list((tree / "src").rglob("*.so")), "the build leaves the sources pure"

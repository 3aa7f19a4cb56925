"""The suite runs twice (``python3 dev.py test``): on the Python sources, then on the modules
``mypyc_build.py`` compiles. This checks each run tests what it says it does."""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _compiled_modules() -> list[str]:
    spec = importlib.util.spec_from_file_location("mypyc_build", ROOT / "mypyc_build.py")
    assert spec is not None and spec.loader is not None
    mypyc_build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mypyc_build)
    return [path.removesuffix(".py").replace("/", ".") for path in mypyc_build.COMPILED]


def test_the_run_imports_the_variant_it_names() -> None:
    expect_compiled = os.environ.get("SESSIONWARE_EXPECT_COMPILED") == "1"
    for name in _compiled_modules():
        origin = Path(importlib.import_module(name).__file__ or "")
        assert (origin.suffix != ".py") is expect_compiled, (name, origin)

"""The wheel's optional build step: ``SESSIONWARE_COMPILE=1 python -m build --wheel`` compiles
``mypyc_build.COMPILED`` and ships them in a platform wheel beside the Python sources. Without the
variable the wheel stays pure Python (and needs no compiler)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class CompileHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def enabled(self, version: str) -> bool:
        return _compiling() and version != "editable"

    def dependencies(self) -> list[str]:
        """What the compile needs in the build environment; a pure build needs nothing."""
        return ["mypy>=2.0", "setuptools>=65"] if _compiling() else []

    def mypyc_build(self) -> Any:
        spec = importlib.util.spec_from_file_location(
            "mypyc_build", Path(self.root) / "mypyc_build.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if not self.enabled(version):
            return
        src = Path(self.root) / "src"
        for path in self.mypyc_build().compile_in_place(src):
            build_data["force_include"][str(path)] = str(path.relative_to(src))
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        """The source tree goes back to pure Python once the wheel holds the compiled files."""
        if self.enabled(version):
            self.mypyc_build().remove_compiled(Path(self.root) / "src")


def _compiling() -> bool:
    return os.environ.get("SESSIONWARE_COMPILE") == "1"

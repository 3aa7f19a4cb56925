"""The layering of ARCHITECTURE.md: every module imports only modules above it there, and no
import (runtime, type-checking or function-level) closes a cycle."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "sessionware"


def layers() -> list[list[str]]:
    """The module list of ARCHITECTURE.md (its first fenced block under "## Modules"), as
    dotted module names per layer: a line starting with two spaces and a path names a module, a
    blank line ends a layer."""
    text = (ROOT / "ARCHITECTURE.md").read_text()
    block = text[text.index("## Modules") :].split("```")[1]
    found: list[list[str]] = [[]]
    for line in block.splitlines():
        if not line.strip():
            if found[-1]:
                found.append([])
            continue
        match = re.match(r"  (\S+\.py)\b", line)
        if match is not None:
            parts = match.group(1).removesuffix(".py").split("/")
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[-1].append(".".join(parts))
    return [layer for layer in found if layer]


LAYERS = layers()
RANK = {module: rank for rank, layer in enumerate(LAYERS) for module in layer}


def imports() -> dict[str, set[str]]:
    modules: dict[str, Path] = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    edges: dict[str, set[str]] = {module: set() for module in modules}
    for module, path in modules.items():
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        package = [part for part in package if part]
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or not node.level:
                continue
            base = package[: len(package) - node.level + 1]
            target = ".".join(base + (node.module.split(".") if node.module else []))
            for alias in node.names:
                found = next(
                    (c for c in (f"{target}.{alias.name}".lstrip("."), target) if c in modules),
                    None,
                )
                if found is not None and found != module:
                    edges[module].add(found)
    return edges


def test_every_module_is_in_architecture_md_and_every_listed_one_exists() -> None:
    assert set(imports()) - set(RANK) == set(), "modules missing from ARCHITECTURE.md"
    assert set(RANK) - set(imports()) == set(), "ARCHITECTURE.md lists modules that are gone"


def test_architecture_md_stands_alone() -> None:
    """A user's clone has only the repository: nothing it reads may point outside it."""
    assert "../" not in (ROOT / "ARCHITECTURE.md").read_text()


def test_imports_point_down_the_layers_only() -> None:
    upward = [
        f"{module} imports {target}"
        for module, targets in imports().items()
        for target in targets
        if RANK[target] > RANK[module]
        or (RANK[target] == RANK[module] and target != "" and not target.startswith(module))
    ]
    assert upward == []

"""The layering of ARCHITECTURE.md: every module imports only modules above it there, and no
import (runtime, type-checking or function-level) closes a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "sessionware"
LAYERS = [
    ["errors", "signing", "_native", "stores._hiredis"],
    ["options"],
    ["_wire"],
    ["cookie"],
    ["_records"],
    ["stores.base"],
    ["session"],
    ["_engine"],
    ["stores.memory", "stores.toolkit", "stores.encryption"],
    ["stores.sql"],
    ["stores.redis", "stores.sqlite", "stores.postgres", "stores.mysql", "stores.sqlalchemy"],
    ["stores.urls", "stores"],
    ["_driver"],
    ["_runtime"],
    ["asgi", "wsgi"],
    ["integrations", "integrations._steps", "integrations.fastapi", ""],
    ["integrations._interface"],
    ["integrations.flask", "integrations.quart", "integrations.litestar", "integrations.django"],
    ["demo"],
    ["cli"],
    ["__main__"],
    [
        "integrations.django.management",
        "integrations.django.management.commands",
        "integrations.django.management.commands.sessionware",
    ],
]
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


def test_every_module_has_a_layer() -> None:
    assert set(imports()) <= set(RANK), set(imports()) - set(RANK)


def test_imports_point_down_the_layers_only() -> None:
    upward = [
        f"{module} imports {target}"
        for module, targets in imports().items()
        for target in targets
        if RANK[target] > RANK[module]
        or (RANK[target] == RANK[module] and target != "" and not target.startswith(module))
    ]
    assert upward == []

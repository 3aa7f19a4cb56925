"""The contract's documented exclusions (``stores.EXCLUDED``): deselected, so that a store shape
that cannot do something is neither run nor counted as passing it."""

from __future__ import annotations

import pytest

from .stores import EXCLUDED


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        store = None if callspec is None else callspec.params.get("store")
        name = getattr(item, "originalname", item.name)
        if store in EXCLUDED and name in EXCLUDED[store]:
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept

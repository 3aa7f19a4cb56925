"""README examples run as written (extracted from README.md, so an edit that breaks one fails)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.DOTALL)
SELF_CONTAINED = [block for block in BLOCKS if "load_session" in block]


def test_the_readme_has_the_examples_this_file_runs() -> None:
    assert SELF_CONTAINED


@pytest.mark.parametrize("block", SELF_CONTAINED)
def test_a_self_contained_readme_example_runs(block: str) -> None:
    exec(compile(block, "README.md", "exec"), {})  # noqa: S102 - our own README

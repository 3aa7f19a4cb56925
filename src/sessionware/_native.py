"""The compiled build's one hint in the source (see ``hatch_build.py``).

Compiled with mypyc, a class is native and plain Python may not subclass it unless it says so;
the classes applications and integrations subclass (the session, the middleware, the memory
store) do. Without mypy-extensions (the pure-Python install) the hint does nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
__all__ = ["mypyc_attr"]

try:
    from mypy_extensions import mypyc_attr
except ImportError:  # the pure-Python install

    def mypyc_attr(*attrs: str, **kwattrs: object) -> Callable[[T], T]:
        return lambda cls: cls

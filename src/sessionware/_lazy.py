"""Lazy sessions (the ``lazy`` option): a session that reads the store on its first use.

Each session class gets a lazy twin, ``lazy_class(cls)``: the same class with every way to read
or change the data first loading it (``_load_now``, which each session class defines: a plain
call under WSGI, on the request's loop from a worker thread under ASGI, an error on the loop
itself). A request that never touches its session makes no store call at all. Only lazy
sessions pay for these checks: the classes every other request uses are untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar

from .cookie import Cookie
from .session import SessionBase

S = TypeVar("S", bound=SessionBase)

_COOKIE_SLOT: Any = SessionBase.__dict__.get("cookie")
"""The session's ``cookie`` slot, under the lazy twin's property: a slot descriptor on the pure
Python class; the compiled class keeps the attribute in the instance's ``__dict__`` instead."""


class LazyAccess(SessionBase):
    """Every read or write of a lazy session's data, and of its cookie, loads it first (its
    ``id`` and the other properties check for themselves, on every session: ``cookie`` is a
    plain attribute there, which the hot path reads directly)."""

    __slots__ = ()

    def _ready(self) -> None:
        if self._state.lazy:
            self._load_now()

    @property
    def cookie(self) -> Cookie:
        self._ready()
        if _COOKIE_SLOT is not None:
            found: Cookie = _COOKIE_SLOT.__get__(self, type(self))
            return found
        return self.__dict__["cookie"]  # type: ignore[no-any-return]

    @cookie.setter
    def cookie(self, cookie: Cookie) -> None:
        if _COOKIE_SLOT is not None:
            _COOKIE_SLOT.__set__(self, cookie)
        else:
            self.__dict__["cookie"] = cookie

    def __getitem__(self, key: str) -> Any:
        self._ready()
        return super().__getitem__(key)

    def __setitem__(self, key: str, value: Any) -> None:
        self._ready()
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self._ready()
        super().__delitem__(key)

    def __contains__(self, key: object) -> bool:
        self._ready()
        return super().__contains__(key)

    def __iter__(self) -> Iterator[str]:
        self._ready()
        return super().__iter__()

    def __reversed__(self) -> Iterator[str]:
        self._ready()
        return super().__reversed__()

    def __len__(self) -> int:
        self._ready()
        return super().__len__()

    def __eq__(self, other: object) -> bool:
        self._ready()
        return super().__eq__(other)

    def __ne__(self, other: object) -> bool:
        self._ready()
        return super().__ne__(other)

    __hash__ = None  # type: ignore[assignment]

    def __or__(self, other: Any) -> dict[str, Any]:  # type: ignore[override]
        self._ready()
        return dict(super().items()) | other  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        if self._state.lazy:
            return f"{type(self).__name__}(not loaded yet)"
        return super().__repr__()

    def get(self, key: str, default: Any = None) -> Any:
        self._ready()
        return super().get(key, default)

    def keys(self) -> Any:
        self._ready()
        return super().keys()

    def values(self) -> Any:
        self._ready()
        return super().values()

    def items(self) -> Any:
        self._ready()
        return super().items()

    def pop(self, key: str, *default: Any) -> Any:
        self._ready()
        return super().pop(key, *default)

    def popitem(self) -> tuple[str, Any]:
        self._ready()
        return super().popitem()

    def setdefault(self, key: str, default: Any = None) -> Any:
        self._ready()
        return super().setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._ready()
        super().update(*args, **kwargs)

    def clear(self) -> None:
        self._ready()
        super().clear()

    def copy(self) -> dict[str, Any]:
        self._ready()
        return dict(super().items())

    def to_json(self) -> dict[str, Any]:
        self._ready()
        return super().to_json()


_LAZY: dict[type[Any], type[Any]] = {}


def lazy_class(cls: type[S]) -> type[S]:
    """``cls``'s lazy twin (made once per class)."""
    found = _LAZY.get(cls)
    if found is None:
        found = _LAZY[cls] = type("Lazy" + cls.__name__, (LazyAccess, cls), {"__slots__": ()})
    return found

"""Litestar integration: sessions the way Litestar documents them.

``SessionwareConfig(secret=..., store=...)`` is the whole setup::

    from litestar import Litestar
    from sessionware.integrations.litestar import SessionwareConfig

    sessions = SessionwareConfig(secret="...", cookie={"max_age": 3600})
    app = Litestar(route_handlers=[...], middleware=[sessions.middleware])

Litestar builds one middleware instance per route handler; the config holds one store (a
``MemoryStore`` unless you pass one) that all of them share, so a session set on one route is
there on the next. ``request.session`` is a sessionware ``Session``; ``request.set_session(data)``
replaces its data, and ``request.clear_session()`` logs out as Litestar's own backend does: the
stored session is destroyed and the browser cookie expired.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..asgi import Scope, SessionMiddleware, aload_session_of
from ..errors import extra_needed
from ..options import SessionOptionsDict
from ..session import Session
from ..stores.memory import MemoryStore

with extra_needed("litestar", "litestar"):
    from litestar import Request
    from litestar.di import Provide
    from litestar.middleware import DefineMiddleware
    from litestar.types import Empty

if TYPE_CHECKING:
    from typing_extensions import Unpack


def _as_mapping(value: object) -> Mapping[str, Any]:
    """What ``set_session`` accepts: a mapping, a dataclass, or a model with ``model_dump()``."""
    if isinstance(value, Mapping):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dict(dump())
    raise TypeError(f"set_session() takes a mapping, a dataclass or a model, got {value!r}")


class LitestarSessionMiddleware(SessionMiddleware):
    """The ASGI middleware with Litestar's ``set_session`` / ``clear_session`` mapped."""

    def current_session(self, scope: Scope, session: object) -> object:
        """``clear_session()`` unsets the session (``unset="destroy"`` logs out), and
        ``set_session()`` takes a dataclass or a model as well as a mapping."""
        value = scope.get("session")
        if value is Empty:
            scope["session"] = None
        elif value is not None and value is not session:
            scope["session"] = _as_mapping(value)
        return super().current_session(scope, session)


class SessionwareConfig:
    """The middleware definition for ``Litestar(middleware=[config.middleware])``.

    Options are the middleware's; ``unset`` is ``"destroy"`` (``clear_session()`` logs out).
    """

    def __init__(self, **options: Unpack[SessionOptionsDict]) -> None:
        settings: dict[str, Any] = dict(options)
        if settings.get("store") is None:
            settings["store"] = MemoryStore()
        settings.setdefault("unset", "destroy")
        self.options = settings
        self.store = settings["store"]
        self.middleware = DefineMiddleware(LitestarSessionMiddleware, **settings)  # type: ignore[arg-type]
        self.dependencies = {"session": Provide(provide_session)}
        """``Litestar(dependencies=config.dependencies)``: a handler that takes ``session:
        Session`` gets the request's session, loaded (with ``lazy=True``, the others cost no
        store call)."""


async def provide_session(request: Request[Any, Any, Any]) -> Session:
    """The request's session, loaded: what a handler's ``session`` parameter receives."""
    return await aload_session_of(request.scope)

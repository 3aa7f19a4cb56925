"""The Session: a mutable mapping of JSON values, its cookie, and the lifecycle methods.

The lifecycle methods (save, reload, destroy, regenerate) are written once, as generators that
yield the store calls they need; ``Session`` runs them with ``await``, ``SyncSession`` runs the
very same steps with plain calls. No rule of the lifecycle exists twice.

A session knows two things besides its data: its request's flow (the engine's decisions, seen
through the small ``SessionFlow`` protocol) and a ``StoreRunner`` that performs store calls. It
imports neither the engine nor the runtime.
"""

from __future__ import annotations

from typing import Any, Protocol

from ._records import Destroy, Get, SessionRecord, Set, Steps, StoreCall, arun_steps, run_steps
from .cookie import Cookie
from .errors import SessionDestroyed, SessionError


class StoreRunner(Protocol):
    """Performs a store call, from sync or async code."""

    def call(self, call: StoreCall) -> Any: ...

    async def acall(self, call: StoreCall) -> Any: ...


class SessionFlow(Protocol):
    """What a session needs from its request's flow."""

    force_modified: bool
    force_save: bool
    cookie_id: str | None

    def is_modified(self, session: SessionBase) -> bool: ...

    def save_call(self, session: SessionBase) -> Set: ...

    def mark_saved(self, sid: str, data_json: str) -> None: ...

    def reload(self, session: SessionBase, data: SessionRecord | dict[str, Any]) -> None: ...

    def regenerate(self, session: SessionBase) -> None: ...

    def check_headers_not_sent(self, action: str) -> None: ...


LifecycleSteps = Steps[StoreCall, None]


class SessionBase(dict[str, Any]):
    """The data of one session (a dict of JSON values) with its id and cookie.

    Top-level ``cookie`` is reserved for the cookie object, as in express's stored shape.
    """

    __slots__ = ("_destroyed", "_flow", "_id", "_runner", "cookie")

    def __init__(
        self,
        runner: StoreRunner,
        flow: SessionFlow,
        sid: str,
        cookie: Cookie,
        data: dict[str, Any] | None = None,
    ):
        super().__init__()
        if data:
            dict.update(self, data)
        self._id = sid
        self.cookie = cookie
        self._flow = flow
        self._runner = runner
        self._destroyed = False

    @property
    def id(self) -> str:
        """The session id; it changes only through ``regenerate()``."""
        return self._id

    @property
    def destroyed(self) -> bool:
        return self._destroyed

    @property
    def modified(self) -> bool:
        """Whether this request changed the data (or the id) since the session was loaded.

        Changes are found by content, nested ones included; setting ``modified = True`` forces
        the save anyway (for example after changing only the cookie).
        """
        return self._flow.is_modified(self)

    @modified.setter
    def modified(self, value: bool) -> None:
        self._flow.force_modified = self._flow.force_save = bool(value)

    def __setitem__(self, key: str, value: Any) -> None:
        if self._destroyed:
            raise SessionDestroyed(
                "the session was destroyed; call regenerate() to start a new one"
            )
        if key == "cookie":
            raise KeyError("'cookie' is reserved: use session.cookie to change the cookie")
        super().__setitem__(key, value)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def touch(self) -> SessionBase:
        """Restart the cookie's lifetime (express's ``touch()``); the store is not called."""
        self.cookie.reset_max_age()
        return self

    reset_max_age = touch

    def to_json(self) -> dict[str, Any]:
        """The stored shape: the cookie first, then the data."""
        return {"cookie": self.cookie.to_json(), **self}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self._id!r}, data={dict(self)!r})"

    def __ior__(self, other: Any) -> SessionBase:  # type: ignore[override,misc]
        self.update(other)
        return self

    def _replace(self, sid: str, cookie: Cookie, data: dict[str, Any]) -> None:
        dict.clear(self)
        dict.update(self, data)
        self._id = sid
        self.cookie = cookie
        self._destroyed = False

    def _mark_destroyed(self) -> None:
        dict.clear(self)
        self._destroyed = True

    def _save_steps(self) -> LifecycleSteps:
        if self._destroyed:
            raise SessionDestroyed("the session was destroyed; saving it would bring it back")
        call = self._flow.save_call(self)
        yield call
        self._flow.mark_saved(self._id, call.record.data_json)

    def _reload_steps(self) -> LifecycleSteps:
        data = yield Get(self._id)
        if not data:
            raise SessionError("failed to load session: it is no longer in the store")
        self._flow.reload(self, data)

    def _destroy_steps(self) -> LifecycleSteps:
        self._flow.check_headers_not_sent("destroy")
        yield Destroy(self._id)
        self._mark_destroyed()

    def _regenerate_steps(self) -> LifecycleSteps:
        self._flow.check_headers_not_sent("regenerate")
        try:
            yield Destroy(self._id)
        finally:
            self._flow.regenerate(self)


class Session(SessionBase):
    """The session under ASGI (``scope["session"]``): lifecycle methods are coroutines."""

    __slots__ = ()

    async def save(self) -> None:
        """Write the session now, e.g. before a long-lived response; the end of request skips it."""
        await arun_steps(self._save_steps(), self._runner.acall)

    async def reload(self) -> None:
        """Replace the data with the stored copy; raises ``SessionError`` if it is gone."""
        await arun_steps(self._reload_steps(), self._runner.acall)

    async def destroy(self) -> None:
        """Delete the session from the store and expire the browser cookie."""
        await arun_steps(self._destroy_steps(), self._runner.acall)

    async def regenerate(self) -> None:
        """Destroy the stored session and start a new, empty one with a new id (login hygiene)."""
        await arun_steps(self._regenerate_steps(), self._runner.acall)


class SyncSession(SessionBase):
    """The session under WSGI: the same steps as ``Session``, run with plain calls."""

    __slots__ = ()

    def save(self) -> None:
        run_steps(self._save_steps(), self._runner.call)

    def reload(self) -> None:
        run_steps(self._reload_steps(), self._runner.call)

    def destroy(self) -> None:
        run_steps(self._destroy_steps(), self._runner.call)

    def regenerate(self) -> None:
        run_steps(self._regenerate_steps(), self._runner.call)

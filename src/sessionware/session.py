"""The Session: a mutable mapping of JSON values, its cookie, and the lifecycle methods.

The lifecycle methods (save, reload, destroy, regenerate) are written once, as generators that
yield the store calls they need; ``Session`` runs them with ``await``, ``SyncSession`` runs the
very same steps with plain calls. No rule of the lifecycle exists twice.

A session knows two things besides its data: its request's flow (the engine's decisions, seen
through the small ``SessionFlow`` protocol) and a ``StoreRunner`` that performs store calls. It
imports neither the engine nor the runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Generator
from datetime import datetime, timezone
from typing import Any, Generic, Protocol, TypeVar

from ._native import mypyc_attr
from ._records import (
    Destroy,
    DestroyUserSessions,
    Get,
    ReadOld,
    SessionRecord,
    Set,
    Steps,
    StoreCall,
    UserSessions,
    arun_steps,
    run_steps,
)
from .cookie import Cookie
from .devices import Device, sid_of_handle
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
    session: SessionBase | None

    def load_call(self) -> Get | ReadOld | None: ...

    def loaded(self, data: SessionRecord | dict[str, Any] | None) -> SessionBase: ...

    def is_modified(self, session: SessionBase) -> bool: ...

    def save_call(self, session: SessionBase) -> Set: ...

    def mark_saved(self, sid: str, data_json: str) -> None: ...

    def reload(self, session: SessionBase, data: SessionRecord | dict[str, Any]) -> None: ...

    def regenerate(self, session: SessionBase, *, keep: bool) -> None: ...

    def check_headers_not_sent(self, action: str) -> None: ...

    def user(self, session: SessionBase) -> str | None: ...

    def ended(self, session: SessionBase, reason: str, sid: str | None) -> None: ...

    def devices(self, session: SessionBase, stored: dict[str, dict[str, Any]]) -> list[Device]: ...

    def signed_in(self, session: SessionBase, user: str | int) -> None: ...

    def authenticated_ms(self) -> int | None: ...

    def sessions_limit(self) -> int | None: ...

    def beyond_limit(self, others: dict[str, dict[str, Any]], limit: int) -> list[str]: ...


LifecycleSteps = Steps[StoreCall, None]
T = TypeVar("T")


class SessionState:
    """What a session keeps beside its data: its id, flow, store runner and flags, in one plain
    object. A session is a dict subclass, whose own attributes are found by name on every
    access; these are read and written by position (compiled), on every request."""

    __slots__ = ("destroyed", "flow", "id", "lazy", "loop", "runner", "unawaited", "written")

    def __init__(self, sid: str, flow: SessionFlow, runner: StoreRunner) -> None:
        self.id = sid
        self.flow = flow
        self.runner = runner
        self.lazy = False
        """Not loaded yet (the ``lazy`` option): the first use reads the store."""
        self.destroyed = False
        self.written = False
        """Whether a value was assigned: a hint for change detection (not proof either way)."""
        self.unawaited: list[str] | None = None
        """Lifecycle calls made in async code and not awaited yet (``Session`` only)."""
        self.loop: asyncio.AbstractEventLoop | None = None
        """The request's event loop, set by the ASGI middleware (``Session`` only): where calls
        from worker threads run."""


@mypyc_attr(allow_interpreted_subclasses=True)
class SessionBase(dict[str, Any]):
    """The data of one session (a dict of JSON values) with its id and cookie.

    Top-level ``cookie`` is reserved for the cookie object, as in express's stored shape.
    """

    __slots__ = ("_state", "cookie")

    def __init__(
        self,
        runner: StoreRunner,
        flow: SessionFlow,
        sid: str,
        cookie: Cookie,
        data: dict[str, Any] | None = None,
    ):
        if data:
            dict.update(self, data)
        self._state = SessionState(sid, flow, runner)
        self.cookie = cookie

    @property
    def id(self) -> str:
        """The session id; it changes only through ``regenerate()``."""
        state = self._state
        if state.lazy:
            self._load_now()
            state = self._state
        return state.id

    @property
    def destroyed(self) -> bool:
        return self._state.destroyed

    @property
    def authenticated_at(self) -> datetime | None:
        """When ``login()`` last signed the user in (UTC), to ask for the password again before
        a sensitive change when it was long ago (ASVS 7.5.1); ``None`` before any login."""
        if self._state.lazy:
            self._load_now()
        ms = self._state.flow.authenticated_ms()
        return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=timezone.utc)

    @property
    def modified(self) -> bool:
        """Whether this request changed the data (or the id) since the session was loaded.

        Changes are found by content, nested ones included; setting ``modified = True`` forces
        the save anyway (for example after changing only the cookie). A lazy session not used
        yet is not modified.
        """
        state = self._state
        return not state.lazy and state.flow.is_modified(self)

    @modified.setter
    def modified(self, value: bool) -> None:
        if self._state.lazy:
            self._load_now()
        flow = self._state.flow
        flow.force_modified = flow.force_save = bool(value)

    def __setitem__(self, key: str, value: Any) -> None:
        state = self._state
        if state.destroyed:
            raise SessionDestroyed(
                "the session was destroyed; call regenerate() to start a new one"
            )
        if key == "cookie":
            raise KeyError("'cookie' is reserved: use session.cookie to change the cookie")
        state.written = True
        dict.__setitem__(self, key, value)

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
        return f"{type(self).__name__}(id={self._state.id!r}, data={dict(self)!r})"

    def __ior__(self, other: Any) -> SessionBase:  # type: ignore[override,misc]
        self.update(other)
        return self

    def _replace(self, sid: str, cookie: Cookie, data: dict[str, Any]) -> None:
        dict.clear(self)
        dict.update(self, data)
        state = self._state
        state.id = sid
        self.cookie = cookie
        state.destroyed = False

    def _mark_destroyed(self) -> None:
        dict.clear(self)
        self._state.destroyed = True

    def _load_steps(self) -> LifecycleSteps:
        """A lazy session's store read, on its first use: the flow inflates what came back
        (or starts a new session), and this session takes it over in place, so the
        references the app holds stay valid."""
        state = self._state
        if not state.lazy:
            return
        flow = state.flow
        load = flow.load_call()
        data = (yield load) if load is not None else None
        fresh = flow.loaded(data)
        fresh._state.loop = state.loop
        self._state = fresh._state
        dict.update(self, fresh)
        self.cookie = fresh.cookie
        flow.session = self

    def _load_now(self) -> None:
        """Load a lazy session on a plain access (``session["key"]``)."""
        raise NotImplementedError

    def _save_steps(self) -> LifecycleSteps:
        yield from self._load_steps()
        state = self._state
        if state.destroyed:
            raise SessionDestroyed("the session was destroyed; saving it would bring it back")
        call = state.flow.save_call(self)
        yield call
        state.flow.mark_saved(state.id, call.record.data_json)

    def _reload_steps(self) -> LifecycleSteps:
        yield from self._load_steps()
        data = yield Get(self._state.id)
        if not data:
            raise SessionError("failed to load session: it is no longer in the store")
        self._state.flow.reload(self, data)

    def _destroy_steps(self) -> LifecycleSteps:
        yield from self._load_steps()
        state = self._state
        state.flow.check_headers_not_sent("destroy")
        yield Destroy(state.id)
        state.flow.ended(self, "logout", state.id)
        self._mark_destroyed()

    def _regenerate_steps(self, keep: bool) -> LifecycleSteps:
        yield from self._load_steps()
        state = self._state
        state.flow.check_headers_not_sent("regenerate")
        try:
            yield Destroy(state.id)
        finally:
            state.flow.regenerate(self, keep=keep)

    def _login_steps(self, user: str | int) -> LifecycleSteps:
        yield from self._regenerate_steps(False)
        flow = self._state.flow
        flow.signed_in(self, user)
        limit, name = flow.sessions_limit(), flow.user(self)
        if limit is None or name is None:
            return
        others: dict[str, dict[str, Any]] = yield UserSessions(name)
        for sid in flow.beyond_limit(others, limit):
            yield Destroy(sid)
            flow.ended(self, "limit", sid)

    def _user_sessions_steps(self) -> Steps[StoreCall, dict[str, dict[str, Any]]]:
        yield from self._load_steps()
        user = self._state.flow.user(self)
        if user is None:
            return {}
        sessions: dict[str, dict[str, Any]] = yield UserSessions(user)
        return sessions

    def _destroy_others_steps(self) -> Steps[StoreCall, int]:
        yield from self._load_steps()
        state = self._state
        user = state.flow.user(self)
        if user is None:
            return 0
        destroyed: int = yield DestroyUserSessions(user, state.id)
        if destroyed:
            state.flow.ended(self, "revoked", None)
        return destroyed

    def _devices_steps(self) -> Steps[StoreCall, list[Device]]:
        stored = yield from self._user_sessions_steps()
        if self._state.flow.user(self) is None:
            return []
        return self._state.flow.devices(self, stored)

    def _end_device_steps(self, handle: str) -> Steps[StoreCall, bool]:
        yield from self._load_steps()
        state = self._state
        if sid_of_handle(handle, (state.id,)) is not None:
            yield from self._destroy_steps()
            return True
        stored = yield from self._user_sessions_steps()
        sid = sid_of_handle(handle, stored)
        if sid is None:
            return False
        yield Destroy(sid)
        state.flow.ended(self, "revoked", sid)
        return True

    def _check_lifecycle_awaited(self) -> None:
        """Raise if a lifecycle call was made and never run (only an async session can)."""


class _Done(Generic[T]):
    """What a lifecycle call made from a worker thread returns: it already ran."""

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, T]:
        return self.value
        yield


@mypyc_attr(allow_interpreted_subclasses=True)
class Session(SessionBase):
    """The session under ASGI (``scope["session"]``): lifecycle methods are awaitables.

    In async code, ``await`` them. From a worker thread (a FastAPI or Starlette ``def``
    endpoint, a Quart sync view) a plain call works: it runs on the request's event loop and
    returns when the store has answered. A call made in async code and never awaited fails the
    request with a ``SessionError`` naming the call: a ``regenerate()`` can never be skipped
    silently.
    """

    __slots__ = ()

    def attach_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Tie the session to its request's event loop (what sync callers run their calls on)."""
        self._state.loop = loop

    def load(self) -> Awaitable[None]:
        """Read a lazy session from the store now (the ``lazy`` option), so that plain access
        (``session["key"]``) works in async code; nothing when it is loaded already."""
        return self._lifecycle("load()", self._load_steps())

    def save(self) -> Awaitable[None]:
        """Write the session now, e.g. before a long-lived response; the end of request skips it."""
        return self._lifecycle("save()", self._save_steps())

    def reload(self) -> Awaitable[None]:
        """Replace the data with the stored copy; raises ``SessionError`` if it is gone."""
        return self._lifecycle("reload()", self._reload_steps())

    def destroy(self) -> Awaitable[None]:
        """Delete the session from the store and expire the browser cookie."""
        return self._lifecycle("destroy()", self._destroy_steps())

    def regenerate(self, *, keep: bool = False) -> Awaitable[None]:
        """Destroy the stored session and continue under a new id (login hygiene): with empty
        data, or with ``keep=True`` the data kept (Django's ``cycle_key()``)."""
        return self._lifecycle("regenerate()", self._regenerate_steps(keep))

    def login(self, user: str | int) -> Awaitable[None]:
        """Sign ``user`` in, the way that cannot be done wrong: a new id with empty data (the
        old session destroyed: no session fixation, ASVS 7.2.4), the user under ``user_key``,
        and the time, for ``authenticated_at``."""
        return self._lifecycle("login()", self._login_steps(user))

    def logout(self) -> Awaitable[None]:
        """Sign out: ``destroy()``."""
        return self._lifecycle("logout()", self._destroy_steps())

    def user_sessions(self) -> Awaitable[dict[str, dict[str, Any]]]:
        """The stored sessions of this session's user (``user_key``), by id; ``{}`` when no
        user is signed in."""
        return self._lifecycle("user_sessions()", self._user_sessions_steps())

    def destroy_other_sessions(self) -> Awaitable[int]:
        """Sign this session's user out everywhere else ("sign out other devices"): destroy
        every session of theirs but this one; how many went."""
        return self._lifecycle("destroy_other_sessions()", self._destroy_others_steps())

    def devices(self) -> Awaitable[list[Device]]:
        """The signed-in user's sessions as devices (``device_info``): this one first, then
        the most recently seen; ``[]`` when no user is signed in."""
        return self._lifecycle("devices()", self._devices_steps())

    def end_device(self, handle: str) -> Awaitable[bool]:
        """End the user's session on the device ``handle`` names (``Device.handle``); this
        one's is ``logout()``. ``False`` when no session of theirs has that handle."""
        return self._lifecycle("end_device()", self._end_device_steps(handle))

    def _lifecycle(self, name: str, steps: Steps[StoreCall, T]) -> Awaitable[T]:
        state = self._state
        loop = state.loop
        if loop is not None and running_loop() is not loop:
            return _Done(run_on_loop(loop, steps, state.runner))
        unawaited = state.unawaited
        if unawaited is None:
            unawaited = state.unawaited = []
        unawaited.append(name)
        call = self._run(name, unawaited, steps)
        with contextlib.suppress(AttributeError, TypeError):  # a compiled coroutine: no warning
            call.__qualname__ = f"session.{name}"  # type: ignore[attr-defined]
        return call

    async def _run(self, name: str, unawaited: list[str], steps: Steps[StoreCall, T]) -> T:
        unawaited.remove(name)
        return await arun_steps(steps, self._state.runner.acall)

    def _load_now(self) -> None:
        state = self._state
        loop = state.loop
        if getattr(state.runner, "inline", False):
            run_steps(self._load_steps(), state.runner.call)
        elif loop is not None and running_loop() is not loop:
            run_on_loop(loop, self._load_steps(), state.runner)
        else:
            raise SessionError(
                "the session is not loaded yet (lazy=True) and loading it needs the store: "
                "`await session.load()` first, or declare the session as a dependency "
                "(FastAPI's SessionDep, a Litestar handler's session parameter)"
            )

    def _check_lifecycle_awaited(self) -> None:
        unawaited = self._state.unawaited
        if unawaited:
            raise SessionError(
                f"session.{unawaited[0]} was called but never awaited: write "
                f"`await session.{unawaited[0]}` (or call it from a sync endpoint)"
            )


def run_on_loop(
    loop: asyncio.AbstractEventLoop, steps: Steps[StoreCall, T], runner: StoreRunner
) -> T:
    """Run lifecycle steps from a worker thread on the request's event loop (where an async
    store's connections live), and wait for them."""
    return asyncio.run_coroutine_threadsafe(arun_steps(steps, runner.acall), loop).result()


def running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


@mypyc_attr(allow_interpreted_subclasses=True)
class SyncSession(SessionBase):
    """The session under WSGI: the same steps as ``Session``, run with plain calls."""

    __slots__ = ()

    def load(self) -> None:
        """Read a lazy session from the store now; plain access loads it anyway."""
        run_steps(self._load_steps(), self._state.runner.call)

    def _load_now(self) -> None:
        self.load()

    def save(self) -> None:
        run_steps(self._save_steps(), self._state.runner.call)

    def reload(self) -> None:
        run_steps(self._reload_steps(), self._state.runner.call)

    def destroy(self) -> None:
        run_steps(self._destroy_steps(), self._state.runner.call)

    def regenerate(self, *, keep: bool = False) -> None:
        run_steps(self._regenerate_steps(keep), self._state.runner.call)

    def login(self, user: str | int) -> None:
        """Sign ``user`` in: a new id, the user under ``user_key``, the time (see ``Session``)."""
        run_steps(self._login_steps(user), self._state.runner.call)

    def logout(self) -> None:
        run_steps(self._destroy_steps(), self._state.runner.call)

    def user_sessions(self) -> dict[str, dict[str, Any]]:
        """The stored sessions of this session's user (``user_key``), by id."""
        return run_steps(self._user_sessions_steps(), self._state.runner.call)

    def destroy_other_sessions(self) -> int:
        """Destroy every session of this session's user but this one; how many went."""
        return run_steps(self._destroy_others_steps(), self._state.runner.call)

    def devices(self) -> list[Device]:
        """The signed-in user's sessions as devices (see ``Session.devices``)."""
        return run_steps(self._devices_steps(), self._state.runner.call)

    def end_device(self, handle: str) -> bool:
        """End the user's session on the device ``handle`` names (see ``Session.end_device``)."""
        return run_steps(self._end_device_steps(handle), self._state.runner.call)

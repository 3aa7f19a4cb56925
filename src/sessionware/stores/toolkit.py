"""What every store with a server behind it shares, so that a new store only says how to talk to
its server.

- The TTL rule: a session lives until its cookie expires (rounded up to whole seconds), else for
  the store's default.
- The outage guard: the one place that turns a client's errors into ``StoreUnavailable`` (or
  ``SessionCorrupt``), and tells the store's health about them.
- Health with a confirming probe: one failed command does not take the store down for everyone;
  a probe pings at once, and only when that fails too does the store emit ``disconnect``. It then
  pings every ``retry_interval`` and emits ``connect`` when the server answers. Unexpected ping
  errors (a wrong password, say) are logged once per distinct reason. If no probe can start,
  the store never marks itself down.
- Ownership: ``close()`` / ``aclose()`` close a client the store built, never one it was given.
- ``CommandStore`` / ``SyncCommandStore``: a store's rules are written once, as generators that
  yield the store's own commands (``StoreRules``); the async base performs them with ``await``, the
  sync one with plain calls. That is how sync and async I/O share every rule here: the same
  pattern as the session's lifecycle steps, chosen over a generated sync twin so that no file
  exists twice and nothing has to be kept in step by a build.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import threading
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar

from .._native import mypyc_attr
from .._records import Base, SessionRecord, Steps, arun_steps, run_steps, user_name
from .._wire import now_ms
from ..errors import SessionCorrupt, StoreUnavailable
from ..options import is_valid_sid, positive
from .base import EventEmitter, RecordStore, SessionData, SyncRecordStore, check_user_key

logger = logging.getLogger("sessionware")

C = TypeVar("C")
C_co = TypeVar("C_co", covariant=True)
T = TypeVar("T")

UNAVAILABLE = "unavailable"
CORRUPT = "corrupt"
BROKEN = "broken"
"""The client failed inside itself (a reply it cannot parse, a release whose internals moved):
an outage, whose traceback is logged once so the cause can be found."""
Classify = Callable[[BaseException], "str | None"]
"""Says what a client error means: ``UNAVAILABLE``, ``CORRUPT``, or ``None`` (a bug: re-raised)."""


def ttl_seconds(record: SessionRecord, default: int, now: int | None = None) -> int:
    """Seconds until the cookie expires, rounded up (connect-redis's and connect-pg-simple's
    rule); ``default`` for a browser-session cookie. Zero or less means already expired."""
    expires = record.expires_ms
    if expires is None:
        return default
    return math.ceil((expires - (now_ms() if now is None else now)) / 1000)


class TouchThrottle:
    """When each session was last written or touched, so that a read-only request soon after
    sends no touch: ``touch_after`` seconds (0 turns it off). Memory is bounded."""

    LIMIT = 10_000

    def __init__(self, touch_after: float) -> None:
        if (
            isinstance(touch_after, bool)
            or not isinstance(touch_after, (int, float))
            or touch_after < 0
        ):
            raise ValueError(f"touch_after must be a number of seconds >= 0, got {touch_after!r}")
        self.after_ms = round(touch_after * 1000)
        self._last: dict[str, int] = {}

    def remember(self, sid: str, when: int) -> None:
        if not self.after_ms:
            return
        if len(self._last) >= self.LIMIT:
            self._last.clear()
        self._last[sid] = max(when, self._last.get(sid, when))

    def loaded(self, sid: str, record: SessionRecord) -> None:
        """A loaded session was last written or touched when its lifetime last restarted."""
        if not self.after_ms:
            return
        cookie = record.cookie
        original = cookie.get("originalMaxAge") if cookie else None
        expires = record.expires_ms
        if expires is not None and isinstance(original, int):
            self.remember(sid, expires - original)

    def fresh(self, sid: str, now: int) -> bool:
        """Written or touched less than ``touch_after`` ago (nothing noted)."""
        last = self._last.get(sid) if self.after_ms else None
        return last is not None and now - last < self.after_ms

    def recently(self, sid: str, now: int) -> bool:
        """Touched less than ``touch_after`` ago; otherwise noted as touched now."""
        if not self.after_ms:
            return False
        last = self._last.get(sid)
        if last is not None and now - last < self.after_ms:
            return True
        self.remember(sid, now)
        return False

    def forget(self, sid: str) -> None:
        self._last.pop(sid, None)


def valid_sid(sid: str) -> str:
    """``sid`` if a cookie could carry it; else ``ValueError``. The engine never passes another,
    but the store API, the CLI and forms can: no such id reaches a database (MySQL's PAD SPACE
    collations would find ``"victim"`` for ``"victim "``)."""
    if not is_valid_sid(sid):
        raise ValueError(f"not a valid session id: {sid!r}")
    return sid


def check_client(client: object, store: str) -> None:
    """A URL where the client goes is a common slip; say what to write instead."""
    if isinstance(client, (str, bytes)):
        raise TypeError(
            f"{store} takes a client as its first argument, not a URL: write "
            f"{store}(url={client!r})"
        )


class _Action(Protocol):
    def __call__(self) -> Any: ...


JOIN_SECONDS = 10.0
"""How long closing a sync store waits for its probe or pruner thread to finish a command."""


class Background:
    """Runs a loop of steps in a daemon thread (sync store) or a task on the running loop
    (async store): each step is a number of seconds to wait, or ``None`` to call ``action``
    (a function, or a coroutine function for an async store), whose error, if any, is sent
    back into the steps. Written once for the probe and the pruner."""

    def __init__(self, name: str, action: _Action, *, asynchronous: bool) -> None:
        self.name = name
        self.action = action
        self.asynchronous = asynchronous
        self.closed = False
        self._wake = threading.Event()
        self._task: asyncio.Task[None] | None = None
        self._worker: threading.Thread | None = None

    def start(self, steps: Steps[float | None, None]) -> bool:
        """Run ``steps`` in the background; ``False`` when there is nowhere to run them (an
        async store outside a running loop)."""
        if self.asynchronous:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                steps.close()
                return False
            self._task = loop.create_task(arun_steps(steps, self._perform_async))
            return True
        thread = threading.Thread(
            target=run_steps, args=(steps, self._perform), name=self.name, daemon=True
        )
        self._worker = thread
        thread.start()
        return True

    def close(self) -> None:
        """Stop; a thread is waited for (up to ``JOIN_SECONDS``, a ping in flight), since a
        daemon thread still inside a client when the interpreter exits can crash it."""
        self.closed = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
        thread = self._worker
        if thread is not None and thread is not threading.current_thread():
            thread.join(JOIN_SECONDS)

    async def finished(self) -> None:
        """Wait for the cancelled task to unwind: a loop closed with it still pending destroys
        it mid-command, and the client's coroutine is then reported as never awaited."""
        task = self._task
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            await asyncio.wait([task])

    def _perform(self, step: float | None) -> BaseException | None:
        if step is not None:
            self._wake.wait(step)
            return None
        try:
            self.action()
        except Exception as exc:
            return exc
        return None

    async def _perform_async(self, step: float | None) -> BaseException | None:
        if step is not None:
            await asyncio.sleep(step)
            return None
        try:
            await self.action()
        except Exception as exc:
            return exc
        return None


class Health:
    """Up or down, decided by a probe; ``connect`` / ``disconnect`` emitted on each change."""

    def __init__(
        self, emitter: EventEmitter, name: str, retry_interval: float, *, asynchronous: bool
    ) -> None:
        positive(retry_interval, "retry_interval", unit=" of seconds")
        self.emitter = emitter
        self.name = name
        self.retry_interval = float(retry_interval)
        self.asynchronous = asynchronous
        self.up = True
        self.probing = False
        self.ping: _Action | None = None
        self._lock = threading.Lock()
        self._background: Background | None = None
        self._closed = False
        self._last_reason: str | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    def failed(self, error: BaseException) -> None:
        """A command failed as if the server were gone: confirm with a probe (one at a time)."""
        with self._lock:
            if self.probing or self.closed or self.ping is None:
                return
            self.probing = True
        if not self._start_probe():
            with self._lock:
                self.probing = False
            logger.warning(
                "%s session store: a command failed (%s) and no probe could start; "
                "the store stays marked up",
                self.name,
                error,
            )

    def succeeded(self) -> None:
        if not self.up:
            self._mark_up()

    def close(self) -> None:
        self._closed = True
        if self._background is not None:
            self._background.close()

    async def aclose(self) -> None:
        self.close()
        if self._background is not None:
            await self._background.finished()

    def _start_probe(self) -> bool:
        if self._background is None:
            assert self.ping is not None
            self._background = Background(
                f"sessionware-{self.name}-probe", self.ping, asynchronous=self.asynchronous
            )
        return self._background.start(self._probe_steps())

    def _probe_steps(self) -> Steps[float | None, None]:
        """Yield ``None`` to ping (the ping's error, or ``None``, comes back) or a number of
        seconds to wait. Written once for the thread and the task."""
        try:
            error = yield None
            if error is None or self.closed:
                return
            self._mark_down(error)
            while not self.closed and not self.up:
                yield self.retry_interval
                if self.closed or self.up:
                    return
                error = yield None
                if error is None:
                    self._mark_up()
                    return
                self._note(error)
        finally:
            self.probing = False

    def _mark_down(self, error: BaseException) -> None:
        with self._lock:
            changed, self.up = self.up, False
        if changed:
            self._last_reason = str(error)
            logger.warning("%s session store unreachable: %s", self.name, error)
            self.emitter.emit("disconnect")

    def _mark_up(self) -> None:
        with self._lock:
            changed, self.up = not self.up, True
        if changed:
            self._last_reason = None
            logger.warning("%s session store reachable again", self.name)
            self.emitter.emit("connect")

    def _note(self, error: BaseException) -> None:
        reason = f"{type(error).__name__}: {error}"
        if reason != self._last_reason:
            self._last_reason = reason
            logger.warning("%s session store still unreachable: %s", self.name, reason)


class Periodic:
    """Calls ``job`` every ``interval`` seconds, each wait drawn from 50-150 % of it so that many
    instances do not all run together, from the first ``ensure_started()``; errors are logged,
    never raised. ``close()`` stops it."""

    def __init__(
        self, name: str, interval: float | None, job: _Action, *, asynchronous: bool
    ) -> None:
        if interval is not None:
            positive(interval, f"{name}'s interval", unit=" of seconds", alternatives=" or None")
        self.interval = interval
        self.background = Background(name, job, asynchronous=asynchronous)
        self.started = interval is None

    def ensure_started(self) -> None:
        if not self.started and not self.background.closed:
            self.started = self.background.start(self._steps())

    def close(self) -> None:
        self.background.close()

    async def aclose(self) -> None:
        self.close()
        await self.background.finished()

    def _steps(self) -> Steps[float | None, None]:
        assert self.interval is not None
        while not self.background.closed:
            yield self.interval * random.uniform(0.5, 1.5)
            if self.background.closed:
                return
            error = yield None
            if error is not None:
                logger.warning("%s failed: %s", self.background.name, error)


class OutageGuard:
    """Maps a client's errors to the library's: the one place a store decides what an error
    means, and tells its health."""

    def __init__(self, health: Health, classify: Classify) -> None:
        self.health = health
        self.classify = classify
        self.logged: set[str] = set()

    def check(self, error: BaseException, sid: str | None = None) -> None:
        """Raise ``StoreUnavailable`` or ``SessionCorrupt`` for ``error``; return for others (the
        caller re-raises them: they are bugs, not outages)."""
        kind = self.classify(error)
        if kind == BROKEN:
            self._log_once(error)
            kind = UNAVAILABLE
        if kind == UNAVAILABLE:
            self.health.failed(error)
            reason = str(error) or type(error).__name__
            raise StoreUnavailable(
                f"{self.health.name} session store unavailable: {reason}"
            ) from error
        if kind == CORRUPT:
            raise SessionCorrupt(
                f"session {sid!r} in {self.health.name}: {error}", sid=sid
            ) from error

    def _log_once(self, error: BaseException) -> None:
        reason = f"{type(error).__name__}: {error}"
        if reason not in self.logged:
            if len(self.logged) < 100:
                self.logged.add(reason)
            logger.error(
                "%s session store: the client failed inside itself; treated as an outage",
                self.health.name,
                exc_info=error,
            )


def raised_inside(error: BaseException, *packages: str) -> bool:
    """Whether ``error`` was raised by code of one of ``packages`` (its innermost frame)."""
    traceback = error.__traceback__
    if traceback is None:
        return False
    while traceback.tb_next is not None:
        traceback = traceback.tb_next
    module = str(traceback.tb_frame.f_globals.get("__name__", ""))
    return any(module == package or module.startswith(package + ".") for package in packages)


class StoreRules(Protocol[C_co]):
    """A store's rules, with no I/O: generators of its commands, one per store method."""

    user_key: str | None

    def get(self, sid: str, touch_ms: int | None = None) -> Steps[C_co, SessionRecord | None]: ...

    def set(self, sid: str, record: SessionRecord) -> Steps[C_co, None]: ...

    def touch(self, sid: str, record: SessionRecord) -> Steps[C_co, None]: ...

    def destroy(self, sid: str) -> Steps[C_co, None]: ...

    def merge(self, sid: str, record: SessionRecord, base: Base) -> Steps[C_co, None]: ...

    def ids(self) -> Steps[C_co, list[str]]: ...

    def all(self) -> Steps[C_co, dict[str, SessionData]]: ...

    def length(self) -> Steps[C_co, int]: ...

    def clear(self) -> Steps[C_co, None]: ...

    def user_sessions(self, user: str) -> Steps[C_co, dict[str, SessionData]]: ...

    def destroy_user_sessions(self, user: str, keep: str | None) -> Steps[C_co, int]: ...


StoreOps = StoreRules
"""The name of ``StoreRules`` in 0.1 (kept so that stores written for it still import)."""


@mypyc_attr(allow_interpreted_subclasses=True)
class _Owned(Generic[C]):
    """What both bases share: the rules, the health, the guard, and whether the client is ours."""

    rules: StoreRules[C]
    _listeners: dict[str, list[Callable[..., Any]]] | None = None
    """Declared again for the compiled build, whose instances have no ``__dict__``."""
    health: Health
    guard: OutageGuard
    owns_client: bool
    retries: bool

    @property
    def user_key(self) -> str | None:
        """The session key naming the user the store indexes sessions by (``None``: none)."""
        key: str | None = self.rules.user_key
        return key

    @user_key.setter
    def user_key(self, key: str | None) -> None:
        self.rules.user_key = check_user_key(key)

    def _attempts(self, command: Any) -> Steps[Any, Any]:
        """How a command is tried: once, unless a store retries some errors (written as steps
        so both sides share it)."""
        return (yield command)

    def _sid_of(self, command: Any) -> str | None:
        """The session a command is about, for the guard's messages."""
        return None

    def _setup(
        self,
        rules: Any,
        *,
        name: str,
        classify: Classify,
        retry_interval: float,
        owns_client: bool,
        asynchronous: bool,
    ) -> None:
        assert isinstance(self, EventEmitter)
        self.rules = rules
        self.health = Health(self, name, retry_interval, asynchronous=asynchronous)
        self.health.ping = getattr(self, "_ping")  # noqa: B009 (defined by both bases)
        self.guard = OutageGuard(self.health, classify)
        self.owns_client = owns_client
        self.retries = type(self)._attempts is not _Owned._attempts
        """Whether the store retries some errors itself (else a command runs without the
        steps machinery around it)."""


@mypyc_attr(allow_interpreted_subclasses=True)
class CommandStore(_Owned[C], RecordStore):
    """An async store: its rules performed with ``await``. Subclasses implement ``_execute`` (one
    command on the client), ``_ping`` and ``_close_client``; an async context manager."""

    async def _execute(self, command: C) -> Any:
        raise NotImplementedError

    async def _perform(self, command: C) -> Any:
        try:
            if self.retries:
                result = await arun_steps(self._attempts(command), self._execute)
            else:
                result = await self._execute(command)
        except Exception as exc:
            self.guard.check(exc, self._sid_of(command))
            raise
        self.health.succeeded()
        return result

    async def _ping(self) -> None:
        raise NotImplementedError

    async def _close_client(self) -> None:
        raise NotImplementedError

    def _run(self, steps: Steps[C, T]) -> Awaitable[T]:
        return arun_steps(steps, self._perform)

    async def get_record(self, sid: str, touch_ms: int | None = None) -> SessionRecord | None:
        return await self._run(self.rules.get(valid_sid(sid), touch_ms))

    async def set_record(self, sid: str, record: SessionRecord) -> None:
        await self._run(self.rules.set(valid_sid(sid), record))

    async def touch_record(self, sid: str, record: SessionRecord) -> None:
        await self._run(self.rules.touch(valid_sid(sid), record))

    async def destroy(self, sid: str) -> None:
        await self._run(self.rules.destroy(valid_sid(sid)))

    async def merge_record(self, sid: str, record: SessionRecord, base: Base) -> None:
        await self._run(self.rules.merge(valid_sid(sid), record, base))

    async def ids(self) -> list[str]:
        return await self._run(self.rules.ids())

    async def all(self) -> dict[str, SessionData]:
        return await self._run(self.rules.all())

    async def length(self) -> int:
        return await self._run(self.rules.length())

    async def clear(self) -> None:
        await self._run(self.rules.clear())

    async def user_sessions(self, user: str | int) -> dict[str, SessionData]:
        return await self._run(self.rules.user_sessions(user_name(user)))

    async def destroy_user_sessions(self, user: str | int, keep: str | None = None) -> int:
        return await self._run(self.rules.destroy_user_sessions(user_name(user), keep))

    async def aclose(self) -> None:
        """Stop the probe; close the client if the store built it (never one it was given)."""
        await self.health.aclose()
        if self.owns_client:
            await self._close_client()

    async def close(self) -> None:
        """``aclose()`` by its other name (express's stores and redis-py say ``close``)."""
        await self.aclose()

    async def __aenter__(self: T) -> T:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


@mypyc_attr(allow_interpreted_subclasses=True)
class SyncCommandStore(_Owned[C], SyncRecordStore):
    """A sync store: the same rules performed with plain calls; a context manager."""

    def _execute(self, command: C) -> Any:
        raise NotImplementedError

    def _perform(self, command: C) -> Any:
        try:
            if self.retries:
                result = run_steps(self._attempts(command), self._execute)
            else:
                result = self._execute(command)
        except Exception as exc:
            self.guard.check(exc, self._sid_of(command))
            raise
        self.health.succeeded()
        return result

    def _ping(self) -> None:
        raise NotImplementedError

    def _close_client(self) -> None:
        raise NotImplementedError

    def _run(self, steps: Steps[C, T]) -> T:
        return run_steps(steps, self._perform)

    def get_record(self, sid: str, touch_ms: int | None = None) -> SessionRecord | None:
        return self._run(self.rules.get(valid_sid(sid), touch_ms))

    def set_record(self, sid: str, record: SessionRecord) -> None:
        self._run(self.rules.set(valid_sid(sid), record))

    def touch_record(self, sid: str, record: SessionRecord) -> None:
        self._run(self.rules.touch(valid_sid(sid), record))

    def destroy(self, sid: str) -> None:
        self._run(self.rules.destroy(valid_sid(sid)))

    def merge_record(self, sid: str, record: SessionRecord, base: Base) -> None:
        self._run(self.rules.merge(valid_sid(sid), record, base))

    def ids(self) -> list[str]:
        return self._run(self.rules.ids())

    def all(self) -> dict[str, SessionData]:
        return self._run(self.rules.all())

    def length(self) -> int:
        return self._run(self.rules.length())

    def clear(self) -> None:
        self._run(self.rules.clear())

    def user_sessions(self, user: str | int) -> dict[str, SessionData]:
        return self._run(self.rules.user_sessions(user_name(user)))

    def destroy_user_sessions(self, user: str | int, keep: str | None = None) -> int:
        return self._run(self.rules.destroy_user_sessions(user_name(user), keep))

    def close(self) -> None:
        """Stop the probe thread; close the client if the store built it."""
        self.health.close()
        if self.owns_client:
            self._close_client()

    def __enter__(self: T) -> T:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

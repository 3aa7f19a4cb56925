"""Store calls performed on any store, from sync or async code.

The engine and the sessions describe store calls (``Get``, ``Set``...); ``StoreDriver`` performs
them on one store: records for record stores and dicts for all others, the store's own thread
pool for a blocking store under asyncio, a private event loop for an async store under sync
code. A "not found" is ``None`` and a corrupt stored value is logged and ``None``. It is its own
module (not part of ``_runtime``) so that the compiled build can compile it: every request's
store calls go through it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import logging
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Mapping
from functools import partial
from typing import Any

from ._records import (
    OBSERVERS,
    Calls,
    Destroy,
    DestroyUserSessions,
    Get,
    ReadOld,
    SessionRecord,
    Set,
    StoreCall,
    Touch,
    UserSessions,
    arun_steps,
    run_steps,
)
from .errors import SessionCorrupt, SessionNotFound, StoreUnavailable, loggable
from .stores.base import implements, speaks_records

logger = logging.getLogger("sessionware")

DEFAULT_STORE_THREADS = 16
THREAD_WAIT = 0.25


def log_corrupt(error: BaseException) -> None:
    logger.error(
        "%s; the request gets a fresh session (the stored value is left as is)", loggable(error)
    )


class _EventLoopThread:
    """A private event loop in a daemon thread: how sync code awaits an async store.

    One loop per store keeps the store's connections bound to a single loop.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=self.loop.run_forever, name="sessionware-store", daemon=True
        )
        thread.start()

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()


class _BoundedThreads:
    """The worker threads a blocking store gets under ASGI: its own (``store.max_threads``, 16
    by default), so a stalled store never queues behind (or starves) the default executor. A
    call waiting for a free thread fails with ``StoreUnavailable`` once no call has finished for
    ``THREAD_WAIT`` seconds: a stall fails fast instead of making every request wait behind all
    the stuck ones, while a burst (calls finishing one after another, as concurrent writes
    serialized by SQLite's lock do) waits its turn however long the queue."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.executor = concurrent.futures.ThreadPoolExecutor(
            threads, thread_name_prefix="sessionware-store"
        )
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        self.last_finished = 0.0
        """When a call last finished (``time.monotonic()``): the threads are making progress."""

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        slots = self._slots.get(loop)
        if slots is None:
            slots = self._slots[loop] = asyncio.Semaphore(self.threads)
        while True:
            try:
                await asyncio.wait_for(slots.acquire(), THREAD_WAIT)
                break
            except asyncio.TimeoutError:
                if time.monotonic() - self.last_finished >= THREAD_WAIT:
                    raise StoreUnavailable(
                        f"the store's {self.threads} worker threads stayed busy for "
                        f"{THREAD_WAIT} s with no call finishing"
                    ) from None
        try:
            return await loop.run_in_executor(self.executor, partial(function, *args))
        finally:
            self.last_finished = time.monotonic()
            slots.release()


_ABSENT = (SessionNotFound, FileNotFoundError, SessionCorrupt)
"""What a store may raise for a session it cannot return: "not found" for a read."""


def _takes_touch_ms(get_record: Any) -> bool:
    try:
        return "touch_ms" in inspect.signature(get_record).parameters
    except ValueError:  # compiled (mypyc gives async methods no signature): one of ours
        return True


class StoreDriver:
    """Performs typed store calls on one store, from either side: records for record stores,
    dicts for all others; a "not found" error is ``None``, a corrupt value logged and ``None``."""

    def __init__(self, store: Any) -> None:
        for method in ("get", "set", "destroy"):
            if not implements(store, method):
                raise TypeError(f"store must implement {method}(); {store!r} does not")
        self.store = store
        self.records = speaks_records(store)
        self.has_touch = implements(store, "touch")
        self.blocking = bool(getattr(store, "blocking", True))
        self.is_async = inspect.iscoroutinefunction(store.get)
        self._get = getattr(store, "get_record" if self.records else "get")
        self._set = getattr(store, "set_record" if self.records else "set")
        self._touch = getattr(store, "touch_record" if self.records else "touch")
        self._destroy = store.destroy
        self._merge = (
            store.merge_record if self.records and implements(store, "merge_record") else None
        )
        self._touch_on_read = self.records and _takes_touch_ms(self._get)
        """A record store whose ``get_record`` can apply a lifetime as it reads."""
        self.inline = not self.blocking and not self.is_async
        """Plain calls are fine from async code too: a sync store that does no I/O."""
        self._loop_thread: _EventLoopThread | None = None
        self._threads: _BoundedThreads | None = None
        self._lock = threading.Lock()
        self.observers = OBSERVERS

    @classmethod
    def for_store(cls, store: object) -> StoreDriver:
        driver = getattr(store, "_sessionware_driver", None)
        if isinstance(driver, StoreDriver):
            return driver
        driver = cls(store)
        with contextlib.suppress(AttributeError):
            setattr(store, "_sessionware_driver", driver)  # noqa: B010
        return driver

    def _invoke(self, call: StoreCall) -> Any:
        """Call the store method for ``call``: its result, or a coroutine for an async store.
        The per-request calls are tested first, by exact type."""
        if type(call) is Get:
            return self._read(call.sid, call.touch_ms)
        if type(call) is Set:
            if call.base is not None and self._merge is not None:
                return self._merge(call.sid, call.record, call.base)
            return self._set(call.sid, call.record if self.records else call.record.as_dict())
        if type(call) is Touch:
            return self._touch(call.sid, call.record if self.records else call.record.as_dict())
        if isinstance(call, Destroy):
            return self._destroy(call.sid)
        if isinstance(call, UserSessions):
            return self.store.user_sessions(call.user)
        if isinstance(call, DestroyUserSessions):
            return self.store.destroy_user_sessions(call.user, call.keep)
        raise TypeError(f"not a store call: {call!r}")

    def _read(self, sid: str, touch_ms: int | None) -> Any:
        if self._touch_on_read and touch_ms is not None:
            return self._get(sid, touch_ms)
        return self._get(sid)

    async def acall(self, call: StoreCall) -> Any:
        if type(call) is Calls:
            for each in call.calls:
                await self.acall(each)
            return None
        watch = self.observers.store_call
        if watch is None:
            return await self._acall(call)
        with watch(self.store, call):
            return await self._acall(call)

    async def _acall(self, call: StoreCall) -> Any:
        if isinstance(call, ReadOld):
            return await arun_steps(call.steps(), self._aread_old)
        try:
            if self.is_async:
                result = await self._invoke(call)
            elif not self.blocking:
                result = self._invoke(call)
            else:
                result = await self._worker_threads().run(self._invoke, call)
        except _ABSENT as exc:
            return self._absent(call, exc)
        return self._checked(call, result)

    def call(self, call: StoreCall) -> Any:
        if type(call) is Calls:
            for each in call.calls:
                self.call(each)
            return None
        watch = self.observers.store_call
        if watch is None:
            return self._call(call)
        with watch(self.store, call):
            return self._call(call)

    def _call(self, call: StoreCall) -> Any:
        if isinstance(call, ReadOld):
            return run_steps(call.steps(), self._read_old)
        try:
            if self.is_async:
                result = self._event_loop().run(self._invoke(call))
            else:
                result = self._invoke(call)
        except _ABSENT as exc:
            return self._absent(call, exc)
        return self._checked(call, result)

    def _read_old(self, step: Get | ReadOld) -> Any:
        if isinstance(step, Get):
            return self._call(step)
        return step.source.read_stored(step.key, step.keep)

    async def _aread_old(self, step: Get | ReadOld) -> Any:
        if isinstance(step, Get):
            return await self._acall(step)
        return await step.source.aread_stored(step.key, step.keep)

    @staticmethod
    def _absent(call: StoreCall, error: Exception) -> None:
        if type(call) is not Get:
            raise error
        if isinstance(error, SessionCorrupt):
            log_corrupt(error)

    @staticmethod
    def _checked(call: StoreCall, result: Any) -> Any:
        """What a get returned, if it is a session at all (a store handing back a list, a
        number or text is a corrupt value, not a crash); a save's ``stored`` is told."""
        if type(call) is Set and call.stored is not None:
            call.stored()
        if result is None or type(result) is SessionRecord:
            return result
        if type(call) is Get and not isinstance(result, (SessionRecord, Mapping)):
            log_corrupt(SessionCorrupt(f"the store returned {type(result).__name__} for a session"))
            return None
        return result

    def _event_loop(self) -> _EventLoopThread:
        with self._lock:
            if self._loop_thread is None:
                self._loop_thread = _EventLoopThread()
            return self._loop_thread

    def _worker_threads(self) -> _BoundedThreads:
        with self._lock:
            if self._threads is None:
                threads = getattr(self.store, "max_threads", DEFAULT_STORE_THREADS)
                self._threads = _BoundedThreads(threads)
            return self._threads

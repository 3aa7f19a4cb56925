"""What both adapters and every integration share: options + store + driver + engine, the
store's health, the one failure policy, and sessions outside a request.

The engine decides; this layer performs. The adapters only move bytes and render what this layer
returns (a session, or a ``Failure`` to answer with).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import logging
import threading
import weakref
from collections.abc import Callable, Coroutine, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Generic, NamedTuple, TypeVar

from ._engine import Engine
from ._native import mypyc_attr
from ._records import (
    Calls,
    Destroy,
    DestroyUserSessions,
    Get,
    SessionRecord,
    Set,
    StoreCall,
    Touch,
    UserSessions,
)
from .errors import SessionConflict, SessionCorrupt, SessionNotFound, StoreUnavailable
from .options import SessionOptions, session_options
from .session import Session, SessionBase, SyncSession
from .stores.base import implements, index_users, speaks_records
from .stores.memory import MemoryStore

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .options import SessionOptionsDict

logger = logging.getLogger("sessionware")

App = TypeVar("App")
DEFAULT_STORE_THREADS = 16
THREAD_WAIT = 0.25


class Failure(NamedTuple):
    """An answer the middleware gives instead of the app's: status, reason and body.

    Only ``headers`` go out with it: none of the app's (a ``Location`` or a ``Set-Cookie`` of a
    response that failed must never reach the browser).
    """

    status: int
    reason: str

    @property
    def body(self) -> bytes:
        return self.reason.encode()

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        return (
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(self.body))),
        )

    @property
    def status_line(self) -> str:
        return f"{self.status} {self.reason}"

    @property
    def websocket_close_code(self) -> int:
        return 1013 if self.status == 503 else 1011


SERVER_ERROR = Failure(500, "Internal Server Error")
CONFLICT = Failure(409, "Conflict")
UNAVAILABLE = Failure(503, "Service Unavailable")


def log_corrupt(error: BaseException) -> None:
    logger.error("%s; the request gets a fresh session (the stored value is left as is)", error)


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
    call waits at most ``THREAD_WAIT`` seconds for a free thread, then fails with
    ``StoreUnavailable``: a burst of fast calls queues briefly, a stall fails fast instead of
    making every request wait behind all the stuck ones."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.executor = concurrent.futures.ThreadPoolExecutor(
            threads, thread_name_prefix="sessionware-store"
        )
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        slots = self._slots.get(loop)
        if slots is None:
            slots = self._slots[loop] = asyncio.Semaphore(self.threads)
        try:
            await asyncio.wait_for(slots.acquire(), THREAD_WAIT)
        except asyncio.TimeoutError:
            raise StoreUnavailable(
                f"the store's {self.threads} worker threads stayed busy for {THREAD_WAIT} s"
            ) from None
        try:
            return await loop.run_in_executor(self.executor, partial(function, *args))
        finally:
            slots.release()


_ABSENT = (SessionNotFound, FileNotFoundError, SessionCorrupt)
"""What a store may raise for a session it cannot return: "not found" for a read."""


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
        self._touch_on_read = self.records and "touch_ms" in inspect.signature(self._get).parameters
        """A record store whose ``get_record`` can apply a lifetime as it reads."""
        self.inline = not self.blocking and not self.is_async
        """Plain calls are fine from async code too: a sync store that does no I/O."""
        self._loop_thread: _EventLoopThread | None = None
        self._threads: _BoundedThreads | None = None
        self._lock = threading.Lock()

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

    def get(self, sid: str, touch_ms: int | None = None) -> Any:
        """``call(Get(sid, touch_ms))`` without building the call: the read almost every
        request makes."""
        if self.is_async:
            return self.call(Get(sid, touch_ms))
        try:
            result = self._read(sid, touch_ms)
        except _ABSENT as exc:
            return self._absent(Get(sid), exc)
        if result is None or type(result) is SessionRecord:
            return result
        return self._checked(Get(sid), result)

    async def acall(self, call: StoreCall) -> Any:
        if type(call) is Calls:
            for each in call.calls:
                await self.acall(each)
            return None
        try:
            if self.is_async:
                result = await self._invoke(call)
            elif not self.blocking:
                result = self._invoke(call)
            else:
                result = await self._worker_threads().run(self._invoke, call)
        except _ABSENT as exc:
            return self._absent(call, exc)
        if result is None or type(result) is SessionRecord:
            return result
        return self._checked(call, result)

    def call(self, call: StoreCall) -> Any:
        if type(call) is Calls:
            for each in call.calls:
                self.call(each)
            return None
        try:
            if self.is_async:
                result = self._event_loop().run(self._invoke(call))
            else:
                result = self._invoke(call)
        except _ABSENT as exc:
            return self._absent(call, exc)
        if result is None or type(result) is SessionRecord:
            return result
        return self._checked(call, result)

    @staticmethod
    def _absent(call: StoreCall, error: Exception) -> None:
        if type(call) is not Get:
            raise error
        if isinstance(error, SessionCorrupt):
            log_corrupt(error)

    @staticmethod
    def _checked(call: StoreCall, result: Any) -> Any:
        """What a get returned, if it is a session at all (a store handing back a list, a
        number or text is a corrupt value, not a crash)."""
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


class SessionRuntime:
    """Validated options, the store and its driver, the engine, whether the store is up, and the
    failure policy every adapter renders."""

    def __init__(
        self, options: SessionOptions, store: object | None, session_class: type[SessionBase]
    ) -> None:
        self.options = options
        self.store = MemoryStore() if store is None else store
        if options.user_key is not None:
            index_users(self.store, options.user_key)
        self.driver = StoreDriver.for_store(self.store)
        self.engine = Engine(
            options,
            partial(session_class, self.driver),
            has_touch=self.driver.has_touch,
            on_corrupt=log_corrupt,
        )
        self.store_ready = True
        on = getattr(self.store, "on", None)
        if callable(on):
            on("disconnect", self._on_disconnect)
            on("connect", self._on_connect)

    @classmethod
    def from_options(
        cls, options: Mapping[str, Any], session_class: type[SessionBase]
    ) -> SessionRuntime:
        return cls(session_options(options), options.get("store"), session_class)

    def _on_disconnect(self, *args: object) -> None:
        self.store_ready = False

    def _on_connect(self, *args: object) -> None:
        self.store_ready = True

    # -- the failure policy ------------------------------------------------------------------

    def when_down(self) -> Failure | None:
        """The store is known to be down: 503, or ``None`` to serve the request sessionless."""
        return UNAVAILABLE if self.options.store_unavailable == "error" else None

    def load_failed(self, error: Exception) -> Failure | None:
        if isinstance(error, StoreUnavailable):
            logger.warning("session store unavailable while loading a session: %s", error)
            return self.when_down()
        logger.error("could not load the session", exc_info=error)
        return SERVER_ERROR

    def save_failed(self, error: Exception, *, headers_sent: bool = False) -> Failure | None:
        """The answer to a failed store call at the end of the request; ``None`` once the
        headers are gone (the failure can only be logged then)."""
        if headers_sent:
            logger.error(
                "could not store the session at the end of a streamed response", exc_info=error
            )
            return None
        if isinstance(error, StoreUnavailable):
            logger.warning("session store unavailable while saving a session: %s", error)
            return UNAVAILABLE
        if isinstance(error, SessionConflict):
            logger.warning("session not saved: %s", error)
            return CONFLICT
        logger.error("could not store the session", exc_info=error)
        return SERVER_ERROR


@mypyc_attr(allow_interpreted_subclasses=True)
class BaseSessionMiddleware(Generic[App]):
    """The constructor both middlewares share; subclasses name their session class."""

    session_class: ClassVar[type[SessionBase]]

    def __init__(self, app: App, **options: Unpack[SessionOptionsDict]) -> None:
        self.app = app
        self.runtime = SessionRuntime.from_options(options, self.session_class)
        self.options = self.runtime.options
        self.store = self.runtime.store
        self.driver = self.runtime.driver
        self.engine = self.runtime.engine

    @property
    def store_ready(self) -> bool:
        return self.runtime.store_ready


def _detached_engine(store: object, session_class: type[SessionBase]) -> Engine:
    """An engine for sessions that belong to no request: they set no cookie (so need no
    secret) and keep the default options."""
    driver = StoreDriver.for_store(store)
    return Engine(
        SessionOptions(secrets=()),
        partial(session_class, driver),
        has_touch=driver.has_touch,
        on_corrupt=log_corrupt,
    )


def _detached(store: object, session_class: type[SessionBase], sid: str, data: Any) -> Any:
    return _detached_engine(store, session_class).detached_flow().inflate(sid, data)


def create_session(store: object, sid: str, data: Mapping[str, Any]) -> Session:
    """A ``Session`` (async methods) over ``data``, bound to ``store``, outside any request."""
    session = _detached(store, Session, sid, data)
    assert isinstance(session, Session)
    return session


def create_sync_session(store: object, sid: str, data: Mapping[str, Any]) -> SyncSession:
    """A ``SyncSession`` over ``data``, bound to ``store``, outside any request."""
    session = _detached(store, SyncSession, sid, data)
    assert isinstance(session, SyncSession)
    return session


async def aload_session(store: object, sid: str) -> Session | None:
    """The stored session ``sid`` as a ``Session`` whose save/destroy/reload talk to ``store``."""
    data = await StoreDriver.for_store(store).acall(Get(sid))
    return None if not data else create_session(store, sid, data)


def load_session(store: object, sid: str) -> SyncSession | None:
    """The stored session ``sid`` as a ``SyncSession``, from sync code (any store)."""
    data = StoreDriver.for_store(store).call(Get(sid))
    return None if not data else create_sync_session(store, sid, data)

"""The store contracts (express-session's Store, in Python) and the driver that calls any store.

A store author writes ``get``, ``set`` and ``destroy`` (and, ideally, ``touch``), either as
coroutines on a ``Store`` subclass or as plain methods on a ``SyncStore`` subclass. The driver
makes either kind usable under both adapters: a sync store runs in a worker thread under ASGI
(unless it declares ``blocking = False``), an async store runs on a private event loop under WSGI.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from ..errors import SessionNotFound
from ..session import Session, SessionBase, SessionRecord, StoreCall, SyncSession

logger = logging.getLogger("sessionware")

Listener = Callable[..., Any]
SessionData = dict[str, Any]


class EventEmitter:
    """The three events the middleware listens to: ``connect``, ``disconnect`` and ``error``."""

    _listeners: dict[str, list[Listener]]

    def on(self, event: str, listener: Listener) -> None:
        listeners = self.__dict__.setdefault("_listeners", {})
        listeners.setdefault(event, []).append(listener)

    def off(self, event: str, listener: Listener) -> None:
        listeners = self.__dict__.get("_listeners", {}).get(event, [])
        if listener in listeners:
            listeners.remove(listener)

    def emit(self, event: str, *args: Any) -> bool:
        """Call the listeners; an ``error`` nobody listens to is logged rather than lost."""
        listeners = list(self.__dict__.get("_listeners", {}).get(event, ()))
        if not listeners and event == "error":
            logger.error("session store error: %s", args[0] if args else "unknown", exc_info=None)
        for listener in listeners:
            listener(*args)
        return bool(listeners)


class Store(EventEmitter):
    """An asynchronous session store. Implement ``get``, ``set``, ``destroy`` (and ``touch``).

    ``data`` is the JSON-able dict express stores: ``{"cookie": {...}, **values}``.
    """

    async def get(self, sid: str) -> SessionData | None:
        raise NotImplementedError

    async def set(self, sid: str, data: SessionData) -> None:
        raise NotImplementedError

    async def destroy(self, sid: str) -> None:
        raise NotImplementedError

    async def touch(self, sid: str, data: SessionData) -> None:
        """Recommended: extend the session's lifetime without rewriting it."""
        raise NotImplementedError

    async def all(self) -> dict[str, SessionData]:
        raise NotImplementedError

    async def length(self) -> int:
        return len(await self.all())

    async def clear(self) -> None:
        raise NotImplementedError

    async def load(self, sid: str) -> Session | None:
        """The stored session as a ``Session`` whose save/destroy/reload talk to this store."""
        data = await StoreDriver.for_store(self).acall(StoreCall("get", (sid,)))
        return None if not data else self.create_session(sid, data)

    def create_session(self, sid: str, data: SessionData) -> Session:
        session = _detached_flow(self, Session).inflate(sid, data)
        assert isinstance(session, Session)
        return session

    async def regenerate(self, session: Session) -> None:
        await session.regenerate()


class SyncStore(EventEmitter):
    """A synchronous session store: the same contract as ``Store`` with plain methods.

    Set ``blocking = False`` on a store that does no I/O, so ASGI apps call it directly instead
    of in a worker thread.
    """

    blocking = True

    def get(self, sid: str) -> SessionData | None:
        raise NotImplementedError

    def set(self, sid: str, data: SessionData) -> None:
        raise NotImplementedError

    def destroy(self, sid: str) -> None:
        raise NotImplementedError

    def touch(self, sid: str, data: SessionData) -> None:
        """Recommended: extend the session's lifetime without rewriting it."""
        raise NotImplementedError

    def all(self) -> dict[str, SessionData]:
        raise NotImplementedError

    def length(self) -> int:
        return len(self.all())

    def clear(self) -> None:
        raise NotImplementedError

    def load(self, sid: str) -> SyncSession | None:
        data = StoreDriver.for_store(self).call(StoreCall("get", (sid,)))
        return None if not data else self.create_session(sid, data)

    def create_session(self, sid: str, data: SessionData) -> SyncSession:
        session = _detached_flow(self, SyncSession).inflate(sid, data)
        assert isinstance(session, SyncSession)
        return session

    def regenerate(self, session: SyncSession) -> None:
        session.regenerate()


def implements(store: object, method: str) -> bool:
    """Whether ``store`` really provides ``method`` (not just the base class's stub)."""
    attribute = getattr(type(store), method, None) or getattr(store, method, None)
    if not callable(attribute):
        return False
    return attribute not in (getattr(Store, method, None), getattr(SyncStore, method, None))


class _EventLoopThread:
    """A private event loop in a daemon thread: how WSGI code awaits an async store.

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


_RECORD_METHODS = {"get": "get_record", "set": "set_record", "touch": "touch_record"}


def _record_method(store: object, name: str) -> Callable[..., Any] | None:
    """``store.<name>_record`` if the store has one and has not overridden ``<name>`` since.

    A subclass that overrides ``get`` (to add logging, say) must see its override called.
    """
    record_name = _RECORD_METHODS.get(name)
    cls = type(store)
    owner = next((c for c in cls.__mro__ if record_name and record_name in vars(c)), None)
    if owner is None or getattr(cls, name, None) is not getattr(owner, name, None):
        return None
    method = getattr(store, record_name or "")
    return method if callable(method) else None


def _plain(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The arguments a dict-speaking store expects: records become ``{"cookie": ..., **data}``."""
    if len(args) == 2 and isinstance(args[1], SessionRecord):
        return (args[0], args[1].as_dict())
    return args


def _records(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The arguments a record-speaking store expects: plain dicts become records."""
    if len(args) == 2 and isinstance(args[1], dict):
        return (args[0], SessionRecord.from_dict(args[1]))
    return args


class StoreDriver:
    """Calls one store from either side, maps "not found" errors to ``None``, and hands
    records to stores that implement the ``*_record`` methods, dicts to all others."""

    _NOT_FOUND = (SessionNotFound, FileNotFoundError)

    def __init__(self, store: object) -> None:
        for method in ("get", "set", "destroy"):
            if not implements(store, method):
                raise TypeError(f"store must implement {method}(); {store!r} does not")
        self.store = store
        self.has_touch = implements(store, "touch") or _record_method(store, "touch") is not None
        self.blocking = bool(getattr(store, "blocking", True))
        self._methods: dict[str, tuple[Callable[..., Any], bool, bool]] = {}
        self._loop_thread: _EventLoopThread | None = None
        self._lock = threading.Lock()
        self.inline = not self.blocking and not any(
            self._method(name)[1]
            for name in ("get", "set", "destroy", "touch")
            if name != "touch" or self.has_touch
        )
        """Plain calls are fine from async code too: a sync store that does no I/O."""

    @classmethod
    def for_store(cls, store: object) -> StoreDriver:
        driver = getattr(store, "_sessionware_driver", None)
        if driver is None:
            driver = cls(store)
            with contextlib.suppress(AttributeError):
                store._sessionware_driver = driver  # type: ignore[attr-defined]
        return driver

    def _method(self, name: str) -> tuple[Callable[..., Any], bool, bool]:
        """(bound method, is it a coroutine function, does it take records)."""
        found = self._methods.get(name)
        if found is None:
            record_method = _record_method(self.store, name)
            method = record_method or getattr(self.store, name)
            found = (method, inspect.iscoroutinefunction(method), record_method is not None)
            self._methods[name] = found
        return found

    async def acall(self, call: StoreCall) -> Any:
        method, is_async, takes_records = self._method(call.method)
        args = _records(call.args) if takes_records else _plain(call.args)
        try:
            if is_async:
                return await method(*args)
            if not self.blocking:
                return method(*args)
            return await asyncio.to_thread(method, *args)
        except self._NOT_FOUND:
            if call.method == "get":
                return None
            raise

    def call(self, call: StoreCall) -> Any:
        method, is_async, takes_records = self._method(call.method)
        args = _records(call.args) if takes_records else _plain(call.args)
        try:
            if not is_async:
                return method(*args)
            return self._event_loop().run(method(*args))
        except self._NOT_FOUND:
            if call.method == "get":
                return None
            raise

    def _event_loop(self) -> _EventLoopThread:
        with self._lock:
            if self._loop_thread is None:
                self._loop_thread = _EventLoopThread()
            return self._loop_thread


def _detached_flow(store: object, session_class: type[SessionBase]) -> Any:
    from ..engine import Engine
    from ..options import SessionOptions

    options = SessionOptions(secrets=(b"unused: detached sessions set no cookie",))
    return Engine(options, StoreDriver.for_store(store), session_class).detached_flow()

"""The store contracts: express-session's Store, in Python, and nothing else.

A store author writes ``get``, ``set`` and ``destroy`` (and, ideally, ``touch``), either as
coroutines on a ``Store`` subclass or as plain methods on a ``SyncStore`` subclass; ``all``,
``length`` and ``clear`` are optional. The runtime makes either kind usable under both adapters.

Built-in stores speak records instead (``RecordStore`` / ``SyncRecordStore``): the session's
JSON, already encoded by the engine, goes to the store as is, and what the store loaded comes
back without a second encoding. Their dict methods are derived from the record ones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .._records import Base, SessionRecord, merged_data
from ..errors import loggable
from ..options import check_user_key

__all__ = [
    "Base",
    "EventEmitter",
    "RecordStore",
    "SessionData",
    "SessionRecord",
    "Store",
    "SyncRecordStore",
    "SyncStore",
    "check_user_key",
    "implements",
    "index_users",
    "merged_data",
    "require_user_key",
    "speaks_records",
]

logger = logging.getLogger("sessionware")

Listener = Callable[..., Any]
SessionData = dict[str, Any]


class EventEmitter:
    """The three events the middleware listens to: ``connect``, ``disconnect`` and ``error``."""

    _listeners: dict[str, list[Listener]] | None = None

    def on(self, event: str, listener: Listener) -> None:
        listeners = self._listeners
        if listeners is None:
            listeners = self._listeners = {}
        listeners.setdefault(event, []).append(listener)

    def off(self, event: str, listener: Listener) -> None:
        listeners = (self._listeners or {}).get(event, [])
        if listener in listeners:
            listeners.remove(listener)

    def emit(self, event: str, *args: Any) -> bool:
        """Call the listeners; an ``error`` nobody listens to is logged rather than lost."""
        listeners = list((self._listeners or {}).get(event, ()))
        if not listeners and event == "error":
            error = args[0] if args else "unknown"
            text = loggable(error) if isinstance(error, BaseException) else error
            logger.error("session store error: %s", text)
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

    user_key: str | None = None
    """The session key naming the signed-in user, for a store that keeps a per-user index."""

    async def user_sessions(self, user: str | int) -> dict[str, SessionData]:
        """Optional: the user's live sessions by id (needs ``user_key``)."""
        raise NotImplementedError

    async def destroy_user_sessions(self, user: str | int, keep: str | None = None) -> int:
        """Optional: destroy the user's sessions but ``keep``; how many were destroyed."""
        raise NotImplementedError


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

    user_key: str | None = None
    """The session key naming the signed-in user, for a store that keeps a per-user index."""

    def user_sessions(self, user: str | int) -> dict[str, SessionData]:
        """Optional: the user's live sessions by id (needs ``user_key``)."""
        raise NotImplementedError

    def destroy_user_sessions(self, user: str | int, keep: str | None = None) -> int:
        """Optional: destroy the user's sessions but ``keep``; how many were destroyed."""
        raise NotImplementedError


class RecordStore(Store):
    """An async store that exchanges ``SessionRecord``s; ``get``/``set``/``touch`` follow."""

    async def get_record(self, sid: str) -> SessionRecord | None:
        raise NotImplementedError

    async def set_record(self, sid: str, record: SessionRecord) -> None:
        raise NotImplementedError

    async def touch_record(self, sid: str, record: SessionRecord) -> None:
        raise NotImplementedError

    async def merge_record(self, sid: str, record: SessionRecord, base: Base) -> None:
        """Optional: save only this request's changes onto what is stored now, atomically (see
        ``merged_data``); a session gone since it was loaded stays gone."""
        raise NotImplementedError

    async def get(self, sid: str) -> SessionData | None:
        record = await self.get_record(sid)
        return None if record is None else record.as_dict()

    async def set(self, sid: str, data: SessionData) -> None:
        await self.set_record(sid, SessionRecord.from_dict(data))

    async def touch(self, sid: str, data: SessionData) -> None:
        await self.touch_record(sid, SessionRecord.from_dict(data))


class SyncRecordStore(SyncStore):
    """A sync store that exchanges ``SessionRecord``s; ``get``/``set``/``touch`` follow."""

    def get_record(self, sid: str) -> SessionRecord | None:
        raise NotImplementedError

    def set_record(self, sid: str, record: SessionRecord) -> None:
        raise NotImplementedError

    def touch_record(self, sid: str, record: SessionRecord) -> None:
        raise NotImplementedError

    def merge_record(self, sid: str, record: SessionRecord, base: Base) -> None:
        """Optional: save only this request's changes onto what is stored now, atomically (see
        ``merged_data``); a session gone since it was loaded stays gone."""
        raise NotImplementedError

    def get(self, sid: str) -> SessionData | None:
        record = self.get_record(sid)
        return None if record is None else record.as_dict()

    def set(self, sid: str, data: SessionData) -> None:
        self.set_record(sid, SessionRecord.from_dict(data))

    def touch(self, sid: str, data: SessionData) -> None:
        self.touch_record(sid, SessionRecord.from_dict(data))


_RECORD_METHODS = {"get": "get_record", "set": "set_record", "touch": "touch_record"}
_BASES = (Store, SyncStore, RecordStore, SyncRecordStore)


def _defined_by(bases: tuple[type, ...], method: str) -> set[Any]:
    return {vars(base)[method] for base in bases if method in vars(base)}


def implements(store: object, method: str) -> bool:
    """Whether ``store`` really provides ``method`` (not just a contract's stub)."""
    attribute = getattr(type(store), method, None) or getattr(store, method, None)
    if not callable(attribute):
        return False
    if attribute in _defined_by((RecordStore, SyncRecordStore), method) and (
        method in _RECORD_METHODS
    ):
        return implements(store, _RECORD_METHODS[method])
    return attribute not in _defined_by(_BASES, method)


def require_user_key(user_key: str | None) -> str:
    """The store's ``user_key``; listing a user's sessions without one is a usage error."""
    if user_key is None:
        raise TypeError("no per-user index: give the store (or the middleware) user_key")
    return user_key


def index_users(store: object, user_key: str) -> None:
    """Tell ``store`` which session key names the user (the middleware's ``user_key``), so it
    indexes sessions by user; a store that keeps no index, or indexes another key, is a
    configuration error found at start-up."""
    check_user_key(user_key)
    if not implements(store, "user_sessions"):
        raise TypeError(
            f"user_key needs a store that keeps a per-user index; {type(store).__name__} does not"
        )
    current = getattr(store, "user_key", None)
    if current is not None and current != user_key:
        raise ValueError(f"the store already indexes {current!r}, not user_key={user_key!r}")
    store.user_key = user_key  # type: ignore[attr-defined]


def speaks_records(store: object) -> bool:
    """Whether the runtime may hand ``store`` records: it is a record store, and no subclass has
    overridden a dict method since (a ``get`` that adds logging must see its override called)."""
    if not isinstance(store, (RecordStore, SyncRecordStore)):
        return False
    cls = type(store)
    derived = (RecordStore, SyncRecordStore)
    return all(getattr(cls, name) in _defined_by(derived, name) for name in _RECORD_METHODS)

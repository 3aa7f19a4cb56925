"""MemoryStore: express's MemoryStore semantics, without its unbounded growth.

Like express, every session's data is kept as JSON text, so what comes back is a copy (no
aliasing of nested values between requests) and expired sessions are invisible and dropped when
touched. Unlike express, expired entries are also swept in amortized O(1) per write, and
``max_sessions`` bounds memory by evicting the least recently written session.
"""

from __future__ import annotations

import threading
from typing import Any

from ..cookie import Cookie
from ..cookies import now_ms
from ..session import SessionRecord, decode_own_json
from .base import SessionData, SyncStore

# (expiry in epoch ms, the store's own copy of the cookie, the data's JSON)
_Entry = tuple["int | None", "Cookie | dict[str, Any] | None", str]
_MIN_SWEEP_INTERVAL = 1024


class MemoryStore(SyncStore):
    """An in-process store for development, tests and single-process apps."""

    blocking = False

    def __init__(self, *, max_sessions: int | None = None) -> None:
        if max_sessions is not None and (
            isinstance(max_sessions, bool) or not isinstance(max_sessions, int) or max_sessions < 1
        ):
            raise ValueError(f"max_sessions must be a positive int or None, got {max_sessions!r}")
        self.max_sessions = max_sessions
        self._entries: dict[str, _Entry] = {}
        self._writes_since_sweep = 0
        self._lock = threading.Lock()

    def _live(self, sid: str, now: int) -> _Entry | None:
        entry = self._entries.get(sid)
        if entry is not None and entry[0] is not None and entry[0] <= now:
            self._entries.pop(sid, None)
            return None
        return entry

    def get_record(self, sid: str) -> SessionRecord | None:
        entry = self._live(sid, now_ms())
        if entry is None:
            return None
        _, cookie, data_json = entry
        return SessionRecord(cookie, decode_own_json(data_json), data_json)

    def get(self, sid: str) -> SessionData | None:
        record = self.get_record(sid)
        return None if record is None else record.as_dict()

    def set_record(self, sid: str, record: SessionRecord) -> None:
        entry = (record.expires_ms, record.cookie_copy(), record.data_json)
        with self._lock:
            entries = self._entries
            if sid in entries:
                del entries[sid]
            elif self.max_sessions is not None and len(entries) >= self.max_sessions:
                self._sweep(now_ms())
                while len(entries) >= self.max_sessions:
                    del entries[next(iter(entries))]
            entries[sid] = entry
            self._writes_since_sweep += 1
            if self._writes_since_sweep >= max(_MIN_SWEEP_INTERVAL, len(entries)):
                self._sweep(now_ms())

    def set(self, sid: str, data: SessionData) -> None:
        self.set_record(sid, SessionRecord.from_dict(data))

    def touch_record(self, sid: str, record: SessionRecord) -> None:
        """Replace only the stored cookie of a live session; a gone session stays gone."""
        if not record.has_cookie:
            return
        cookie = record.cookie_copy()
        with self._lock:
            entry = self._live(sid, now_ms())
            if entry is not None:
                self._entries[sid] = (record.expires_ms, cookie, entry[2])

    def touch(self, sid: str, data: SessionData) -> None:
        self.touch_record(sid, SessionRecord.from_dict({"cookie": data.get("cookie")}))

    def destroy(self, sid: str) -> None:
        with self._lock:
            self._entries.pop(sid, None)

    def all(self) -> dict[str, SessionData]:
        """Every live session by sid (expired ones are dropped on the way, as in express)."""
        with self._lock:
            self._sweep(now_ms())
            sids = list(self._entries)
        found = {sid: self.get(sid) for sid in sids}
        return {sid: data for sid, data in found.items() if data is not None}

    def length(self) -> int:
        with self._lock:
            self._sweep(now_ms())
            return len(self._entries)

    def ids(self) -> list[str]:
        with self._lock:
            self._sweep(now_ms())
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _sweep(self, now: int) -> None:
        """Drop every expired entry; callers hold the lock."""
        expired = [
            sid
            for sid, (expiry, _, _) in self._entries.items()
            if expiry is not None and expiry <= now
        ]
        for sid in expired:
            del self._entries[sid]
        self._writes_since_sweep = 0

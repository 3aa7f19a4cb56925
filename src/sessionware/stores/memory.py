"""MemoryStore: express's MemoryStore semantics, without its unbounded growth.

Like express, every session's data is kept as JSON text, so what comes back is a copy (no
aliasing of nested values between requests) and expired sessions are invisible. Unlike express,
memory is bounded by the live sessions: a heap ordered by expiry lets every write drop up to two
expired sessions (so the expired never outnumber what the writes drain), and ``max_sessions``
drops an expired session first, else the least recently written one, without scanning the
store. Every read and write holds one lock, so threads are safe.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from .._records import Base, SessionRecord, decode_own_json, encode_json, merged_data
from ..cookie import Cookie
from .base import SessionData, SyncRecordStore

# (expiry in epoch ms, the store's own copy of the cookie, the data's JSON)
_Entry = tuple["int | None", "Cookie | dict[str, Any] | None", str]
_DROPS_PER_WRITE = 2
_HEAP_SLACK = 1024


class MemoryStore(SyncRecordStore):
    """An in-process store for development, tests and single-process apps.

    ``clock`` (seconds since the epoch, like ``time.time``) is for tests that move time.
    """

    blocking = False

    def __init__(
        self, *, max_sessions: int | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        if max_sessions is not None and (
            isinstance(max_sessions, bool) or not isinstance(max_sessions, int) or max_sessions < 1
        ):
            raise ValueError(f"max_sessions must be a positive int or None, got {max_sessions!r}")
        self.max_sessions = max_sessions
        self.clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._expiries: list[tuple[int, str]] = []
        """(expiry, sid) for every entry written with an expiry, plus stale pairs of entries
        since rewritten or destroyed (skipped when they come up). A touch only moves an entry's
        expiry later, so it pushes nothing: the pair is pushed again when it comes up early."""
        self._lock = threading.Lock()

    def _now(self) -> int:
        return int(self.clock() * 1000)

    def _live(self, sid: str, now: int) -> _Entry | None:
        """The entry of ``sid`` if it has not expired; an expired one is dropped. Lock held."""
        entry = self._entries.get(sid)
        if entry is not None and entry[0] is not None and entry[0] <= now:
            del self._entries[sid]
            return None
        return entry

    def get_record(self, sid: str) -> SessionRecord | None:
        entry = self._entries.get(sid)
        if entry is None:
            return None
        if entry[0] is not None and entry[0] <= self._now():
            with self._lock:
                self._live(sid, self._now())
            return None
        _, cookie, data_json = entry
        return SessionRecord(cookie, decode_own_json(data_json), data_json, token=data_json)

    def set_record(self, sid: str, record: SessionRecord) -> None:
        entry = (record.expires_ms, record.cookie_copy(), record.data_json)
        with self._lock:
            self._write(sid, entry, self._now())

    def merge_record(self, sid: str, record: SessionRecord, base: Base) -> None:
        """Under the lock: write the record if the stored data is still what the request
        loaded, else apply the request's changes onto what is stored now; a session destroyed
        (or expired) meanwhile stays gone."""
        with self._lock:
            now = self._now()
            stored = self._live(sid, now)
            if stored is None:
                return
            data_json = record.data_json
            if stored[2] != base.token:
                data_json = encode_json(merged_data(decode_own_json(stored[2]), base, record))
            self._write(sid, (record.expires_ms, record.cookie_copy(), data_json), now)

    def _write(self, sid: str, entry: _Entry, now: int) -> None:
        """Store ``entry`` as the most recently written; make room first. Lock held."""
        entries = self._entries
        if sid in entries:
            del entries[sid]
        self._drop_expired(now, _DROPS_PER_WRITE)
        if self.max_sessions is not None and len(entries) >= self.max_sessions:
            self._drop_expired(now, None)
            while len(entries) >= self.max_sessions:
                entries.popitem(last=False)
        entries[sid] = entry
        self._index(sid, entry[0])

    def touch_record(self, sid: str, record: SessionRecord) -> None:
        """Replace only the stored cookie of a live session; a gone session stays gone."""
        if not record.has_cookie:
            return
        cookie = record.cookie_copy()
        with self._lock:
            entry = self._live(sid, self._now())
            if entry is not None:
                self._entries[sid] = (record.expires_ms, cookie, entry[2])

    def destroy(self, sid: str) -> None:
        with self._lock:
            self._entries.pop(sid, None)

    def all(self) -> dict[str, SessionData]:
        """Every live session by sid (expired ones are dropped on the way, as in express)."""
        with self._lock:
            self._drop_expired(self._now(), None)
            entries = list(self._entries.items())
        return {
            sid: SessionRecord(cookie, decode_own_json(data_json), data_json).as_dict()
            for sid, (_, cookie, data_json) in entries
        }

    def length(self) -> int:
        with self._lock:
            self._drop_expired(self._now(), None)
            return len(self._entries)

    def ids(self) -> list[str]:
        with self._lock:
            self._drop_expired(self._now(), None)
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._expiries.clear()

    def _index(self, sid: str, expiry: int | None) -> None:
        """Note when ``sid`` expires; rebuild the heap once stale pairs outnumber the live
        entries (O(n) after at least n writes: amortized O(1)). Lock held."""
        if expiry is not None:
            heapq.heappush(self._expiries, (expiry, sid))
        if len(self._expiries) > 2 * len(self._entries) + _HEAP_SLACK:
            self._expiries = [
                (entry[0], key) for key, entry in self._entries.items() if entry[0] is not None
            ]
            heapq.heapify(self._expiries)

    def _drop_expired(self, now: int, limit: int | None) -> None:
        """Drop up to ``limit`` (or all) expired sessions, earliest expiry first. Lock held."""
        expiries = self._expiries
        entries = self._entries
        dropped = 0
        while expiries and expiries[0][0] <= now and (limit is None or dropped < limit):
            expiry, sid = heapq.heappop(expiries)
            entry = entries.get(sid)
            if entry is None or entry[0] is None:
                continue
            if entry[0] <= now:
                del entries[sid]
                dropped += 1
            elif entry[0] > expiry:
                heapq.heappush(expiries, (entry[0], sid))

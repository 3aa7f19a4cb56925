"""MemoryStore: express's MemoryStore semantics, without its unbounded growth.

Like express, every session's data is kept as JSON text, so what comes back is a copy (no
aliasing of nested values between requests) and expired sessions are invisible. Unlike express,
memory is bounded by the live sessions: a heap ordered by expiry lets every write drop up to two
expired sessions (so the expired never outnumber what the writes drain), and ``max_sessions``
drops an expired session first, else the least recently written one, without scanning the
store. Every read and write holds one lock, so threads are safe.

With ``user_key``, a dict from user to session ids is kept beside the entries and changed
wherever an entry comes or goes (written, destroyed, expired, evicted), so it never outgrows them.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable
from typing import Any

from .._native import mypyc_attr
from .._records import (
    Base,
    SessionRecord,
    decode_own_json,
    encode_json,
    flat_copy,
    merged_data,
    user_name,
    user_of,
)
from ..cookie import Cookie, CookieState
from ..options import positive
from .base import SessionData, SyncRecordStore, check_user_key, require_user_key

# (expiry in epoch ms, the cookie's parts (or its stored dict), the data's JSON, the user, and
# the data itself when its values are all immutable: a read then shares it instead of decoding)
_Entry = tuple[
    "int | None", "CookieState | dict[str, Any] | None", str, "str | None", "dict[str, Any] | None"
]
_DROPS_PER_WRITE = 2
DEFAULT_TTL = 86400
"""One day, connect-redis's and this library's other stores' lifetime for such sessions."""
_HEAP_SLACK = 1024


@mypyc_attr(allow_interpreted_subclasses=True)
class MemoryStore(SyncRecordStore):
    """An in-process store for development, tests and single-process apps.

    ``clock`` (seconds since the epoch, like ``time.time``) is for tests that move time;
    ``user_key`` indexes sessions by user (the middleware's ``user_key`` sets it too).
    """

    blocking = False

    def __init__(
        self,
        *,
        max_sessions: int | None = None,
        clock: Callable[[], float] = time.time,
        user_key: str | None = None,
        ttl: int = DEFAULT_TTL,
    ) -> None:
        positive(ttl, "ttl", integer=True, unit=" of seconds")
        self.ttl_ms = ttl * 1000
        """How long a session whose cookie has no expiry (a browser-session cookie) lives after
        its last write or touch, as in the other stores: else nothing would ever remove it."""
        if max_sessions is not None:
            positive(max_sessions, "max_sessions", integer=True, alternatives=" or None")
        self.max_sessions = max_sessions
        self.clock = clock
        self._entries: dict[str, _Entry] = {}
        """In write order (a rewrite pops and re-inserts), so the first is the least recently
        written: what ``max_sessions`` evicts."""
        self._expiries: list[tuple[int, str]] = []
        """(expiry, sid) for every entry written with an expiry, plus stale pairs of entries
        since rewritten or destroyed (skipped when they come up). A touch only moves an entry's
        expiry later, so it pushes nothing: the pair is pushed again when it comes up early."""
        self._lock = threading.Lock()
        self.user_key = check_user_key(user_key)
        self._users: dict[str, set[str]] = {}

    def _now(self) -> int:
        return int(self.clock() * 1000)

    def _live(self, sid: str, now: int) -> _Entry | None:
        """The entry of ``sid`` if it has not expired; an expired one is dropped. Lock held."""
        entry = self._entries.get(sid)
        if entry is not None and entry[0] is not None and entry[0] <= now:
            self._remove(sid)
            return None
        return entry

    def _remove(self, sid: str) -> _Entry | None:
        """Drop ``sid`` and its index entry. Lock held."""
        entry = self._entries.pop(sid, None)
        if entry is not None and entry[3] is not None:
            sids = self._users.get(entry[3])
            if sids is not None:
                sids.discard(sid)
                if not sids:
                    del self._users[entry[3]]
        return entry

    def get_record(self, sid: str, touch_ms: int | None = None) -> SessionRecord | None:
        """The session, or ``None``. With ``touch_ms`` (the lifetime a read-only request gives
        the session), a session whose cookie has that lifetime is touched as it is read, so the
        request needs no second store call (as Redis's GETEX). An entry rewritten meanwhile
        (compared by value: compiled, a tuple has no lasting identity) keeps the newer write."""
        entry = self._entries.get(sid)
        if entry is None:
            return None
        now = int(self.clock() * 1000)
        expiry, cookie, data_json, user, flat = entry
        if expiry is not None and expiry <= now:
            with self._lock:
                self._live(sid, now)
            return None
        data = decode_own_json(data_json) if flat is None else flat
        if not isinstance(cookie, tuple):
            return SessionRecord(cookie, data, data_json, token=data_json)
        touched = touch_ms is not None and cookie[1] == touch_ms
        if touched:
            assert touch_ms is not None
            expires = now + touch_ms
            fresh = (expires, touch_ms, cookie[2])
            with self._lock:
                if self._entries.get(sid) == entry:
                    self._entries[sid] = (expires, fresh, data_json, user, flat)
            cookie = fresh
        record = SessionRecord(
            Cookie(cookie), data, data_json, token=data_json, cookie_is_copy=True
        )
        if touched:
            record.touched_ms = touch_ms
        return record

    def _expiry(self, record: SessionRecord, now: int) -> int:
        expires = record.expires_ms
        return now + self.ttl_ms if expires is None else expires

    def set_record(self, sid: str, record: SessionRecord) -> None:
        self._put(sid, record, only_new=False)

    def add_record(self, sid: str, record: SessionRecord) -> None:
        """Write ``record`` only if no live session has this id (a cache's fill, which must
        never overwrite a newer write)."""
        self._put(sid, record, only_new=True)

    def _put(self, sid: str, record: SessionRecord, *, only_new: bool) -> None:
        user = None if self.user_key is None else user_of(record.data, self.user_key)
        with self._lock:
            now = self._now()
            if only_new and self._live(sid, now) is not None:
                return
            entry = (
                self._expiry(record, now),
                record.cookie_state(),
                record.data_json,
                user,
                flat_copy(record.data),
            )
            self._write(sid, entry, now)

    def merge_record(self, sid: str, record: SessionRecord, base: Base) -> None:
        """Under the lock: write the record if the stored data is still what the request
        loaded, else apply the request's changes onto what is stored now; a session destroyed
        (or expired) meanwhile stays gone."""
        with self._lock:
            now = self._now()
            stored = self._live(sid, now)
            if stored is None:
                return
            data, data_json = record.data, record.data_json
            if stored[2] != base.token:
                data = merged_data(decode_own_json(stored[2]), base, record)
                data_json = encode_json(data)
            user = None if self.user_key is None else user_of(data, self.user_key)
            expiry = self._expiry(record, now)
            entry = (expiry, record.cookie_state(), data_json, user, flat_copy(data))
            self._write(sid, entry, now)

    def _write(self, sid: str, entry: _Entry, now: int) -> None:
        """Store ``entry`` as the most recently written; make room first. Lock held."""
        entries = self._entries
        replaced = entries.pop(sid, None)
        if replaced is not None and replaced[3] is not None:
            entries[sid] = replaced
            self._remove(sid)
        expiries = self._expiries
        if expiries and expiries[0][0] <= now:
            self._drop_expired(now, _DROPS_PER_WRITE)
        if self.max_sessions is not None and len(entries) >= self.max_sessions:
            self._drop_expired(now, None)
            while len(entries) >= self.max_sessions:
                self._remove(next(iter(entries)))
        entries[sid] = entry
        expiry = entry[0]
        if expiry is not None and (replaced is None or replaced[0] is None or expiry < replaced[0]):
            self._index(sid, expiry)
        user = entry[3]
        if user is not None:
            self._users.setdefault(user, set()).add(sid)

    def touch_record(self, sid: str, record: SessionRecord) -> None:
        """Replace only the stored cookie of a live session; a gone session stays gone."""
        if not record.has_cookie:
            return
        cookie = record.cookie_state()
        with self._lock:
            now = self._now()
            entry = self._live(sid, now)
            if entry is not None:
                expiry = self._expiry(record, now)
                self._entries[sid] = (expiry, cookie, entry[2], entry[3], entry[4])

    def destroy(self, sid: str) -> None:
        with self._lock:
            self._remove(sid)

    def user_sessions(self, user: str | int) -> dict[str, SessionData]:
        """The user's live sessions by id (an expired one leaves the index on the way)."""
        require_user_key(self.user_key)
        name = user_name(user)
        with self._lock:
            now = self._now()
            live = [(sid, self._live(sid, now)) for sid in list(self._users.get(name, ()))]
        return {
            sid: SessionRecord(_cookie(entry[1]), decode_own_json(entry[2]), entry[2]).as_dict()
            for sid, entry in live
            if entry is not None
        }

    def destroy_user_sessions(self, user: str | int, keep: str | None = None) -> int:
        """Destroy the user's sessions except ``keep``; how many live ones went."""
        require_user_key(self.user_key)
        name = user_name(user)
        destroyed = 0
        with self._lock:
            now = self._now()
            for sid in list(self._users.get(name, ())):
                if sid != keep and self._live(sid, now) is not None:
                    self._remove(sid)
                    destroyed += 1
        return destroyed

    def all(self) -> dict[str, SessionData]:
        """Every live session by sid (expired ones are dropped on the way, as in express)."""
        with self._lock:
            self._drop_expired(self._now(), None)
            entries = list(self._entries.items())
        return {
            sid: SessionRecord(_cookie(cookie), decode_own_json(data_json), data_json).as_dict()
            for sid, (_, cookie, data_json, _, _) in entries
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
            self._users.clear()

    def _index(self, sid: str, expiry: int) -> None:
        """Note when ``sid`` expires; rebuild the heap once stale pairs outnumber the live
        entries (O(n) after at least n writes: amortized O(1)). A rewrite that moves the expiry
        later pushes nothing: its earlier pair is pushed again when it comes up. Lock held."""
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
                self._remove(sid)
                dropped += 1
            elif entry[0] > expiry:
                heapq.heappush(expiries, (entry[0], sid))


def _cookie(kept: CookieState | dict[str, Any] | None) -> Cookie | dict[str, Any] | None:
    return Cookie(kept) if isinstance(kept, tuple) else kept

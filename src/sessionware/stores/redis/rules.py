"""connect-redis's rules with no I/O: the key and TTL layout, the Lua scripts, the commands each
store operation sends (as generators), and what redis-py's errors mean.

Layout (connect-redis v4 to v10): key ``prefix + sid`` (prefix ``sess:``), value the session's JSON,
expiry ``SET ... EX ttl`` with ttl = seconds until ``cookie.expires`` rounded up (else the ``ttl``
option, one day); a ttl <= 0 deletes the key; ``touch`` moves only the expiry (``EXPIRE``).

A read-only request sends one command (``GETEX`` reads and renews the expiry); a save is the
compare-and-set script (or ``SET`` with ``merge=False``). Where a read cannot renew the expiry
itself (the client cache, a server without GETEX), the touch is an ``EXPIRE``, which
``touch_after`` skips for a session written or touched less than that ago.

With ``user_key``, each user has a sorted set ``user_prefix + user`` of their session ids, scored
by a time after which the entry is certainly stale (the session's expiry plus one lifetime of
headroom). A write with a user is one script: the session's SET and the set's update, atomic
(with Redis Cluster, where the two keys live on different nodes, two commands). The set's own
expiry follows its latest score, so an abandoned user's set disappears by itself; entries whose
session is gone (expired, destroyed by a Node app, re-keyed to another user) are dropped as the
set is read. A read or touch that extends a session past its indexed score refreshes the score,
at most once per lifetime per process.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from redis.exceptions import (
    ClusterDownError,
    InvalidResponse,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..._native import mypyc_attr
from ..._records import (
    Base,
    SessionRecord,
    Steps,
    decode_stored,
    encode_json,
    join_json,
    merged_data,
    user_of,
)
from ..._wire import escape_glob, now_ms
from ...errors import SessionConflict, SessionCorrupt
from ...options import is_valid_sid, positive
from ..base import SessionData, check_user_key, require_user_key
from ..encryption import EncryptionKeys, encryption, plain_text
from ..toolkit import (
    BROKEN,
    CORRUPT,
    UNAVAILABLE,
    TouchThrottle,
    raised_inside,
    ttl_seconds,
)

DEFAULT_PREFIX = "sess:"
DEFAULT_TTL = 86400
DEFAULT_SCAN_COUNT = 100
_OUTAGES = (
    RedisConnectionError,
    asyncio.TimeoutError,
    RedisTimeoutError,
    ConnectionError,
    TimeoutError,
    OSError,
    ReadOnlyError,
    TryAgainError,
    ClusterDownError,
    OutOfMemoryError,
    InvalidResponse,
)
_OUTAGE_REPLIES = ("READONLY", "LOADING", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "OOM")

logger = logging.getLogger("sessionware")

Command = tuple[Any, ...]
Ttl = int | Callable[[SessionData], int]


class Scan(NamedTuple):
    """Every key matching ``match``: SCAN on every primary."""

    match: str
    batch: int


class Cas(NamedTuple):
    """Set ``key`` to ``value`` (with ``ttl``, 0 for none) only if it holds ``expected``;
    the script returns 1 when it wrote, nothing when the key is gone, else what it holds."""

    key: str
    expected: str | bytes
    value: str | bytes
    ttl: int


_CAS_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if not current then return false end
if current ~= ARGV[1] then return current end
if ARGV[3] == '0' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
end
return 1
"""
_CAS_SHA = hashlib.sha1(_CAS_SCRIPT.encode(), usedforsecurity=False).hexdigest()

_INDEX_LUA = """
redis.call('ZREMRANGEBYSCORE', {index}, '-inf', '(' .. {now})
redis.call('ZADD', {index}, 'GT', {score}, {sid})
local left = tonumber({score}) - tonumber({now})
if redis.call('PTTL', {index}) < left then redis.call('PEXPIRE', {index}, left) end
"""
_INDEX_SCRIPT = _INDEX_LUA.format(index="KEYS[1]", sid="ARGV[1]", score="ARGV[2]", now="ARGV[3]")
_INDEX_SHA = hashlib.sha1(_INDEX_SCRIPT.encode(), usedforsecurity=False).hexdigest()
_INDEXED_WRITE_SCRIPT = (
    """
if ARGV[1] == 'cas' then
  local current = redis.call('GET', KEYS[1])
  if not current then return false end
  if current ~= ARGV[2] then return current end
end
if ARGV[4] == '0' then
  redis.call('SET', KEYS[1], ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[4])
end
"""
    + _INDEX_LUA.format(index="KEYS[2]", sid="ARGV[5]", score="ARGV[6]", now="ARGV[7]")
    + "return 1\n"
)
_INDEXED_WRITE_SHA = hashlib.sha1(_INDEXED_WRITE_SCRIPT.encode(), usedforsecurity=False).hexdigest()
_NO_EXPIRY_SCORE = 2**52
"""The index score of a session stored with no expiry (``disable_ttl``): never stale by time."""


class Index(NamedTuple):
    """Put ``sid`` in a user's set (``set_key``) with ``score`` (epoch ms after which the entry is
    stale), dropping entries stale at ``now``; the set's expiry follows its latest score."""

    set_key: str
    sid: str
    score: int
    now: int


class IndexedWrite(NamedTuple):
    """A session write and its user's index update, atomically: ``mode`` ``"set"`` writes, and
    ``"cas"`` writes only if ``key`` holds ``expected`` (the reply is then ``Cas``'s)."""

    key: str
    mode: str
    expected: str | bytes
    value: str | bytes
    ttl: int
    update: Index


_MERGE_ATTEMPTS = 1000
"""Each failed compare-and-set means another writer succeeded, so N concurrent writers need at
most N attempts; the cap only stops a runaway."""


class Each(NamedTuple):
    """One ``command`` per key (whole keys), pipelined (a cluster pipeline splits by slot)."""

    command: str
    keys: list[str]


RedisCommand = Command | Scan | Each | Cas | Index | IndexedWrite


def classify(error: BaseException) -> str | None:
    """What a redis-py error means for the session layer. Anything else raised inside redis-py
    (a handshake reply it cannot parse, a release whose internals moved) is an outage too: the
    client cannot serve, and a 500 on every request would hide that."""
    if isinstance(error, _OUTAGES):
        return UNAVAILABLE
    if isinstance(error, ResponseError):
        reply = str(error)
        if reply.startswith(_OUTAGE_REPLIES):
            return UNAVAILABLE
        if reply.startswith("WRONGTYPE"):
            return CORRUPT
        return None
    if raised_inside(error, "redis"):
        return BROKEN
    return None


class Serializer(Protocol):
    """How values are encoded; it must match the Node app's ``serializer`` (JSON by default)."""

    def dumps(self, data: SessionData) -> str | bytes: ...

    def loads(self, text: str) -> SessionData: ...


@mypyc_attr(allow_interpreted_subclasses=True)
class RedisRules:
    """connect-redis's rules, with no I/O: which command to send, how to read what comes back."""

    def __init__(
        self,
        *,
        prefix: str = DEFAULT_PREFIX,
        ttl: Ttl = DEFAULT_TTL,
        disable_ttl: bool = False,
        disable_touch: bool = False,
        touch_after: float = 0,
        serializer: Serializer | None = None,
        scan_count: int = DEFAULT_SCAN_COUNT,
        user_key: str | None = None,
        user_prefix: str | None = None,
        encryption_keys: EncryptionKeys | None = None,
    ) -> None:
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, got {prefix!r}")
        if user_prefix is None:
            user_prefix = (prefix[:-1] + "-user:") if prefix.endswith(":") else "user:" + prefix
        if not isinstance(user_prefix, str) or (prefix and user_prefix.startswith(prefix)):
            raise ValueError(
                f"user_prefix must be a str that does not start with prefix {prefix!r} (a Node "
                f"app scanning {prefix!r}* must never meet an index), got {user_prefix!r}"
            )
        self.user_key = check_user_key(user_key)
        self.user_prefix = user_prefix
        self.atomic_index = True
        """Whether a session and its user's set can change in one script (not on a Cluster)."""
        self.indexed = IndexedUntil()
        self.encryption = encryption(encryption_keys)
        if not callable(ttl):
            positive(ttl, "ttl", integer=True, unit=" of seconds", alternatives=" or a callable")
        self.scan_count = positive(scan_count, "scan_count", integer=True)
        self.prefix = prefix
        self.ttl = ttl
        self.disable_ttl = disable_ttl
        self.disable_touch = disable_touch
        self.throttle = TouchThrottle(touch_after)
        self.serializer = serializer
        self.match = escape_glob(prefix) + "*"
        self.getex = True
        """Whether the server knows GETEX; cleared at the first "unknown command"."""

    @property
    def location(self) -> str:
        """Where the sessions are, in words (the command line says what it read)."""
        return f"keys {self.prefix}*, user indexes {self.user_prefix}*"

    def key(self, sid: str) -> str:
        return self.prefix + sid

    def index_key(self, user: str) -> str:
        return self.user_prefix + user

    def ttl_for(self, record: SessionRecord) -> int:
        """Seconds until ``cookie.expires``, rounded up; else the ``ttl`` option."""
        if callable(self.ttl):
            return int(self.ttl(record.as_dict()))
        return ttl_seconds(record, self.ttl)

    # -- the store's operations, as generators of commands --------------------------------

    def get(
        self, sid: str, touch_ms: int | None = None
    ) -> Steps[RedisCommand, SessionRecord | None]:
        """GET, or ``GETEX key EX ttl`` when the lifetime a read-only request would give the
        session is known before reading (one command instead of GET + EXPIRE; Redis 6.2+, else
        GET from then on)."""
        ttl = self._read_ttl(touch_ms)
        if ttl is None:
            value = yield self.get_command(sid)
            return self.parse(sid, value)
        try:
            value = yield ("GETEX", self.key(sid), "EX", ttl)
        except ResponseError as exc:
            if "unknown command" not in str(exc).lower():
                raise
            self.getex = False
            value = yield self.get_command(sid)
            return self.parse(sid, value)
        record = self.parse(sid, value)
        if record is not None:
            record.touched_ms = touch_ms
            now = now_ms()
            self.throttle.remember(sid, now)
            if self.user_key is not None:
                yield from self._refresh_index(sid, record, now + ttl * 1000, now)
        return record

    def _index_update(self, sid: str, user: str, expires: int, now: int) -> Index:
        """The index entry for a session of ``user`` that lives until ``expires`` (epoch ms;
        0 for no expiry), with one lifetime of headroom, noted so reads need not repeat it."""
        score = _NO_EXPIRY_SCORE if not expires else 2 * expires - now
        self.indexed.note(sid, score)
        return Index(self.index_key(user), sid, score, now)

    def _refresh_index(
        self, sid: str, record: SessionRecord, expires: int, now: int
    ) -> Steps[RedisCommand, None]:
        """After a read or touch moved the session's expiry without a write: refresh its index
        entry if the new expiry passes the score this process last gave it."""
        if self.user_key is None or self.indexed.covers(sid, expires):
            return
        user = user_of(record.data, self.user_key)
        if user is not None:
            yield self._index_update(sid, user, expires, now)

    def _read_ttl(self, touch_ms: int | None) -> int | None:
        if touch_ms is None or not self.getex or self.disable_touch or self.disable_ttl:
            return None
        if callable(self.ttl) or touch_ms <= 0:
            return None
        return math.ceil(touch_ms / 1000)

    def set(self, sid: str, record: SessionRecord) -> Steps[RedisCommand, None]:
        command = self.set_command(sid, record)
        user = user_of(record.data, self.user_key)
        if user is None or command[0] == "DEL":
            yield command
            return
        yield from self._indexed_write(sid, user, "set", b"", command)

    def add(self, sid: str, record: SessionRecord) -> Steps[RedisCommand, None]:
        """Write ``record`` only if the key holds nothing (SET NX): a cache's fill, which must
        never overwrite a newer write. No per-user index: a cache keeps none."""
        command = self.set_command(sid, record)
        if command[0] != "DEL":
            yield (*command, "NX")

    def _indexed_write(
        self, sid: str, user: str, mode: str, expected: str | bytes, command: Command
    ) -> Steps[RedisCommand, Any]:
        """A SET (``command``) and the user's index update: one script, or two commands on a
        Cluster (the CAS then runs alone, and the index follows only when it wrote)."""
        ttl = 0 if self.disable_ttl else int(command[4])
        now = now_ms()
        update = self._index_update(sid, user, now + ttl * 1000 if ttl else 0, now)
        if self.atomic_index:
            return (yield IndexedWrite(command[1], mode, expected, command[2], ttl, update))
        if mode == "cas":
            result = yield Cas(command[1], expected, command[2], ttl)
        else:
            result = yield command
        if mode == "set" or result == 1:
            yield update
        return result

    def touch(self, sid: str, record: SessionRecord) -> Steps[RedisCommand, None]:
        command = self.touch_command(sid, record)
        if command is not None:
            yield command
            now = now_ms()
            yield from self._refresh_index(sid, record, now + int(command[2]) * 1000, now)

    def destroy(self, sid: str) -> Steps[RedisCommand, None]:
        if self.user_key is None:
            yield self.destroy_command(sid)
            return
        self.throttle.forget(sid)
        self.indexed.forget(sid)
        value = yield ("GETDEL", self.key(sid))
        try:
            record = self.parse(sid, value)
        except SessionCorrupt:
            return
        user = None if record is None else user_of(record.data, self.user_key)
        if user is not None:
            yield ("ZREM", self.index_key(user), sid)

    def user_sessions(self, user: str) -> Steps[RedisCommand, dict[str, SessionData]]:
        """The user's live sessions: the set's members whose session still exists and still
        names this user; the others leave the set on the way."""
        require_user_key(self.user_key)
        index = self.index_key(user)
        yield ("ZREMRANGEBYSCORE", index, "-inf", f"({now_ms()}")
        members = yield ("ZRANGE", index, 0, -1)
        sids = [sid for sid in (_text(member) for member in members) if is_valid_sid(sid)]
        values = (yield Each("GET", self.keys(sids))) if sids else []
        found: dict[str, SessionData] = {}
        stale = [_text(member) for member in members if not is_valid_sid(_text(member))]
        for sid, value in zip(sids, values, strict=True):
            try:
                record = self.parse(sid, value)
            except SessionCorrupt:
                record = None
            if record is None or user_of(record.data, self.user_key) != user:
                stale.append(sid)
            else:
                found[sid] = record.as_dict()
        if stale:
            yield ("ZREM", index, *stale)
        return found

    def destroy_user_sessions(self, user: str, keep: str | None) -> Steps[RedisCommand, int]:
        sessions = yield from self.user_sessions(user)
        doomed = [sid for sid in sessions if sid != keep]
        if not doomed:
            return 0
        deleted = yield Each("DEL", self.keys(doomed))
        yield ("ZREM", self.index_key(user), *doomed)
        for sid in doomed:
            self.throttle.forget(sid)
            self.indexed.forget(sid)
        return sum(int(count) for count in deleted)

    def merge(self, sid: str, record: SessionRecord, base: Base) -> Steps[RedisCommand, None]:
        """Compare-and-set against the value the request loaded: one script call when nobody
        wrote since; else the request's changes go onto what the script returned, and again.
        A key gone meanwhile (destroyed, expired) stays gone."""
        command = self.set_command(sid, record)
        if command[0] == "DEL":
            yield command
            return
        ttl = 0 if self.disable_ttl else int(command[4])
        key = self.key(sid)
        data = record.data
        expected = base.token if base.token is not None else b""
        for _ in range(_MERGE_ATTEMPTS):
            user = user_of(data, self.user_key)
            if user is None:
                current = yield Cas(key, expected, command[2], ttl)
            else:
                current = yield from self._indexed_write(sid, user, "cas", expected, command)
            if current is None or current == 1:
                return
            try:
                stored = self.parse(sid, current)
            except SessionCorrupt:
                stored = None
            if stored is not None:
                data = merged_data(stored.data, base, record)
                command = (*command[:2], self.value_of(sid, record, data), *command[3:])
            expected = current
        raise SessionConflict(
            f"session {sid!r}: {_MERGE_ATTEMPTS} concurrent writes in a row", sid=sid
        )

    def ids(self) -> Steps[RedisCommand, list[str]]:
        """Every sid under the prefix, without duplicates."""
        keys = yield Scan(self.match, self.scan_count)
        found: dict[str, None] = {}
        for key in keys:
            sid = self.sid_of(key)
            if sid is not None:
                found[sid] = None
        return list(found)

    def length(self) -> Steps[RedisCommand, int]:
        sids = yield from self.ids()
        return len(sids)

    def all(self) -> Steps[RedisCommand, dict[str, SessionData]]:
        sids = yield from self.ids()
        values = (yield Each("GET", self.keys(sids))) if sids else []
        result: dict[str, SessionData] = {}
        for sid, value in zip(sids, values, strict=True):
            try:
                record = self.parse(sid, value)
            except SessionCorrupt as exc:
                logger.error("%s; left out of all()", exc.log_text())
                continue
            if record is not None:
                result[sid] = record.as_dict()
        return result

    def clear(self) -> Steps[RedisCommand, None]:
        """Every session, and every user's index: those live beside the sessions, under
        ``user_prefix`` (a Node app scanning ``prefix*`` never meets one)."""
        sids = yield from self.ids()
        if sids:
            yield Each("DEL", self.keys(sids))
        indexes = yield Scan(escape_glob(self.user_prefix) + "*", self.scan_count)
        if indexes:
            yield Each("DEL", [_text(key) for key in indexes])

    def keys(self, sids: list[str]) -> list[str]:
        return [self.key(sid) for sid in sids]

    # -- the commands ------------------------------------------------------------------------

    def get_command(self, sid: str) -> Command:
        return ("GET", self.key(sid))

    def set_command(self, sid: str, record: SessionRecord) -> Command:
        ttl = self.ttl_for(record)
        key = self.key(sid)
        if ttl <= 0:
            return ("DEL", key)
        self.throttle.remember(sid, now_ms())
        value = self.value_of(sid, record)
        if self.disable_ttl:
            return ("SET", key, value)
        return ("SET", key, value, "EX", ttl)

    def value_of(
        self, sid: str, record: SessionRecord, data: SessionData | None = None
    ) -> str | bytes:
        """What is stored for ``record`` (with ``data`` instead of its own, after a merge),
        sealed when the store encrypts."""
        if self.serializer is not None:
            value = self.serializer.dumps(
                {"cookie": record.cookie, **(record.data if data is None else data)}
            )
        elif data is None:
            value = record.json
        else:
            value = join_json(record.cookie_json, encode_json(data))
        return value if self.encryption is None else self.encryption.seal(sid, value)

    def touch_command(self, sid: str, record: SessionRecord) -> Command | None:
        """``EXPIRE`` with the new lifetime, or nothing (touch disabled, or touched recently)."""
        if self.disable_touch or self.disable_ttl:
            return None
        now = now_ms()
        if self.throttle.recently(sid, now):
            return None
        return ("EXPIRE", self.key(sid), self.ttl_for(record))

    def destroy_command(self, sid: str) -> Command:
        self.throttle.forget(sid)
        return ("DEL", self.key(sid))

    def parse(self, sid: str, value: bytes | str | None) -> SessionRecord | None:
        """The record stored under ``sid``; notes when it was last written (for touch_after)."""
        if value is None:
            return None
        text = plain_text(self.encryption, sid, value)
        loads = None if self.serializer is None else self.serializer.loads
        stored = decode_stored(sid, text, loads)
        if stored is None:
            return None
        cookie = stored.pop("cookie", None)
        record = SessionRecord(
            cookie if isinstance(cookie, dict) else None,
            stored,
            encode_json(stored),
            token=value,
        )
        self.throttle.loaded(sid, record)
        return record

    def sid_in(self, command: RedisCommand) -> str | None:
        """The session a command is about, for the outage guard's messages."""
        if isinstance(command, (Scan, Each)) or len(command) < 2:
            return None
        if isinstance(command, Index):
            return command.sid
        if isinstance(command, (Cas, IndexedWrite)):
            return self.sid_of(command.key)
        return self.sid_of(command[1])

    def sid_of(self, key: bytes | str) -> str | None:
        text = key.decode() if isinstance(key, bytes) else key
        sid = text[len(self.prefix) :]
        return sid if text.startswith(self.prefix) and is_valid_sid(sid) else None


class IndexedUntil:
    """The index score this process last gave each session, so a read that extends a session
    refreshes its index entry only when the extension passes it. Memory is bounded."""

    LIMIT = 10_000

    def __init__(self) -> None:
        self._scores: dict[str, int] = {}

    def note(self, sid: str, score: int) -> None:
        if len(self._scores) >= self.LIMIT:
            self._scores.clear()
        self._scores[sid] = score

    def covers(self, sid: str, expires: int) -> bool:
        score = self._scores.get(sid)
        return score is not None and score >= expires

    def forget(self, sid: str) -> None:
        self._scores.pop(sid, None)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def script_call(command: RedisCommand) -> tuple[Any, ...] | None:
    """For a scripted command: the ``eval`` arguments, then the ``evalsha`` ones."""
    if isinstance(command, Cas):
        arguments: tuple[Any, ...] = (1, *command)
        script, sha = _CAS_SCRIPT, _CAS_SHA
    elif isinstance(command, Index):
        arguments = (1, command.set_key, command.sid, command.score, command.now)
        script, sha = _INDEX_SCRIPT, _INDEX_SHA
    elif isinstance(command, IndexedWrite):
        update = command.update
        arguments = (
            2,
            command.key,
            update.set_key,
            command.mode,
            command.expected,
            command.value,
            command.ttl,
            update.sid,
            update.score,
            update.now,
        )
        script, sha = _INDEXED_WRITE_SCRIPT, _INDEXED_WRITE_SHA
    else:
        return None
    return (script, *arguments), sha, *arguments

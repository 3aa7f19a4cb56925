"""Redis store, compatible with connect-redis: a Node app and a Python app share sessions.

Layout (connect-redis v4 to v10): key ``prefix + sid`` (prefix ``sess:``), value the session's JSON,
expiry ``SET ... EX ttl`` with ttl = seconds until ``cookie.expires`` rounded up (else the ``ttl``
option, one day); a ttl <= 0 deletes the key; ``touch`` moves only the expiry (``EXPIRE``).

A read-only request sends one command (``GETEX`` reads and renews the expiry); a save is the
compare-and-set script (or ``SET`` with ``merge=False``). Where a read cannot renew the expiry
itself (the client cache, a server without GETEX), the touch is an ``EXPIRE``, which
``touch_after`` skips for a session written or touched less than that ago.
The rules are written once (``RedisSessions``, generators of commands); ``RedisStore`` (asyncio)
and ``SyncRedisStore`` only execute commands. Outages go through the store toolkit.

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
import select
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, Protocol

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import (
    ClusterDownError,
    InvalidResponse,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

if sys.version_info >= (3, 11):
    from asyncio import timeout as _deadline
else:  # redis-py depends on async-timeout on these versions, for the same use
    from async_timeout import timeout as _deadline  # type: ignore[import-not-found,unused-ignore]

from .._native import mypyc_attr
from .._records import (
    Base,
    SessionRecord,
    Steps,
    decode_stored,
    encode_json,
    join_json,
    merged_data,
    user_of,
)
from .._wire import now_ms
from ..errors import SessionConflict, SessionCorrupt
from ..options import is_valid_sid
from ._hiredis import HIREDIS, hiredis_reader, pack_batch, pack_with_hiredis
from .base import SessionData, check_user_key, require_user_key
from .encryption import EncryptionKeys, encryption, plain_text
from .toolkit import (
    CORRUPT,
    UNAVAILABLE,
    CommandStore,
    SyncCommandStore,
    TouchThrottle,
    check_client,
    positive_int,
    ttl_seconds,
)

DEFAULT_PREFIX = "sess:"
DEFAULT_TTL = 86400
DEFAULT_SCAN_COUNT = 100
DEFAULT_TIMEOUT = 2.0
DEFAULT_RETRY_INTERVAL = 0.5
DEFAULT_HEALTH_CHECK_INTERVAL = 30
_MORE = object()
"""What hiredis's reader returns while a reply is incomplete."""
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
    """One ``command`` per key, pipelined (a cluster pipeline splits by slot)."""

    command: str
    keys: list[str]


RedisCommand = Command | Scan | Each | Cas | Index | IndexedWrite


def classify(error: BaseException) -> str | None:
    """What a redis-py error means for the session layer."""
    if isinstance(error, _OUTAGES):
        return UNAVAILABLE
    if isinstance(error, ResponseError):
        reply = str(error)
        if reply.startswith(_OUTAGE_REPLIES):
            return UNAVAILABLE
        if reply.startswith("WRONGTYPE"):
            return CORRUPT
    return None


class Serializer(Protocol):
    """How values are encoded; it must match the Node app's ``serializer`` (JSON by default)."""

    def dumps(self, data: SessionData) -> str | bytes: ...

    def loads(self, text: str) -> SessionData: ...


@mypyc_attr(allow_interpreted_subclasses=True)
class RedisSessions:
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
        if not callable(ttl) and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0):
            raise ValueError(f"ttl must be a positive number of seconds or a callable, got {ttl!r}")
        self.scan_count = positive_int(scan_count, "scan_count")
        self.prefix = prefix
        self.ttl = ttl
        self.disable_ttl = disable_ttl
        self.disable_touch = disable_touch
        self.throttle = TouchThrottle(touch_after)
        self.serializer = serializer
        self.match = _escape_glob(prefix) + "*"
        self.getex = True
        """Whether the server knows GETEX; cleared at the first "unknown command"."""

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
        values = (yield Each("GET", sids)) if sids else []
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
        deleted = yield Each("DEL", doomed)
        yield ("ZREM", self.index_key(user), *doomed)
        for sid in doomed:
            self.throttle.forget(sid)
            self.indexed.forget(sid)
        return sum(int(count) for count in deleted)

    def _require_user_key(self) -> None:
        if self.user_key is None:
            raise TypeError(
                "this store keeps no per-user index: give it (or the middleware) user_key"
            )

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
        raise SessionConflict(f"session {sid!r}: {_MERGE_ATTEMPTS} concurrent writes in a row")

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
        values = (yield Each("GET", sids)) if sids else []
        result: dict[str, SessionData] = {}
        for sid, value in zip(sids, values, strict=True):
            try:
                record = self.parse(sid, value)
            except SessionCorrupt as exc:
                logger.error("%s; left out of all()", exc)
                continue
            if record is not None:
                result[sid] = record.as_dict()
        return result

    def clear(self) -> Steps[RedisCommand, None]:
        sids = yield from self.ids()
        if sids:
            yield Each("DEL", sids)

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
        if self.serializer is None:
            stored = decode_stored(sid, text)
        else:
            try:
                stored = self.serializer.loads(text.decode() if isinstance(text, bytes) else text)
            except Exception as exc:
                raise SessionCorrupt(f"session {sid!r} does not deserialize: {exc}") from exc
        if stored is None:
            return None
        if not isinstance(stored, dict):
            raise SessionCorrupt(f"session {sid!r} holds {type(stored).__name__}, not an object")
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


def _ttl_of(command: Command) -> int | None:
    """The expiry a SET ... EX ttl or an EXPIRE key ttl gives its key."""
    if command[0] == "EXPIRE":
        return int(command[2])
    if command[0] == "SET" and len(command) == 5:
        return int(command[4])
    return None


def _script_call(command: RedisCommand) -> tuple[Any, ...] | None:
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


def _escape_glob(text: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


_CACHED_COMMANDS = frozenset(("GET", "SET", "EXPIRE", "DEL"))
"""The session-key commands the client cache answers or tracks; the index's go to the pool."""


class _Busy:
    """The tracking connection is in use by another request."""


BUSY = _Busy()


class _TrackedCache:
    """Server-assisted client-side caching (Redis 6+ RESP3 key tracking) for session reads.

    Every session command goes through one dedicated connection with ``CLIENT TRACKING ON``, so
    Redis tells it, on that same connection and in order, whenever a key it read changes (a
    write, a delete, an expiry, from any client). Pushes already received are applied before
    each lookup, and each entry is also bounded by the key's own TTL. Writes and touches re-read
    the key in the same round trip, since Redis stops tracking a key once it has invalidated it.
    A lost connection drops the whole cache. What remains is the window every cache has: a change
    whose invalidation is still on the wire.
    """

    def __init__(self, client: Any, max_entries: int) -> None:
        kwargs = dict(client.connection_pool.connection_kwargs)
        kwargs["protocol"] = 3
        self.connection_class = client.connection_pool.connection_class
        self.connection_kwargs = kwargs
        self.max_entries = max_entries
        self.entries: dict[bytes, tuple[bytes, float]] = {}
        self.connection: Any = None
        self.lock = asyncio.Lock()

    async def _invalidated(self, push: list[Any]) -> None:
        keys = push[1] if len(push) > 1 else None
        if keys is None:
            self.entries.clear()
            return
        for key in keys:
            self.entries.pop(key if isinstance(key, bytes) else str(key).encode(), None)

    async def _connected(self) -> Any:
        if self.connection is None:
            connection = self.connection_class(**self.connection_kwargs)
            await connection.connect()
            connection._parser.invalidation_push_handler_func = self._invalidated
            await connection.send_command("CLIENT", "TRACKING", "ON")
            await connection.read_response()
            self.entries.clear()
            self.connection = connection
        return self.connection

    async def _drain(self, connection: Any) -> None:
        """Apply every invalidation Redis has sent so far, including bytes still in the kernel's
        socket buffer (the event loop may not have read them yet)."""
        descriptor = connection._writer.get_extra_info("socket").fileno()
        for _ in range(100):
            if not select.select([descriptor], [], [], 0)[0]:
                break
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            while await connection.can_read():
                await connection.read_response(push_request=True)
        while await connection.can_read():
            await connection.read_response(push_request=True)

    async def run(self, commands: list[Command]) -> list[Any]:
        """Send ``commands`` in one round trip on the tracking connection; a failure drops the
        connection and the cache."""
        try:
            connection = await self._connected()
            await connection.send_packed_command(connection.pack_commands(commands))
            return [await connection.read_response() for _ in commands]
        except BaseException:
            await self._reset()
            raise

    async def _reset(self) -> None:
        self.entries.clear()
        if self.connection is not None:
            connection, self.connection = self.connection, None
            await connection.disconnect()

    async def get(self, key: str) -> bytes | _Busy | None:
        """The value of ``key``; ``BUSY`` when another request holds the tracking connection
        (the caller then reads through the pool: nobody waits behind a stalled request)."""
        if self.lock.locked():
            return BUSY
        async with self.lock:
            encoded = key.encode()
            if self.connection is not None:
                try:
                    await self._drain(self.connection)
                except BaseException:
                    await self._reset()
                    raise
                cached = self.entries.get(encoded)
                if cached is not None and cached[1] > time.monotonic():
                    return cached[0]
            value, pttl = await self.run([("GET", key), ("PTTL", key)])
            self._keep(encoded, value, pttl)
            return value  # type: ignore[no-any-return]

    async def write(self, command: Command, ttl: int | None) -> bool:
        """Run a write; keep tracking the key by reading it back in the same round trip (a
        write by someone else in between is what that read returns, and is then tracked).
        ``False`` when the tracking connection is busy: the caller writes through the pool."""
        key = command[1]
        if self.lock.locked():
            self.entries.pop(key.encode(), None)
            return False
        async with self.lock:
            if command[0] == "DEL":
                await self.run([command])
                self.entries.pop(key.encode(), None)
                return True
            _, value = await self.run([command, ("GET", key)])
            self._keep(key.encode(), value, -1 if ttl is None else ttl * 1000)
            return True

    def _keep(self, key: bytes, value: bytes | None, pttl: int) -> None:
        if value is None or pttl == -2:
            self.entries.pop(key, None)
            return
        if len(self.entries) >= self.max_entries:
            self.entries.clear()
        lifetime = 3600.0 if pttl < 0 else pttl / 1000
        self.entries[key] = (value, time.monotonic() + lifetime)

    async def close(self) -> None:
        await self._reset()


class _Pipeliner:
    """Automatic pipelining: while commands are on their way, the commands that concurrent
    requests issue in the meantime go to Redis together, as one pipeline (one write, one read of
    every reply) at the end of the event loop's turn, instead of one round trip each, as
    node-redis does. With nothing on its way, a command goes at once, as it is: a quiet server
    pays nothing for this. Each command still gets its own reply or error; a connection error
    fails the commands sent with it, after the connection's retry, so every outage guarantee
    holds per request.

    Batches go straight to connections the pipeliner keeps from the client's pool (at most
    ``IDLE`` of them between batches): redis-py's client and ``Pipeline`` objects cost more per
    command than the round trip itself (the pool's lock and its bookkeeping, a task per write
    for the socket timeout, a timer per reply). The connection's ``socket_timeout`` still bounds
    every batch, once for the whole batch."""

    IDLE = 4

    def __init__(self, client: Any) -> None:
        self.client = client
        self.pool = client.connection_pool
        self.callbacks: dict[str, Any] = client.response_callbacks
        self.queue: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self.busy = 0
        """Batches on their way."""
        self.idle: list[tuple[Any, float | None]] = []
        """Connections kept between batches, each with the socket timeout it came with."""
        self.flushing: set[asyncio.Task[None]] = set()

    async def send(self, *command: Any) -> Any:
        if self.busy:
            return await self._queued(command)
        (reply,) = await self._batch([command])
        if isinstance(reply, BaseException):
            raise reply
        return reply

    def _queued(self, command: tuple[Any, ...]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self.queue:
            task = loop.create_task(self._flush())
            self.flushing.add(task)
            task.add_done_callback(self.flushing.discard)
        self.queue.append((command, future))
        return future

    async def _flush(self) -> None:
        batch, self.queue = self.queue, []
        try:
            replies = await self._batch([command for command, _ in batch])
        except BaseException as exc:
            for _, future in batch:
                _settle(future, exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), reply in zip(batch, replies, strict=True):
            _settle(future, reply)

    async def _batch(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Every command's reply (or its error reply, as an exception): one write, one read."""
        self.busy += 1
        try:
            connection, timeout = self.idle.pop() if self.idle else await self._acquire()
            try:
                async with _deadline(timeout):
                    return await connection.retry.call_with_retry(  # type: ignore[no-any-return]
                        lambda: self._round_trip(connection, commands),
                        lambda _error: connection.disconnect(),
                    )
            finally:
                await self._keep(connection, timeout)
        finally:
            self.busy -= 1

    async def _round_trip(self, connection: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
        await connection.send_packed_command(connection.pack_commands(commands))
        replies: list[Any] = []
        for command in commands:
            try:
                reply = await connection.read_response()
            except ResponseError as error:
                replies.append(error)
                continue
            callback = self.callbacks.get(command[0])
            replies.append(reply if callback is None else callback(reply))
        return replies

    async def _acquire(self) -> tuple[Any, float | None]:
        connection = await self.pool.get_connection()
        timeout = connection.socket_timeout
        connection.socket_timeout = None
        return connection, timeout

    async def _keep(self, connection: Any, timeout: float | None) -> None:
        if len(self.idle) < self.IDLE:
            self.idle.append((connection, timeout))
        else:
            await self._release(connection, timeout)

    async def _release(self, connection: Any, timeout: float | None) -> None:
        connection.socket_timeout = timeout
        await self.pool.release(connection)

    async def close(self) -> None:
        """Give the kept connections back to the client's pool."""
        idle, self.idle = self.idle, []
        for connection, timeout in idle:
            await self._release(connection, timeout)


class _Channel(asyncio.Protocol):
    """One connection redis-py opened (its handshake: password, database, TLS), then taken over
    by the store: commands are written as a stream, and hiredis reads the replies as they
    arrive, each going to the next command waiting. redis-py's own reading costs about 10 us
    more per command (its reader and parser layers, a task per batch), which was a quarter of
    a Redis write request's time over HTTP."""

    def __init__(self, connection: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.connection = connection
        self.loop = loop
        self.timeout: float | None = connection.socket_timeout
        self.health_check_interval: float = connection.health_check_interval
        self.reader = hiredis_reader(
            protocolError=InvalidResponse,
            replyError=connection._parser.parse_error,
            notEnoughData=_MORE,
        )
        self.pending: list[tuple[Any, ...]] = []
        """Commands issued in this turn of the event loop, sent together at its end."""
        self.waiting: deque[tuple[asyncio.Future[Any], Callable[[Any], Any] | None]] = deque()
        self.batches: deque[list[float]] = deque()
        """Each batch on its way: [its deadline, its replies still to come]."""
        self.watchdog: asyncio.TimerHandle | None = None
        self.failure: BaseException | None = None
        self.last_used = loop.time()
        self.transport = connection._writer.transport
        self.transport.set_protocol(self)

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        waiting = self.waiting
        batches = self.batches
        while True:
            try:
                reply = reader.gets()
            except Exception as exc:
                self.fail(RedisConnectionError(f"unreadable reply from Redis: {exc}"))
                return
            if reply is _MORE:
                return
            if not batches:  # commands not yet sent cannot have replies
                self.fail(RedisConnectionError("a reply from Redis no command waited for"))
                return
            future, callback = waiting.popleft()
            head = batches[0]
            head[1] -= 1
            if head[1] == 0:
                batches.popleft()
            if future.done():
                continue
            if isinstance(reply, BaseException):
                future.set_exception(reply)
            elif callback is None:
                future.set_result(reply)
            else:
                try:
                    future.set_result(callback(reply))
                except Exception as exc:
                    future.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        why = exc or "closed by the server"
        self.fail(RedisConnectionError(f"connection to Redis lost: {why}"))

    def flush(self) -> None:
        """Send the commands of this turn of the event loop; their replies are due within the
        connection's ``socket_timeout``."""
        commands, self.pending = self.pending, []
        if self.failure is not None or not commands:
            return
        self.transport.write(pack_batch(commands))
        now = self.loop.time()
        self.last_used = now
        if self.timeout is None:
            self.batches.append([math.inf, len(commands)])
            return
        self.batches.append([now + self.timeout, len(commands)])
        if self.watchdog is None:
            self.watchdog = self.loop.call_at(now + self.timeout, self._check)

    def _check(self) -> None:
        self.watchdog = None
        if not self.batches:
            return
        deadline = self.batches[0][0]
        if self.loop.time() >= deadline:
            self.fail(RedisTimeoutError("Redis did not answer within the socket timeout"))
        else:
            self.watchdog = self.loop.call_at(deadline, self._check)

    def fail(self, error: BaseException) -> None:
        """Every command waiting gets ``error``; the connection is given up."""
        waiting, self.waiting = self.waiting, deque()
        self.pending.clear()
        self.batches.clear()
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        if self.failure is None:
            self.failure = error
            self.transport.abort()
        for future, _ in waiting:
            _settle(future, error)

    def idle_too_long(self) -> bool:
        """Nothing on its way for longer than the health check interval: the connection may
        have been cut without a word (a load balancer's idle timeout)."""
        interval = self.health_check_interval
        return bool(interval) and not self.waiting and self.loop.time() - self.last_used > interval


class _Multiplexer:
    """Automatic pipelining over one connection for the clients the store makes itself, as
    node-redis does: the commands issued during one turn of the event loop go in one write,
    and replies are matched to commands in order. A connection error fails the commands on
    their way and each is retried once on a fresh connection (the store's own client's retry);
    a batch unanswered within the socket timeout fails as a timeout, and the connection is
    replaced. A client given to the store keeps its own connections' behaviour
    (``_Pipeliner``)."""

    def __init__(self, client: Any) -> None:
        self.pool = client.connection_pool
        self.callbacks: dict[str, Any] = client.response_callbacks
        self.channel: _Channel | None = None
        self.opening: asyncio.Future[_Channel] | None = None

    async def send(self, *command: Any) -> Any:
        try:
            return await self._send(command)
        except RedisConnectionError:
            return await self._send(command)

    async def _send(self, command: tuple[Any, ...]) -> Any:
        channel = self.channel
        loop = asyncio.get_running_loop()
        if (
            channel is None
            or channel.failure is not None
            or channel.loop is not loop
            or (not channel.pending and channel.idle_too_long())
        ):
            channel = await self._open(loop)
        future = loop.create_future()
        channel.waiting.append((future, self.callbacks.get(command[0])))
        if not channel.pending:
            loop.call_soon(channel.flush)
        channel.pending.append(command)
        return await future

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Channel:
        """A new channel in place of the current one (gone, idle too long, or of another
        loop); concurrent callers share one."""
        opening = self.opening
        if opening is not None and opening.get_loop() is loop:
            return await asyncio.shield(opening)
        opening = self.opening = loop.create_future()
        try:
            old, self.channel = self.channel, None
            if old is not None and old.loop is loop:
                await self._give_back(old, "replaced")
            channel = self.channel = _Channel(await self.pool.get_connection(), loop)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):  # the opener's cancellation is its own
                opening.set_exception(RedisConnectionError("opening a connection was cancelled"))
            else:
                opening.set_exception(exc)
            opening.exception()  # retrieved here: any caller waiting gets it itself
            raise
        finally:
            if self.opening is opening:
                self.opening = None
        opening.set_result(channel)
        return channel

    async def _give_back(self, channel: _Channel, why: str) -> None:
        channel.fail(RedisConnectionError(f"the connection to Redis was {why}"))
        await channel.connection.disconnect(nowait=True)
        await self.pool.release(channel.connection)

    async def close(self) -> None:
        """Close the connection and give it back to the client's pool."""
        channel, self.channel = self.channel, None
        if channel is not None:
            await self._give_back(channel, "closed with the store")


def _settle(future: asyncio.Future[Any], outcome: Any) -> None:
    """Give a waiting command its reply, or its error (a request that gave up is skipped)."""
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _client_options(timeout: float, retry: Any) -> dict[str, Any]:
    """One immediate retry on a fresh connection for connection errors (a connection the
    server or a load balancer cut while idle is not an outage), none for timeouts (a stalled
    server is one), idle connections checked before use, and every wait bounded by
    ``timeout``."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": retry,
        "health_check_interval": DEFAULT_HEALTH_CHECK_INTERVAL,
    }


def _open(
    store: CommandStore[RedisCommand] | SyncCommandStore[RedisCommand],
    client: Any,
    kinds: tuple[Any, Any, Any],
    *,
    url: str | None = None,
    cluster: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    retry_interval: float = DEFAULT_RETRY_INTERVAL,
    **options: Any,
) -> tuple[Any, RedisSessions]:
    """What both stores' constructors share: the client (``kinds``: its class, the cluster
    class and the retry class of the store's side) and the store's rules."""
    client_class, cluster_class, retry_class = kinds
    check_client(client, type(store).__name__)
    sessions = RedisSessions(**options)
    owns_client = client is None
    if client is None:
        factory = cluster_class if cluster else client_class
        retry = retry_class(NoBackoff(), 1, supported_errors=(RedisConnectionError,))
        client = factory.from_url(
            url or "redis://127.0.0.1:6379", **_client_options(timeout, retry)
        )
    elif url is not None:
        raise TypeError("pass a client or url=, not both")
    sessions.atomic_index = not isinstance(client, cluster_class)
    store._setup(
        sessions,
        name="redis",
        classify=classify,
        retry_interval=retry_interval,
        owns_client=owns_client,
        asynchronous=isinstance(store, CommandStore),
    )
    return client, sessions


def _each_pipeline(client: Any, sessions: RedisSessions, each: Each) -> Any:
    pipe = client.pipeline(transaction=False) if sessions.atomic_index else client.pipeline()
    for sid in each.keys:
        pipe.execute_command(each.command, sessions.key(sid))
    return pipe


@mypyc_attr(allow_interpreted_subclasses=True)
class RedisStore(CommandStore[RedisCommand]):
    """The Redis store for ASGI apps (redis.asyncio), standalone or Cluster.

    ``RedisStore(url="redis://...")``, ``RedisStore(url=..., cluster=True)`` or
    ``RedisStore(client)`` with any redis.asyncio client (Sentinel: ``sentinel.master_for(...)``).
    """

    def __init__(
        self,
        client: Any = None,
        *,
        client_cache: bool = False,
        client_cache_size: int = 10_000,
        auto_pipeline: bool = True,
        **options: Any,
    ) -> None:
        self.client, self.sessions = _open(
            self, client, (aioredis.Redis, aioredis.RedisCluster, AsyncRetry), **options
        )
        self.is_cluster = not self.sessions.atomic_index
        if client_cache and self.is_cluster:
            raise ValueError("client_cache is not available with Redis Cluster")
        if self.owns_client and not self.is_cluster:
            pack_with_hiredis(self.client.connection_pool)
        self.pipeliner: _Pipeliner | _Multiplexer | None = None
        if auto_pipeline and not self.is_cluster:
            multiplex = self.owns_client and HIREDIS
            self.pipeliner = (_Multiplexer if multiplex else _Pipeliner)(self.client)
        self.send: Callable[..., Awaitable[Any]] = (
            self.client.execute_command if self.pipeliner is None else self.pipeliner.send
        )
        """How a command that may be pipelined goes to Redis."""
        self.cache = _TrackedCache(self.client, client_cache_size) if client_cache else None
        if self.cache is not None:
            self.sessions.getex = False  # a cached read costs no round trip; GETEX would

    async def _execute(self, command: RedisCommand) -> Any:
        send = self.send
        script = _script_call(command)
        if script is not None:
            if self.cache is not None and not isinstance(command, Index):
                self.cache.entries.pop(command[0].encode(), None)
            try:
                return await send("EVALSHA", *script[1:])
            except NoScriptError:
                return await send("EVAL", *script[0])
        if isinstance(command, Scan):
            return [
                key async for key in self.client.scan_iter(match=command.match, count=command.batch)
            ]
        if isinstance(command, Each):
            return list(await _each_pipeline(self.client, self.sessions, command).execute())
        if self.cache is not None and command[0] in _CACHED_COMMANDS:
            if command[0] == "GET":
                value = await self.cache.get(command[1])
                if value is not BUSY:
                    return value
            elif await self.cache.write(command, _ttl_of(command)):
                return None
        elif self.cache is not None and command[0] == "GETDEL":
            self.cache.entries.pop(command[1].encode(), None)
        return await send(*command)

    def _sid_of(self, command: RedisCommand) -> str | None:
        return self.sessions.sid_in(command)

    async def _ping(self) -> None:
        await self.client.ping()

    async def _close_client(self) -> None:
        await self.client.aclose()

    async def aclose(self) -> None:
        if self.cache is not None:
            await self.cache.close()
        if self.pipeliner is not None:
            await self.pipeliner.close()
        await super().aclose()


@mypyc_attr(allow_interpreted_subclasses=True)
class SyncRedisStore(SyncCommandStore[RedisCommand]):
    """The Redis store for WSGI apps (redis-py's blocking client), standalone or Cluster."""

    def __init__(self, client: Any = None, **options: Any) -> None:
        self.client, self.sessions = _open(
            self, client, (redis.Redis, redis.RedisCluster, Retry), **options
        )
        self.is_cluster = not self.sessions.atomic_index

    def _sid_of(self, command: RedisCommand) -> str | None:
        return self.sessions.sid_in(command)

    def _execute(self, command: RedisCommand) -> Any:
        script = _script_call(command)
        if script is not None:
            try:
                return self.client.evalsha(*script[1:])
            except NoScriptError:
                return self.client.eval(*script[0])
        if isinstance(command, Scan):
            return list(self.client.scan_iter(match=command.match, count=command.batch))
        if isinstance(command, Each):
            return list(_each_pipeline(self.client, self.sessions, command).execute())
        return self.client.execute_command(*command)

    def _ping(self) -> None:
        self.client.ping()

    def _close_client(self) -> None:
        self.client.close()

"""The session as it travels between the engine and a store, and the store calls themselves.

A ``SessionRecord`` carries the session's JSON, encoded once per request (change detection needs
it anyway) and reused by the store. Store calls are typed values (``Get``, ``Set``, ``Touch``,
``Destroy``): the engine and the session steps describe them, and whoever does I/O performs
them. ``run_steps`` / ``arun_steps`` drive a generator of such calls from sync or async code, so
a rule with I/O in the middle is written once for both.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Generator, Mapping
from contextlib import AbstractContextManager
from datetime import date, datetime, timezone
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any, NamedTuple, TypeVar

from .cookie import Cookie, CookieState, ms_from_iso
from .errors import SessionConflict, SessionCorrupt, SessionTooLarge
from .events import SessionEvent

Y = TypeVar("Y")
R = TypeVar("R")

TIMES_KEY = "__sessionware"
"""Where a session keeps what sessionware knows of it besides the app's data: when it was
created, last active and signed in (epoch ms), and with ``device_info`` its client. A data key,
so a Node app sharing the store keeps it when it rewrites the session and otherwise ignores it;
the app never sees it in the session."""


# Defined before the store calls whose fields name it: compiled (mypyc), a class reads its field
# types when the module is imported.
class SessionRecord:
    """A session on its way to or from a store that speaks records, its JSON already encoded.

    The middleware encodes the data once anyway (to see whether it changed); a store that
    implements ``get_record`` / ``set_record`` / ``touch_record`` reuses that text instead of
    encoding again, and hands back the text it loaded so the middleware need not encode it
    either. The cookie travels as a ``Cookie`` (an in-process store keeps a copy, no JSON at
    all) or as its stored dict, whichever the other side has. Every other store gets and returns
    plain dicts (``as_dict()``).

    A record is read, never changed: its ``data`` may be the store's own (the memory store
    shares data whose values are all immutable), and the session copies it.
    """

    __slots__ = (
        "_cookie",
        "_cookie_is_copy",
        "_cookie_json",
        "_cookie_object",
        "data",
        "data_json",
        "token",
        "touched_ms",
    )

    def __init__(
        self,
        cookie: Cookie | dict[str, Any] | None,
        data: dict[str, Any],
        data_json: str,
        cookie_json: str | None = None,
        token: str | bytes | None = None,
        *,
        cookie_is_copy: bool = False,
    ) -> None:
        self._cookie_object = cookie if isinstance(cookie, Cookie) else None
        self._cookie_is_copy = cookie_is_copy
        """The Cookie was made for this record alone: its first taker needs no copy."""
        self._cookie = None if isinstance(cookie, Cookie) else cookie
        self.data = data
        self.data_json = data_json
        self._cookie_json = cookie_json
        self.token = token
        """The stored value this record was loaded from, for a later compare-and-set."""
        self.touched_ms: int | None = None
        """Set by a store that already gave the session this lifetime as it read it."""

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> SessionRecord:
        """A record of a plain stored dict (``{"cookie": {...}, **data}``)."""
        cookie = stored.get("cookie")
        data = {key: value for key, value in stored.items() if key != "cookie"}
        return cls(dict(cookie) if isinstance(cookie, dict) else None, data, encode_json(data))

    @classmethod
    def from_stored(cls, sid: str, text: str | bytes) -> SessionRecord | None:
        """A record of a session's stored JSON text; ``None`` for ``null``."""
        stored = decode_stored(sid, text)
        if stored is None:
            return None
        cookie = stored.pop("cookie", None)
        return cls(cookie if isinstance(cookie, dict) else None, stored, encode_json(stored))

    @property
    def has_cookie(self) -> bool:
        return self._cookie_object is not None or self._cookie is not None

    @property
    def cookie(self) -> dict[str, Any] | None:
        """The cookie in express's stored shape."""
        if self._cookie is None and self._cookie_object is not None:
            self._cookie = self._cookie_object.to_json()
        return self._cookie

    def cookie_object(self) -> Cookie:
        """A Cookie of the caller's own (neither side can change the other's)."""
        cookie = self._cookie_object
        if cookie is not None:
            if self._cookie_is_copy:
                self._cookie_is_copy = False
                return cookie
            return cookie.copy()
        return Cookie.from_json(self._cookie)

    def cookie_state(self) -> CookieState | dict[str, Any] | None:
        """The cookie for an in-process store to keep: its parts, or a copy of its stored
        dict (nothing it keeps can change under it)."""
        if self._cookie_object is not None:
            return self._cookie_object.state()
        return None if self._cookie is None else dict(self._cookie)

    @property
    def expires_ms(self) -> int | None:
        """When the session expires (epoch ms), from the cookie."""
        if self._cookie_object is not None:
            return self._cookie_object.expires_ms
        expires = self._cookie.get("expires") if self._cookie is not None else None
        return ms_from_iso(expires) if isinstance(expires, str) else None

    @property
    def cookie_json(self) -> str:
        if self._cookie_json is None:
            self._cookie_json = encode_json(self.cookie)
        return self._cookie_json

    @property
    def json(self) -> str:
        """The whole session as express stores it: the cookie first, then the data."""
        if not self.has_cookie:
            return self.data_json
        return join_json(self.cookie_json, self.data_json)

    def as_dict(self) -> dict[str, Any]:
        cookie = self.cookie
        if cookie is None:
            return dict(self.data)
        return {"cookie": cookie, **self.data}


class Get:
    __slots__ = ("sid", "touch_ms")

    def __init__(self, sid: str, touch_ms: int | None = None) -> None:
        self.sid = sid
        self.touch_ms = touch_ms
        """The lifetime a read-only request would give the session at its end: a store that
        can reset the expiry as it reads (Redis ``GETEX``) does, and marks the record
        ``touched_ms``."""


class Base:
    """What a save of a loaded session is based on, so a store can merge instead of overwrite:
    the stored value as loaded (an opaque ``token`` the store compares against; ``None`` when
    unknown) and the data as loaded (this request's changes are the difference from it)."""

    __slots__ = ("data_json", "max_size", "merged", "on_conflict", "token")

    def __init__(
        self,
        token: str | bytes | None,
        data_json: str,
        on_conflict: str = "last_writer_wins",
        max_size: int | None = None,
        merged: Callable[[], None] | None = None,
    ) -> None:
        self.token = token
        self.data_json = data_json
        self.on_conflict = on_conflict
        self.max_size = max_size
        """The largest session a merge may write, in bytes of JSON (``max_size``)."""
        self.merged = merged
        """Told when the save merged onto another request's changes (the ``merged`` event)."""


class Set:
    __slots__ = ("base", "record", "sid", "stored")

    def __init__(
        self,
        sid: str,
        record: SessionRecord,
        base: Base | None = None,
        stored: Callable[[], None] | None = None,
    ) -> None:
        self.sid = sid
        self.record = record
        self.base = base
        self.stored = stored
        """Told once the store has accepted the save (the ``created`` event)."""


class Touch:
    __slots__ = ("record", "sid")

    def __init__(self, sid: str, record: SessionRecord) -> None:
        self.sid = sid
        self.record = record


class Destroy:
    __slots__ = ("sid",)

    def __init__(self, sid: str) -> None:
        self.sid = sid


class UserSessions:
    """A user's live sessions (``store.user_sessions``)."""

    __slots__ = ("user",)

    def __init__(self, user: str) -> None:
        self.user = user


class ReadOld:
    """``migrate_from``: the session another library keeps on a server under ``key`` (which
    the request's old cookie named); the source deletes it once read, unless ``keep``. The copy
    ``sessionware migrate`` may have made ahead of time is looked up first, under ``copy``."""

    __slots__ = ("copy", "keep", "key", "source")

    def __init__(self, source: Any, key: str, keep: bool, copy: str) -> None:
        self.source = source
        self.key = key
        self.keep = keep
        self.copy = copy

    def steps(self) -> Steps[Get | ReadOld, OldSession]:
        """The copy from our store if there is one, else the source's session: the calls the
        sync and the async driver perform alike (``self`` standing for the source's read)."""
        copied = yield Get(self.copy, None)
        if copied is not None:
            return OldSession(self.copy, copied)
        return OldSession(None, (yield self))


class OldSession(NamedTuple):
    """What a ``ReadOld`` found: the copy's id and data, or (``sid`` ``None``) the source's."""

    sid: str | None
    data: Any


class DestroyUserSessions:
    """Destroy a user's sessions but ``keep`` (``store.destroy_user_sessions``)."""

    __slots__ = ("keep", "user")

    def __init__(self, user: str, keep: str | None = None) -> None:
        self.user = user
        self.keep = keep


class Calls:
    """Several calls in order (an expired session to destroy, then the fresh one to save)."""

    __slots__ = ("calls",)

    def __init__(self, calls: tuple[StoreCall, ...]) -> None:
        self.calls = calls


StoreCall = Get | Set | Touch | Destroy | UserSessions | DestroyUserSessions | ReadOld | Calls
"""Typed store calls, never changed once built. Plain slotted classes with an ``__init__`` of
their own: one or two are built for every request, and such a class costs half a NamedTuple or a
third of a frozen dataclass to build, and compiled it is a C constructor (a compiled dataclass
or NamedTuple still builds through Python)."""


class Observers:
    """Who watches sessionware from outside it: the OpenTelemetry instrumentation, while it is
    on. One shared instance (``OBSERVERS``) that every engine and store driver holds, so when
    nobody watches, a request pays an attribute read, not a lookup."""

    __slots__ = ("event", "store_call")

    def __init__(self) -> None:
        self.store_call: Callable[[object, StoreCall], AbstractContextManager[object]] | None = None
        """Wraps each store call (a span, a duration)."""
        self.event: Callable[[SessionEvent], None] | None = None
        """Told every event, beside each middleware's ``on_event``."""


OBSERVERS = Observers()

Steps = Generator[Y, Any, R]


_START: Any = object()


def _advance(steps: Steps[Y, R], result: Any, error: Exception | None) -> tuple[bool, Any]:
    """Resume ``steps`` with a result or an error: ``(True, return value)`` once it is done,
    else ``(False, the next item)``. The one rule both drivers follow."""
    try:
        if error is not None:
            return False, steps.throw(error)
        return False, next(steps) if result is _START else steps.send(result)
    except StopIteration as done:
        return True, done.value


def _attempt(perform: Callable[[Y], Any], item: Y) -> tuple[Any, Exception | None]:
    try:
        return perform(item), None
    except Exception as exc:
        return None, exc


async def _attempt_async(
    perform: Callable[[Y], Awaitable[Any]], item: Y
) -> tuple[Any, Exception | None]:
    try:
        return await perform(item), None
    except Exception as exc:
        return None, exc


def run_steps(steps: Steps[Y, R], perform: Callable[[Y], Any]) -> R:
    """Drive ``steps`` with plain calls: each yielded item is performed and its result (or its
    exception) sent back in."""
    done, item = _advance(steps, _START, None)
    while not done:
        done, item = _advance(steps, *_attempt(perform, item))
    return item  # type: ignore[no-any-return]


async def arun_steps(steps: Steps[Y, R], perform: Callable[[Y], Awaitable[Any]]) -> R:
    """Drive ``steps`` from async code; the same protocol as ``run_steps``."""
    done, item = _advance(steps, _START, None)
    while not done:
        done, item = _advance(steps, *await _attempt_async(perform, item))
    return item  # type: ignore[no-any-return]


IMMUTABLE_TYPES = frozenset((str, int, float, bool, type(None)))
"""JSON values no one can change in place: data made only of these may be shared, not copied."""


def flat_copy(data: Mapping[str, Any]) -> dict[str, Any] | None:
    """A copy of ``data`` when all its values are immutable (so the copy shares nothing that can
    change), else ``None``. A session is read as the dict it is: a lazy session's overrides
    (loaded by the time it is saved) are for the app, and cost a Python call per step."""
    values = dict.values(data) if isinstance(data, dict) else data.values()
    for value in values:
        if type(value) not in IMMUTABLE_TYPES:
            return None
    return dict.copy(data) if isinstance(data, dict) else dict(data)


def user_of(data: Mapping[str, Any], user_key: str | None) -> str | None:
    """The signed-in user a session's data names under ``user_key``, as the index keys it: a
    non-empty string, or an int as its decimal text (Django keeps ``"42"``, Flask-Login ``"42"``
    or ``42``); ``None`` for anything else (no user, or a value no index can key by)."""
    if user_key is None:
        return None
    value = data.get(user_key)
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def user_name(user: object) -> str:
    """A user as passed to ``user_sessions(user)``: the same text ``user_of`` gives."""
    if isinstance(user, int) and not isinstance(user, bool):
        return str(user)
    if isinstance(user, str) and user:
        return user
    raise TypeError(f"a user is a non-empty str or an int, got {user!r}")


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.isoformat(timespec="milliseconds") + "Z"
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(
        f"session values must be JSON types (dict, list, str, int, float, bool, None, datetime); "
        f"got {type(value).__name__}"
    )


_encoder = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default
)
_c_encode = (
    c_make_encoder(None, _json_default, encode_basestring, None, ":", ",", False, False, False)
    if c_make_encoder is not None
    else None
)


def encode_json(value: object) -> str:
    """Serialize the way JavaScript's JSON.stringify does: compact, UTF-8, no NaN, datetimes
    as ISO. The C encoder is built once (``JSONEncoder.encode`` builds one per call)."""
    if isinstance(value, dict):
        flat = _encode_flat(value)
        if flat is not None:
            return flat
    if _c_encode is None or isinstance(value, str):
        text = _encoder.encode(value)
    else:
        text = "".join(_c_encode(value, 0))
    return text if text.isascii() else _well_formed(text)


_SURROGATE = re.compile(f"[{chr(0xD800)}-{chr(0xDFFF)}]")  # mypyc takes no such literal


def _well_formed(text: str) -> str:
    """What JSON.stringify writes for text with surrogates: a surrogate pair is the character it
    encodes, a lone surrogate the escape ``\\udXXX``. Every stored session is then valid UTF-8
    (a lone surrogate cannot be encoded, and a store given one fails the request or worse), and
    the bytes are the ones a Node app writes for the same data."""
    if _SURROGATE.search(text) is None:
        return text
    paired = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    return _SURROGATE.sub(lambda found: f"\\u{ord(found.group()):04x}", paired)


def _encode_flat(data: dict[str, Any]) -> str | None:
    """The JSON of the usual session (text keys; text, integer, boolean or null values, none
    needing an escape) without the C encoder's per-call set-up, which costs more than such a
    session's encoding; ``None`` for anything else. Its output is the encoder's, byte for byte
    (tests/test_records.py compares them on generated data)."""
    parts = []
    for key, value in dict.items(data):
        if key not in _plain_keys:
            if type(key) is not str or not _needs_no_escape(key):
                return None
            if len(_plain_keys) < 1024:
                _plain_keys.add(key)
        kind = type(value)
        if kind is str:
            if not _needs_no_escape(value):
                return None
            parts.append(f'"{key}":"{value}"')
        elif kind is int:
            parts.append(f'"{key}":{value}')
        elif kind is bool:
            parts.append(f'"{key}":true' if value else f'"{key}":false')
        elif value is None:
            parts.append(f'"{key}":null')
        else:
            return None
    return "{" + ",".join(parts) + "}"


_plain_keys: set[str] = set()
"""Keys known to need no escape (a site uses a handful)."""


def _needs_no_escape(text: str) -> bool:
    """JSON escapes quotes, backslashes and control characters (printable text has none)."""
    return text.isprintable() and '"' not in text and "\\" not in text


_c_scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def decode_stored(
    sid: str, text: str | bytes, loads: Callable[[str], Any] | None = None
) -> dict[str, Any] | None:
    """A stored session as a dict, read as JSON (or by a store's own ``loads``); ``null`` is
    "not found" (as express reads it), and anything else that is not an object is
    ``SessionCorrupt``. So are ``NaN`` and ``Infinity``, which JSON.parse refuses too (kept,
    they would fail every later encoding of the session)."""
    try:
        if loads is None:
            value = json.loads(text, parse_constant=_no_constant)
        else:
            value = loads(text.decode() if isinstance(text, bytes) else text)
    except Exception as exc:
        raise SessionCorrupt(f"session {sid!r} does not deserialize: {exc}", sid=sid) from exc
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SessionCorrupt(
            f"session {sid!r} holds {type(value).__name__}, not a JSON object", sid=sid
        )
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_own_json(text: str) -> Any:
    """Parse JSON this module encoded (no surrounding white space), skipping the generic checks."""
    value, end = _c_scan(text, 0)
    if end != len(text):
        raise ValueError(f"trailing data after JSON at {end}")
    return value


def merged_data(current: dict[str, Any], base: Base, record: SessionRecord) -> dict[str, Any]:
    """What is stored now (``current``, data without the cookie) with this request's changes
    applied: the top-level keys it set, changed (nested changes included) or deleted since it
    loaded ``base``. A key both changed goes to this request (the last writer), or raises
    ``SessionConflict`` when ``base.on_conflict == "error"``; a result over ``base.max_size``
    raises ``SessionTooLarge`` (every store merges through here, so none stores more). The
    ``merged`` event is told only when there was something of others' to merge onto (a store
    that cannot tell may merge onto the very data the request loaded)."""
    before = decode_own_json(base.data_json)
    after = record.data
    result = dict(current)
    strict = base.on_conflict == "error"
    for key in before.keys() - after.keys():
        if strict:
            _check_untouched(key, before, current)
        result.pop(key, None)
    for key, value in after.items():
        if key in before and encode_json(before[key]) == encode_json(value):
            continue
        if strict:
            _check_untouched(key, before, current)
        result[key] = value
    limit = base.max_size
    if limit is not None:
        size = len(join_json(record.cookie_json, encode_json(result)).encode())
        if size > limit:
            raise SessionTooLarge(
                f"merged with concurrent changes, the session would be {size} bytes, over "
                f"max_size={limit}; not saved"
            )
    if base.merged is not None and current != before:  # others changed it meanwhile
        base.merged()
    return result


def _check_untouched(key: str, before: dict[str, Any], current: dict[str, Any]) -> None:
    if (key in before) != (key in current) or (
        key in before and encode_json(before[key]) != encode_json(current[key])
    ):
        raise SessionConflict(f"session key {key!r} was changed by another request meanwhile")


def join_json(cookie_json: str, data_json: str) -> str:
    """``{"cookie": ..., **data}`` as text, from the cookie's JSON and the data's JSON."""
    if data_json == "{}":
        return '{"cookie":' + cookie_json + "}"
    return '{"cookie":' + cookie_json + "," + data_json[1:]

"""The session's cookie: its lifetime and attributes, and the JSON shape express stores.

Python code speaks seconds and aware datetimes; underneath the cookie keeps whole milliseconds
since the epoch, because that is what express writes (``originalMaxAge`` in ms, ``expires`` as
ISO-8601 with milliseconds and ``Z``) and a Node app must read back exactly what we wrote.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from ._wire import now_ms
from .errors import SessionCorrupt
from .options import (
    COOKIE_FIELDS,
    JSON_ORDER,
    CookieAttributes,
    CookieOptions,
    SameSite,
    Secure,
    check_attributes,
    cookie_options,
    datetime_to_ms,
    seconds_to_ms,
)

CookieState = tuple["int | None", "int | None", CookieAttributes]
"""(expires_ms, original_max_age_ms, attributes): a cookie's validated parts, as ``state()``
gives them and ``Cookie(state)`` takes them back (what an in-process store keeps)."""

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .options import CookieParams


def _iso_from_ms(epoch_ms: int) -> str:
    seconds, millis = divmod(epoch_ms, 1000)
    if seconds != _iso_cache[0]:
        _iso_cache[0] = seconds
        _iso_cache[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{_iso_cache[1]}.{millis:03d}Z"


_iso_cache: list[Any] = [None, ""]


_minute_cache: dict[str, int] = {}


def ms_from_iso(text: str) -> int | None:
    """Parse ``Date.prototype.toISOString`` output (and other ISO forms); ``None`` if unparsable.

    express writes ``YYYY-MM-DDTHH:MM:SS.mmmZ`` on every save, so that form takes a fast path
    that parses each minute once.
    """
    if len(text) == 24 and text[19] == "." and text[23] == "Z" and text[16] == ":":
        minute = _minute_cache.get(text[:16])
        if minute is None:
            parsed = _slow_ms_from_iso(text[:16] + ":00.000Z")
            if parsed is None:
                return None
            if len(_minute_cache) > 1024:
                _minute_cache.clear()
            minute = _minute_cache[text[:16]] = parsed
        seconds, millis = text[17:19], text[20:23]
        if seconds.isdigit() and millis.isdigit():
            return minute + int(seconds) * 1000 + int(millis)
    return _slow_ms_from_iso(text)


def _slow_ms_from_iso(text: str) -> int | None:
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return round(parsed.timestamp() * 1000)


_attributes_of_stored: dict[tuple[Any, ...], CookieAttributes] = {}


def _stored_attributes(data: dict[str, Any]) -> CookieAttributes:
    """The attributes of a stored cookie, read by the field table; a store holds a handful of
    distinct combinations, so each is read once."""
    raw = tuple(data.get(field.json_key) for field in COOKIE_FIELDS.values())
    try:
        found = _attributes_of_stored.get(raw)
    except TypeError:
        found = None
    if found is None:
        found = CookieAttributes(
            *(field.load(value) for field, value in zip(COOKIE_FIELDS.values(), raw, strict=True))
        )
        try:
            if len(_attributes_of_stored) > 1024:
                _attributes_of_stored.clear()
            _attributes_of_stored[raw] = found
        except TypeError:
            pass
    return found


def cookie_params(params: CookieParams) -> CookieOptions:
    """``Cookie(**params)`` validated as the ``cookie=`` option is, with ``path=None`` allowed."""
    path = params.get("path", "/")
    options = cookie_options({**params, "path": path or "/"})
    if path is None:
        return CookieOptions(
            options.max_age_ms, options.expires_ms, options.attributes._replace(path=None)
        )
    return options


MAX_MS = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z: the last instant an HTTP date (and Python's datetime) can hold."""
MAX_AGE_MS = MAX_MS // 2
"""The longest stored lifetime read back: now plus it stays a date an HTTP header can hold."""


def _ms_or_none(value: object, field: str) -> int | None:
    if value is None or value is False:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"stored cookie {field} must be a number or null, got {value!r}")
    if not -MAX_AGE_MS <= value <= MAX_AGE_MS:  # NaN compares false too
        raise SessionCorrupt(f"stored cookie {field} is out of range: {value!r}")
    return round(value)


class Cookie:
    """The session cookie, as express's Cookie: ``max_age`` counts down, ``touch`` resets it."""

    __slots__ = ("attributes", "expires_ms", "original_max_age_ms")
    attributes: CookieAttributes
    expires_ms: int | None
    original_max_age_ms: int | None

    def __init__(
        self, _state: CookieState | None = None, /, **params: Unpack[CookieParams]
    ) -> None:
        if _state is not None:
            if type(_state) is not tuple or type(_state[-1]) is not CookieAttributes:
                raise TypeError("Cookie() takes keyword options only, as express's Cookie")
            self.expires_ms, self.original_max_age_ms, self.attributes = _state
            return
        options = cookie_params(params)
        self.attributes = options.attributes
        self.expires_ms = options.expires_ms
        self.original_max_age_ms = None
        if options.max_age_ms is not None:
            self.max_age = options.max_age_ms / 1000
        elif options.expires_ms is not None:
            self.original_max_age_ms = options.expires_ms - now_ms()

    def _set(self, name: str, value: object) -> None:
        self.attributes = check_attributes({name: value}, self.attributes)

    @property
    def path(self) -> str | None:
        return self.attributes.path

    @path.setter
    def path(self, value: str | None) -> None:
        self._set("path", value)

    @property
    def domain(self) -> str | None:
        return self.attributes.domain

    @domain.setter
    def domain(self, value: str | None) -> None:
        self._set("domain", value)

    @property
    def secure(self) -> Secure:
        return self.attributes.secure

    @secure.setter
    def secure(self, value: Secure) -> None:
        self._set("secure", value)

    @property
    def httponly(self) -> bool:
        return self.attributes.httponly

    @httponly.setter
    def httponly(self, value: bool) -> None:
        self._set("httponly", value)

    @property
    def samesite(self) -> SameSite:
        return self.attributes.samesite

    @samesite.setter
    def samesite(self, value: SameSite) -> None:
        self._set("samesite", value)

    @property
    def partitioned(self) -> bool | None:
        return self.attributes.partitioned

    @partitioned.setter
    def partitioned(self, value: bool | None) -> None:
        self._set("partitioned", value)

    @property
    def priority(self) -> str | None:
        return self.attributes.priority

    @priority.setter
    def priority(self, value: str | None) -> None:
        self._set("priority", value)

    @classmethod
    def from_options(cls, options: CookieOptions, now: int) -> Cookie:
        """A new session's cookie from options validated at start-up (not again per request)."""
        if options.max_age_ms is not None:
            return cls((now + options.max_age_ms, options.max_age_ms, options.attributes))
        if options.expires_ms is not None:
            return cls((options.expires_ms, options.expires_ms - now, options.attributes))
        return cls((None, None, options.attributes))

    @classmethod
    def from_json(cls, data: object) -> Cookie:
        """Inflate a stored cookie; ``expires`` may be ISO text or a datetime (store's choice)."""
        if not isinstance(data, dict):
            raise ValueError(f"stored session has no cookie object (got {data!r})")
        expires = data.get("expires")
        expires_ms: int | None = None
        if isinstance(expires, str):
            expires_ms = ms_from_iso(expires)
        elif isinstance(expires, datetime):
            expires_ms = datetime_to_ms(expires, "stored cookie expires")
        if expires_ms is not None and not -MAX_MS <= expires_ms <= MAX_MS:
            raise SessionCorrupt(f"stored cookie expires is out of range: {expires!r}")
        original = data.get("originalMaxAge")
        if type(original) is not int or not -MAX_AGE_MS <= original <= MAX_AGE_MS:
            original = _ms_or_none(original, "originalMaxAge")
        return cls((expires_ms, original, _stored_attributes(data)))

    def copy(self) -> Cookie:
        return Cookie(self.state())

    def state(self) -> CookieState:
        return (self.expires_ms, self.original_max_age_ms, self.attributes)

    def to_json(self) -> dict[str, Any]:
        """The stored shape, keys in express's order, absent attributes left out."""
        data: dict[str, Any] = {"originalMaxAge": self.original_max_age_ms}
        attributes = self.attributes
        for name in JSON_ORDER:
            if name is None:
                data["expires"] = None if self.expires_ms is None else _iso_from_ms(self.expires_ms)
                continue
            value = getattr(attributes, name)
            if value is not None:
                data[COOKIE_FIELDS[name].json_key] = value
        return data

    @property
    def max_age(self) -> float | None:
        """Seconds until the cookie expires (negative once past).

        ``None`` means a browser-session cookie.
        """
        if self.expires_ms is None:
            return None
        return (self.expires_ms - now_ms()) / 1000

    @max_age.setter
    def max_age(self, value: float | timedelta | None) -> None:
        if value is None:
            self.expires_ms = None
            self.original_max_age_ms = None
            return
        ms = seconds_to_ms(value, "max_age")
        self.expires_ms = now_ms() + ms
        self.original_max_age_ms = ms

    @property
    def original_max_age(self) -> float | None:
        """The lifetime in seconds that ``touch()`` restores."""
        if self.original_max_age_ms is None:
            return None
        return self.original_max_age_ms / 1000

    @original_max_age.setter
    def original_max_age(self, value: float | timedelta | None) -> None:
        self.original_max_age_ms = (
            None if value is None else seconds_to_ms(value, "original_max_age")
        )

    @property
    def expires(self) -> datetime | None:
        """When the browser drops the cookie (UTC), ``None`` for a browser-session cookie."""
        if self.expires_ms is None:
            return None
        return datetime.fromtimestamp(self.expires_ms / 1000, tz=timezone.utc)

    @expires.setter
    def expires(self, value: datetime | None) -> None:
        if value is None:
            self.expires_ms = None
            self.original_max_age_ms = None
            return
        self.expires_ms = datetime_to_ms(value, "expires")
        self.original_max_age_ms = self.expires_ms - now_ms()

    def reset_max_age(self, now: int | None = None) -> None:
        """Restart the lifetime from now: express's ``cookie.maxAge = cookie.originalMaxAge``."""
        if self.original_max_age_ms is None:
            self.expires_ms = None
        else:
            self.expires_ms = (now_ms() if now is None else now) + self.original_max_age_ms

    def __repr__(self) -> str:
        return f"Cookie({self.to_json()!r})"

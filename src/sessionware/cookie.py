"""The session's cookie: its lifetime and attributes, and the JSON shape express stores.

Python code speaks seconds and aware datetimes; underneath the cookie keeps whole milliseconds
since the epoch, because that is what express writes (``originalMaxAge`` in ms, ``expires`` as
ISO-8601 with milliseconds and ``Z``) and a Node app must read back exactly what we wrote.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any, Generic, TypeVar

from .cookies import CookieAttributes, now_ms
from .options import (
    CookieOptions,
    SameSite,
    Secure,
    check_domain,
    check_flag,
    check_optional_flag,
    check_path,
    check_priority,
    check_samesite,
    check_secure,
    datetime_to_ms,
    seconds_to_ms,
)

T = TypeVar("T")


class _Checked(Generic[T]):
    """An attribute validated on assignment, so a bad value fails where it is set."""

    def __init__(self, check: Any) -> None:
        self.check = check
        self.slot = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = "_" + name

    def __get__(self, obj: Any, owner: type | None = None) -> T:
        return getattr(obj, self.slot)  # type: ignore[no-any-return]

    def __set__(self, obj: Any, value: T) -> None:
        setattr(obj, self.slot, self.check(value))


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


def _ms_or_none(value: object, field: str) -> int | None:
    if value is None or value is False:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"stored cookie {field} must be a number or null, got {value!r}")
    return round(value)


class Cookie:
    """The session cookie, as express's Cookie: ``max_age`` counts down, ``touch`` resets it."""

    __slots__ = (
        "_domain",
        "_path",
        "_priority",
        "_samesite",
        "_secure",
        "expires_ms",
        "httponly",
        "original_max_age_ms",
        "partitioned",
    )

    _path: str | None
    _domain: str | None
    _secure: Secure
    _samesite: SameSite
    _priority: str | None

    path = _Checked[str | None](lambda v: None if v is None else check_path(v))
    domain = _Checked[str | None](check_domain)
    secure = _Checked[Secure](check_secure)
    samesite = _Checked[SameSite](check_samesite)
    priority = _Checked[str | None](check_priority)

    def __init__(
        self,
        *,
        max_age: float | timedelta | None = None,
        expires: datetime | None = None,
        path: str | None = "/",
        domain: str | None = None,
        secure: Secure = None,
        httponly: bool = True,
        samesite: SameSite = None,
        partitioned: bool | None = None,
        priority: str | None = None,
    ) -> None:
        if max_age is not None and expires is not None:
            raise ValueError("Cookie takes max_age or expires, not both")
        self.expires_ms: int | None = None
        self.original_max_age_ms: int | None = None
        self.path = path
        self.domain = domain
        self.secure = secure
        self.httponly = check_flag(httponly, "httponly")
        self.samesite = samesite
        self.partitioned = check_optional_flag(partitioned, "partitioned")
        self.priority = priority
        if max_age is not None:
            self.max_age = max_age
        elif expires is not None:
            self.expires = expires

    @classmethod
    def from_options(cls, options: CookieOptions, now: int) -> Cookie:
        """A new session's cookie from options validated at start-up (not again per request)."""
        cookie = cls.__new__(cls)
        if options.max_age_ms is not None:
            cookie.expires_ms = now + options.max_age_ms
            cookie.original_max_age_ms = options.max_age_ms
        elif options.expires_ms is not None:
            cookie.expires_ms = options.expires_ms
            cookie.original_max_age_ms = options.expires_ms - now
        else:
            cookie.expires_ms = None
            cookie.original_max_age_ms = None
        cookie._path = options.path
        cookie._domain = options.domain
        cookie._secure = options.secure
        cookie.httponly = options.httponly
        cookie._samesite = options.samesite
        cookie.partitioned = options.partitioned
        cookie._priority = options.priority
        return cookie

    @classmethod
    def from_json(cls, data: object) -> Cookie:
        """Inflate a stored cookie; ``expires`` may be ISO text or a datetime (store's choice)."""
        if not isinstance(data, dict):
            raise ValueError(f"stored session has no cookie object (got {data!r})")
        cookie = cls.__new__(cls)
        expires = data.get("expires")
        if isinstance(expires, str):
            cookie.expires_ms = ms_from_iso(expires)
        elif isinstance(expires, datetime):
            cookie.expires_ms = datetime_to_ms(expires, "stored cookie expires")
        else:
            cookie.expires_ms = None
        original = data.get("originalMaxAge")
        if type(original) is not int:
            original = _ms_or_none(original, "originalMaxAge")
        cookie.original_max_age_ms = original
        path = data.get("path")
        cookie._path = path if path == "/" else (None if path is None else check_path(path))
        cookie._domain = check_domain(data.get("domain"))
        secure = data.get("secure")
        cookie._secure = secure if secure is None or type(secure) is bool else check_secure(secure)
        cookie.httponly = data.get("httpOnly") is True
        samesite = data.get("sameSite")
        cookie._samesite = None if samesite is None else check_samesite(samesite)
        partitioned = data.get("partitioned")
        cookie.partitioned = None if partitioned is None else bool(partitioned)
        priority = data.get("priority")
        cookie._priority = None if priority is None else check_priority(priority)
        return cookie

    def copy(self) -> Cookie:
        cookie = Cookie.__new__(Cookie)
        cookie.expires_ms = self.expires_ms
        cookie.original_max_age_ms = self.original_max_age_ms
        cookie._path = self._path
        cookie._domain = self._domain
        cookie._secure = self._secure
        cookie.httponly = self.httponly
        cookie._samesite = self._samesite
        cookie.partitioned = self.partitioned
        cookie._priority = self._priority
        return cookie

    def to_json(self) -> dict[str, Any]:
        """The stored shape, keys in express's order, absent attributes left out."""
        data: dict[str, Any] = {"originalMaxAge": self.original_max_age_ms}
        if self.partitioned is not None:
            data["partitioned"] = self.partitioned
        if self._priority is not None:
            data["priority"] = self._priority
        data["expires"] = None if self.expires_ms is None else _iso_from_ms(self.expires_ms)
        if self._secure is not None:
            data["secure"] = self._secure
        data["httpOnly"] = self.httponly
        if self._domain is not None:
            data["domain"] = self._domain
        if self._path is not None:
            data["path"] = self._path
        if self._samesite is not None:
            data["sameSite"] = self._samesite
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

    def attributes(self) -> CookieAttributes:
        return CookieAttributes(
            domain=self._domain,
            path=self._path,
            expires_ms=self.expires_ms,
            httponly=self.httponly,
            secure=bool(self._secure),
            partitioned=bool(self.partitioned),
            priority=self._priority,
            samesite=self._samesite,
        )

    def __repr__(self) -> str:
        return f"Cookie({self.to_json()!r})"

"""Every option, its default and its validation, in one place.

Options are checked once, when the middleware is built, so that a typo fails at start-up with a
message naming the option, instead of surfacing as a missing cookie in production. The defaults
are express-session 1.19's, except ``resave`` and ``save_uninitialized`` which take express's own
v2 defaults (``False``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

SameSite = str | bool | None
Secure = bool | Literal["auto"] | None
CookieOptionsFactory = Callable[[Any], Mapping[str, Any]]
GenId = Callable[[Any], str]

DEFAULT_NAME = "connect.sid"
DEFAULT_MAX_SIZE = 256 * 1024
MAX_SID_LENGTH = 255
MAX_COOKIE_VALUE_LENGTH = 4096

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_DOMAIN = re.compile(
    r"^\.?[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$",
    re.IGNORECASE,
)
_PATH = re.compile(r"^/[\x20-\x3a\x3c-\x7e]*$")
_SID = re.compile(rf"^[\x21-\x7e]{{1,{MAX_SID_LENGTH}}}$")
_SAMESITE_VALUES = ("lax", "strict", "none")
_PRIORITY_VALUES = ("low", "medium", "high")
_CAMEL_CASE_HINTS = {
    "maxAge": "max_age",
    "httpOnly": "httponly",
    "http_only": "httponly",
    "sameSite": "samesite",
    "same_site": "samesite",
}


def is_valid_sid(sid: object) -> bool:
    """A sid may reach a store only if it is 1-255 printable ASCII characters without spaces."""
    return isinstance(sid, str) and _SID.match(sid) is not None


@dataclass(frozen=True)
class CookieOptions:
    """Validated cookie options; times are whole milliseconds, as express stores them."""

    max_age_ms: int | None = None
    expires_ms: int | None = None
    path: str = "/"
    domain: str | None = None
    secure: Secure = None
    httponly: bool = True
    samesite: SameSite = None
    partitioned: bool | None = None
    priority: str | None = None


def seconds_to_ms(value: object, option: str) -> int:
    """Turn a number of seconds (int, float or timedelta) into whole milliseconds."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(f"{option} must be a number of seconds or a timedelta, got {value!r}")
    if value < 0:
        raise ValueError(f"{option} must not be negative, got {value!r}")
    return round(value * 1000)


def datetime_to_ms(value: object, option: str) -> int:
    """Turn an aware datetime into epoch milliseconds; naive datetimes are ambiguous, so refused."""
    if not isinstance(value, datetime):
        raise TypeError(f"{option} must be a timezone-aware datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{option} must be timezone-aware (for example datetime.now(timezone.utc))"
        )
    return round(value.timestamp() * 1000)


def check_domain(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _DOMAIN.match(value):
        raise ValueError(f"cookie domain must be a host name such as 'example.com', got {value!r}")
    return value


def check_path(value: object) -> str:
    if not isinstance(value, str) or not _PATH.match(value):
        raise ValueError(
            f"cookie path must start with '/' and hold printable ASCII without ';', got {value!r}"
        )
    return value


def check_samesite(value: object) -> SameSite:
    if value is None or isinstance(value, bool) or value == "auto":
        return value
    if isinstance(value, str) and value.lower() in _SAMESITE_VALUES:
        return value.lower()
    raise ValueError(
        "cookie samesite must be 'lax', 'strict', 'none', 'auto', True, False or None, "
        f"got {value!r}"
    )


def check_priority(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and value.lower() in _PRIORITY_VALUES:
        return value.lower()
    raise ValueError(f"cookie priority must be 'low', 'medium', 'high' or None, got {value!r}")


def check_secure(value: object) -> Secure:
    if value is None or isinstance(value, bool) or value == "auto":
        return value
    raise ValueError(f"cookie secure must be True, False, None or 'auto', got {value!r}")


def check_flag(value: object, option: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{option} must be True or False, got {value!r}")
    return value


def check_optional_flag(value: object, option: str) -> bool | None:
    return None if value is None else check_flag(value, option)


_COOKIE_KEYS = (
    "max_age",
    "expires",
    "path",
    "domain",
    "secure",
    "httponly",
    "samesite",
    "partitioned",
    "priority",
)


def cookie_options(value: Mapping[str, Any] | None) -> CookieOptions:
    """Validate a ``cookie=`` mapping (or what a cookie factory returned)."""
    if value is None:
        return CookieOptions()
    if not isinstance(value, Mapping):
        raise TypeError(f"cookie must be a mapping or a callable returning one, got {value!r}")
    for key in value:
        if key not in _COOKIE_KEYS:
            hint = _CAMEL_CASE_HINTS.get(key)
            suffix = f" (did you mean {hint!r}?)" if hint else ""
            raise TypeError(
                f"unknown cookie option {key!r}{suffix}; accepted: {', '.join(_COOKIE_KEYS)}"
            )
    max_age = value.get("max_age")
    expires = value.get("expires")
    if max_age is not None and expires is not None:
        raise ValueError("cookie takes max_age or expires, not both")
    return CookieOptions(
        max_age_ms=None if max_age is None else seconds_to_ms(max_age, "cookie max_age"),
        expires_ms=None if expires is None else datetime_to_ms(expires, "cookie expires"),
        path=check_path(value.get("path", "/")),
        domain=check_domain(value.get("domain")),
        secure=check_secure(value.get("secure")),
        httponly=check_flag(value.get("httponly", True), "cookie httponly"),
        samesite=check_samesite(value.get("samesite")),
        partitioned=check_optional_flag(value.get("partitioned"), "cookie partitioned"),
        priority=check_priority(value.get("priority")),
    )


def secrets_option(value: object) -> tuple[bytes, ...]:
    """Accept one secret or a sequence of them; the first signs, all verify."""
    items: Sequence[object]
    if isinstance(value, (str, bytes, bytearray)):
        items = [value]
    elif isinstance(value, Sequence):
        items = value
    elif value is None:
        items = []
    else:
        raise TypeError(f"secret must be a str, bytes or a sequence of them, got {value!r}")
    secrets: list[bytes] = []
    for item in items:
        key = item.encode() if isinstance(item, str) else item
        if not isinstance(key, (bytes, bytearray)):
            raise TypeError(f"secret must be a str, bytes or a sequence of them, got {item!r}")
        if not key:
            raise ValueError("secret must not be empty")
        secrets.append(bytes(key))
    if not secrets:
        raise ValueError("secret is required: pass a string, bytes or a list (the first one signs)")
    return tuple(secrets)


@dataclass(frozen=True)
class SessionOptions:
    """The validated middleware options, shared by every request."""

    secrets: tuple[bytes, ...]
    name: str = DEFAULT_NAME
    cookie: CookieOptions | CookieOptionsFactory = CookieOptions()
    resave: bool = False
    save_uninitialized: bool = False
    rolling: bool = False
    unset: Literal["keep", "destroy"] = "keep"
    proxy: bool | None = None
    genid: GenId | None = None
    max_size: int | None = DEFAULT_MAX_SIZE
    store_unavailable: Literal["pass", "error"] = "pass"


def session_options(
    *,
    secret: object,
    name: str = DEFAULT_NAME,
    cookie: Mapping[str, Any] | CookieOptionsFactory | None = None,
    resave: bool = False,
    save_uninitialized: bool = False,
    rolling: bool = False,
    unset: str = "keep",
    proxy: bool | None = None,
    genid: GenId | None = None,
    max_size: int | None = DEFAULT_MAX_SIZE,
    store_unavailable: str = "pass",
) -> SessionOptions:
    """Validate the keyword arguments that both middlewares accept."""
    if not isinstance(name, str) or not _TOKEN.match(name):
        raise ValueError(f"name must be a cookie name (an RFC 7230 token), got {name!r}")
    if unset not in ("keep", "destroy"):
        raise ValueError(f"unset must be 'keep' or 'destroy', got {unset!r}")
    if store_unavailable not in ("pass", "error"):
        raise ValueError(f"store_unavailable must be 'pass' or 'error', got {store_unavailable!r}")
    if genid is not None and not callable(genid):
        raise TypeError(f"genid must be a callable taking the request, got {genid!r}")
    if proxy is not None and not isinstance(proxy, bool):
        raise TypeError(f"proxy must be True, False or None, got {proxy!r}")
    if max_size is not None and (
        isinstance(max_size, bool) or not isinstance(max_size, int) or max_size <= 0
    ):
        raise ValueError(f"max_size must be a positive number of bytes or None, got {max_size!r}")
    resolved_cookie: CookieOptions | CookieOptionsFactory
    if callable(cookie) and not isinstance(cookie, Mapping):
        resolved_cookie = cookie
    else:
        resolved_cookie = cookie_options(cookie)
    return SessionOptions(
        secrets=secrets_option(secret),
        name=name,
        cookie=resolved_cookie,
        resave=check_flag(resave, "resave"),
        save_uninitialized=check_flag(save_uninitialized, "save_uninitialized"),
        rolling=check_flag(rolling, "rolling"),
        unset=unset,  # type: ignore[arg-type]
        proxy=proxy,
        genid=genid,
        max_size=max_size,
        store_unavailable=store_unavailable,  # type: ignore[arg-type]
    )

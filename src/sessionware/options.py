"""Every option, its default and its validation, in one place.

Options are checked once, when the middleware is built, so that a typo fails at start-up with a
message naming the option, instead of surfacing as a missing cookie in production. The defaults
are express-session 1.19's, except ``resave`` and ``save_uninitialized`` which take express's own
v2 defaults (``False``).

The cookie's attributes are declared once, in ``CookieAttributes`` (names, types, defaults) and
``COOKIE_FIELDS`` (how each is validated, stored in express's JSON, written in Set-Cookie and read
from Flask's settings); the Cookie, the wire module and the Flask integration all read them.
"""

from __future__ import annotations

import inspect
import math
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypedDict, TypeVar

from .errors import WeakSecretWarning

N = TypeVar("N", int, float)

if TYPE_CHECKING:
    from typing_extensions import Required

SameSite = str | bool | None
Secure = bool | Literal["auto"] | None
CookieOptionsFactory = Callable[[Any], Mapping[str, Any]]
GenId = Callable[[Any], str]
Skip = Sequence[str] | Callable[[Any], bool]

DEFAULT_NAME = "connect.sid"
DEFAULT_HEADER = "X-Session-Token"
"""The header that carries the session token with ``transport="header"`` or ``"both"``."""
DEFAULT_MAX_SIZE = 256 * 1024
MAX_SID_LENGTH = 255
MAX_COOKIE_VALUE_LENGTH = 4096
MIN_SECRET_BYTES = 32
MAX_COOKIE_LIFETIME_MS = 400 * 24 * 3600 * 1000 * 1000
"""A thousand times the 400 days browsers cap cookies at: far enough to never bind a real app,
near enough that every expiry stays a representable date."""

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_DOMAIN = re.compile(
    r"^\.?[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$",
    re.IGNORECASE,
)
_PATH = re.compile(r"^/[\x20-\x3a\x3c-\x7e]*$")
_SID = re.compile(rf"^[\x21-\x7e]{{1,{MAX_SID_LENGTH}}}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
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
    return isinstance(sid, str) and _SID.fullmatch(sid) is not None


def seconds_to_ms(value: object, option: str) -> int:
    """Turn a number of seconds (int, float or timedelta) into whole milliseconds."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(f"{option} must be a number of seconds or a timedelta, got {value!r}")
    if value < 0:
        raise ValueError(f"{option} must not be negative, got {value!r}")
    ms = round(value * 1000)
    if ms > MAX_COOKIE_LIFETIME_MS:
        raise ValueError(f"{option} is out of range (at most {MAX_COOKIE_LIFETIME_MS // 1000} s)")
    return ms


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
    if not isinstance(value, str) or not _DOMAIN.fullmatch(value):
        raise ValueError(f"cookie domain must be a host name such as 'example.com', got {value!r}")
    return value


def check_path(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _PATH.fullmatch(value):
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


def _check_httponly(value: object) -> bool:
    return check_flag(value, "cookie httponly")


def _check_partitioned(value: object) -> bool | None:
    return None if value is None else check_flag(value, "cookie partitioned")


class CookieAttributes(NamedTuple):
    """The cookie's attributes besides its lifetime: their names, types and defaults.

    A tuple, so a Cookie shares it with the options it came from (no copy per request) and the
    wire module can cache the Set-Cookie text per distinct tuple.
    """

    path: str | None = "/"
    domain: str | None = None
    secure: Secure = None
    httponly: bool = True
    samesite: SameSite = None
    partitioned: bool | None = None
    priority: str | None = None


DEFAULT_ATTRIBUTES = CookieAttributes()


class CookieField(NamedTuple):
    """What one attribute means to each part of the library."""

    json_key: str
    check: Callable[[Any], Any]
    """Validates a value from the application (an option or an assignment)."""
    load: Callable[[Any], Any]
    """Reads the value stored by express (lenient where express is lenient)."""
    set_cookie: Callable[[Any], str | None]
    """The attribute as cookie@0.7.2 writes it, or ``None`` when it writes nothing."""
    flask_setting: str | None


_SAMESITE_TOKENS = {True: "Strict", "lax": "Lax", "strict": "Strict", "none": "None"}


def _token(name: str) -> Callable[[Any], str | None]:
    return lambda value: f"{name}={value}" if value else None


def _flag(name: str) -> Callable[[Any], str | None]:
    return lambda value: name if value else None


COOKIE_FIELDS: dict[str, CookieField] = {
    "path": CookieField("path", check_path, check_path, _token("Path"), "SESSION_COOKIE_PATH"),
    "domain": CookieField(
        "domain", check_domain, check_domain, _token("Domain"), "SESSION_COOKIE_DOMAIN"
    ),
    "secure": CookieField(
        "secure", check_secure, check_secure, _flag("Secure"), "SESSION_COOKIE_SECURE"
    ),
    "httponly": CookieField(
        "httpOnly",
        _check_httponly,
        lambda value: value is True,
        _flag("HttpOnly"),
        "SESSION_COOKIE_HTTPONLY",
    ),
    "samesite": CookieField(
        "sameSite",
        check_samesite,
        check_samesite,
        lambda value: f"SameSite={_SAMESITE_TOKENS[value]}" if value in _SAMESITE_TOKENS else None,
        "SESSION_COOKIE_SAMESITE",
    ),
    "partitioned": CookieField(
        "partitioned",
        _check_partitioned,
        lambda value: None if value is None else bool(value),
        _flag("Partitioned"),
        "SESSION_COOKIE_PARTITIONED",
    ),
    "priority": CookieField(
        "priority",
        check_priority,
        check_priority,
        lambda value: f"Priority={value.capitalize()}" if value else None,
        None,
    ),
}
JSON_ORDER = ("partitioned", "priority", None, "secure", "httponly", "domain", "path", "samesite")
"""express's stored key order after ``originalMaxAge``; ``None`` stands for ``expires``."""
SET_COOKIE_ORDER = (
    "domain",
    "path",
    None,
    "httponly",
    "secure",
    "partitioned",
    "priority",
    "samesite",
)
"""express's Set-Cookie attribute order; ``None`` stands for ``Expires``."""

assert tuple(COOKIE_FIELDS) == CookieAttributes._fields
assert set(JSON_ORDER) - {None} == set(SET_COOKIE_ORDER) - {None} == set(COOKIE_FIELDS)

COOKIE_OPTION_KEYS = ("max_age", "expires", *CookieAttributes._fields)


class CookieParams(TypedDict, total=False):
    """The ``cookie=`` option (keys as in Starlette's and Werkzeug's ``set_cookie``)."""

    max_age: float | timedelta | None
    expires: datetime | None
    path: str | None
    domain: str | None
    secure: Secure
    httponly: bool
    samesite: SameSite
    partitioned: bool | None
    priority: str | None


assert tuple(CookieParams.__annotations__) == COOKIE_OPTION_KEYS


@dataclass(frozen=True)
class CookieOptions:
    """Validated cookie options; times are whole milliseconds, as express stores them."""

    max_age_ms: int | None = None
    expires_ms: int | None = None
    attributes: CookieAttributes = DEFAULT_ATTRIBUTES


def check_attributes(values: Mapping[str, Any], base: CookieAttributes) -> CookieAttributes:
    """``base`` with the attributes named in ``values`` validated and replaced."""
    changes = {name: COOKIE_FIELDS[name].check(value) for name, value in values.items()}
    return base._replace(**changes) if changes else base


def cookie_options(value: Mapping[str, Any] | None) -> CookieOptions:
    """Validate a ``cookie=`` mapping (or what a cookie factory returned)."""
    if value is None:
        return CookieOptions()
    if not isinstance(value, Mapping):
        raise TypeError(f"cookie must be a mapping or a callable returning one, got {value!r}")
    for key in value:
        if key not in COOKIE_OPTION_KEYS:
            hint = _CAMEL_CASE_HINTS.get(key)
            suffix = f" (did you mean {hint!r}?)" if hint else ""
            raise TypeError(
                f"unknown cookie option {key!r}{suffix}; accepted: {', '.join(COOKIE_OPTION_KEYS)}"
            )
    max_age = value.get("max_age")
    expires = value.get("expires")
    if max_age is not None and expires is not None:
        raise ValueError("cookie takes max_age or expires, not both")
    attributes = {key: item for key, item in value.items() if key in COOKIE_FIELDS}
    if attributes.get("path", "/") is None:
        raise ValueError("cookie path must start with '/', got None")
    return CookieOptions(
        max_age_ms=None if max_age is None else seconds_to_ms(max_age, "cookie max_age"),
        expires_ms=None if expires is None else datetime_to_ms(expires, "cookie expires"),
        attributes=check_attributes(attributes, CookieAttributes()),
    )


_OURS_AND_FRAMEWORKS = (
    "sessionware",
    "starlette",
    "fastapi",
    "litestar",
    "flask",
    "quart",
    "django",
    "werkzeug",
    "asgiref",
)


def _configuring_line() -> int:
    """The ``stacklevel`` of the first caller outside sessionware and the web frameworks (the
    line that set the middleware up), however deep the integration calls this from."""
    frame = inspect.currentframe()
    level = 0
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        if level > 1 and module.partition(".")[0] not in _OURS_AND_FRAMEWORKS:
            return level
        frame = frame.f_back
        level += 1
    return 1


def positive(
    value: N, option: str, *, integer: bool = False, unit: str = "", alternatives: str = ""
) -> N:
    """``value`` when it is a positive number (an int when ``integer``): a bool, NaN, zero and
    anything else is refused, naming the option, its unit and what else it may be."""
    kinds: tuple[type, ...] = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not value > 0:
        noun = "int" if integer else "number"
        raise ValueError(f"{option} must be a positive {noun}{unit}{alternatives}, got {value!r}")
    return value


def check_user_key(user_key: object) -> str | None:
    """A session key that names the user (never ``cookie``, which holds the cookie), or
    ``None``: the one rule for the middleware's and the stores' ``user_key``."""
    if user_key is not None and (
        not isinstance(user_key, str) or not user_key or user_key == "cookie"
    ):
        raise ValueError(f"user_key must be a session key (a non-empty str), got {user_key!r}")
    return user_key


def timeout_option(value: object, option: str) -> float:
    """A timeout in seconds (a number or a timedelta), positive."""
    ms = seconds_to_ms(value, option)
    if ms <= 0:
        raise ValueError(f"{option} must be positive, got {value!r}")
    return ms / 1000


def skip_option(value: object) -> tuple[str, ...] | Callable[[Any], bool] | None:
    """Path prefixes (``["/static", "/health"]``) or a predicate of the request."""
    if value is None or (callable(value) and not isinstance(value, (str, Sequence))):
        return value
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        prefixes = tuple(value)
        if all(isinstance(prefix, str) and prefix.startswith("/") for prefix in prefixes):
            return prefixes
    raise TypeError(
        f"skip must be a list of path prefixes starting with '/' or a callable of the request, "
        f"got {value!r}"
    )


def secrets_option(value: object, *, require_strong: bool = False) -> tuple[bytes, ...]:
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
    weak = [index for index, key in enumerate(secrets) if len(key.strip()) < MIN_SECRET_BYTES]
    if weak:
        message = (
            f"secret number {weak[0] + 1} is shorter than {MIN_SECRET_BYTES} bytes: session ids "
            "signed with it can be forged by guessing it; use secrets.token_urlsafe(32)"
        )
        if require_strong:
            raise ValueError(message)
        warnings.warn(message, WeakSecretWarning, stacklevel=_configuring_line())
    return tuple(secrets)


@dataclass(frozen=True)
class SessionOptions:
    """The validated middleware options, shared by every request. The defaults live here."""

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
    require_strong_secret: bool = False
    skip: tuple[str, ...] | Callable[[Any], bool] | None = None
    merge: bool = True
    on_conflict: Literal["last_writer_wins", "error"] = "last_writer_wins"
    user_key: str | None = None
    idle_timeout: float | None = None
    absolute_timeout: float | None = None
    clock: Callable[[], float] | None = None
    cache_control: str | None = "private"
    on_event: Callable[[Any], None] | None = None
    max_sessions_per_user: int | None = None
    device_info: bool = False
    clear_site_data: str | None = None
    transport: Literal["cookie", "header", "both"] = "cookie"
    header_name: str = DEFAULT_HEADER
    lazy: bool = False
    migrate_from: tuple[Any, ...] = ()
    migrate_keep: bool = False


class _Options(TypedDict, total=False):
    """Every keyword both middlewares and ``init_app`` accept besides ``secret``."""

    store: object | None
    name: str
    cookie: CookieParams | CookieOptionsFactory | None
    resave: bool
    save_uninitialized: bool
    rolling: bool
    unset: Literal["keep", "destroy"]
    proxy: bool | None
    genid: GenId | None
    max_size: int | None
    store_unavailable: Literal["pass", "error"]
    require_strong_secret: bool
    skip: Skip | None
    merge: bool
    on_conflict: Literal["last_writer_wins", "error"]
    user_key: str | None
    idle_timeout: float | timedelta | None
    absolute_timeout: float | timedelta | None
    clock: Callable[[], float] | None
    cache_control: str | Literal[False] | None
    on_event: Callable[[Any], None] | None
    max_sessions_per_user: int | None
    device_info: bool
    clear_site_data: str | bool | None
    transport: Literal["cookie", "header", "both"]
    header_name: str
    lazy: bool
    migrate_from: Any
    migrate_keep: bool


class SessionOptionsDict(_Options, total=False):
    """The middlewares' keywords, for editors and mypy: ``secret`` is required."""

    secret: Required[str | bytes | Sequence[str | bytes]]


class SessionSettings(_Options, total=False):
    """``init_app``'s keywords: ``secret`` defaults to Flask's ``SECRET_KEY``."""

    secret: str | bytes | Sequence[str | bytes]


_OPTION_NAMES = frozenset(SessionOptionsDict.__annotations__)
assert {f.name for f in fields(SessionOptions)} - {"secrets"} | {
    "secret",
    "store",
} == _OPTION_NAMES


def migration_sources(value: object) -> tuple[Any, ...]:
    """``migrate_from``: a source of ``sessionware.migrate``, a list of them, or ``None``."""
    if value is None:
        return ()
    found = tuple(value) if isinstance(value, (list, tuple)) else (value,)
    for source in found:
        reads = getattr(source, "read_stored" if getattr(source, "stored", False) else "read", None)
        if not isinstance(getattr(source, "cookie_name", None), str) or not callable(reads):
            raise TypeError(
                "migrate_from takes sources from sessionware.migrate (StarletteCookieSessions, "
                f"FlaskCookieSessions...), got {source!r}"
            )
    return found


def header_option(value: object, option: str, header: str) -> str | None:
    """A header value an option adds to responses (``cache_control``, ``clear_site_data``):
    one line of text; ``None`` or ``False`` for none."""
    if value is None or value is False:
        return None
    if not isinstance(value, str) or not value.strip() or _CONTROL.search(value):
        raise ValueError(f"{option} must be a {header} value (one line) or None, got {value!r}")
    return value


CLEAR_COOKIES = '"cookies"'
"""``clear_site_data=True``: the browser drops every cookie of the site at logout."""


def check_prefix(name: str, attributes: CookieAttributes) -> None:
    """A browser drops, without a word, a ``__Host-`` cookie that is not ``Secure``, with path
    ``/`` and no domain, and a ``__Secure-`` one that is not ``Secure``: sessions would never
    stick. Refused here instead, naming the rule (prefixes match in any case, as browsers do)."""
    lowered = name.lower()
    if lowered.startswith("__host-"):
        rule = "a __Host- cookie needs secure=True, path '/' and no domain"
        if attributes.secure is not True or attributes.path != "/" or attributes.domain:
            raise ValueError(f"cookie name {name!r}: {rule} (browsers drop it otherwise)")
    elif lowered.startswith("__secure-") and attributes.secure is not True:
        raise ValueError(
            f"cookie name {name!r}: a __Secure- cookie needs secure=True (browsers drop it "
            "otherwise)"
        )


def session_options(options: Mapping[str, Any]) -> SessionOptions:
    """Validate the keyword arguments that both middlewares accept (``store`` excluded)."""
    unknown = sorted(set(options) - _OPTION_NAMES)
    if unknown:
        raise TypeError(
            f"unknown option {unknown[0]!r}; accepted: {', '.join(sorted(_OPTION_NAMES))}"
        )
    defaults = SessionOptions(secrets=())
    given = {key: value for key, value in options.items() if key not in ("secret", "store")}
    merged: dict[str, Any] = {
        f.name: given.get(f.name, getattr(defaults, f.name)) for f in fields(SessionOptions)
    }
    name = merged["name"]
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise ValueError(f"name must be a cookie name (an RFC 7230 token), got {name!r}")
    if merged["transport"] not in ("cookie", "header", "both"):
        raise ValueError(
            f"transport must be 'cookie', 'header' or 'both', got {merged['transport']!r}"
        )
    header = merged["header_name"]
    if not isinstance(header, str) or not _TOKEN.fullmatch(header):
        raise ValueError(f"header_name must be a header name (a token), got {header!r}")
    if merged["unset"] not in ("keep", "destroy"):
        raise ValueError(f"unset must be 'keep' or 'destroy', got {merged['unset']!r}")
    if merged["store_unavailable"] not in ("pass", "error"):
        raise ValueError(
            f"store_unavailable must be 'pass' or 'error', got {merged['store_unavailable']!r}"
        )
    genid = merged["genid"]
    if genid is not None and not callable(genid):
        raise TypeError(f"genid must be a callable taking the request, got {genid!r}")
    proxy = merged["proxy"]
    if proxy is not None and not isinstance(proxy, bool):
        raise TypeError(f"proxy must be True, False or None, got {proxy!r}")
    if merged["max_size"] is not None:
        positive(
            merged["max_size"], "max_size", integer=True, unit=" of bytes", alternatives=" or None"
        )
    if merged["on_conflict"] not in ("last_writer_wins", "error"):
        raise ValueError(
            f"on_conflict must be 'last_writer_wins' or 'error', got {merged['on_conflict']!r}"
        )
    for flag in (
        "resave",
        "save_uninitialized",
        "rolling",
        "require_strong_secret",
        "merge",
        "device_info",
        "lazy",
        "migrate_keep",
    ):
        check_flag(merged[flag], flag)
    merged["skip"] = skip_option(merged["skip"])
    merged["migrate_from"] = migration_sources(merged["migrate_from"])
    check_user_key(merged["user_key"])
    if merged["max_sessions_per_user"] is not None:
        positive(merged["max_sessions_per_user"], "max_sessions_per_user", integer=True)
        if merged["user_key"] is None:
            raise ValueError("max_sessions_per_user needs user_key: the key that names the user")
    if merged["device_info"] and merged["user_key"] is None:
        raise ValueError("device_info needs user_key: a user's devices are their sessions")
    for timeout in ("idle_timeout", "absolute_timeout"):
        if merged[timeout] is not None:
            merged[timeout] = timeout_option(merged[timeout], timeout)
    clock = merged["clock"]
    if clock is not None and not callable(clock):
        raise TypeError(f"clock must be a callable returning epoch seconds, got {clock!r}")
    merged["cache_control"] = header_option(
        merged["cache_control"], "cache_control", "Cache-Control"
    )
    if merged["clear_site_data"] is True:
        merged["clear_site_data"] = CLEAR_COOKIES
    merged["clear_site_data"] = header_option(
        merged["clear_site_data"], "clear_site_data", "Clear-Site-Data"
    )
    if merged["on_event"] is not None and not callable(merged["on_event"]):
        raise TypeError(
            f"on_event must be a callable taking a SessionEvent, got {merged['on_event']!r}"
        )
    cookie = merged["cookie"]
    if not isinstance(cookie, CookieOptions) and not (
        callable(cookie) and not isinstance(cookie, Mapping)
    ):
        merged["cookie"] = cookie_options(cookie)
    if isinstance(merged["cookie"], CookieOptions):
        check_prefix(name, merged["cookie"].attributes)
    merged["secrets"] = secrets_option(
        options.get("secret"), require_strong=merged["require_strong_secret"]
    )
    return SessionOptions(**merged)

"""The Cookie request header and the Set-Cookie response header, as node's cookie@0.7.2 does them.

Parsing looks for one name only (the session cookie): the first occurrence wins, surrounding
spaces and tabs are trimmed, one pair of double quotes is removed, and the value is
percent-decoded only when it contains ``%`` and decodes cleanly as UTF-8.
Serialization writes attributes in express-session's order and never writes ``Max-Age``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from email.utils import formatdate
from urllib.parse import quote, unquote_to_bytes

from .options import COOKIE_FIELDS, SET_COOKIE_ORDER, CookieAttributes

_MALFORMED_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_URI_COMPONENT_SAFE = "-_.!~*'()"


def decode_uri_component(value: str) -> str:
    """Percent-decode like JavaScript's decodeURIComponent, returning ``value`` when that throws."""
    if _MALFORMED_ESCAPE.search(value):
        return value
    try:
        return unquote_to_bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        return value


_ASCII_ESCAPES = {
    code: f"%{code:02X}"
    for code in range(128)
    if not (chr(code).isascii() and (chr(code).isalnum() or chr(code) in _URI_COMPONENT_SAFE))
}


def encode_uri_component(value: str) -> str:
    """Percent-encode like JavaScript's encodeURIComponent."""
    if value.isascii():
        return value.translate(_ASCII_ESCAPES)
    return quote(value, safe=_URI_COMPONENT_SAFE)


def find_raw_cookie(header: str, name: str) -> str | None:
    """The first value of cookie ``name``, trimmed and unquoted but still percent-encoded."""
    if len(header) < 2 or name not in header:
        return None
    for pair in header.split(";"):
        key, eq, value = pair.partition("=")
        if not eq or key.strip(" \t") != name:
            continue
        value = value.strip(" \t")
        if len(value) >= 1 and value[0] == '"' and value[-1] == '"':
            value = value[1:-1]
        return value
    return None


def decode_cookie_value(raw: str) -> str:
    """cookie@0.7.2 decodes a value only when it contains ``%``."""
    return decode_uri_component(raw) if "%" in raw else raw


def find_cookie(header: str, name: str) -> str | None:
    """Return the value of the first cookie called ``name`` in a Cookie header, or ``None``."""
    value = find_raw_cookie(header, name)
    return None if value is None else decode_cookie_value(value)


_http_date_cache: list[tuple[int, str]] = [(-1, "")]
"""The last second formatted and its text, one tuple so that threads never see half of it."""


def http_date(epoch_ms: int) -> str:
    """Format a time the way JavaScript's ``Date.prototype.toUTCString`` does (one format per
    second at most: a session's Expires changes once a second)."""
    second = epoch_ms // 1000
    cached = _http_date_cache[0]
    if cached[0] == second:
        return cached[1]
    text = formatdate(second, usegmt=True)
    _http_date_cache[0] = (second, text)
    return text


_attribute_text: dict[CookieAttributes, tuple[str, str]] = {}


def _attribute_halves(attributes: CookieAttributes) -> tuple[str, str]:
    """The attribute text before and after ``Expires``, from the field table, built once per
    distinct set of attributes (an app has one or a few)."""
    halves = _attribute_text.get(attributes)
    if halves is None:
        before: list[str] = []
        after: list[str] = []
        side = before
        for name in SET_COOKIE_ORDER:
            if name is None:
                side = after
                continue
            token = COOKIE_FIELDS[name].set_cookie(getattr(attributes, name))
            if token is not None:
                side.append("; " + token)
        halves = ("".join(before), "".join(after))
        if len(_attribute_text) > 256:
            _attribute_text.clear()
        _attribute_text[attributes] = halves
    return halves


def serialize_set_cookie(
    name: str, encoded_value: str, attributes: CookieAttributes, expires_ms: int | None
) -> str:
    """Build a Set-Cookie value; ``encoded_value`` is already URI-component encoded. Both
    caches are read here rather than through their functions: this runs on most responses."""
    halves = _attribute_text.get(attributes) or _attribute_halves(attributes)
    if expires_ms is None:
        return f"{name}={encoded_value}{halves[0]}{halves[1]}"
    cached = _http_date_cache[0]
    date = cached[1] if cached[0] == expires_ms // 1000 else http_date(expires_ms)
    return f"{name}={encoded_value}{halves[0]}; Expires={date}{halves[1]}"


def vary_missing(vary_values: Iterable[str], names: tuple[str, ...]) -> str | None:
    """The ``Vary`` value a response whose Vary values are these must still get, for the
    request headers the session came from (``Cookie``, the token's header): those not named
    yet, or ``None`` (all named, or ``*``)."""
    named: set[str] = set()
    for value in vary_values:
        for item in value.split(","):
            named.add(item.strip().lower())
    if "*" in named:
        return None
    missing = [name for name in names if name.lower() not in named]
    return ", ".join(missing) if missing else None


def adds_cache_control(private: bool, app_set_one: bool) -> bool:
    """Whether the response gets the ``cache_control`` option's header: one that hands out a
    session (a Set-Cookie, a token) must not be kept by a shared cache, which would hand it to
    the next client (OWASP), unless the app already said how to cache it."""
    return private and not app_set_one


def now_ms() -> int:
    """The current time in whole milliseconds, the unit every express timestamp uses."""
    return int(time.time() * 1000)


MAX_AGENT_LENGTH = 256
"""A User-Agent is kept to this many characters: a client must not grow its session at will."""


def client_of(request: object) -> dict[str, str]:
    """The address and User-Agent of a request, as ``device_info`` records them: an ASGI scope's
    ``client`` (what uvicorn's or hypercorn's proxy settings leave there), a WSGI environ's or
    Django ``META``'s ``REMOTE_ADDR`` (what ProxyFix or the server leaves there). Never a
    forwarding header read here: only the app's proxy settings know which to trust."""
    address: object = None
    if isinstance(request, dict) and "type" in request:
        client = request.get("client")
        address = client[0] if isinstance(client, (tuple, list)) and client else None
    else:
        environ = request if isinstance(request, dict) else getattr(request, "META", None)
        if isinstance(environ, dict):
            address = environ.get("REMOTE_ADDR")
    agent = header_of(request, "user-agent")
    facts: dict[str, str] = {}
    if isinstance(address, str) and address:
        facts["address"] = address
    if isinstance(agent, str) and agent:
        facts["agent"] = agent[:MAX_AGENT_LENGTH]
    return facts


def header_of(request: object, name: str) -> str | None:
    """A request header, by its lowercase name, from what an adapter hands the engine: an ASGI
    scope, a WSGI environ, or a Django request (its ``META``)."""
    if isinstance(request, dict) and "type" in request:
        wanted = name.encode("latin-1")
        for key, value in request.get("headers") or ():
            if key == wanted:
                return str(value.decode("latin-1"))
        return None
    environ = request if isinstance(request, dict) else getattr(request, "META", None)
    if not isinstance(environ, dict):
        return None
    value = environ.get("HTTP_" + name.upper().replace("-", "_"))
    return value if isinstance(value, str) else None


def escape_glob(text: str) -> str:
    """``text`` matched literally by a Redis SCAN pattern."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


def chunk_name(name: str, index: int) -> str:
    """The name of a cookie store's ``index``-th cookie (the first is ``name`` itself)."""
    return name if index == 0 else f"{name}.{index}"

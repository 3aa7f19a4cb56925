"""The Cookie request header and the Set-Cookie response header, as node's cookie@0.7.2 does them.

Parsing looks for one name only (the session cookie): the first occurrence wins, surrounding
spaces and tabs are trimmed, one pair of double quotes is removed, and the value is
percent-decoded only when it contains ``%`` and decodes cleanly as UTF-8.
Serialization writes attributes in express-session's order and never writes ``Max-Age``.
"""

from __future__ import annotations

import re
import time
from email.utils import formatdate
from typing import NamedTuple
from urllib.parse import quote, unquote_to_bytes

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


class CookieAttributes(NamedTuple):
    """What the Set-Cookie header carries besides the name and value, already validated."""

    domain: str | None
    path: str | None
    expires_ms: int | None
    httponly: bool
    secure: bool
    partitioned: bool
    priority: str | None
    samesite: str | bool | None


_PRIORITY = {"low": "Low", "medium": "Medium", "high": "High"}
_SAMESITE = {"lax": "Lax", "strict": "Strict", "none": "None"}


class _HttpDateCache:
    """Formats one HTTP date per second at most: a session's Expires changes once a second."""

    __slots__ = ("second", "text")

    def __init__(self) -> None:
        self.second = -1
        self.text = ""

    def format(self, epoch_ms: int) -> str:
        second = epoch_ms // 1000
        if second != self.second:
            self.text = formatdate(second, usegmt=True)
            self.second = second
        return self.text


_http_date = _HttpDateCache()


def http_date(epoch_ms: int) -> str:
    """Format a time the way JavaScript's ``Date.prototype.toUTCString`` does."""
    return _http_date.format(epoch_ms)


def serialize_set_cookie(name: str, encoded_value: str, attrs: CookieAttributes) -> str:
    """Build a Set-Cookie value; ``encoded_value`` is already URI-component encoded."""
    parts = [f"{name}={encoded_value}"]
    if attrs.domain:
        parts.append(f"Domain={attrs.domain}")
    if attrs.path:
        parts.append(f"Path={attrs.path}")
    if attrs.expires_ms is not None:
        parts.append(f"Expires={http_date(attrs.expires_ms)}")
    if attrs.httponly:
        parts.append("HttpOnly")
    if attrs.secure:
        parts.append("Secure")
    if attrs.partitioned:
        parts.append("Partitioned")
    if attrs.priority:
        parts.append(f"Priority={_PRIORITY[attrs.priority.lower()]}")
    if attrs.samesite:
        samesite = "Strict" if attrs.samesite is True else _SAMESITE[str(attrs.samesite).lower()]
        parts.append(f"SameSite={samesite}")
    return "; ".join(parts)


def now_ms() -> int:
    """The current time in whole milliseconds, the unit every express timestamp uses."""
    return int(time.time() * 1000)

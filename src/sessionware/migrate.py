"""Switching to sessionware without signing anyone out: the sessions of the library an app used
before, read once and carried over (the ``migrate_from`` option).

On a request that carries a source's cookie and no sessionware cookie, the source's session
becomes a new sessionware session with the same data; the response sets sessionware's cookie
and expires the old one (``migrate_keep=True`` keeps it, for two app versions side by side).
A source's cookie whose signature fails, that has expired or that holds anything but a JSON
object is a request without a session, never an error.

Sources verify signatures with the source library's own scheme (itsdangerous for Starlette and
Flask): ``pip install 'sessionware[migrate]'``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from ._wire import find_raw_cookie
from .errors import extra_needed

logger = logging.getLogger("sessionware")

Migration = tuple[dict[str, Any], tuple[tuple[str, str], ...]]
"""A session carried over: its data, and the headers that expire the source's cookie."""


class Source(Protocol):
    """Where sessions come from: a cookie name, and what a request's value of it holds."""

    cookie_name: str

    def read(self, value: str) -> dict[str, Any] | None:
        """The session a cookie value holds, or ``None`` when it does not verify."""


class StarletteCookieSessions:
    """Starlette's and FastAPI's own ``SessionMiddleware``: the data as base64 JSON in the
    cookie, signed by itsdangerous's ``TimestampSigner`` with ``secret_key``; ``max_age`` as the
    app configured it (``None``: no expiry)."""

    def __init__(
        self,
        secret_key: str,
        session_cookie: str = "session",
        max_age: int | None = 14 * 24 * 60 * 60,
    ) -> None:
        with extra_needed("migrate", "itsdangerous"):
            from itsdangerous import TimestampSigner
        self.cookie_name = session_cookie
        self.max_age = max_age
        self.signer = TimestampSigner(str(secret_key))

    def read(self, value: str) -> dict[str, Any] | None:
        from itsdangerous import BadSignature

        try:
            signed = self.signer.unsign(value.encode("latin-1"), max_age=self.max_age)
            return _object(json.loads(base64.b64decode(signed)))
        except (BadSignature, binascii.Error, ValueError, UnicodeError):
            return None


class FlaskCookieSessions:
    """Flask's default ``SecureCookieSessionInterface``: itsdangerous's
    ``URLSafeTimedSerializer`` with Flask's salt, HMAC key derivation and SHA-1, over Flask's
    tagged JSON. ``secret_key`` may be a list, newest first (``SECRET_KEY_FALLBACKS``).
    ``max_age`` is ``PERMANENT_SESSION_LIFETIME`` in seconds."""

    def __init__(
        self,
        secret_key: str | bytes | Sequence[str | bytes],
        salt: str = "cookie-session",
        session_cookie: str = "session",
        max_age: int | None = 31 * 24 * 60 * 60,
    ) -> None:
        with extra_needed("migrate", "itsdangerous"):
            from itsdangerous import URLSafeTimedSerializer
        with extra_needed("flask", "flask"):
            from flask.json.tag import TaggedJSONSerializer
        keys: list[Any] = [secret_key] if isinstance(secret_key, (str, bytes)) else list(secret_key)
        self.cookie_name = session_cookie
        self.max_age = max_age
        self.serializer = URLSafeTimedSerializer(
            list(reversed(keys)),  # itsdangerous signs with the last key
            salt=salt,
            serializer=TaggedJSONSerializer(),
            signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha1},
        )

    def read(self, value: str) -> dict[str, Any] | None:
        from itsdangerous import BadSignature

        try:
            return _object(_plain(self.serializer.loads(value, max_age=self.max_age)))
        except (BadSignature, ValueError, TypeError, UnicodeError):
            return None


def _object(value: object) -> dict[str, Any] | None:
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        return None
    return value


def _plain(value: Any) -> Any:
    """Flask's tagged JSON gives back tuples, bytes, datetimes, UUIDs and Markup: as JSON
    holds them (lists, text, ISO dates)."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "isoformat"):
        return value  # sessionware's JSON writes datetimes as JavaScript does
    return str(value)


def migrated(
    sources: tuple[Source, ...], cookie_header: str, keep: bool, own_name: str
) -> Migration | None:
    """The first source's session the Cookie header carries, and the Set-Cookie headers that
    expire its cookie: none with ``keep``, nor when sessionware's cookie has the same name (as
    under Flask, where both are ``session``: the new cookie replaces the old). ``None`` when no
    source has one."""
    for source in sources:
        value = find_raw_cookie(cookie_header, source.cookie_name)
        if not value:
            continue
        data = source.read(value)
        if data is None:
            logger.info("a %s cookie did not verify: no session to carry over", source.cookie_name)
            continue
        expire = () if keep or source.cookie_name == own_name else ((
            "Set-Cookie",
            f"{source.cookie_name}=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0",
        ),)  # fmt: skip
        return data, expire
    return None

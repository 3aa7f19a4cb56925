"""Exceptions raised by sessionware.

They all derive from ``SessionError`` so an application can catch the library's failures in one
``except`` without also catching its own bugs.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator


def sid_tag(sid: str) -> str:
    """How logs name a session: a short hash that ties one session's lines together without
    the id itself, which is a credential (OWASP: log a hash of the session id, never the id)."""
    return "sid#" + hashlib.sha256(sid.encode()).hexdigest()[:12]


@contextlib.contextmanager
def extra_needed(extra: str, *packages: str) -> Iterator[None]:
    """Around the imports of an optional client: a missing one says which extra installs it,
    where a bare ``No module named 'redis'`` leaves the user to guess."""
    try:
        yield
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing not in packages:
            raise
        raise ModuleNotFoundError(
            f"{missing} is not installed; it comes with: pip install 'sessionware[{extra}]'",
            name=exc.name,
        ) from exc


class SessionError(Exception):
    """Base class of every error sessionware raises on purpose. ``sid`` is the session it is
    about: its message names the id (useful to the app), ``log_text()`` a hash of it."""

    def __init__(self, *args: object, sid: str | None = None) -> None:
        super().__init__(*args)
        self.sid = sid

    def log_text(self) -> str:
        text = str(self)
        return text if self.sid is None else text.replace(repr(self.sid), sid_tag(self.sid))


def loggable(error: BaseException) -> str:
    """An error's text for a log line: a session error's with its id hashed."""
    return error.log_text() if isinstance(error, SessionError) else str(error)


class SessionNotFound(SessionError, KeyError):
    """A store may raise this from ``get`` instead of returning ``None`` (express's ENOENT)."""


class SessionTooLarge(SessionError, ValueError):
    """The serialized session is over ``max_size``: not written, the stored copy intact."""


class SessionDestroyed(SessionError):
    """The session was destroyed in this request; only ``regenerate()`` can start a new one."""


class SessionCorrupt(SessionError, ValueError):
    """What a store holds under a session id is not a session (not JSON, not an object).

    The middleware logs it with the id and gives the request a fresh session: a corrupt value
    never locks a user out.
    """


class HeadersAlreadySent(SessionError):
    """The response headers left before ``regenerate()`` / ``destroy()``: the browser would never
    learn the new cookie, so the call is refused instead of silently half-done."""


class SessionConflict(SessionError):
    """Another request changed a key this request changed too, and the app asked for an error
    (``on_conflict="error"``) rather than the last writer winning."""


class StoreUnavailable(SessionError):
    """The store reported ``disconnect`` (or timed out) and the middleware was told to fail."""


class WeakSecretWarning(UserWarning):
    """A secret shorter than 32 bytes: short secrets can be guessed offline from one cookie."""

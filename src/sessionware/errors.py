"""Exceptions raised by sessionware.

They all derive from ``SessionError`` so an application can catch the library's failures in one
``except`` without also catching its own bugs.
"""

from __future__ import annotations


class SessionError(Exception):
    """Base class of every error sessionware raises on purpose."""


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

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


class StoreUnavailable(SessionError):
    """The store reported ``disconnect`` (or timed out) and the middleware was told to fail."""

"""sessionware: express-session's server-side sessions for ASGI and WSGI applications."""

from .asgi import SessionMiddleware
from .cookie import Cookie
from .errors import (
    SessionDestroyed,
    SessionError,
    SessionNotFound,
    SessionTooLarge,
    StoreUnavailable,
)
from .session import Session, SessionBase, SessionRecord, SyncSession
from .stores.base import Store, SyncStore
from .stores.memory import MemoryStore
from .wsgi import WSGISessionMiddleware

__all__ = [
    "Cookie",
    "MemoryStore",
    "Session",
    "SessionBase",
    "SessionDestroyed",
    "SessionError",
    "SessionMiddleware",
    "SessionNotFound",
    "SessionRecord",
    "SessionTooLarge",
    "Store",
    "StoreUnavailable",
    "SyncSession",
    "SyncStore",
    "WSGISessionMiddleware",
]

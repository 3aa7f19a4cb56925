"""sessionware: express-session's server-side sessions for ASGI and WSGI applications."""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from . import _engine
from ._records import SessionRecord
from ._runtime import (
    NoSession,
    aload_session,
    create_session,
    create_sync_session,
    load_session,
)
from .asgi import SessionMiddleware, session_of
from .cookie import Cookie
from .devices import Device
from .errors import (
    HeadersAlreadySent,
    SessionConflict,
    SessionCorrupt,
    SessionDestroyed,
    SessionError,
    SessionNotFound,
    SessionTooLarge,
    StoreUnavailable,
    WeakSecretWarning,
)
from .events import SessionEvent
from .session import Session, SessionBase, SyncSession
from .stores.base import RecordStore, Store, SyncRecordStore, SyncStore
from .stores.memory import MemoryStore
from .wsgi import WSGISessionMiddleware

compiled: bool = not _engine.__file__.endswith(".py")
"""Whether this install runs the core compiled with mypyc (a platform wheel, or a checkout
built with ``SESSIONWARE_COMPILE=1``); the pure-Python sources behave the same, slower."""

try:
    __version__: str = _version("sessionware")
    """The installed distribution's version (pyproject.toml holds the one literal)."""
except PackageNotFoundError:  # sources on the path without an install
    __version__ = "0+unknown"

__all__ = [
    "Cookie",
    "Device",
    "HeadersAlreadySent",
    "MemoryStore",
    "NoSession",
    "RecordStore",
    "Session",
    "SessionBase",
    "SessionConflict",
    "SessionCorrupt",
    "SessionDestroyed",
    "SessionError",
    "SessionEvent",
    "SessionMiddleware",
    "SessionNotFound",
    "SessionRecord",
    "SessionTooLarge",
    "Store",
    "StoreUnavailable",
    "SyncRecordStore",
    "SyncSession",
    "SyncStore",
    "WSGISessionMiddleware",
    "WeakSecretWarning",
    "__version__",
    "aload_session",
    "compiled",
    "create_session",
    "create_sync_session",
    "load_session",
    "session_of",
]

"""What both adapters and every integration share: options + store + driver + engine, the
store's health, the one failure policy, and sessions outside a request.

The engine decides; this layer performs. The adapters only move bytes and render what this layer
returns (a session, or a ``Failure`` to answer with).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Generic, NamedTuple, TypeVar

from ._driver import StoreDriver, log_corrupt
from ._engine import Engine
from ._lazy import lazy_class
from ._native import mypyc_attr
from ._records import Get
from .errors import SessionConflict, SessionError, StoreUnavailable
from .events import SessionEvent
from .options import SessionOptions, session_options
from .session import Session, SessionBase, SyncSession
from .stores.base import index_users
from .stores.memory import MemoryStore

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .options import SessionOptionsDict

logger = logging.getLogger("sessionware")

App = TypeVar("App")

IMPLICIT_STORE = (
    "sessionware: no store given, so sessions live in this process's memory (MemoryStore): "
    "each worker process has its own, and a restart signs everyone out. For several workers "
    "or restarts, pass a shared store (store=RedisStore(url=...), PostgresStore, SQLiteStore; "
    "see the README's 'Stores'); pass store=MemoryStore() to keep this one without the warning"
)


STORE_DOWN = "the session store is unavailable, so this request has no session"
NOT_HERE = (
    "this request has no session: its path is outside the session cookie's path, or the "
    "middleware's skip option matched it"
)


class NoSession(Mapping[str, Any]):
    """The session of a request that has none (``scope["session"]`` under ASGI, Django's
    ``request.session``): any use of it raises an error that says why, where the framework's
    own says the middleware is not installed, which it is. ``StoreUnavailable`` when the store
    is down, which the middleware answers with the failure policy's 503."""

    __slots__ = ("reason", "unavailable")

    def __init__(self, reason: str, *, unavailable: bool = False) -> None:
        self.reason = reason
        self.unavailable = unavailable

    def _refuse(self) -> Any:
        if self.unavailable:
            raise StoreUnavailable(self.reason)
        raise SessionError(self.reason)

    def __getitem__(self, key: str) -> Any:
        return self._refuse()

    def __setitem__(self, key: str, value: Any) -> None:
        self._refuse()

    def __delitem__(self, key: str) -> None:
        self._refuse()

    def __iter__(self) -> Iterator[str]:
        return self._refuse()  # type: ignore[no-any-return]

    def __len__(self) -> int:
        return self._refuse()  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self._refuse()

    def __repr__(self) -> str:
        return f"<no session: {self.reason}>"


class Failure(NamedTuple):
    """An answer the middleware gives instead of the app's: status, reason and body.

    Only ``headers`` go out with it: none of the app's (a ``Location`` or a ``Set-Cookie`` of a
    response that failed must never reach the browser).
    """

    status: int
    reason: str

    @property
    def body(self) -> bytes:
        return self.reason.encode()

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        return (
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(self.body))),
        )

    @property
    def status_line(self) -> str:
        return f"{self.status} {self.reason}"

    @property
    def websocket_close_code(self) -> int:
        return 1013 if self.status == 503 else 1011


SERVER_ERROR = Failure(500, "Internal Server Error")
CONFLICT = Failure(409, "Conflict")
UNAVAILABLE = Failure(503, "Service Unavailable")


class SessionRuntime:
    """Validated options, the store and its driver, the engine, whether the store is up, and the
    failure policy every adapter renders."""

    def __init__(
        self, options: SessionOptions, store: object | None, session_class: type[SessionBase]
    ) -> None:
        self.options = options
        if store is None:
            logger.warning(IMPLICIT_STORE)
        self.store = MemoryStore() if store is None else store
        if options.user_key is not None:
            index_users(self.store, options.user_key)
        self.driver = StoreDriver.for_store(self.store)
        sealer: Any = self.store if getattr(self.store, "seals_sessions", False) else None
        self.engine = Engine(
            options,
            partial(session_class, self.driver),
            has_touch=self.driver.has_touch,
            on_corrupt=log_corrupt,
            emit=None if options.on_event is None else partial(_emit_safely, options.on_event),
            make_lazy=partial(lazy_class(session_class), self.driver) if options.lazy else None,
            sealer=sealer,
        )
        self.store_ready = True
        on = getattr(self.store, "on", None)
        if callable(on):
            on("disconnect", self._on_disconnect)
            on("connect", self._on_connect)

    @classmethod
    def from_options(
        cls, options: Mapping[str, Any], session_class: type[SessionBase]
    ) -> SessionRuntime:
        return cls(session_options(options), options.get("store"), session_class)

    def _on_disconnect(self, *args: object) -> None:
        self.store_ready = False
        self.engine.tell("store_unavailable")

    def _on_connect(self, *args: object) -> None:
        self.store_ready = True
        self.engine.tell("store_available")

    # -- the failure policy ------------------------------------------------------------------

    def when_down(self) -> Failure | None:
        """The store is known to be down: 503, or ``None`` to serve the request sessionless."""
        return UNAVAILABLE if self.options.store_unavailable == "error" else None

    def load_failed(self, error: Exception) -> Failure | None:
        if isinstance(error, StoreUnavailable):
            logger.warning("session store unavailable while loading a session: %s", error)
            return self.when_down()
        _log_error("could not load the session", error)
        return SERVER_ERROR

    def app_ran_into(self, error: StoreUnavailable) -> Failure:
        """The app used the session (or one of its methods) and the store was unavailable."""
        logger.warning("session store unavailable during the request: %s", error)
        return UNAVAILABLE

    def save_failed(self, error: Exception, *, headers_sent: bool = False) -> Failure | None:
        """The answer to a failed store call at the end of the request; ``None`` once the
        headers are gone (the failure can only be logged then)."""
        if headers_sent:
            _log_error("could not store the session at the end of a streamed response", error)
            return None
        if isinstance(error, StoreUnavailable):
            logger.warning("session store unavailable while saving a session: %s", error)
            return UNAVAILABLE
        if isinstance(error, SessionConflict):
            logger.warning("session not saved: %s", error.log_text())
            self.engine.tell("conflict", error.sid)
            return CONFLICT
        _log_error("could not store the session", error)
        return SERVER_ERROR


def _emit_safely(listener: Callable[[SessionEvent], object], event: SessionEvent) -> None:
    """A listener that raises is logged; it never fails the request it was told about."""
    try:
        listener(event)
    except Exception:
        logger.exception("the on_event listener failed on a %r event", event.kind)


def _log_error(what: str, error: Exception) -> None:
    """A session error is logged as its text, the id hashed (a traceback would print the id);
    anything else, a bug, with its traceback."""
    if isinstance(error, SessionError) and error.sid is not None:
        logger.error("%s: %s", what, error.log_text())
    else:
        logger.error(what, exc_info=error)


@mypyc_attr(allow_interpreted_subclasses=True)
class BaseSessionMiddleware(Generic[App]):
    """The constructor both middlewares share; subclasses name their session class."""

    session_class: ClassVar[type[SessionBase]]

    def __init__(self, app: App, **options: Unpack[SessionOptionsDict]) -> None:
        self.app = app
        self.runtime = SessionRuntime.from_options(options, self.session_class)
        self.options = self.runtime.options
        self.store = self.runtime.store
        self.driver = self.runtime.driver
        self.engine = self.runtime.engine

    @property
    def store_ready(self) -> bool:
        return self.runtime.store_ready


def _detached_engine(store: object, session_class: type[SessionBase]) -> Engine:
    """An engine for sessions that belong to no request: they set no cookie (so need no
    secret) and keep the default options."""
    driver = StoreDriver.for_store(store)
    return Engine(
        SessionOptions(secrets=()),
        partial(session_class, driver),
        has_touch=driver.has_touch,
        on_corrupt=log_corrupt,
    )


def _detached(store: object, session_class: type[SessionBase], sid: str, data: Any) -> Any:
    return _detached_engine(store, session_class).detached_flow().inflate(sid, data)


def create_session(store: object, sid: str, data: Mapping[str, Any]) -> Session:
    """A ``Session`` (async methods) over ``data``, bound to ``store``, outside any request."""
    session = _detached(store, Session, sid, data)
    assert isinstance(session, Session)
    return session


def create_sync_session(store: object, sid: str, data: Mapping[str, Any]) -> SyncSession:
    """A ``SyncSession`` over ``data``, bound to ``store``, outside any request."""
    session = _detached(store, SyncSession, sid, data)
    assert isinstance(session, SyncSession)
    return session


async def aload_session(store: object, sid: str) -> Session | None:
    """The stored session ``sid`` as a ``Session`` whose save/destroy/reload talk to ``store``."""
    data = await StoreDriver.for_store(store).acall(Get(sid))
    return None if not data else create_session(store, sid, data)


def load_session(store: object, sid: str) -> SyncSession | None:
    """The stored session ``sid`` as a ``SyncSession``, from sync code (any store)."""
    data = StoreDriver.for_store(store).call(Get(sid))
    return None if not data else create_sync_session(store, sid, data)

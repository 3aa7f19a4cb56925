"""What both middlewares (and the Flask integration) set up once: options, store, engine.

The ASGI and WSGI adapters differ only in how they move bytes and wait for the store; everything
they hold is built here, in one place.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from .engine import Engine
from .options import CookieOptionsFactory, GenId, SessionOptions, session_options
from .session import SessionBase
from .stores.base import StoreDriver
from .stores.memory import MemoryStore

App = TypeVar("App")


class SessionRuntime:
    """Validated options, the store and its driver, the engine, and whether the store is up."""

    def __init__(
        self, options: SessionOptions, store: object | None, session_class: type[SessionBase]
    ) -> None:
        self.options = options
        self.store = MemoryStore() if store is None else store
        self.driver = StoreDriver.for_store(self.store)
        self.engine = Engine(options, self.driver, session_class)
        self.store_ready = True
        on = getattr(self.store, "on", None)
        if callable(on):
            on("disconnect", self._on_disconnect)
            on("connect", self._on_connect)

    def _on_disconnect(self, *args: object) -> None:
        self.store_ready = False

    def _on_connect(self, *args: object) -> None:
        self.store_ready = True


class BaseSessionMiddleware(Generic[App]):
    """The constructor both middlewares share; subclasses name their session class."""

    session_class: type[SessionBase]

    def __init__(
        self,
        app: App,
        *,
        secret: str | bytes | list[str] | list[bytes] | tuple[str | bytes, ...],
        store: object | None = None,
        name: str = "connect.sid",
        cookie: dict[str, Any] | CookieOptionsFactory | None = None,
        resave: bool = False,
        save_uninitialized: bool = False,
        rolling: bool = False,
        unset: str = "keep",
        proxy: bool | None = None,
        genid: GenId | None = None,
        max_size: int | None = 256 * 1024,
        store_unavailable: str = "pass",
    ) -> None:
        self.app = app
        options = session_options(
            secret=secret,
            name=name,
            cookie=cookie,
            resave=resave,
            save_uninitialized=save_uninitialized,
            rolling=rolling,
            unset=unset,
            proxy=proxy,
            genid=genid,
            max_size=max_size,
            store_unavailable=store_unavailable,
        )
        self.runtime = SessionRuntime(options, store, self.session_class)
        self.options = options
        self.store = self.runtime.store
        self.driver = self.runtime.driver
        self.engine = self.runtime.engine

    @property
    def store_ready(self) -> bool:
        return self.runtime.store_ready

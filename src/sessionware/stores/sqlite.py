"""SQLite store: sessions in a file with no server, shared by every worker process on the host.

``SQLiteStore("sessions.db")`` (or ``":memory:"``): the stdlib ``sqlite3``, the table of Node's
connect-sqlite3 (``sessions(sid PRIMARY KEY, expired, sess)``, ``expired`` in epoch ms) plus an
index on ``expired``. WAL journal, a busy timeout, one short transaction per statement, one
connection per thread. Several processes may use one file at once; a process killed in the middle
of a write leaves the file intact with every acknowledged save in it. Under ASGI it runs on worker
threads of its own, so it never blocks the event loop.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from .sql import SQLITE, Sql, SqlOptions, SyncSqlStore, fetched, identifier
from .toolkit import UNAVAILABLE

if TYPE_CHECKING:
    from typing_extensions import Unpack

DEFAULT_TIMEOUT = 5.0


_OUTAGES = (
    "locked",
    "busy",
    "unable to open",
    "disk i/o",
    "readonly",
    "not a database",
    "malformed",
)


def classify(error: BaseException) -> str | None:
    """A locked, missing, read-only or unreadable database is the store being unavailable."""
    if isinstance(error, sqlite3.DatabaseError) and any(
        reason in str(error).lower() for reason in _OUTAGES
    ):
        return UNAVAILABLE
    return None


class SQLiteStore(SyncSqlStore):
    """A sync store on one SQLite file (or ``":memory:"``, one database for the process)."""

    def __init__(
        self,
        path: str = "sessions.db",
        *,
        table: str = "sessions",
        timeout: float = DEFAULT_TIMEOUT,
        **options: Unpack[SqlOptions],
    ) -> None:
        if not isinstance(path, str) or not path:
            raise TypeError(f"path must be a file name or ':memory:', got {path!r}")
        self.path = path
        self.timeout = timeout
        self._local = threading.local()
        self._shared: sqlite3.Connection | None = None
        self._lock: AbstractContextManager[Any] = (
            threading.Lock() if path == ":memory:" else nullcontext()
        )
        quoted = '"' + identifier(table, "table") + '"'
        self._setup_sql(
            SQLITE.bind(quoted, table),
            name="sqlite",
            classify=classify,
            owns_client=True,
            asynchronous=False,
            options=options,
        )

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path,
            timeout=self.timeout,
            isolation_level=None,
            check_same_thread=self.path != ":memory:",
        )
        if self.path != ":memory:":
            connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
        return connection

    def _connection(self) -> sqlite3.Connection:
        """One connection per thread; ``":memory:"`` is one database, so one connection."""
        if self.path == ":memory:":
            if self._shared is None:
                self._shared = self._connect()
            return self._shared
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = self._connect()
        return connection

    def _execute(self, command: Sql) -> Any:
        with self._lock:
            return fetched(self._connection().execute(command.text, command.params), command.fetch)

    def _ping(self) -> None:
        self._connect().execute("SELECT 1").close()

    def _close_client(self) -> None:
        for connection in (self._shared, getattr(self._local, "connection", None)):
            if connection is not None:
                connection.close()
        self._shared = None
        self._local = threading.local()

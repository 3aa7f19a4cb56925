"""MySQL / MariaDB store, compatible with express-mysql-session: Node and Python share one table.

``MySQLStore(url="mysql://user:pass@host/db")`` (asyncio, asyncmy) and ``SyncMySQLStore(...)``
(PyMySQL). The table is express-mysql-session's (``sessions(session_id varchar(128),
expires int unsigned, data mediumtext)``, utf8mb4_bin) plus an index on ``expires``, which the
Node store's schema lacks (without it every prune scans the table; add it to a table the Node
store created: ``CREATE INDEX sessions_expires ON sessions (expires)``). Connections use utf8mb4,
autocommit (one short transaction per statement) and ``FOUND_ROWS`` (a conditional UPDATE
reports the rows it matched, so a merge can tell "unchanged" from "someone wrote").
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from .._records import Steps
from ..errors import extra_needed
from .sql import (
    MYSQL,
    Sql,
    SqlOptions,
    SqlStore,
    SyncSqlStore,
    afetched,
    fetched,
    identifier,
)
from .toolkit import BROKEN, UNAVAILABLE, raised_inside

with extra_needed("mysql", "asyncmy", "pymysql"):
    import asyncmy
    import asyncmy.errors
    import pymysql
    from pymysql.constants import CLIENT

if TYPE_CHECKING:
    from typing_extensions import Unpack

DEFAULT_URL = "mysql://root@127.0.0.1:3306/test"
DEFAULT_TIMEOUT = 5.0
_OUTAGES = (
    pymysql.err.OperationalError,
    pymysql.err.InterfaceError,
    asyncmy.errors.OperationalError,
    asyncmy.errors.InterfaceError,
    OSError,
)
_DRIVER_ERRORS = (pymysql.err.MySQLError, asyncmy.errors.MySQLError)
_OUR_MISTAKES = (
    pymysql.err.ProgrammingError,
    pymysql.err.DataError,
    asyncmy.errors.ProgrammingError,
    asyncmy.errors.DataError,
)
"""Driver errors about the statement or its values, not the connection."""
_STALE = (2006, 2013, 4031)
"""Server gone away, lost connection, disconnected for inactivity: a pooled connection the
server cut, worth one retry on a fresh connection."""


def classify(error: BaseException) -> str | None:
    """Lost or refused connections and a read-only server: the store is unavailable. So is a
    failure of the driver itself (an error without a server's error code, such as a packet out
    of sequence): the connection is broken, and a 500 would blame the app."""
    if isinstance(error, _OUTAGES) or "read-only" in str(error) or "read_only" in str(error):
        return UNAVAILABLE
    if isinstance(error, _DRIVER_ERRORS):
        from_server = bool(error.args) and isinstance(error.args[0], int)
        return None if from_server or isinstance(error, _OUR_MISTAKES) else BROKEN
    return BROKEN if raised_inside(error, "pymysql", "asyncmy") else None


def connection_options(url: str, timeout: float) -> dict[str, Any]:
    """Driver keywords from ``mysql://`` or ``mariadb://user:password@host:port/database``."""
    parts = urlsplit(url)
    if parts.scheme not in ("mysql", "mariadb"):
        raise ValueError(f"a MySQL URL starts with mysql:// or mariadb://, got {url!r}")
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
        "database": parts.path.lstrip("/") or None,
        "charset": "utf8mb4",
        "autocommit": True,
        "client_flag": CLIENT.FOUND_ROWS,
        "connect_timeout": timeout,
    }


class _Connections:
    """A small LIFO pool of PyMySQL connections (PyMySQL has none): a connection that fails
    is dropped, never returned."""

    def __init__(self, options: dict[str, Any], max_idle: int) -> None:
        self.options = options
        self.max_idle = max_idle
        self._idle: list[Any] = []
        self._lock = threading.Lock()

    @contextmanager
    def connection(self) -> Iterator[Any]:
        with self._lock:
            connection = self._idle.pop() if self._idle else None
        if connection is None:
            connection = pymysql.connect(**self.options)
        try:
            yield connection
        except BaseException:
            connection.close()
            raise
        with self._lock:
            if len(self._idle) < self.max_idle:
                self._idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


class _MySQLOptions:
    """The constructor both stores share."""

    def __init__(
        self,
        pool: Any = None,
        *,
        url: str | None = None,
        table: str = "sessions",
        max_size: int = 10,
        timeout: float = DEFAULT_TIMEOUT,
        **options: Unpack[SqlOptions],
    ) -> None:
        if isinstance(pool, (str, bytes)):
            raise TypeError(
                f"{type(self).__name__} takes a pool as its first argument, not a URL: write "
                f"{type(self).__name__}(url={pool!r})"
            )
        self.connect_options = connection_options(url or DEFAULT_URL, timeout)
        self.max_size = max_size
        self.pool = pool
        owns_pool = pool is None
        assert isinstance(self, (SqlStore, SyncSqlStore))
        self._setup_sql(
            MYSQL.bind("`" + identifier(table, "table") + "`", table),
            name="mysql",
            classify=classify,
            owns_client=owns_pool,
            asynchronous=isinstance(self, SqlStore),
            options=options,
        )

    def _attempts(self, command: Sql) -> Steps[Sql, Any]:
        """A pooled connection the server cut is retried once on a fresh one."""
        try:
            return (yield command)
        except _OUTAGES as exc:
            if not (exc.args and exc.args[0] in _STALE):
                raise
        return (yield command)


class SyncMySQLStore(_MySQLOptions, SyncSqlStore):
    """MySQL / MariaDB for WSGI apps (PyMySQL)."""

    def _execute(self, command: Sql) -> Any:
        if self.pool is None:
            self.pool = _Connections(self.connect_options, self.max_size)
        with self.pool.connection() as connection, connection.cursor() as cursor:
            cursor.execute(command.text, command.params)
            return fetched(cursor, command.fetch)

    def _ping(self) -> None:
        pymysql.connect(**self.connect_options).close()

    def _close_client(self) -> None:
        if self.pool is not None:
            self.pool.close()


class MySQLStore(_MySQLOptions, SqlStore):
    """MySQL / MariaDB for ASGI apps (asyncmy, the fastest maintained asyncio driver measured)."""

    async def _execute(self, command: Sql) -> Any:
        if self.pool is None:
            self.pool = await asyncmy.create_pool(
                minsize=1, maxsize=self.max_size, pool_recycle=3600, **self.connect_options
            )
        async with self.pool.acquire() as connection:
            try:
                async with connection.cursor() as cursor:
                    await cursor.execute(command.text, command.params)
                    return await afetched(cursor, command.fetch)
            except BaseException:
                connection.close()  # asyncmy's pool keeps any connection still open, even
                raise  # one a failed or cancelled read left with another reply to come

    async def _ping(self) -> None:
        connection = await asyncmy.connect(**self.connect_options)
        connection.close()

    async def _close_client(self) -> None:
        if self.pool is not None:
            self.pool.close()
            await self.pool.wait_closed()

"""PostgreSQL store, compatible with connect-pg-simple: a Node app and a Python app share one table.

``PostgresStore(url="postgresql://...")`` (asyncio) and ``SyncPostgresStore(...)`` use psycopg 3
with a connection pool (or a pool you pass). The table is connect-pg-simple's: ``session(sid
varchar primary key, sess json, expire timestamp(6))`` with an index on ``expire``; table and
schema names are options, validated as identifiers. Expiry is written and compared as
``to_timestamp(epoch) AT TIME ZONE 'UTC'``, so the connection's time zone never matters (a Node app
sharing the table must run its connections in UTC, the server default here).
"""

from __future__ import annotations

import logging
import weakref
from typing import TYPE_CHECKING, Any

from .._records import Steps
from ..errors import extra_needed
from . import sql
from .toolkit import BROKEN, UNAVAILABLE, check_client, raised_inside

with extra_needed("postgres", "psycopg", "psycopg_pool"):
    import psycopg
    from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

if TYPE_CHECKING:
    from typing_extensions import Unpack

CHECK_POOL = sql.Sql("", {}, "none")
"""Not a statement: asks the executor to check the pool's idle connections."""
DEFAULT_URL = "postgresql://127.0.0.1:5432/postgres"
DEFAULT_TIMEOUT = 5.0
_OUR_MISTAKES = (psycopg.ProgrammingError, psycopg.DataError, psycopg.NotSupportedError)
"""Client-side errors about the statement or its values, not the connection."""
_OUTAGES = (
    psycopg.OperationalError,
    psycopg.errors.ReadOnlySqlTransaction,
    PoolTimeout,
    OSError,
)


def classify(error: BaseException) -> str | None:
    """Lost or refused connections, a full pool, a read-only server: the store is unavailable.
    So is a failure of the client itself (an error no server sent, such as a reply stream it
    lost its place in): the connection is broken, and a 500 would blame the app."""
    if isinstance(error, _OUTAGES):
        return UNAVAILABLE
    if isinstance(error, psycopg.Error):
        client_side = error.sqlstate is None and not isinstance(error, _OUR_MISTAKES)
        return BROKEN if client_side else None
    return BROKEN if raised_inside(error, "psycopg") else None


def _quoted(schema: str | None, table: str) -> str:
    name = '"' + sql.identifier(table, "table") + '"'
    return name if schema is None else '"' + sql.identifier(schema, "schema") + '".' + name


class _PoolRetriesAtDebug(logging.Filter):
    """psycopg_pool logs every failed reconnection of a pool at WARNING, several a second in
    an outage; the store says it once (``Health``). Those of the pools the store built go to
    DEBUG, where they are still there for whoever looks."""

    def __init__(self) -> None:
        super().__init__()
        self.pools: weakref.WeakSet[Any] = weakref.WeakSet()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING:
            return True
        message = record.getMessage()  # psycopg_pool 3.2.0 formats it itself (an f-string)
        if any(message.startswith(f"error connecting in {pool.name!r}:") for pool in self.pools):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger("psycopg.pool").isEnabledFor(logging.DEBUG)
        return True


_POOL_RETRIES = _PoolRetriesAtDebug()
logging.getLogger("psycopg.pool").addFilter(_POOL_RETRIES)


class _PostgresOptions:
    """The constructor both stores share; each names its pool class."""

    pool_class: Any

    def _attempts(self, command: sql.Sql) -> Steps[sql.Sql, Any]:
        """A pooled connection the server or a proxy cut (``pg_terminate_backend``, a restart)
        is retried once, after the pool has replaced every idle connection that is dead too; a
        connection that cannot be made is not retried."""
        try:
            return (yield command)
        except psycopg.OperationalError as exc:
            text = str(exc).lower()
            if "refused" in text or "timeout" in text or "could not" in text:
                raise
        yield CHECK_POOL
        return (yield command)

    def __init__(
        self,
        pool: Any = None,
        *,
        url: str | None = None,
        table: str = "session",
        schema: str | None = None,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = DEFAULT_TIMEOUT,
        **options: Unpack[sql.SqlOptions],
    ) -> None:
        check_client(pool, type(self).__name__)
        owns_pool = pool is None
        if pool is None:
            pool = self.pool_class(
                url or DEFAULT_URL,
                min_size=min_size,
                max_size=max_size,
                timeout=timeout,
                kwargs={"autocommit": True, "connect_timeout": max(1, round(timeout))},
                open=False,
            )
            _POOL_RETRIES.pools.add(pool)
        elif url is not None:
            raise TypeError("pass a pool or url=, not both")
        self.pool = pool
        self.timeout = timeout
        self._opened = not owns_pool
        assert isinstance(self, (sql.SqlStore, sql.SyncSqlStore))
        self._setup_sql(
            sql.POSTGRES.bind(_quoted(schema, table), table),
            name="postgres",
            classify=classify,
            owns_client=owns_pool,
            asynchronous=isinstance(self, sql.SqlStore),
            options=options,
        )


class SyncPostgresStore(_PostgresOptions, sql.SyncSqlStore):
    """PostgreSQL for WSGI apps (psycopg 3, ``ConnectionPool``)."""

    pool_class = ConnectionPool

    def _execute(self, command: sql.Sql) -> Any:
        if not self._opened:
            self._ping()  # a refused connection fails now, not after the pool's retries
            self.pool.open()
            self._opened = True
        if command is CHECK_POOL:
            self.pool.check()
            return None
        with self.pool.connection() as connection:
            return sql.fetched(connection.execute(command.text, command.params), command.fetch)

    def _ping(self) -> None:
        with psycopg.connect(self.pool.conninfo, connect_timeout=max(1, round(self.timeout))) as c:
            c.execute("SELECT 1")

    def _close_client(self) -> None:
        self.pool.close()


class PostgresStore(_PostgresOptions, sql.SqlStore):
    """PostgreSQL for ASGI apps (psycopg 3 asyncio, ``AsyncConnectionPool``)."""

    pool_class = AsyncConnectionPool

    async def _execute(self, command: sql.Sql) -> Any:
        if not self._opened:
            await self._ping()
            await self.pool.open()
            self._opened = True
        if command is CHECK_POOL:
            await self.pool.check()
            return None
        async with self.pool.connection() as connection:
            cursor = await connection.execute(command.text, command.params)
            return await sql.afetched(cursor, command.fetch)

    async def _ping(self) -> None:
        connection = await psycopg.AsyncConnection.connect(
            self.pool.conninfo, connect_timeout=max(1, round(self.timeout))
        )
        try:
            await connection.execute("SELECT 1")
        finally:
            await connection.close()

    async def _close_client(self) -> None:
        await self.pool.close()

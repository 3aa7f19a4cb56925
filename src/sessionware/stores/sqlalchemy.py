"""Bring your own database: a store on a SQLAlchemy ``Engine`` or ``AsyncEngine``.

For apps that already hold an engine, and for databases sessionware has no store of its own for.
On SQLite, PostgreSQL and MySQL/MariaDB the table is the same Node store's table as the native
stores use (a Node app can share it); on any other database, the connect-sqlite3 layout in
portable SQL. The engine is yours: the store never disposes of it.

    from sqlalchemy import create_engine
    from sessionware.stores.sqlalchemy import SQLAlchemyStore

    store = SQLAlchemyStore(create_engine("postgresql+psycopg://user@host/db"))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._records import Steps
from ..errors import extra_needed
from .sql import (
    GENERIC,
    MYSQL,
    POSTGRES,
    SQLITE,
    Dialect,
    Sql,
    SqlOptions,
    SqlStore,
    SyncSqlStore,
    identifier,
    named_parameters,
)
from .toolkit import UNAVAILABLE

with extra_needed("sqlalchemy", "sqlalchemy"):
    from sqlalchemy import exc, text
    from sqlalchemy.engine import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from typing_extensions import Unpack

_DIALECTS = {"sqlite": SQLITE, "postgresql": POSTGRES, "mysql": MYSQL, "mariadb": MYSQL}
_DEFAULT_TABLES = {"postgresql": "session"}


def classify(error: BaseException) -> str | None:
    """Lost connections, a full pool, a database that cannot be reached: unavailable."""
    if isinstance(error, (exc.OperationalError, exc.DisconnectionError, exc.TimeoutError)):
        return UNAVAILABLE
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return UNAVAILABLE
    return None


def _dialect(engine: Any, table: str | None) -> tuple[Dialect, str]:
    name = engine.dialect.name
    table = identifier(table or _DEFAULT_TABLES.get(name, "sessions"), "table")
    quote = "`" if name in ("mysql", "mariadb") else '"'
    dialect = named_parameters(_DIALECTS.get(name, GENERIC))
    return dialect.bind(quote + table + quote, table), table


class _EngineOptions:
    """The constructor both stores share."""

    def __init__(
        self, engine: Any, *, table: str | None = None, **options: Unpack[SqlOptions]
    ) -> None:
        expected = AsyncEngine if isinstance(self, SqlStore) else Engine
        if not isinstance(engine, expected):
            raise TypeError(f"{type(self).__name__} takes a SQLAlchemy {expected.__name__}")
        self.engine: Any = engine
        dialect, self.table = _dialect(engine, table)
        assert isinstance(self, (SqlStore, SyncSqlStore))
        self._setup_sql(
            dialect,
            name=f"sqlalchemy-{engine.dialect.name}",
            classify=classify,
            owns_client=False,
            asynchronous=isinstance(self, SqlStore),
            options=options,
        )

    def _attempts(self, command: Sql) -> Steps[Sql, Any]:
        """A pooled connection that turned out dead is retried once (SQLAlchemy has already
        invalidated it and the rest of the pool)."""
        try:
            return (yield command)
        except exc.DBAPIError as error:
            if not error.connection_invalidated:
                raise
        return (yield command)


def _result(result: Any, fetch: str) -> Any:
    if fetch == "one":
        return result.fetchone()
    if fetch == "all":
        return result.fetchall()
    return result.rowcount if fetch == "rowcount" else None


class SQLAlchemyStore(_EngineOptions, SyncSqlStore):
    """A sync store on a SQLAlchemy ``Engine``."""

    def _execute(self, command: Sql) -> Any:
        with self.engine.begin() as connection:
            return _result(connection.execute(text(command.text), command.params), command.fetch)

    def _ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def _close_client(self) -> None:
        """The engine is the app's: nothing to close."""


class AsyncSQLAlchemyStore(_EngineOptions, SqlStore):
    """An async store on a SQLAlchemy ``AsyncEngine``."""

    async def _execute(self, command: Sql) -> Any:
        async with self.engine.begin() as connection:
            result = await connection.execute(text(command.text), command.params)
            return _result(result, command.fetch)

    async def _ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def _close_client(self) -> None:
        """The engine is the app's: nothing to close."""

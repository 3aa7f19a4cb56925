"""What every SQL store shares: the rules, written once as generators of statements.

A dialect says how its Node store lays the table out and spells each statement (SQLite:
connect-sqlite3; PostgreSQL: connect-pg-simple; MySQL/MariaDB: express-mysql-session); the rules
below decide what to run, and each store only executes statements on its driver.

- ``get`` never returns an expired row; ``touch`` moves only the expiry of a live row.
- A save of a loaded session is a conditional UPDATE against the text it loaded (one statement
  when nobody wrote since); otherwise this request's changes go onto the current row, again.
  A row gone meanwhile stays gone.
- ``prune`` deletes expired rows in batches through the expiry index, so its cost follows the
  number of expired rows, and no statement holds locks for long.
- With ``user_key``, the table gains an indexed ``user_id`` column (added by ``create_table`` to
  an existing table too), written by the same statement as the session; an expired row leaves
  the index with the row. A Node app's writes leave the column as it was, so a user's sessions
  are checked against their data as they are listed. On SQLite the column is derived from the
  JSON by SQLite itself, since connect-sqlite3 inserts rows without naming columns.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, TypedDict, TypeVar

from .._records import Base, SessionRecord, Steps, encode_json, join_json, merged_data, user_of
from ..errors import SessionConflict, SessionCorrupt
from ..options import is_valid_sid, positive
from .base import SessionData, check_user_key, require_user_key
from .encryption import EncryptionKeys, encryption, plain_text
from .toolkit import (
    Classify,
    CommandStore,
    Periodic,
    SyncCommandStore,
    TouchThrottle,
)

Fetch = Literal["one", "all", "rowcount", "none"]
T = TypeVar("T")
DEFAULT_TTL = 86400
DEFAULT_PRUNE_BATCH = 1000
USER_COLUMN = "user_id"
_JSON_KEY = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_MERGE_ATTEMPTS = 1000


class Sql(NamedTuple):
    """One statement with its parameters, and what to bring back."""

    text: str
    params: dict[str, Any]
    fetch: Fetch


def identifier(name: str, what: str) -> str:
    """A table or schema name, validated: it is written into SQL, so only plain names pass."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise ValueError(
            f"{what} must be a plain SQL identifier (letters, digits, underscore), got {name!r}"
        )
    return name


@dataclass(frozen=True)
class Dialect:
    """A Node store's table, spelled in one SQL dialect.

    Statements use ``{table}`` for the quoted table name and named parameters in the driver's
    style; ``expire_value`` turns an expiry in epoch ms into what the expiry column holds.
    """

    name: str
    create: tuple[str, ...]
    get: str
    upsert: str
    touch: str
    cas: str
    delete: str
    ids: str
    all: str
    count: str
    clear: str
    prune: str
    expire_value: Callable[[int], Any]
    now_value: Callable[[int], Any]
    insert: str = ""
    """With no ``upsert`` (a database without one), a save is ``touch``-like UPDATE of both
    columns, then this INSERT when no row matched."""
    update: str = ""
    columns: str = ""
    """The table's column names (to add ``user_id`` to a table that lacks it), and whether
    each is generated (a second field, where the database has such columns)."""
    add_user: tuple[str, ...] = ()
    derive_user: tuple[str, ...] = ()
    """Where the Node store's own INSERT names no columns (connect-sqlite3), ``user_id`` is a
    column the database derives from the JSON (``{path}``: the user key's JSON path), so the
    Node app's writes keep working and are indexed too."""
    upsert_user: str = ""
    cas_user: str = ""
    insert_user: str = ""
    update_user: str = ""
    user_rows: str = ""
    table: str = ""
    """The quoted table name, once bound (what the command line says it read)."""

    def bind(self, quoted_table: str, bare_table: str) -> Dialect:
        """The dialect for one table: ``{table}`` is the quoted name in statements, ``{bare}``
        the plain one in index names (both validated before they get here)."""
        names = {"table": quoted_table, "bare": bare_table}
        fields: dict[str, Any] = {
            key: value.format(**names) if isinstance(value, str) else value
            for key, value in self.__dict__.items()
        }
        fields["name"] = self.name
        fields["table"] = quoted_table
        for statements in ("create", "add_user", "derive_user"):
            fields[statements] = tuple(
                statement.replace("{table}", quoted_table).replace("{bare}", bare_table)
                for statement in getattr(self, statements)
            )
        return Dialect(**fields)


class SqlRules:
    """The rules of a SQL session table, with no I/O."""

    @property
    def location(self) -> str:
        """Where the sessions are, in words (the command line says what it read)."""
        return f"table {self.dialect.table}"

    def __init__(
        self,
        dialect: Dialect,
        *,
        ttl: int = DEFAULT_TTL,
        disable_touch: bool = False,
        prune_batch: int = DEFAULT_PRUNE_BATCH,
        create_table: bool = True,
        touch_after: float = 0,
        clock: Callable[[], float] = time.time,
        encryption_keys: EncryptionKeys | None = None,
    ) -> None:
        self.dialect = dialect
        self.encryption = encryption(encryption_keys)
        self.ttl = positive(ttl, "ttl", integer=True, unit=" of seconds")
        self.disable_touch = disable_touch
        self.prune_batch = positive(prune_batch, "prune_batch", integer=True)
        self.clock = clock
        self.create_table = create_table
        self.created = not create_table
        self.throttle = TouchThrottle(touch_after)
        self._user_key: str | None = None
        self.user_written = not dialect.derive_user or self.encryption is not None
        """Whether saves write the ``user_id`` column; else the database derives it from the
        JSON (which it cannot read in a sealed session)."""

    @property
    def user_key(self) -> str | None:
        return self._user_key

    @user_key.setter
    def user_key(self, key: str | None) -> None:
        """Index by ``key`` from now on; ``create_table`` then makes sure of the column."""
        self._user_key = check_user_key(key)
        if key is not None and not self.user_written and not _JSON_KEY.fullmatch(key):
            raise ValueError(
                f"user_key {key!r} cannot name a JSON path in SQL: use letters, digits, '_', "
                f"'-' or '.'"
            )
        if key is not None and self.create_table:
            self.created = False

    def ensure_table(self) -> Steps[Sql, None]:
        """Create the table (idempotent) before the first statement that needs it."""
        if self.created:
            return
        yield from self.create()
        self.created = True

    def _now(self) -> int:
        return int(self.clock() * 1000)

    def _expiry_ms(self, record: SessionRecord, now: int) -> int:
        """When the row expires: the cookie's expiry (as the Node stores write it), else
        ``ttl`` from now."""
        expires = record.expires_ms
        return now + self.ttl * 1000 if expires is None else expires

    def _params(self, now: int, **values: Any) -> dict[str, Any]:
        return {"now": self.dialect.now_value(now), **values}

    def sealed(self, sid: str, text: str) -> str:
        """What the row holds for a session's JSON: the text, or its sealed form."""
        return text if self.encryption is None else self.encryption.seal(sid, text)

    def parse(self, sid: str, text: Any) -> SessionRecord | None:
        if isinstance(text, (bytes, bytearray, memoryview)):
            text = bytes(text).decode()
        if not isinstance(text, str):
            raise SessionCorrupt(
                f"session {sid!r} holds {type(text).__name__}, not JSON text", sid=sid
            )
        plain = plain_text(self.encryption, sid, text)
        record = SessionRecord.from_stored(sid, plain)
        if record is not None:
            record.token = text
            self.throttle.loaded(sid, record)
        return record

    # -- the operations ----------------------------------------------------------------------

    def create(self) -> Steps[Sql, None]:
        for statement in self.dialect.create:
            yield Sql(statement, {}, "none")
        if self.user_key is None:
            return
        columns = yield Sql(self.dialect.columns, {}, "all")
        found = {str(row[0]).lower(): row[1:] for row in columns}
        if USER_COLUMN in found:
            self.user_written = not (found[USER_COLUMN] and found[USER_COLUMN][0] in (2, 3))
            return
        if self.user_written:
            statements = self.dialect.add_user
        else:
            path = '$."' + self.user_key + '"'
            statements = tuple(part.replace("{path}", path) for part in self.dialect.derive_user)
        for statement in statements:
            yield Sql(statement, {}, "none")

    def get(self, sid: str, touch_ms: int | None = None) -> Steps[Sql, SessionRecord | None]:
        yield from self.ensure_table()
        row = yield Sql(self.dialect.get, self._params(self._now(), sid=sid), "one")
        return None if row is None else self.parse(sid, row[0])

    def _live_expiry(self, sid: str, record: SessionRecord, now: int) -> Steps[Sql, Any]:
        """The row's expiry in the column's unit, the save noted for ``touch_after``; ``None``
        (and the row deleted) when the session is already expired."""
        expiry = self._expiry_ms(record, now)
        if expiry <= now:
            yield from self.destroy(sid)
            return None
        self.throttle.remember(sid, now)
        return self.dialect.expire_value(expiry)

    def set(self, sid: str, record: SessionRecord) -> Steps[Sql, None]:
        yield from self.ensure_table()
        now = self._now()
        expire = yield from self._live_expiry(sid, record, now)
        if expire is None:
            return
        params = self._params(now, sid=sid, sess=self.sealed(sid, record.json), expire=expire)
        dialect = self.dialect
        indexed = self.user_key is not None and self.user_written
        if indexed:
            params["user"] = user_of(record.data, self.user_key)
        if dialect.upsert:
            yield Sql(dialect.upsert_user if indexed else dialect.upsert, params, "none")
            return
        update = Sql(dialect.update_user if indexed else dialect.update, params, "rowcount")
        if (yield update):
            return
        try:
            yield Sql(dialect.insert_user if indexed else dialect.insert, params, "none")
        except Exception:
            if (yield update):  # a concurrent insert of the same id won: updated instead
                return
            raise  # no such row after all: the INSERT's own failure (a constraint, a trigger)

    def touch(self, sid: str, record: SessionRecord) -> Steps[Sql, None]:
        yield from self.ensure_table()
        now = self._now()
        if self.disable_touch or self.throttle.recently(sid, now):
            return
        expire = self.dialect.expire_value(self._expiry_ms(record, now))
        yield Sql(self.dialect.touch, self._params(now, sid=sid, expire=expire), "none")

    def merge(self, sid: str, record: SessionRecord, base: Base) -> Steps[Sql, None]:
        yield from self.ensure_table()
        now = self._now()
        expire = yield from self._live_expiry(sid, record, now)
        if expire is None:
            return
        value = self.sealed(sid, record.json)
        data = record.data
        expected = base.token if isinstance(base.token, str) else None
        for _ in range(_MERGE_ATTEMPTS):
            if expected is not None:
                params = self._params(now, sid=sid, sess=value, expire=expire, expected=expected)
                cas = self.dialect.cas
                if self.user_key is not None and self.user_written:
                    params["user"] = user_of(data, self.user_key)
                    cas = self.dialect.cas_user
                if (yield Sql(cas, params, "rowcount")):
                    return
            row = yield Sql(self.dialect.get, self._params(now, sid=sid), "one")
            if row is None:
                return
            try:
                current = self.parse(sid, row[0])
            except SessionCorrupt:
                current = None
            if current is not None:
                data = merged_data(current.data, base, record)
                value = self.sealed(sid, join_json(record.cookie_json, encode_json(data)))
            expected = str(row[0]) if current is None else str(current.token)
        raise SessionConflict(
            f"session {sid!r}: {_MERGE_ATTEMPTS} concurrent writes in a row", sid=sid
        )

    def user_sessions(self, user: str) -> Steps[Sql, dict[str, SessionData]]:
        """The user's live rows whose data still names the user (a Node app may have changed
        the data without the column)."""
        user_key = require_user_key(self.user_key)
        yield from self.ensure_table()
        params = self._params(self._now(), user=user)
        rows = yield Sql(self.dialect.user_rows, params, "all")
        found: dict[str, SessionData] = {}
        for sid, text in rows:
            try:
                record = self.parse(sid, text)
            except SessionCorrupt:
                continue
            if record is not None and user_of(record.data, user_key) == user:
                found[str(sid)] = record.as_dict()
        return found

    def destroy_user_sessions(self, user: str, keep: str | None) -> Steps[Sql, int]:
        sessions = yield from self.user_sessions(user)
        destroyed = 0
        for sid in sessions:
            if sid != keep:
                self.throttle.forget(sid)
                destroyed += yield Sql(self.dialect.delete, {"sid": sid}, "rowcount")
        return destroyed

    def destroy(self, sid: str) -> Steps[Sql, None]:
        yield from self.ensure_table()
        self.throttle.forget(sid)
        yield Sql(self.dialect.delete, {"sid": sid}, "none")

    def ids(self) -> Steps[Sql, list[str]]:
        yield from self.ensure_table()
        rows = yield Sql(self.dialect.ids, self._params(self._now()), "all")
        return [str(row[0]) for row in rows if is_valid_sid(row[0])]

    def all(self) -> Steps[Sql, dict[str, SessionData]]:
        yield from self.ensure_table()
        rows = yield Sql(self.dialect.all, self._params(self._now()), "all")
        result: dict[str, SessionData] = {}
        for sid, text in rows:
            try:
                record = self.parse(sid, text)
            except SessionCorrupt:
                continue
            if record is not None:
                result[sid] = record.as_dict()
        return result

    def length(self) -> Steps[Sql, int]:
        yield from self.ensure_table()
        row = yield Sql(self.dialect.count, self._params(self._now()), "one")
        count: int = row[0]
        return count

    def clear(self) -> Steps[Sql, None]:
        yield from self.ensure_table()
        yield Sql(self.dialect.clear, {}, "none")

    def prune(self, progress: Callable[[int], None] | None = None) -> Steps[Sql, int]:
        """Delete every expired row, ``prune_batch`` at a time; how many went. ``progress`` is
        told the running total after each batch."""
        yield from self.ensure_table()
        total = 0
        while True:
            params = self._params(self._now(), batch=self.prune_batch)
            deleted: int = yield Sql(self.dialect.prune, params, "rowcount")
            total += deleted
            if progress is not None:
                progress(total)
            if deleted < self.prune_batch:
                return total


def seconds_ceil(epoch_ms: int) -> int:
    return math.ceil(epoch_ms / 1000)


def seconds_round(epoch_ms: int) -> int:
    return round(epoch_ms / 1000)


def milliseconds(epoch_ms: int) -> int:
    return epoch_ms


SQLITE = Dialect(
    "sqlite",
    create=(
        "CREATE TABLE IF NOT EXISTS {table} (sid PRIMARY KEY, expired, sess)",
        'CREATE INDEX IF NOT EXISTS "{bare}_expired" ON {table} (expired)',
    ),
    get="SELECT sess FROM {table} WHERE sid = :sid AND :now <= expired",
    upsert="INSERT OR REPLACE INTO {table} (sid, expired, sess) VALUES (:sid, :expire, :sess)",
    touch="UPDATE {table} SET expired = :expire WHERE sid = :sid AND :now <= expired",
    cas=(
        "UPDATE {table} SET sess = :sess, expired = :expire"
        " WHERE sid = :sid AND sess = :expected AND :now <= expired"
    ),
    delete="DELETE FROM {table} WHERE sid = :sid",
    ids="SELECT sid FROM {table} WHERE :now <= expired",
    all="SELECT sid, sess FROM {table} WHERE :now <= expired",
    count="SELECT COUNT(*) FROM {table} WHERE :now <= expired",
    clear="DELETE FROM {table}",
    prune=(
        "DELETE FROM {table} WHERE sid IN"
        " (SELECT sid FROM {table} WHERE expired < :now LIMIT :batch)"
    ),
    expire_value=milliseconds,
    now_value=milliseconds,
    columns="SELECT name, hidden FROM pragma_table_xinfo('{bare}')",
    add_user=(
        "ALTER TABLE {table} ADD COLUMN user_id",
        'CREATE INDEX IF NOT EXISTS "{bare}_user_id" ON {table} (user_id)',
    ),
    derive_user=(
        "ALTER TABLE {table} ADD COLUMN user_id TEXT GENERATED ALWAYS AS (CASE WHEN"
        " json_valid(sess) AND json_type(sess) = 'object'"
        " THEN CAST(json_extract(sess, '{path}') AS TEXT) END) VIRTUAL",
        'CREATE INDEX IF NOT EXISTS "{bare}_user_id" ON {table} (user_id)',
    ),
    upsert_user=(
        "INSERT OR REPLACE INTO {table} (sid, expired, sess, user_id)"
        " VALUES (:sid, :expire, :sess, :user)"
    ),
    cas_user=(
        "UPDATE {table} SET sess = :sess, expired = :expire, user_id = :user"
        " WHERE sid = :sid AND sess = :expected AND :now <= expired"
    ),
    user_rows="SELECT sid, sess FROM {table} WHERE user_id = :user AND :now <= expired",
)

_PG_NOW = "(to_timestamp(%(now)s) AT TIME ZONE 'UTC')"
_PG_EXPIRE = "(to_timestamp(%(expire)s) AT TIME ZONE 'UTC')"
POSTGRES = Dialect(
    "postgres",
    create=(
        'CREATE TABLE IF NOT EXISTS {table} ("sid" varchar NOT NULL COLLATE "default",'
        ' "sess" json NOT NULL, "expire" timestamp(6) NOT NULL, PRIMARY KEY ("sid"))',
        'CREATE INDEX IF NOT EXISTS "IDX_{bare}_expire" ON {table} ("expire")',
    ),
    get=f"SELECT sess::text FROM {{table}} WHERE sid = %(sid)s AND expire >= {_PG_NOW}",
    upsert=(
        f"INSERT INTO {{table}} (sid, sess, expire) VALUES (%(sid)s, %(sess)s, {_PG_EXPIRE})"
        " ON CONFLICT (sid) DO UPDATE SET sess = EXCLUDED.sess, expire = EXCLUDED.expire"
    ),
    touch=f"UPDATE {{table}} SET expire = {_PG_EXPIRE} WHERE sid = %(sid)s AND expire >= {_PG_NOW}",
    cas=(
        f"UPDATE {{table}} SET sess = %(sess)s, expire = {_PG_EXPIRE} WHERE sid = %(sid)s"
        f" AND sess::text = %(expected)s AND expire >= {_PG_NOW}"
    ),
    delete="DELETE FROM {table} WHERE sid = %(sid)s",
    ids=f"SELECT sid FROM {{table}} WHERE expire >= {_PG_NOW}",
    all=f"SELECT sid, sess::text FROM {{table}} WHERE expire >= {_PG_NOW}",
    count=f"SELECT COUNT(*) FROM {{table}} WHERE expire >= {_PG_NOW}",
    clear="DELETE FROM {table}",
    prune=(
        "DELETE FROM {table} WHERE sid IN"
        f" (SELECT sid FROM {{table}} WHERE expire < {_PG_NOW} LIMIT %(batch)s)"
    ),
    expire_value=seconds_ceil,
    now_value=seconds_ceil,
    columns=(
        "SELECT attname FROM pg_attribute WHERE attrelid = '{table}'::regclass"
        " AND attnum > 0 AND NOT attisdropped"
    ),
    add_user=(
        'ALTER TABLE {table} ADD COLUMN IF NOT EXISTS "user_id" varchar',
        'CREATE INDEX IF NOT EXISTS "IDX_{bare}_user_id" ON {table} ("user_id")',
    ),
    upsert_user=(
        "INSERT INTO {table} (sid, sess, expire, user_id)"
        f" VALUES (%(sid)s, %(sess)s, {_PG_EXPIRE}, %(user)s) ON CONFLICT (sid) DO UPDATE"
        " SET sess = EXCLUDED.sess, expire = EXCLUDED.expire, user_id = EXCLUDED.user_id"
    ),
    cas_user=(
        f"UPDATE {{table}} SET sess = %(sess)s, expire = {_PG_EXPIRE}, user_id = %(user)s"
        f" WHERE sid = %(sid)s AND sess::text = %(expected)s AND expire >= {_PG_NOW}"
    ),
    user_rows=(
        f"SELECT sid, sess::text FROM {{table}} WHERE user_id = %(user)s AND expire >= {_PG_NOW}"
    ),
)

MYSQL = Dialect(
    "mysql",
    create=(
        "CREATE TABLE IF NOT EXISTS {table} ("
        "`session_id` varchar(128) COLLATE utf8mb4_bin NOT NULL,"
        " `expires` int(11) unsigned NOT NULL,"
        " `data` mediumtext COLLATE utf8mb4_bin,"
        " PRIMARY KEY (`session_id`), KEY `{bare}_expires` (`expires`)"
        ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    ),
    get="SELECT data FROM {table} WHERE session_id = %(sid)s AND expires >= %(now)s",
    upsert=(
        "INSERT INTO {table} (session_id, expires, data) VALUES (%(sid)s, %(expire)s, %(sess)s)"
        " ON DUPLICATE KEY UPDATE expires = VALUES(expires), data = VALUES(data)"
    ),
    touch=(
        "UPDATE {table} SET expires = %(expire)s WHERE session_id = %(sid)s AND expires >= %(now)s"
    ),
    cas=(
        "UPDATE {table} SET data = %(sess)s, expires = %(expire)s WHERE session_id = %(sid)s"
        " AND data = %(expected)s AND expires >= %(now)s"
    ),
    delete="DELETE FROM {table} WHERE session_id = %(sid)s",
    ids="SELECT session_id FROM {table} WHERE expires >= %(now)s",
    all="SELECT session_id, data FROM {table} WHERE expires >= %(now)s",
    count="SELECT COUNT(*) FROM {table} WHERE expires >= %(now)s",
    clear="DELETE FROM {table}",
    prune="DELETE FROM {table} WHERE expires < %(now)s LIMIT %(batch)s",
    expire_value=seconds_round,
    now_value=seconds_round,
    columns=(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = DATABASE() AND table_name = '{bare}'"
    ),
    add_user=(
        "ALTER TABLE {table} ADD COLUMN `user_id` varchar(255) COLLATE utf8mb4_bin NULL,"
        " ADD KEY `{bare}_user_id` (`user_id`)",
    ),
    upsert_user=(
        "INSERT INTO {table} (session_id, expires, data, user_id)"
        " VALUES (%(sid)s, %(expire)s, %(sess)s, %(user)s) ON DUPLICATE KEY UPDATE"
        " expires = VALUES(expires), data = VALUES(data), user_id = VALUES(user_id)"
    ),
    cas_user=(
        "UPDATE {table} SET data = %(sess)s, expires = %(expire)s, user_id = %(user)s"
        " WHERE session_id = %(sid)s AND data = %(expected)s AND expires >= %(now)s"
    ),
    user_rows=(
        "SELECT session_id, data FROM {table} WHERE user_id = %(user)s AND expires >= %(now)s"
    ),
)


GENERIC = Dialect(
    "generic",
    create=(
        "CREATE TABLE {table} (sid VARCHAR(255) NOT NULL PRIMARY KEY, expired BIGINT NOT NULL,"
        " sess TEXT NOT NULL)",
        'CREATE INDEX "{bare}_expired" ON {table} (expired)',
    ),
    get=SQLITE.get,
    upsert="",
    update="UPDATE {table} SET sess = :sess, expired = :expire WHERE sid = :sid",
    insert="INSERT INTO {table} (sid, expired, sess) VALUES (:sid, :expire, :sess)",
    touch=SQLITE.touch,
    cas=SQLITE.cas,
    delete=SQLITE.delete,
    ids=SQLITE.ids,
    all=SQLITE.all,
    count=SQLITE.count,
    clear=SQLITE.clear,
    prune=(
        "DELETE FROM {table} WHERE sid IN (SELECT sid FROM"
        " (SELECT sid FROM {table} WHERE expired < :now ORDER BY expired) AS batch)"
    ),
    expire_value=milliseconds,
    now_value=milliseconds,
    columns="SELECT column_name FROM information_schema.columns WHERE table_name = '{bare}'",
    add_user=(
        "ALTER TABLE {table} ADD COLUMN user_id VARCHAR(255)",
        'CREATE INDEX "{bare}_user_id" ON {table} (user_id)',
    ),
    update_user=(
        "UPDATE {table} SET sess = :sess, expired = :expire, user_id = :user WHERE sid = :sid"
    ),
    insert_user=(
        "INSERT INTO {table} (sid, expired, sess, user_id) VALUES (:sid, :expire, :sess, :user)"
    ),
    cas_user=SQLITE.cas_user,
    user_rows=SQLITE.user_rows,
)
"""For databases no Node store covers: the connect-sqlite3 layout in portable SQL (no upsert,
no LIMIT in DELETE; a prune then removes every expired row in one statement)."""


def named_parameters(dialect: Dialect) -> Dialect:
    """``dialect`` with ``%(name)s`` parameters written ``:name`` (SQLAlchemy's ``text()``)."""

    def convert(value: Any) -> Any:
        return re.sub(r"%\((\w+)\)s", r":\1", value) if isinstance(value, str) else value

    fields = {key: convert(value) for key, value in dialect.__dict__.items()}
    for statements in ("create", "add_user", "derive_user"):
        fields[statements] = tuple(convert(statement) for statement in getattr(dialect, statements))
    return Dialect(**fields)


class SqlOptions(TypedDict, total=False):
    """The options every SQL store takes."""

    user_key: str | None
    encryption_keys: EncryptionKeys | None
    ttl: int
    disable_touch: bool
    touch_after: float
    create_table: bool
    prune_interval: float | None
    prune_batch: int
    retry_interval: float
    clock: Callable[[], float]


class _Pruning:
    """What both SQL bases share: the rules, the health, and a background prune."""

    pruner: Periodic

    def _setup_sql(
        self,
        dialect: Dialect,
        *,
        name: str,
        classify: Classify,
        owns_client: bool,
        asynchronous: bool,
        options: SqlOptions,
    ) -> None:
        assert isinstance(self, (CommandStore, SyncCommandStore))
        settings: dict[str, Any] = dict(options)
        retry_interval = settings.pop("retry_interval", 0.5)
        prune_interval = settings.pop("prune_interval", 900)
        user_key = settings.pop("user_key", None)
        rules = SqlRules(dialect, **settings)
        rules.user_key = user_key
        self._setup(
            rules,
            name=name,
            classify=classify,
            retry_interval=retry_interval,
            owns_client=owns_client,
            asynchronous=asynchronous,
        )
        self.pruner = Periodic(
            f"sessionware-{name}-prune", prune_interval, self.prune, asynchronous=asynchronous
        )
        if isinstance(self, SyncSqlStore):
            self._creating = threading.Lock()

    def prune(self) -> Any:
        raise NotImplementedError

    def _sid_of(self, command: Sql) -> str | None:
        sid = command.params.get("sid")
        return sid if isinstance(sid, str) else None


class SqlStore(_Pruning, CommandStore[Sql]):
    """An async SQL store: prunes in the background from its first statement on."""

    rules: SqlRules
    _creating: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    def _run(self, steps: Steps[Sql, T]) -> Awaitable[T]:
        self.pruner.ensure_started()
        if self.rules.created:
            return super()._run(steps)
        return self._run_once_created(steps)

    async def _run_once_created(self, steps: Steps[Sql, T]) -> T:
        """The first statements wait for one request to create the table (the others would
        otherwise query a table not there yet)."""
        loop = asyncio.get_running_loop()
        if self._creating is None or self._creating[0] is not loop:
            self._creating = (loop, asyncio.Lock())
        async with self._creating[1]:
            if not self.rules.created:
                await super()._run(self.rules.ensure_table())
        return await super()._run(steps)

    async def prune(self, progress: Callable[[int], None] | None = None) -> int:
        """Delete the expired rows now, in batches; how many went."""
        return await self._run(self.rules.prune(progress))

    async def aclose(self) -> None:
        await self.pruner.aclose()
        await super().aclose()


class SyncSqlStore(_Pruning, SyncCommandStore[Sql]):
    """A sync SQL store: prunes in a background thread from its first statement on."""

    rules: SqlRules
    _creating: threading.Lock
    """Held only until the store's table exists."""

    def _run(self, steps: Steps[Sql, T]) -> T:
        self.pruner.ensure_started()
        if not self.rules.created:
            with self._creating:  # the first statements wait for one to create the table
                if not self.rules.created:
                    super()._run(self.rules.ensure_table())
        return super()._run(steps)

    def prune(self, progress: Callable[[int], None] | None = None) -> int:
        """Delete the expired rows now, in batches; how many went."""
        return self._run(self.rules.prune(progress))

    def close(self) -> None:
        self.pruner.close()
        super().close()


def fetched(cursor: Any, fetch: Fetch) -> Any:
    """What a statement brings back, from a DB-API cursor."""
    if fetch == "one":
        return cursor.fetchone()
    if fetch == "all":
        return cursor.fetchall()
    if fetch == "rowcount":
        return cursor.rowcount
    return None


async def afetched(cursor: Any, fetch: Fetch) -> Any:
    """What a statement brings back, from an asyncio cursor (psycopg, asyncmy)."""
    if fetch == "one":
        return await cursor.fetchone()
    if fetch == "all":
        return await cursor.fetchall()
    return cursor.rowcount if fetch == "rowcount" else None


SqlSessions = SqlRules
"""The name of ``SqlRules`` in 0.1 (kept so that code written for it still imports)."""

__all__ = [
    "MYSQL",
    "POSTGRES",
    "SQLITE",
    "Dialect",
    "Sql",
    "SqlOptions",
    "SqlRules",
    "SqlSessions",
    "SqlStore",
    "SyncSqlStore",
    "afetched",
    "fetched",
    "identifier",
]

"""SQL stores (issue: SQL stores): get/set/touch latency at two table sizes, a prune of expired rows
among live ones with the latency of concurrent gets during it, and each store's per-request cost
beside RedisStore's in the same run. Also the asyncio driver choice for PostgreSQL: psycopg 3
against asyncpg, the same statement on one connection each.

    .venv/bin/python bench/bench_sql.py                     # 10 000 and 1 000 000 rows
    .venv/bin/python bench/bench_sql.py --sizes 10000 100000 --expired 10000

Needs PostgreSQL (127.0.0.1:5432, database test), MariaDB (127.0.0.1:3306, database test) and
Redis (127.0.0.1:6379). Tables are the bench's own and dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pymysql

from sessionware._records import SessionRecord
from sessionware.stores.mysql import SyncMySQLStore, connection_options
from sessionware.stores.postgres import PostgresStore, SyncPostgresStore
from sessionware.stores.redis import SyncRedisStore
from sessionware.stores.sqlite import SQLiteStore

PG = "postgresql://postgres@127.0.0.1:5432/test"
MYSQL = "mysql://root@127.0.0.1:3306/test"
REDIS = "redis://127.0.0.1:6379/0"
SESS = (
    '{"cookie":{"originalMaxAge":3600000,"expires":"2030-01-01T00:00:00.000Z",'
    '"httpOnly":true,"path":"/"},"n":1}'
)


def record() -> SessionRecord:
    return SessionRecord.from_dict(
        {"cookie": {"originalMaxAge": 3600000, "expires": "2030-01-01T00:00:00.000Z"}, "n": 1}
    )


def fill(kind: str, store: Any, table: str, live: int, expired: int) -> None:
    """``live`` rows expiring in 2030 and ``expired`` rows expired an hour ago, in bulk."""
    now = time.time()
    if kind == "sqlite":
        connection = store._connection()
        connection.execute("BEGIN")
        connection.executemany(
            f'INSERT INTO "{table}" (sid, expired, sess) VALUES (?, ?, ?)',
            (
                (f"s{i}", 1893456000000 if i < live else int((now - 3600) * 1000), SESS)
                for i in range(live + expired)
            ),
        )
        connection.execute("COMMIT")
    elif kind == "postgres":
        with psycopg.connect(PG, autocommit=True) as connection:
            connection.execute(
                f"INSERT INTO \"{table}\" (sid, sess, expire) SELECT 's' || i, %s::json,"
                " CASE WHEN i < %s THEN timestamp '2030-01-01'"
                " ELSE (now() AT TIME ZONE 'UTC') - interval '1 hour' END"
                " FROM generate_series(0, %s - 1) AS i",
                (SESS, live, live + expired),
            )
            connection.execute(f'ANALYZE "{table}"')
    elif kind == "mysql":
        with pymysql.connect(**connection_options(MYSQL, 30)) as connection:
            cursor = connection.cursor()
            cursor.execute(
                f"INSERT INTO `{table}` (session_id, expires, data)"
                " SELECT CONCAT('s', seq), IF(seq < %s, 1893456000, %s), %s"
                " FROM seq_0_to_%s" % ("%s", "%s", "%s", live + expired - 1),
                (live, int(now - 3600), SESS),
            )
            cursor.execute(f"ANALYZE TABLE `{table}`")


def latency(call: Callable[[], Any], count: int = 2000) -> float:
    samples = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(count // 5):
            call()
        samples.append((time.perf_counter() - started) / (count // 5) * 1e6)
    return statistics.median(samples)


def make(kind: str, table: str) -> Any:
    if kind == "sqlite":
        return SQLiteStore(tempfile.mkdtemp() + "/bench.db", table=table, prune_interval=None)
    if kind == "postgres":
        return SyncPostgresStore(url=PG, table=table, prune_interval=None)
    if kind == "redis":
        return SyncRedisStore(url=REDIS, prefix=f"{table}:")
    return SyncMySQLStore(url=MYSQL, table=table, prune_interval=None)


def drop(kind: str, store: Any, table: str) -> None:
    if kind == "redis":
        store.clear()
    elif kind == "postgres":
        with psycopg.connect(PG, autocommit=True) as connection:
            connection.execute(f'DROP TABLE IF EXISTS "{table}"')
    elif kind == "mysql":
        with pymysql.connect(**connection_options(MYSQL, 30)) as connection:
            connection.cursor().execute(f"DROP TABLE IF EXISTS `{table}`")
    store.close()


def operations(kind: str, sizes: list[int]) -> None:
    for size in sizes:
        table = f"bench_{uuid.uuid4().hex[:8]}"
        store = make(kind, table)
        store.length()
        fill(kind, store, table, size, 0)
        get, set_, touch = timed_operations(store)
        print(
            f"{kind:9} {size:>9} rows  get {get:7.1f} us  set {set_:7.1f} us  touch {touch:7.1f} us"
        )
        drop(kind, store, table)


def timed_operations(store: Any) -> tuple[float, float, float]:
    rec = record()
    gc.disable()
    try:
        return (
            latency(lambda: store.get_record("s42")),
            latency(lambda: store.set_record("s42", rec)),
            latency(lambda: store.touch_record("s42", rec)),
        )
    finally:
        gc.enable()


def prune(kind: str, live: int, expired: int) -> None:
    table = f"bench_{uuid.uuid4().hex[:8]}"
    store = make(kind, table)
    store.length()
    fill(kind, store, table, live, expired)
    other = make(kind, table) if kind != "sqlite" else store
    gets: list[float] = []
    done = False

    def reader() -> None:
        while not done:
            started = time.perf_counter()
            other.get_record("s7")
            gets.append((time.perf_counter() - started) * 1e6)
            time.sleep(0.001)

    import threading

    thread = threading.Thread(target=reader)
    thread.start()
    started = time.perf_counter()
    deleted = store.prune()
    seconds = time.perf_counter() - started
    done = True
    thread.join()
    gets.sort()
    p99 = gets[int(len(gets) * 0.99) - 1] if gets else float("nan")
    print(
        f"{kind:9} prune {deleted} expired among {live} live: {seconds:.2f} s; concurrent gets "
        f"p50 {gets[len(gets) // 2]:.0f} us, p99 {p99:.0f} us, max {gets[-1]:.0f} us"
    )
    if other is not store:
        other.close()
    drop(kind, store, table)


async def async_drivers() -> None:
    import asyncpg

    table = f"bench_{uuid.uuid4().hex[:8]}"
    store = PostgresStore(url=PG, table=table, prune_interval=None)
    await store.length()
    await store.set_record("s1", record())
    statement = f'SELECT sess::text FROM "{table}" WHERE sid = $1 AND expire >= now()'
    apg = await asyncpg.connect(PG)
    pg3 = await psycopg.AsyncConnection.connect(PG, autocommit=True)

    async def run(call: Callable[[], Any]) -> float:
        samples = []
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(400):
                await call()
            samples.append((time.perf_counter() - started) / 400 * 1e6)
        return statistics.median(samples)

    psycopg_us = await run(lambda: pg3.execute(statement.replace("$1", "%s"), ("s1",)))
    asyncpg_us = await run(lambda: apg.fetchrow(statement, "s1"))
    store_us = await run(lambda: store.get_record("s1"))
    print(
        f"asyncio PostgreSQL, one SELECT by key: psycopg 3 {psycopg_us:.1f} us, asyncpg "
        f"{asyncpg_us:.1f} us; PostgresStore.get (psycopg 3, pool) {store_us:.1f} us"
    )
    await apg.close()
    await pg3.close()
    with psycopg.connect(PG, autocommit=True) as connection:
        connection.execute(f'DROP TABLE IF EXISTS "{table}"')
    await store.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--expired", type=int, default=100_000)
    args = parser.parse_args()
    operations("redis", args.sizes[:1])
    for kind in ("sqlite", "postgres", "mysql"):
        operations(kind, args.sizes)
    for kind in ("sqlite", "postgres", "mysql"):
        prune(kind, args.sizes[-1], args.expired)
    asyncio.run(async_drivers())


if __name__ == "__main__":
    main()

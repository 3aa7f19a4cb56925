"""The cost of the per-user index (``user_key``) on every store, in one run.

The same Starlette app serves a signed-in session (``uid`` set) on each store twice, with
``user_key="uid"`` and without, interleaved round by round; a write changes the session, a read
only reads it. Target: with the index, a request costs at most 1.1x what it costs without. Also
shown, for information: the timeouts (``idle_timeout`` + ``absolute_timeout``) on MemoryStore,
and ``encryption_keys`` on Redis.

    .venv/bin/python bench/bench_user_index.py     # needs Redis, PostgreSQL and MariaDB running
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import tempfile
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pymysql
import redis
from bench_asgi import Caller, per_request_us, read, write
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from sessionware import MemoryStore, SessionMiddleware
from sessionware.stores.mysql import MySQLStore, connection_options
from sessionware.stores.postgres import PostgresStore
from sessionware.stores.redis import RedisStore
from sessionware.stores.sqlite import SQLiteStore

SECRET = "benchmark secret with enough entropy!"
REDIS_URL = "redis://127.0.0.1:6379/0"
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
MYSQL_URL = "mysql://root@127.0.0.1:3306/test"
RUN = uuid.uuid4().hex[:8]


async def login(request: Request) -> PlainTextResponse:
    request.session["uid"] = "user-1"
    return PlainTextResponse("ok")


def app_on(store: Any, **options: Any) -> Starlette:
    app = Starlette(routes=[Route("/login", login), Route("/write", write), Route("/read", read)])
    app.add_middleware(
        SessionMiddleware, secret=SECRET, store=store, cookie={"max_age": 3600}, **options
    )
    return app


STORES: dict[str, Callable[[str], Any]] = {
    "memory": lambda tag: MemoryStore(),
    "redis": lambda tag: RedisStore(url=REDIS_URL, prefix=f"bench-user:{RUN}:{tag}:"),
    "sqlite": lambda tag: SQLiteStore(f"{tempfile.mkdtemp()}/bench.db"),
    "postgres": lambda tag: PostgresStore(url=POSTGRES_URL, table=f"bench_user_{RUN}_{tag}"),
    "mysql": lambda tag: MySQLStore(url=MYSQL_URL, table=f"bench_user_{RUN}_{tag}"),
}
KEY = "encryption key for the benchmark, 32+ bytes"


def contenders() -> dict[tuple[str, str], Any]:
    apps: dict[tuple[str, str], Any] = {}
    for name, make in STORES.items():
        apps[(name, "plain")] = app_on(make("plain"))
        apps[(name, "user_key")] = app_on(make("indexed"), user_key="uid")
    apps[("memory", "timeouts")] = app_on(MemoryStore(), idle_timeout=1800, absolute_timeout=86400)
    apps[("redis", "encrypted")] = app_on(
        RedisStore(url=REDIS_URL, prefix=f"bench-user:{RUN}:enc:", encryption_keys=KEY)
    )
    return apps


async def measure(count: int, rounds: int) -> dict[tuple[str, str, str], float]:
    callers = {key: Caller(app) for key, app in contenders().items()}
    for caller in callers.values():
        await caller("/login")
        for path in ("/write", "/read"):
            await per_request_us(caller, path, 50)
    samples: dict[tuple[str, str, str], list[float]] = {}
    gc.disable()
    try:
        for _ in range(rounds):
            for (store, variant), caller in callers.items():
                for path in ("/write", "/read"):
                    key = (store, variant, path)
                    samples.setdefault(key, []).append(await per_request_us(caller, path, count))
            gc.collect()
    finally:
        gc.enable()
    return {key: statistics.median(values) for key, values in samples.items()}


def cleanup() -> None:
    client = redis.Redis.from_url(REDIS_URL)
    for match in (f"bench-user:{RUN}:*", f"bench-user:{RUN}:*-user:*"):
        keys = list(client.scan_iter(match=match))
        if keys:
            client.delete(*keys)
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        for tag in ("plain", "indexed"):
            connection.execute(f'DROP TABLE IF EXISTS "bench_user_{RUN}_{tag}"')
    with pymysql.connect(**connection_options(MYSQL_URL, 5)) as connection:
        for tag in ("plain", "indexed"):
            connection.cursor().execute(f"DROP TABLE IF EXISTS `bench_user_{RUN}_{tag}`")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    try:
        results = asyncio.run(measure(args.count, args.rounds))
    finally:
        cleanup()
    print("store     variant     request  us/request  ratio to plain")
    for store, variant, path in sorted(results, key=lambda key: (list(STORES).index(key[0]),)):
        value = results[(store, variant, path)]
        ratio = value / results[(store, "plain", path)]
        target = "  (target <= 1.1x)" if variant == "user_key" else ""
        print(f"{store:9} {variant:11} {path:7} {value:10.1f}  {ratio:6.2f}x{target}")


if __name__ == "__main__":
    main()

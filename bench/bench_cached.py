"""What a durable store behind a cache costs a read, once the cache is warm (issue: store shapes;
target: within 10 % of the cache store alone).

The same Starlette app, in-process, reads its session (``/read``) through sessionware on:
the cache store alone, and ``CachedStore(cache, durable, touch_after=60)``. Rounds alternate
between them; the medians and their ratio are reported. Pairs: MemoryStore in front of SQLite,
and (with the machine's Redis and PostgreSQL) RedisStore in front of PostgresStore.

    .venv/bin/python bench/bench_cached.py
    .venv/bin/python bench/bench_cached.py --pair memory-sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import tempfile
from typing import Any

from bench_asgi import MAX_AGE, SECRET, Caller, per_request_us, starlette_app

from sessionware import MemoryStore, SessionMiddleware
from sessionware.stores.cached import CachedStore


def stores(pair: str) -> tuple[Any, Any, list[Any]]:
    """The cache alone, the cached store, and what to close afterwards."""
    if pair == "memory-sqlite":
        from sessionware.stores.sqlite import SQLiteStore

        alone = MemoryStore()
        durable = SQLiteStore(tempfile.mkdtemp() + "/bench.db")
        return alone, CachedStore(MemoryStore(), durable, touch_after=60), [durable]
    from sessionware.stores.postgres import PostgresStore
    from sessionware.stores.redis import RedisStore

    url = "redis://127.0.0.1:6379/0"
    alone = RedisStore(url=url, prefix="bench-cached-alone:")
    cache = RedisStore(url=url, prefix="bench-cached:")
    durable = PostgresStore(url="postgresql://postgres@127.0.0.1/test", table="bench_cached")
    return alone, CachedStore(cache, durable, touch_after=60), [alone, cache, durable]


def app_on(store: Any) -> Any:
    app = starlette_app(True)
    app.add_middleware(SessionMiddleware, secret=SECRET, store=store, cookie={"max_age": MAX_AGE})
    return app


async def measure(pair: str, count: int, rounds: int) -> dict[str, float]:
    alone, cached, owned = stores(pair)
    callers = {"cache alone": Caller(app_on(alone)), "cached": Caller(app_on(cached))}
    for caller in callers.values():
        await caller("/write")
        await per_request_us(caller, "/read", 200)
    samples: dict[str, list[float]] = {name: [] for name in callers}
    gc.disable()
    try:
        for _ in range(rounds):
            for name, caller in callers.items():
                samples[name].append(await per_request_us(caller, "/read", count))
            gc.collect()
    finally:
        gc.enable()
    for store in owned:
        await store.aclose() if hasattr(store, "aclose") else store.close()
    if pair != "memory-sqlite":
        import psycopg

        with psycopg.connect("postgresql://postgres@127.0.0.1/test", autocommit=True) as db:
            db.execute("DROP TABLE IF EXISTS bench_cached")
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pair", action="append", choices=("memory-sqlite", "redis-postgres"))
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    print("pair            cache alone us  cached us  cached/alone (target <= 1.10)")
    for pair in args.pair or ("memory-sqlite", "redis-postgres"):
        found = asyncio.run(measure(pair, args.count, args.rounds))
        alone, cached = found["cache alone"], found["cached"]
        print(f"{pair:15} {alone:14.1f} {cached:10.1f}  {cached / alone:.3f}")


if __name__ == "__main__":
    main()

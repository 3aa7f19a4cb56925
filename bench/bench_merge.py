"""The cost of a merging save against a whole-session save (issue: no lost updates).

The same Starlette app writes its session on every request, with ``merge=True`` (the default:
compare-and-set against what was loaded) and ``merge=False`` (express's overwrite), on
MemoryStore and on RedisStore, interleaved in one run. No concurrent writer: this is the price
of the common case. Target: merging costs at most 1.1x the plain save.

    .venv/bin/python bench/bench_merge.py            # needs Redis on 127.0.0.1:6379
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import uuid
from typing import Any

import redis
from bench_asgi import Caller, per_request_us, starlette_app

from sessionware import MemoryStore, SessionMiddleware
from sessionware.stores.redis import RedisStore

SECRET = "benchmark secret with enough entropy!"
REDIS_URL = "redis://127.0.0.1:6379/0"


def contenders(prefix: str) -> dict[tuple[str, bool], Any]:
    apps = {}
    for store_name in ("memory", "redis"):
        for merge in (True, False):
            store: Any = (
                MemoryStore()
                if store_name == "memory"
                else RedisStore(url=REDIS_URL, prefix=prefix)
            )
            app = starlette_app(True)
            app.add_middleware(
                SessionMiddleware,
                secret=SECRET,
                store=store,
                cookie={"max_age": 3600},
                merge=merge,
            )
            apps[(store_name, merge)] = app
    return apps


async def measure(count: int, rounds: int, prefix: str) -> dict[tuple[str, bool], float]:
    callers = {key: Caller(app) for key, app in contenders(prefix).items()}
    for caller in callers.values():
        await caller("/write")
        await per_request_us(caller, "/write", 100)
    samples: dict[tuple[str, bool], list[float]] = {key: [] for key in callers}
    gc.disable()
    try:
        for _ in range(rounds):
            for key, caller in callers.items():
                samples[key].append(await per_request_us(caller, "/write", count))
            gc.collect()
    finally:
        gc.enable()
    return {key: statistics.median(values) for key, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args()
    prefix = f"bench-merge:{uuid.uuid4().hex[:8]}:"
    try:
        results = asyncio.run(measure(args.count, args.rounds, prefix))
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
    print("store   merge      us/write  merge/plain")
    for store_name in ("memory", "redis"):
        merged, plain = results[(store_name, True)], results[(store_name, False)]
        print(f"{store_name:7} True   {merged:10.2f}  {merged / plain:10.2f}x (target <= 1.1x)")
        print(f"{store_name:7} False  {plain:10.2f}")


if __name__ == "__main__":
    main()

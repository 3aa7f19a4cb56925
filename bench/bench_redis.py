"""Per-request time of a Starlette app with sessions in Redis: sessionware vs starsessions.

Both stores talk to the same Redis (default redis://127.0.0.1:6379/0, or $SESSIONWARE_REDIS_URL)
with their own key prefixes; each request is measured in-process, for a request that writes the
session and one that only reads it, and the Redis commands each sends are counted from INFO
commandstats. Run:

    .venv/bin/pip install -e '.[bench,redis]'
    .venv/bin/python bench/bench_redis.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
from typing import Any

import redis
from bench_asgi import MAX_AGE, SECRET, Caller, per_request_us, starlette_app
from starsessions import SessionAutoloadMiddleware
from starsessions import SessionMiddleware as StarSessionMiddleware
from starsessions.stores.redis import RedisStore as StarRedisStore

from sessionware import SessionMiddleware
from sessionware.stores.redis import RedisStore

URL = os.environ.get("SESSIONWARE_REDIS_URL", "redis://127.0.0.1:6379/0")
SETUP = {"hello", "client|setinfo", "select", "info", "config|resetstat", "ping"}


def contenders(touch_after: float, client_cache: bool) -> dict[str, Any]:
    ours = starlette_app(True)
    store = RedisStore(
        url=URL, prefix="bench-sw:", touch_after=touch_after, client_cache=client_cache
    )
    ours.add_middleware(SessionMiddleware, secret=SECRET, store=store, cookie={"max_age": MAX_AGE})
    star = starlette_app(True)
    star.add_middleware(SessionAutoloadMiddleware)
    star.add_middleware(
        StarSessionMiddleware, store=StarRedisStore(url=URL, prefix="bench-star:"), lifetime=MAX_AGE
    )
    return {"sessionware": ours, "starsessions": star}


async def commands_per_request(caller: Caller, path: str, stats: redis.Redis) -> dict[str, int]:
    stats.config_resetstat()
    await caller(path)
    counts = {
        name.removeprefix("cmdstat_"): int(value["calls"])
        for name, value in stats.info("commandstats").items()
    }
    return {name: calls for name, calls in counts.items() if name not in SETUP}


async def measure(count: int, rounds: int, touch_after: float, client_cache: bool) -> None:
    apps = contenders(touch_after, client_cache)
    callers = {name: Caller(app) for name, app in apps.items()}
    stats = redis.Redis.from_url(URL)
    for caller in callers.values():
        await caller("/write")
        await per_request_us(caller, "/write", 100)
        await per_request_us(caller, "/read", 100)
    samples: dict[str, dict[str, list[float]]] = {n: {"/write": [], "/read": []} for n in callers}
    for _ in range(rounds):
        for path in ("/write", "/read"):
            for name, caller in callers.items():
                samples[name][path].append(await per_request_us(caller, path, count))
    print(f"touch_after={touch_after} client_cache={client_cache}")
    print("request  contender      us/request  commands")
    for path in ("/write", "/read"):
        medians = {n: statistics.median(s[path]) for n, s in samples.items()}
        for name, caller in callers.items():
            commands = await commands_per_request(caller, path, stats)
            listed = " ".join(f"{k}={v}" for k, v in sorted(commands.items()))
            print(f"{path:8} {name:14} {medians[name]:10.1f}  {listed}")
        ratio = medians["sessionware"] / medians["starsessions"]
        print(f"{path:8} sessionware = {ratio:.2f}x starsessions (target <= 0.5x)")
    stats.delete(*stats.keys("bench-sw:*"), *stats.keys("bench-star:*"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--touch-after", type=float, default=0)
    parser.add_argument("--client-cache", action="store_true")
    args = parser.parse_args()
    asyncio.run(measure(args.count, args.rounds, args.touch_after, args.client_cache))


if __name__ == "__main__":
    main()

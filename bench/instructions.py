"""Instructions per request, counted by valgrind: the in-process comparison noisy timings cannot
settle (the performance issue's first target is <= 0.35x the cheaper peer's added cost).

Each contender of ``bench_asgi.contenders()`` serves ``N1`` and then ``N2`` requests of one kind
under ``valgrind --tool=callgrind``; per request = (I(N2) - I(N1)) / (N2 - N1), so start-up and
warm-up cancel out. Added cost = contender - bare app.

    .venv/bin/python bench/instructions.py            # every contender, write and read
    .venv/bin/python bench/instructions.py --only sessionware
    .venv/bin/python bench/instructions.py --only sessionware-redis --no-baseline  # needs Redis
    .venv/bin/python bench/instructions.py --only sessionware-redis --no-baseline --concurrency 8
    .venv/bin/python bench/instructions.py --only sessionware --only sessionware-events \
        --only sessionware-otel      # what a listener and the OpenTelemetry instrumentor cost
    .venv/bin/python bench/instructions.py --only sessionware --only sessionware-lazy
        # lazy=True: /write uses the session, /read never touches it (the cookie sent anyway)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
N1, N2 = 1000, 3000
PATHS = ("/write", "/read")


def redis_contender() -> object:
    """sessionware on RedisStore (the machine's Redis): the instructions of this process only,
    so the server's work and the waits are not counted."""
    from bench_asgi import SECRET, starlette_app

    from sessionware import SessionMiddleware
    from sessionware.stores.redis import RedisStore

    app = starlette_app(True)
    store = RedisStore(url="redis://127.0.0.1:6379/0", prefix="bench-instructions:")
    app.add_middleware(SessionMiddleware, secret=SECRET, store=store, cookie={"max_age": 3600})
    return app


def lazy_contender() -> object:
    """sessionware with ``lazy=True``: ``/write`` uses the session (its warm-up gives the
    caller a cookie), ``/read`` never touches it, the cookie sent all the same."""
    from bench_asgi import MAX_AGE, SECRET, plain, write
    from starlette.applications import Starlette
    from starlette.routing import Route

    from sessionware import MemoryStore, SessionMiddleware

    app = Starlette(routes=[Route("/write", write), Route("/read", plain)])
    app.add_middleware(
        SessionMiddleware, secret=SECRET, store=MemoryStore(), cookie={"max_age": MAX_AGE},
        lazy=True,
    )  # fmt: skip
    return app


def observed_contender(kind: str) -> object:
    """sessionware (MemoryStore) watched: ``events``, an ``on_event`` listener; ``otel``, the
    OpenTelemetry instrumentor with the SDK's providers (spans made and ended, metrics recorded,
    nothing exported while the requests run)."""
    from bench_asgi import MAX_AGE, SECRET, starlette_app

    from sessionware import MemoryStore, SessionMiddleware

    options: dict[str, object] = {}
    if kind == "events":
        options["on_event"] = lambda event: None
    else:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider

        from sessionware.integrations.opentelemetry import SessionwareInstrumentor

        SessionwareInstrumentor().instrument(
            tracer_provider=TracerProvider(),
            meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()]),
        )
    app = starlette_app(True)
    app.add_middleware(
        SessionMiddleware,
        secret=SECRET,
        store=MemoryStore(),
        cookie={"max_age": MAX_AGE},
        **options,
    )
    return app


def serve(contender: str, path: str, count: int, concurrency: int = 1) -> None:
    """The measured loop (run under valgrind): warmed-up sessions, then ``count`` requests,
    ``concurrency`` at a time (each loop with a session of its own, as concurrent users)."""
    from bench_asgi import Caller, contenders

    if contender == "sessionware-redis":
        app = redis_contender()
    elif contender == "sessionware-lazy":
        app = lazy_contender()
    elif contender in ("sessionware-events", "sessionware-otel"):
        app = observed_contender(contender.removeprefix("sessionware-"))
    else:
        app = contenders()[contender]
    callers = [Caller(app) for _ in range(concurrency)]

    async def requests(caller: Caller, times: int) -> None:
        for _ in range(times):
            await caller(path)

    async def run() -> None:
        for caller in callers:
            await caller("/write")
        await asyncio.gather(*(requests(caller, 200) for caller in callers))
        await asyncio.gather(*(requests(caller, count // concurrency) for caller in callers))

    asyncio.run(run())


def instructions(contender: str, path: str, count: int, concurrency: int = 1) -> int:
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        str(Path(__file__).resolve()),
        "--serve",
        contender,
        path,
        str(count),
        "--concurrency",
        str(concurrency),
    ]
    environment = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(
        command, capture_output=True, text=True, check=True, env=environment, cwd=HERE
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(done.stderr[-2000:])
    return int(found.group(1))


def per_request(
    contender: str, path: str, n1: int = N1, n2: int = N2, concurrency: int = 1
) -> float:
    counted = [instructions(contender, path, n, concurrency) for n in (n1, n2)]
    return (counted[1] - counted[0]) / (n2 - n1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", nargs=3, metavar=("CONTENDER", "PATH", "COUNT"))
    parser.add_argument("--only", action="append", help="measure only these contenders")
    parser.add_argument("--no-baseline", action="store_true", help="skip the bare app")
    parser.add_argument("--counts", nargs=2, type=int, default=(N1, N2), metavar=("N1", "N2"))
    parser.add_argument(
        "--concurrency", type=int, default=1, help="requests in flight at once (Redis batches)"
    )
    args = parser.parse_args()
    if args.serve:
        contender, path, count = args.serve
        serve(contender, path, int(count), args.concurrency)
        return
    contenders = args.only or ["sessionware", "starsessions", "starlette"]
    names = contenders if args.no_baseline else ["baseline", *contenders]
    counts = {
        (name, path): per_request(name, path, *args.counts, args.concurrency)
        for path in PATHS
        for name in names
    }
    if args.no_baseline:
        for (name, path), value in counts.items():
            print(f"{path:8} {name:14} {value:20,.0f}")
        return
    print("request  contender      instructions/request  added     ours/peer")
    for path in PATHS:
        base = counts[("baseline", path)]
        ours = counts.get(("sessionware", path), base) - base
        for name in names:
            added = counts[(name, path)] - base
            ratio = "" if name in ("baseline", "sessionware") or not added else ours / added
            shown = f"{ratio:9.2f}" if ratio != "" else ""
            print(f"{path:8} {name:14} {counts[(name, path)]:20,.0f}  {added:8,.0f}  {shown}")


if __name__ == "__main__":
    main()

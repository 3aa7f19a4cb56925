"""Per-request cost of session middleware on a Starlette app, in-process (issue: core).

Each contender is the same Starlette app wrapped in a session middleware; the baseline is the
app with no middleware. The added cost is contender minus baseline, measured in the same run,
for a request that writes the session and one that only reads it. Run:

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/bench_asgi.py
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.middleware.sessions import SessionMiddleware as StarletteSessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starsessions import InMemoryStore as StarInMemoryStore
from starsessions import SessionAutoloadMiddleware
from starsessions import SessionMiddleware as StarSessionMiddleware

from sessionware import MemoryStore, SessionMiddleware

SECRET = "benchmark secret with enough entropy!"
MAX_AGE = 3600


async def write(request: Request) -> PlainTextResponse:
    session = request.session
    session["n"] = session.get("n", 0) + 1
    return PlainTextResponse("ok")


async def read(request: Request) -> PlainTextResponse:
    request.session.get("n")
    return PlainTextResponse("ok")


async def plain(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def starlette_app(with_session: bool) -> Starlette:
    handlers = (write, read) if with_session else (plain, plain)
    return Starlette(routes=[Route("/write", handlers[0]), Route("/read", handlers[1])])


def contenders() -> dict[str, Any]:
    baseline = starlette_app(False)
    ours = starlette_app(True)
    ours.add_middleware(
        SessionMiddleware, secret=SECRET, store=MemoryStore(), cookie={"max_age": MAX_AGE}
    )
    star = starlette_app(True)
    star.add_middleware(SessionAutoloadMiddleware)
    star.add_middleware(StarSessionMiddleware, store=StarInMemoryStore(), lifetime=MAX_AGE)
    cookie_only = starlette_app(True)
    cookie_only.add_middleware(StarletteSessionMiddleware, secret_key=SECRET, max_age=MAX_AGE)
    return {
        "baseline": baseline,
        "sessionware": ours,
        "starsessions": star,
        "starlette": cookie_only,
    }


class Caller:
    """Calls an ASGI app directly and keeps the cookie it sets, like a browser would."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.cookie: bytes | None = None

    async def __call__(self, path: str) -> None:
        headers = [(b"host", b"bench")]
        if self.cookie:
            headers.append((b"cookie", self.cookie))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": headers,
            "client": ("127.0.0.1", 1),
            "server": ("bench", 80),
            "state": {},
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                for name, value in message["headers"]:
                    if name == b"set-cookie":
                        self.cookie = value.split(b";", 1)[0]

        await self.app(scope, receive, send)


async def per_request_us(call: Callable[[str], Any], path: str, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        await call(path)
    return (time.perf_counter() - started) / count * 1e6


async def measure(count: int, rounds: int) -> dict[str, dict[str, float]]:
    callers = {name: Caller(app) for name, app in contenders().items()}
    for caller in callers.values():
        await caller("/write")
        await per_request_us(caller, "/write", 200)
        await per_request_us(caller, "/read", 200)
    samples: dict[str, dict[str, list[float]]] = {
        name: {"/write": [], "/read": []} for name in callers
    }
    gc.disable()
    try:
        for _ in range(rounds):
            for path in ("/write", "/read"):
                for name, caller in callers.items():
                    samples[name][path].append(await per_request_us(caller, path, count))
            gc.collect()
    finally:
        gc.enable()
    return {
        name: {path: statistics.median(values) for path, values in by_path.items()}
        for name, by_path in samples.items()
    }


def report(results: dict[str, dict[str, float]]) -> list[str]:
    lines = ["request  contender      us/request  added us  ours/peer"]
    for path in ("/write", "/read"):
        base = results["baseline"][path]
        ours = results["sessionware"][path] - base
        for name in ("baseline", "sessionware", "starsessions", "starlette"):
            total = results[name][path]
            added = total - base
            ratio = "" if name in ("baseline", "sessionware") else f"{ours / added:9.2f}"
            lines.append(f"{path:8} {name:14} {total:10.2f}  {added:8.2f}  {ratio}")
        peers = min(results["starsessions"][path], results["starlette"][path]) - base
        lines.append(
            f"{path:8} sessionware added {ours:.2f} us = {ours / peers:.2f}x the cheaper peer "
            f"(targets: <= 8 us, <= 0.35x)"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    results = asyncio.run(measure(args.count, args.rounds))
    print("\n".join(report(results)))


if __name__ == "__main__":
    main()

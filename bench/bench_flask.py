"""Per-request cost of sessions in a Flask app, in-process through its WSGI callable.

The baseline is the same app whose views do not touch the session (Flask then skips its
session cookie entirely); contenders are sessionware + MemoryStore and Flask's built-in signed
cookie session. Added cost = contender minus baseline, same run. Run:

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/bench_flask.py
"""

from __future__ import annotations

import argparse
import gc
import io
import statistics
import time
from typing import Any

import flask

from sessionware import MemoryStore
from sessionware.integrations.flask import init_app


def make_app(kind: str) -> flask.Flask:
    app = flask.Flask(f"bench_{kind}")
    app.secret_key = "benchmark secret with enough entropy!"
    if kind == "sessionware":
        init_app(app, store=MemoryStore(), cookie={"max_age": 3600})
    uses_session = kind != "baseline"

    @app.get("/write")
    def write() -> str:
        if uses_session:
            flask.session["n"] = flask.session.get("n", 0) + 1
        return "ok"

    @app.get("/read")
    def read() -> str:
        if uses_session:
            flask.session.get("n")
        return "ok"

    return app


class Caller:
    """Calls a WSGI app directly, keeping the session cookie like a browser."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.cookie: str | None = None

    def __call__(self, path: str) -> None:
        environ = {
            "REQUEST_METHOD": "GET",
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "bench",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "bench",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(),
            "wsgi.errors": io.StringIO(),
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        if self.cookie:
            environ["HTTP_COOKIE"] = self.cookie

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            for name, value in headers:
                if name.lower() == "set-cookie":
                    self.cookie = value.split(";", 1)[0]
            return None

        body = self.app(environ, start_response)
        for _ in body:
            pass
        close = getattr(body, "close", None)
        if close:
            close()


def per_request_us(caller: Caller, path: str, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        caller(path)
    return (time.perf_counter() - started) / count * 1e6


def measure(count: int, rounds: int) -> dict[str, dict[str, float]]:
    callers = {kind: Caller(make_app(kind)) for kind in ("baseline", "sessionware", "flask")}
    for caller in callers.values():
        caller("/write")
        per_request_us(caller, "/write", 200)
        per_request_us(caller, "/read", 200)
    samples: dict[str, dict[str, list[float]]] = {k: {"/write": [], "/read": []} for k in callers}
    gc.disable()
    try:
        for _ in range(rounds):
            for path in ("/write", "/read"):
                for kind, caller in callers.items():
                    samples[kind][path].append(per_request_us(caller, path, count))
            gc.collect()
    finally:
        gc.enable()
    return {k: {p: statistics.median(v) for p, v in by.items()} for k, by in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    results = measure(args.count, args.rounds)
    print("request  contender      us/request  added us")
    for path in ("/write", "/read"):
        base = results["baseline"][path]
        for kind in ("baseline", "sessionware", "flask"):
            total = results[kind][path]
            print(f"{path:8} {kind:14} {total:10.2f}  {total - base:8.2f}")
        ours = results["sessionware"][path] - base
        theirs = results["flask"][path] - base
        print(
            f"{path:8} sessionware added {ours:.2f} us = {ours / theirs:.2f}x Flask's cookie "
            f"session (target <= 0.5x)"
        )


if __name__ == "__main__":
    main()

"""The apps `run.py` serves, one per contender, each with GET /read and GET /write: /write
increments a counter in the session, /read reads it. Selected by the CONTENDER variable."""

from __future__ import annotations

import os
from typing import Any

SECRET = "an http benchmark secret with enough entropy"
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")
PG = "postgresql://postgres@127.0.0.1:5432/test"
CONTENDER = os.environ.get("CONTENDER", "starlette-bare")


def starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    with_session = CONTENDER not in ("starlette-bare", "headers-only")

    async def write(request: Request) -> PlainTextResponse:
        if with_session:
            request.session["n"] = request.session.get("n", 0) + 1
        return PlainTextResponse("ok")

    async def read(request: Request) -> PlainTextResponse:
        if with_session:
            request.session.get("n")
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/write", write), Route("/read", read)])
    if CONTENDER.startswith("sessionware"):
        from sessionware import MemoryStore, SessionMiddleware
        from sessionware.stores.redis import RedisStore

        store: Any = MemoryStore()
        if CONTENDER == "sessionware-redis":
            store = RedisStore(url=REDIS, prefix="bench-http:")
        elif CONTENDER == "sessionware-redis-unpipelined":
            store = RedisStore(url=REDIS, prefix="bench-http:", auto_pipeline=False)
        elif CONTENDER == "sessionware-redis-cache":
            store = RedisStore(url=REDIS, prefix="bench-http:", client_cache=True, touch_after=60)
        elif CONTENDER.startswith("sessionware-sqlite"):
            from sessionware.stores.sqlite import SQLiteStore

            throttle = 60 if CONTENDER.endswith("throttled") else 0
            store = SQLiteStore(os.environ["BENCH_SQLITE"], touch_after=throttle)
        elif CONTENDER == "sessionware-postgres":
            from sessionware.stores.postgres import PostgresStore

            store = PostgresStore(url=os.environ.get("BENCH_POSTGRES", PG), table="bench_http")
        app.add_middleware(SessionMiddleware, secret=SECRET, store=store, cookie={"max_age": 3600})
    elif CONTENDER == "headers-only":
        from floor import HeadersOnlyMiddleware

        app.add_middleware(HeadersOnlyMiddleware)
    elif CONTENDER == "floor-memory":
        from floor import FloorSessionMiddleware

        app.add_middleware(FloorSessionMiddleware, secret=SECRET)
    elif CONTENDER == "starlette-cookie":
        from starlette.middleware.sessions import SessionMiddleware

        app.add_middleware(SessionMiddleware, secret_key=SECRET, max_age=3600)
    elif CONTENDER.startswith("starsessions"):
        from starsessions import InMemoryStore, SessionAutoloadMiddleware, SessionMiddleware
        from starsessions.stores.redis import RedisStore as StarRedis

        star_store: Any = InMemoryStore()
        if CONTENDER == "starsessions-redis":
            star_store = StarRedis(REDIS)
        app.add_middleware(SessionAutoloadMiddleware)
        app.add_middleware(SessionMiddleware, store=star_store, lifetime=3600)
    return app


def flask_app() -> Any:
    import flask

    app = flask.Flask(__name__)
    app.secret_key = SECRET
    with_session = CONTENDER != "flask-bare"
    if CONTENDER.startswith("flask-sessionware"):
        from sessionware import MemoryStore
        from sessionware.integrations.flask import init_app
        from sessionware.stores.redis import SyncRedisStore

        store: Any = MemoryStore()
        if CONTENDER == "flask-sessionware-redis":
            store = SyncRedisStore(url=REDIS, prefix="bench-http:")
        init_app(app, store=store, cookie={"max_age": 3600})
    elif CONTENDER == "flask-session-redis":
        import redis
        from flask_session import Session

        app.config.update(SESSION_TYPE="redis", SESSION_REDIS=redis.Redis.from_url(REDIS))
        Session(app)

    @app.get("/write")
    def write() -> str:
        if with_session:
            flask.session["n"] = flask.session.get("n", 0) + 1
        return "ok"

    @app.get("/read")
    def read() -> str:
        if with_session:
            flask.session.get("n")
        return "ok"

    return app


app = flask_app() if CONTENDER.startswith("flask") else starlette_app()

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from .harness import TRANSPORTS, Client, Handler, default_handler, express_options, middleware_for
from .services import require_redis


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["memory", "redis"])
def default_store(request: pytest.FixtureRequest, transport: str) -> Callable[[], Any]:
    """The store a scenario gets when it does not choose one: every scenario runs on each."""
    if request.param == "memory":
        return lambda: None
    from sessionware.stores.redis import RedisStore, SyncRedisStore

    prefix = request.getfixturevalue("redis_prefix")
    store_class = RedisStore if transport == "asgi" else SyncRedisStore
    return lambda: store_class(url=require_redis(), prefix=prefix)


@pytest.fixture
def make(transport: str, default_store: Callable[[], Any]) -> Iterator[Callable[..., Client]]:
    """``make(handler, **options)``: a client for a session app on this test's transport and
    default store, with express's test-suite defaults for options the test does not give."""
    clients: list[Client] = []

    def build(handler: Handler = default_handler, **options: Any) -> Client:
        if "store" not in options:
            options["store"] = default_store()
        app = middleware_for(transport, handler, **express_options(**options))
        client = Client(app, transport)
        client.middleware = app  # type: ignore[attr-defined]
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of the test's own on the machine's Redis, its keys removed afterwards (the
    per-user index keys beside it too)."""
    url = require_redis()
    name = f"sw-test:{uuid.uuid4().hex[:12]}:"
    yield name
    client = redis.Redis.from_url(url)
    from sessionware.stores.redis import RedisRules

    index = RedisRules(prefix=name).user_prefix
    keys = [key for match in (name, index) for key in client.scan_iter(match=match + "*")]
    if keys:
        client.delete(*keys)
    client.close()

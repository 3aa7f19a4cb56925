"""Interop with a real Node app (express-session + connect-redis) on the same Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis

from sessionware.stores.redis import RedisStore

from .harness import Client, middleware_for
from .node_app import SECRET, NodeApp, cookie_pair, node_app_on, python_handler
from .services import require_redis


@pytest.fixture
def node_app(redis_prefix: str) -> Iterator[NodeApp]:
    with node_app_on(STORE="redis", REDIS_URL=require_redis(), PREFIX=redis_prefix) as app:
        yield app


@pytest.fixture
def python_app(redis_prefix: str) -> Iterator[Client]:
    store = RedisStore(url=require_redis(), prefix=redis_prefix)
    app = middleware_for(
        "asgi",
        python_handler,
        secret=SECRET,
        store=store,
        name="connect.sid",
        cookie={"max_age": 3600},
    )
    client = Client(app, "asgi")
    yield client
    client.close()


def test_a_node_session_is_read_and_changed_by_python(
    node_app: NodeApp, python_app: Client
) -> None:
    created, node_cookie = node_app.get("/inc")
    assert created["count"] == 1
    cookie = cookie_pair(node_cookie)
    seen = json.loads(python_app.get("/get", cookie=cookie).text)
    assert seen == {"count": 1, "by": "node", "id": created["id"]}
    changed = python_app.get("/inc", cookie=cookie)
    assert json.loads(changed.text)["count"] == 2
    assert changed.cookie() == cookie, "Python must re-issue the very same cookie"
    back, _ = node_app.get("/get", cookie=cookie)
    assert back == {"count": 2, "by": "python", "id": created["id"]}


def test_a_python_session_is_read_and_changed_by_node(
    node_app: NodeApp, python_app: Client, redis_prefix: str
) -> None:
    created = python_app.get("/inc")
    cookie = created.cookie()
    sid = json.loads(created.text)["id"]
    seen, _ = node_app.get("/get", cookie=cookie)
    assert seen == {"count": 1, "by": "python", "id": sid}
    changed, node_cookie = node_app.get("/inc", cookie=cookie)
    assert changed["count"] == 2
    assert cookie_pair(node_cookie) == cookie, "Node must re-issue the very same cookie"
    back = json.loads(python_app.get("/get", cookie=cookie).text)
    assert back == {"count": 2, "by": "node", "id": sid}


def test_both_write_the_same_stored_shape(
    node_app: NodeApp, python_app: Client, redis_prefix: str
) -> None:
    raw = redis.Redis.from_url(require_redis())
    node_body, _ = node_app.get("/inc")
    python_sid = json.loads(python_app.get("/inc").text)["id"]
    node_value = json.loads(raw.get(redis_prefix + node_body["id"]) or b"null")
    python_value = json.loads(raw.get(redis_prefix + python_sid) or b"null")
    assert list(node_value) == list(python_value) == ["cookie", "count", "by"]
    assert list(node_value["cookie"]) == list(python_value["cookie"])
    assert raw.ttl(redis_prefix + python_sid) in (3599, 3600)
    assert raw.ttl(redis_prefix + node_body["id"]) in (3599, 3600)


def test_timeouts_and_the_user_index_live_beside_a_node_app(
    node_app: NodeApp, redis_prefix: str
) -> None:
    """Python stores the session's times as a data key Node ignores and keeps when it rewrites
    the session; Node's writes leave the index alone, and a listing drops what they changed."""
    from sessionware._records import TIMES_KEY
    from sessionware.stores.redis import SyncRedisStore

    raw = redis.Redis.from_url(require_redis())
    store = RedisStore(url=require_redis(), prefix=redis_prefix)
    app = middleware_for(
        "asgi",
        python_handler,
        secret=SECRET,
        store=store,
        cookie={"max_age": 3600},
        idle_timeout=600,
        absolute_timeout=86400,
        user_key="by",
    )
    python_app = Client(app, "asgi")
    indexed = SyncRedisStore(url=require_redis(), prefix=redis_prefix, user_key="by")
    try:
        created = python_app.get("/inc")
        cookie, sid = created.cookie(), json.loads(created.text)["id"]
        times = json.loads(raw.get(redis_prefix + sid) or b"{}")[TIMES_KEY]
        assert list(indexed.user_sessions("python")) == [sid]

        assert node_app.get("/get", cookie=cookie)[0] == {"count": 1, "by": "python", "id": sid}
        node_app.get("/inc", cookie=cookie)
        stored = json.loads(raw.get(redis_prefix + sid) or b"{}")
        assert stored[TIMES_KEY] == times, "Node's rewrite dropped the session's times"

        again = json.loads(python_app.get("/get", cookie=cookie).text)
        assert again == {"count": 2, "by": "node", "id": sid}
        assert indexed.user_sessions("python") == {}, "a session Node re-keyed is still listed"
        assert indexed.user_sessions("node") == {}, "Node's writes do not index (documented)"
    finally:
        python_app.close()
        indexed.close()

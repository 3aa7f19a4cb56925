"""Option validation: every bad option fails at construction, naming itself."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

import sessionware
from sessionware import MemoryStore, SessionMiddleware, WSGISessionMiddleware


def build(**options: Any) -> Any:
    options.setdefault("secret", "s")
    return SessionMiddleware(lambda *a: None, **options)


@pytest.mark.parametrize(
    ("options", "error", "names"),
    [
        ({"secret": None}, ValueError, "secret"),
        ({"secret": ""}, ValueError, "secret"),
        ({"secret": []}, ValueError, "secret"),
        ({"secret": ["ok", ""]}, ValueError, "secret"),
        ({"secret": 42}, TypeError, "secret"),
        ({"unset": "bogus"}, ValueError, "unset"),
        ({"genid": "bogus"}, TypeError, "genid"),
        ({"name": "bad name"}, ValueError, "name"),
        ({"proxy": "yes"}, TypeError, "proxy"),
        ({"resave": "yes"}, TypeError, "resave"),
        ({"max_size": 0}, ValueError, "max_size"),
        ({"store_unavailable": "maybe"}, ValueError, "store_unavailable"),
        ({"cookie": {"maxAge": 1}}, TypeError, "max_age"),
        ({"cookie": {"bogus": 1}}, TypeError, "bogus"),
        ({"cookie": {"samesite": "sometimes"}}, ValueError, "samesite"),
        ({"cookie": {"samesite": "AUTO"}}, ValueError, "samesite"),
        ({"cookie": {"priority": "urgent"}}, ValueError, "priority"),
        ({"cookie": {"max_age": "60"}}, TypeError, "max_age"),
        ({"cookie": {"max_age": -1}}, ValueError, "max_age"),
        ({"cookie": {"domain": "exa mple.com"}}, ValueError, "domain"),
        ({"cookie": {"domain": "-bad.com"}}, ValueError, "domain"),
        ({"cookie": {"path": "relative"}}, ValueError, "path"),
        ({"cookie": {"path": "/a;b"}}, ValueError, "path"),
        ({"cookie": {"secure": "yes"}}, ValueError, "secure"),
        ({"cookie": {"httponly": 1}}, TypeError, "httponly"),
        ({"cookie": 42}, TypeError, "cookie"),
    ],
)
def test_bad_options_name_themselves(options: dict[str, Any], error: type, names: str) -> None:
    with pytest.raises(error, match=names):
        build(**options)
    with pytest.raises(error, match=names):
        options.setdefault("secret", "s")
        WSGISessionMiddleware(lambda *a: [], **options)


def test_good_options_are_accepted() -> None:
    middleware = build(
        secret=[b"new", "old"],
        cookie={
            "max_age": timedelta(hours=1),
            "domain": ".example.com",
            "samesite": "Lax",
            "priority": "HIGH",
            "secure": "auto",
            "partitioned": True,
        },
        unset="destroy",
        proxy=True,
        max_size=None,
    )
    assert middleware.options.secrets == (b"new", b"old")
    cookie = middleware.options.cookie
    assert cookie.max_age_ms == 3_600_000
    assert (cookie.attributes.samesite, cookie.attributes.priority) == ("lax", "high")


def test_a_cookie_factory_is_validated_on_each_request() -> None:
    middleware = build(cookie=lambda request: {"bogus": True})
    with pytest.raises(TypeError, match="bogus"):
        middleware.engine.cookie_options_for({})


def test_a_store_without_the_required_methods_is_refused() -> None:
    class Incomplete:
        def get(self, sid: str) -> None:
            return None

    with pytest.raises(TypeError, match="set"):
        build(store=Incomplete())


@pytest.mark.parametrize("end", ["\n", "\r", "\r\n"])
def test_no_validator_accepts_a_trailing_line_break(end: str) -> None:
    """A pattern ending in ``$`` also matches before a final newline: every validated value is
    matched whole, so none can smuggle a line break into a header or a statement."""
    from sessionware.options import is_valid_sid
    from sessionware.stores.sql import identifier

    for options in (
        {"name": "connect.sid" + end},
        {"cookie": {"domain": "example.com" + end}},
        {"cookie": {"path": "/" + end}},
    ):
        with pytest.raises(ValueError):
            build(**options)
    assert not is_valid_sid("abc" + end)
    with pytest.raises(ValueError):
        identifier("sessions" + end, "table")


def test_a_genid_returning_a_line_break_is_refused(caplog: Any) -> None:
    from sessionware.errors import sid_tag

    from .harness import SECRET, Client, middleware_for

    def handler(req: Any) -> None:
        req.session["n"] = 1
        req.end()

    app = middleware_for("wsgi", handler, secret=SECRET, genid=lambda request: "fixed\n")
    response = Client(app, "wsgi").get("/")
    assert response.status == 500
    assert response.set_cookie is None
    tag = sid_tag("fixed\n")
    assert f"genid returned an invalid session id: {tag}" in caplog.text


def _redis_rules(**options: object) -> object:
    pytest.importorskip("redis")
    from sessionware.stores.redis import RedisRules

    return RedisRules(**options)  # type: ignore[arg-type]


def _health(retry_interval: object) -> object:
    from sessionware.stores.base import EventEmitter
    from sessionware.stores.toolkit import Health

    return Health(EventEmitter(), "test", retry_interval, asynchronous=False)  # type: ignore[arg-type]


def _nan() -> float:
    return float("nan")


@pytest.mark.parametrize(
    ("build", "option"),
    [
        (lambda bad: build(max_size=bad), "max_size"),
        (lambda bad: MemoryStore(ttl=bad), "ttl"),
        (lambda bad: MemoryStore(max_sessions=bad), "max_sessions"),
        (lambda bad: _redis_rules(ttl=bad), "ttl"),
        (lambda bad: _redis_rules(scan_count=bad), "scan_count"),
        (_health, "retry_interval"),
    ],
)
@pytest.mark.parametrize("bad", [0, -1, "5", _nan()], ids=["0", "-1", "str", "nan"])
def test_every_count_and_duration_is_a_positive_number(
    build: Callable[[object], object], option: str, bad: object
) -> None:
    """One rule for them all (before it, NaN passed a ``<= 0`` test: a probe that never
    waited). A compiled class's signature refuses a value of the wrong type first, with
    mypyc's ``TypeError``."""
    with pytest.raises((ValueError, TypeError)) as refused:
        build(bad)
    if refused.type is ValueError or not sessionware.compiled:
        assert str(refused.value).startswith(f"{option} must be a positive")


def test_a_bool_is_not_a_count() -> None:
    """``True`` is an int to Python; to the options it is a mistake (the compiled stores'
    signatures take it as 1, as mypyc converts it)."""
    with pytest.raises(ValueError, match="max_size must be a positive"):
        build(max_size=True)
    with pytest.raises(ValueError, match="max_sessions_per_user must be a positive"):
        build(max_sessions_per_user=True, user_key="uid")


def test_the_middleware_and_the_stores_read_user_key_by_one_rule() -> None:
    makers: list[Callable[[Any], object]] = [
        lambda key: build(user_key=key),
        lambda key: MemoryStore(user_key=key),
    ]
    for make in makers:
        for bad in ("", "cookie"):
            with pytest.raises(ValueError, match=r"^user_key must be a session key"):
                make(bad)
        with pytest.raises((ValueError, TypeError)):  # compiled: mypyc's TypeError first
            make(7)


@pytest.mark.parametrize(
    ("name", "cookie", "rule"),
    [
        ("__Host-sid", {}, "__Host- cookie needs secure=True"),
        ("__Host-sid", {"secure": "auto"}, "__Host- cookie needs secure=True"),
        ("__host-sid", {"secure": True, "path": "/app"}, "path '/'"),
        ("__Host-sid", {"secure": True, "domain": "example.com"}, "no domain"),
        ("__Secure-sid", {"secure": False}, "__Secure- cookie needs secure=True"),
        ("__SECURE-sid", {}, "__Secure- cookie needs secure=True"),
    ],
)
def test_a_cookie_prefix_whose_rules_are_broken_is_refused(
    name: str, cookie: dict[str, Any], rule: str
) -> None:
    """Browsers drop such a cookie without a word (sessions would never stick): refused at
    construction, naming the rule (ASVS 3.3.1)."""
    with pytest.raises(ValueError, match=re.escape(name) + ".*" + re.escape(rule)):
        build(name=name, cookie=cookie)


def test_a_cookie_prefix_kept_to_its_rules_is_accepted() -> None:
    build(name="__Host-sid", cookie={"secure": True})
    build(name="__Secure-sid", cookie={"secure": True, "domain": "example.com", "path": "/a"})
    per_request = build(name="__Host-sid", cookie=lambda request: {"secure": False})
    with pytest.raises(ValueError, match="__Host- cookie needs secure=True"):
        per_request.engine.cookie_options_for(None)

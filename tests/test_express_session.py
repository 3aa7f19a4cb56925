"""express-session 1.19's test/session.js, case by case (S001-S142), on ASGI and WSGI.

Each test is named after its case id; the harness gives express's test defaults (secret
'keyboard cat', cookie max_age 60 s, resave and save_uninitialized true) unless a test overrides
them. Cases that cannot apply to Python are listed, with the reason, in tests/README.md.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import pytest

import sessionware
from sessionware import MemoryStore, SessionError, SessionNotFound, SyncStore, load_session

from .harness import SECRET, Req, SpyStore, middleware_for

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def numbering() -> Any:
    counter = iter(range(1, 1000))

    def handler(req: Req) -> None:
        session = req.session
        if not session.get("num"):
            session["num"] = next(counter)
        req.end(f"session {session['num']}")

    return handler


def wait_for_next_second() -> None:
    """Expires has second precision: cross a second boundary so it must change."""
    time.sleep(1.05 - (time.time() % 1))


def expires_of(response: Any) -> datetime:
    return parsedate_to_datetime(response.cookie_attributes()["expires"])


def test_S001_exports_constructors() -> None:
    for name in ("Session", "SyncSession", "Store", "SyncStore", "MemoryStore", "Cookie"):
        assert isinstance(getattr(sessionware, name), type)


def test_S002_does_nothing_if_session_exists(transport: str, make: Any) -> None:
    client = make()
    inner = client.app

    if transport == "asgi":

        async def outer(scope: Any, receive: Any, send: Any) -> None:
            scope["session"] = {}
            await inner(scope, receive, send)

        client.app = outer
    else:

        def outer_wsgi(environ: Any, start_response: Any) -> Any:
            environ["sessionware.session"] = {}
            return inner(environ, start_response)

        client.app = outer_wsgi
    response = client.get("/")
    assert response.status == 200
    assert response.set_cookie is None


def test_S003_errors_without_secret() -> None:
    with pytest.raises(ValueError, match="secret"):
        sessionware.SessionMiddleware(lambda *a: None, secret=None)
    with pytest.raises(ValueError, match="secret"):
        sessionware.WSGISessionMiddleware(lambda *a: [], secret="")


def test_S005_creates_new_session(make: Any) -> None:
    store = MemoryStore()

    def handler(req: Req) -> None:
        req.session["active"] = True
        req.end("session active")

    response = make(handler, store=store).get("/")
    assert response.status == 200
    assert response.text == "session active"
    assert response.set_cookie.startswith("connect.sid=")
    assert store.length() == 1


def test_S006_loads_session_from_cookie_sid(make: Any) -> None:
    client = make(numbering())
    first = client.get("/")
    assert first.text == "session 1"
    assert first.set_cookie.startswith("connect.sid=")
    assert client.get("/", cookie=first.cookie()).text == "session 1"


def test_S007_passes_session_fetch_error(make: Any, caplog: Any) -> None:
    class FailingStore(MemoryStore):
        fail = False

        def get(self, sid: str) -> Any:
            if self.fail:
                raise RuntimeError("boom!")
            return super().get(sid)

    store = FailingStore()
    client = make(lambda req: req.end("hello, world"), store=store)
    first = client.get("/")
    assert first.status == 200
    assert first.text == "hello, world"
    store.fail = True
    with caplog.at_level(logging.ERROR, logger="sessionware"):
        second = client.get("/", cookie=first.cookie())
    assert second.status == 500
    assert "boom!" in caplog.text


@pytest.mark.parametrize("error", [SessionNotFound, FileNotFoundError])
def test_S008_treats_enoent_fetch_error_as_not_found(make: Any, error: type) -> None:
    class MissingStore(MemoryStore):
        def get(self, sid: str) -> Any:
            raise error(sid)

    client = make(numbering(), store=MissingStore())
    first = client.get("/")
    assert first.text == "session 1"
    second = client.get("/", cookie=first.cookie())
    assert second.status == 200
    assert second.text == "session 2"


def test_S009_creates_multiple_sessions(make: Any) -> None:
    store = MemoryStore()
    client = make(numbering(), store=store)
    assert client.get("/").text == "session 1"
    assert client.get("/").text == "session 2"
    assert len(store.all()) == 2


def test_S010_handles_empty_path(make: Any) -> None:
    response = make().get("")
    assert response.status == 200
    assert response.set_cookie.startswith("connect.sid=")


def test_S011_keeps_the_app_response_intact(make: Any) -> None:
    def handler(req: Req) -> None:
        req.header("Content-Type", "text/plain")
        req.end("Hello, world!")

    response = make(handler).get("/")
    assert response.header("content-type") == "text/plain"
    assert (response.status, response.text) == (200, "Hello, world!")


def test_S012_handles_an_empty_final_body(make: Any) -> None:
    response = make(lambda req: req.end(b"")).get("/")
    assert (response.status, response.text) == (200, "")


def test_S013_handles_reserved_properties_in_storage(make: Any) -> None:
    store = MemoryStore()
    sids: list[str] = []

    def handler(req: Req) -> None:
        sids.append(req.session.id)
        req.session["num"] = req.session.get("num") or 1
        req.end("session saved")

    client = make(handler, store=store)
    first = client.get("/")
    data = store.get(sids[0])
    data["save"] = "nope"
    data["id"] = "not-the-id"
    store.set(sids[0], data)

    def reader(req: Req) -> None:
        req.save()
        req.end(f"{req.session['save']} {req.session['id']} {req.session.id == sids[0]}")

    reading = make(reader, store=store).get("/", cookie=first.cookie())
    assert reading.text == "nope not-the-id True"


def test_S014_only_session_data_are_keys(make: Any) -> None:
    def handler(req: Req) -> None:
        req.session["test1"] = 1
        req.session["test2"] = "b"
        req.end(",".join(sorted(req.session)))

    assert make(handler).get("/").text == "test1,test2"


def test_S015_does_not_save_with_a_bogus_generated_id(make: Any, caplog: Any) -> None:
    store = MemoryStore()
    with caplog.at_level(logging.ERROR, logger="sessionware"):
        response = make(store=store, genid=lambda request: "bad id with spaces").get("/")
    assert response.status == 500
    assert response.set_cookie is None
    assert store.length() == 0
    assert "invalid session id" in caplog.text


def test_S016_updates_cookie_expiration_when_slow_write(make: Any) -> None:
    def handler(req: Req) -> None:
        req.session["user"] = "bob"
        req.write("hello, ")
        req.end("world!")

    client = make(handler, rolling=True)
    first = client.get("/")
    assert first.text == "hello, world!"
    wait_for_next_second()
    second = client.get("/", cookie=first.cookie())
    assert second.set_cookie.startswith("connect.sid=")
    assert expires_of(second) != expires_of(first)


class SlowStore(MemoryStore):
    """A store whose writes take a while, and that says when each finished."""

    blocking = True

    def __init__(self, timeline: list[str]) -> None:
        super().__init__()
        self.timeline = timeline

    def set(self, sid: str, data: Any) -> None:
        time.sleep(0.05)
        super().set(sid, data)
        self.timeline.append("set")


def _saved_before_end(make: Any, handler: Any) -> None:
    timeline: list[str] = []
    store = SlowStore(timeline)
    client = make(handler, store=store)
    client.timeline = timeline
    inner = client.app
    if client.transport == "asgi":

        async def observed(scope: Any, receive: Any, send: Any) -> None:
            async def watch(message: Any) -> None:
                if message["type"] == "http.response.body" and not message.get("more_body"):
                    timeline.append("end")
                await send(message)

            await inner(scope, receive, watch)

        client.app = observed
    else:

        def observed_wsgi(environ: Any, start_response: Any) -> Any:
            chunks = list(inner(environ, start_response))
            timeline.append("end")
            return chunks

        client.app = observed_wsgi
    response = client.get("/")
    assert response.status == 200
    assert timeline == ["set", "end"]
    assert store.length() == 1


def test_S017_has_saved_session_when_response_ended(make: Any) -> None:
    def handler(req: Req) -> None:
        req.session["hit"] = True
        req.end("session saved")

    _saved_before_end(make, handler)


def test_S018_has_saved_session_even_with_empty_response(make: Any) -> None:
    def handler(req: Req) -> None:
        req.session["hit"] = True
        req.header("Content-Length", "0")
        req.end()

    _saved_before_end(make, handler)


def test_S019_has_saved_session_even_with_multi_write(make: Any) -> None:
    def handler(req: Req) -> None:
        req.session["hit"] = True
        req.header("Content-Length", "12")
        req.write("hello, ")
        req.end("world")

    _saved_before_end(make, handler)


def test_S020_has_saved_session_even_with_non_chunked_response(make: Any) -> None:
    def handler(req: Req) -> None:
        req.session["hit"] = True
        req.header("Content-Length", "13")
        req.end("session saved")

    _saved_before_end(make, handler)


def test_S021_has_saved_session_with_updated_cookie_expiration(make: Any) -> None:
    store = MemoryStore()

    def handler(req: Req) -> None:
        req.session["user"] = "bob"
        req.end(req.session.id)

    client = make(handler, store=store, cookie={"max_age": 60})
    first = client.get("/")
    sid = first.text
    stored = datetime.fromisoformat(store.get(sid)["cookie"]["expires"].replace("Z", "+00:00"))
    assert stored.replace(microsecond=0) == expires_of(first)
    wait_for_next_second()
    second = client.get("/", cookie=first.cookie())
    assert second.text == sid
    later = datetime.fromisoformat(store.get(sid)["cookie"]["expires"].replace("Z", "+00:00"))
    assert later.replace(microsecond=0) != stored.replace(microsecond=0)


def test_S022_creates_a_new_session_when_sid_not_in_store(make: Any) -> None:
    store = MemoryStore()
    client = make(numbering(), store=store)
    first = client.get("/")
    store.clear()
    assert client.get("/", cookie=first.cookie()).text == "session 2"


def test_S023_has_a_new_sid_when_sid_not_in_store(make: Any) -> None:
    store = MemoryStore()
    client = make(numbering(), store=store)
    first = client.get("/")
    store.clear()
    second = client.get("/", cookie=first.cookie())
    assert second.set_cookie.startswith("connect.sid=")
    assert second.sid() != first.sid()
    assert second.text == "session 2"


def _created_or_read(req: Req) -> None:
    is_new = "active" not in req.session
    req.session["active"] = True
    req.end("session " + ("created" if is_new else "read"))


def test_S024_generates_new_session_when_not_properly_signed(make: Any) -> None:
    client = make(_created_or_read, name="sessid")
    first = client.get("/")
    assert first.set_cookie.startswith("sessid=")
    unsigned = first.sid()
    second = client.get("/", cookie="sessid=" + unsigned)
    assert second.text == "session created"
    assert second.sid() != unsigned


def test_S025_does_not_fetch_from_store_when_not_properly_signed(make: Any) -> None:
    store = SpyStore()
    client = make(_created_or_read, store=store, name="sessid")
    first = client.get("/")
    name, value = first.cookie().split("=", 1)
    dot = value.rindex(".")
    tampered = f"{name}={value[: dot - 3]}{value[dot:]}"
    store.reset()
    second = client.get("/", cookie=tampered)
    assert second.text == "session created"
    assert second.set_cookie.startswith("sessid=")
    assert store.count("get") == 0


def test_S026_creates_a_new_session_when_expired_in_store(make: Any) -> None:
    # millisecond lifetimes: MemoryStore's precision (Redis TTLs are whole seconds, as in
    # connect-redis; test_redis.py checks expiry there)
    client = make(numbering(), cookie={"max_age": 0.005}, store=MemoryStore())
    first = client.get("/")
    time.sleep(0.02)
    second = client.get("/", cookie=first.cookie())
    assert second.set_cookie.startswith("connect.sid=")
    assert second.text == "session 2"


def test_S027_has_a_new_sid_when_expired_in_store(make: Any) -> None:
    client = make(numbering(), cookie={"max_age": 0.005}, store=MemoryStore())
    first = client.get("/")
    time.sleep(0.015)
    second = client.get("/", cookie=first.cookie())
    assert second.sid() != first.sid()
    assert second.text == "session 2"


def test_S028_expired_session_does_not_exist_in_store(make: Any) -> None:
    store = MemoryStore()
    make(numbering(), store=store, cookie={"max_age": 0.005}).get("/")
    time.sleep(0.01)
    assert store.all() == {}


def test_S029_passes_error_from_inflate(make: Any, caplog: Any) -> None:
    store = MemoryStore()
    client = make(numbering(), store=store)
    first = client.get("/")
    store.set(first.sid(), {"foo": "bar"})
    with caplog.at_level(logging.ERROR, logger="sessionware"):
        second = client.get("/", cookie=first.cookie())
    assert second.status == 500
    assert "no cookie object" in caplog.text


class TestProxyOption:
    def test_S030_trusts_x_forwarded_proto_when_string(self, make: Any) -> None:
        client = make(proxy=True, cookie={"secure": True, "max_age": 5})
        response = client.get("/", headers={"X-Forwarded-Proto": "https"})
        assert response.set_cookie.startswith("connect.sid=")

    def test_S031_trusts_x_forwarded_proto_when_comma_separated(self, make: Any) -> None:
        client = make(proxy=True, cookie={"secure": True, "max_age": 5})
        response = client.get("/", headers={"X-Forwarded-Proto": "https,http"})
        assert response.set_cookie.startswith("connect.sid=")

    def test_S032_works_when_no_header(self, make: Any) -> None:
        client = make(proxy=True, cookie={"secure": True, "max_age": 5})
        response = client.get("/")
        assert response.status == 200
        assert response.set_cookie is None

    def test_S033_disabled_does_not_trust_x_forwarded_proto(self, make: Any) -> None:
        client = make(proxy=False, cookie={"secure": True})
        assert client.get("/", headers={"X-Forwarded-Proto": "https"}).set_cookie is None

    def test_S034_disabled_ignores_what_the_app_claims(self, make: Any) -> None:
        client = make(proxy=False, cookie={"secure": True})
        headers = {"X-Forwarded-Proto": "https", "X-Secure": "true"}
        assert client.get("/", headers=headers).set_cookie is None

    def test_S035_unspecified_does_not_trust_x_forwarded_proto(self, make: Any) -> None:
        client = make(cookie={"secure": True})
        assert client.get("/", headers={"X-Forwarded-Proto": "https"}).set_cookie is None

    def test_S036_unspecified_uses_the_servers_scheme(self, make: Any) -> None:
        client = make(cookie={"secure": True})
        response = client.get("/", headers={"X-Forwarded-Proto": "https"}, scheme="https")
        assert response.set_cookie.startswith("connect.sid=")


class TestCookiePath:
    def test_S037_does_not_set_cookie_for_root_request(self, make: Any) -> None:
        assert make(cookie={"path": "/foo/bar"}).get("/").set_cookie is None

    def test_S038_does_not_set_cookie_for_a_host_looking_like_a_path(self, make: Any) -> None:
        client = make(cookie={"path": "/foo/bar"})
        assert client.get("/", headers={"Host": "http://foo/bar"}).set_cookie is None

    def test_S039_sets_cookie_for_the_path(self, make: Any) -> None:
        assert make(cookie={"path": "/foo/bar"}).get("/foo/bar").set_cookie is not None

    def test_S040_sets_cookie_below_the_path(self, make: Any) -> None:
        assert make(cookie={"path": "/foo/bar"}).get("/foo/bar/baz").set_cookie is not None

    def test_S041_mounted_sets_cookie_for_the_full_path(self, make: Any) -> None:
        client = make(cookie={"path": "/foo/bar"})
        assert client.get("/bar", root_path="/foo").set_cookie is not None

    def test_S042_mounted_does_not_set_cookie_outside_the_path(self, make: Any) -> None:
        client = make(cookie={"path": "/foo/bar"})
        assert client.get("/foo/bar", root_path="/foo").set_cookie is None

    @pytest.mark.parametrize(
        ("cookie_path", "request_path", "matches"),
        [
            ("/", "/", True),
            ("/", "/foo/bar/baz", True),
            ("/admin", "/admin", True),
            ("/admin", "/admin/", True),
            ("/admin", "/admin/users", True),
            ("/admin", "/administrator", False),
            ("/admin/", "/admin/users", True),
            ("/admin/", "/admin", False),
        ],
    )
    def test_rfc6265_path_matching(
        self, make: Any, cookie_path: str, request_path: str, matches: bool
    ) -> None:
        response = make(cookie={"path": cookie_path}).get(request_path)
        assert (response.set_cookie is not None) is matches


class TestSecureAuto:
    def test_S043_proxy_true_sets_secure_when_forwarded_https(self, make: Any) -> None:
        client = make(proxy=True, cookie={"max_age": 5, "secure": "auto"})
        response = client.get("/", headers={"X-Forwarded-Proto": "https"})
        assert "secure" in response.cookie_attributes()

    def test_S044_proxy_false_does_not_set_secure_when_forwarded_https(self, make: Any) -> None:
        client = make(proxy=False, cookie={"max_age": 5, "secure": "auto"})
        response = client.get("/", headers={"X-Forwarded-Proto": "https"})
        assert "secure" not in response.cookie_attributes()

    def test_S045_sets_secure_on_a_secure_request(self, make: Any) -> None:
        response = make(cookie={"secure": "auto"}).get("/", scheme="https")
        assert "secure" in response.cookie_attributes()

    def test_S046_does_not_set_secure_on_an_insecure_request(self, make: Any) -> None:
        response = make(cookie={"secure": "auto"}).get("/")
        assert "secure" not in response.cookie_attributes()


class TestCookieFunction:
    def test_S047_calls_the_function_and_applies_its_options(self, make: Any) -> None:
        def options(request: Any) -> dict[str, Any]:
            return {"max_age": 5, "path": "/", "httponly": False, "samesite": "strict"}

        attributes = make(cookie=options).get("/").cookie_attributes()
        assert "httponly" not in attributes
        assert attributes["samesite"] == "Strict"
        assert "expires" in attributes

    def test_S048_passes_the_request(self, make: Any, transport: str) -> None:
        seen: list[Any] = []

        def options(request: Any) -> dict[str, Any]:
            seen.append(request)
            return {"path": "/"}

        make(cookie=options).get("/hello", headers={"X-Test": "yes"})
        assert seen
        request = seen[0]
        if transport == "asgi":
            assert request["path"] == "/hello"
        else:
            assert request["HTTP_X_TEST"] == "yes"


class TestSameSiteAuto:
    def samesite(self, make: Any, options: dict[str, Any], **request: Any) -> dict[str, str]:
        response = make(**options).get("/", **request)
        return response.cookie_attributes() if response.set_cookie else {}

    def test_S049_none_for_secure_connections(self, make: Any) -> None:
        assert (
            self.samesite(make, {"cookie": {"samesite": "auto"}}, scheme="https")["samesite"]
            == "None"
        )

    def test_S050_lax_for_insecure_connections(self, make: Any) -> None:
        assert self.samesite(make, {"cookie": {"samesite": "auto"}})["samesite"] == "Lax"

    def test_S051_proxy_true_none_when_forwarded_https(self, make: Any) -> None:
        attributes = self.samesite(
            make,
            {"proxy": True, "cookie": {"samesite": "auto"}},
            headers={"X-Forwarded-Proto": "https"},
        )
        assert attributes["samesite"] == "None"

    def test_S052_proxy_true_lax_when_forwarded_http(self, make: Any) -> None:
        attributes = self.samesite(
            make,
            {"proxy": True, "cookie": {"samesite": "auto"}},
            headers={"X-Forwarded-Proto": "http"},
        )
        assert attributes["samesite"] == "Lax"

    def test_S053_proxy_false_lax_when_forwarded_https(self, make: Any) -> None:
        attributes = self.samesite(
            make,
            {"proxy": False, "cookie": {"samesite": "auto"}},
            headers={"X-Forwarded-Proto": "https"},
        )
        assert attributes["samesite"] == "Lax"

    def test_S054_secure_auto_sets_both_when_secure(self, make: Any) -> None:
        attributes = self.samesite(
            make, {"cookie": {"samesite": "auto", "secure": "auto"}}, scheme="https"
        )
        assert attributes["samesite"] == "None"
        assert "secure" in attributes

    def test_S055_secure_auto_sets_neither_when_insecure(self, make: Any) -> None:
        attributes = self.samesite(make, {"cookie": {"samesite": "auto", "secure": "auto"}})
        assert attributes["samesite"] == "Lax"
        assert "secure" not in attributes

    def test_S056_secure_false_none_without_secure_when_secure(self, make: Any) -> None:
        attributes = self.samesite(
            make, {"cookie": {"samesite": "auto", "secure": False}}, scheme="https"
        )
        assert attributes["samesite"] == "None"
        assert "secure" not in attributes

    def test_S057_secure_false_lax_without_secure_when_insecure(self, make: Any) -> None:
        attributes = self.samesite(make, {"cookie": {"samesite": "auto", "secure": False}})
        assert attributes["samesite"] == "Lax"
        assert "secure" not in attributes

    def test_S058_secure_true_sets_both_when_secure(self, make: Any) -> None:
        attributes = self.samesite(
            make, {"cookie": {"samesite": "auto", "secure": True}}, scheme="https"
        )
        assert attributes["samesite"] == "None"
        assert "secure" in attributes

    def test_S059_secure_true_sets_no_cookie_when_insecure(self, make: Any) -> None:
        assert self.samesite(make, {"cookie": {"samesite": "auto", "secure": True}}) == {}

    def test_auto_is_resolved_for_a_cookie_function_too(self, make: Any) -> None:
        options = {"cookie": lambda request: {"samesite": "auto", "secure": "auto"}}
        secure = self.samesite(make, options, scheme="https")
        assert secure["samesite"] == "None"
        assert "secure" in secure
        insecure = self.samesite(make, options)
        assert insecure["samesite"] == "Lax"
        assert "secure" not in insecure


class TestGenid:
    def test_S060_rejects_non_callables(self) -> None:
        with pytest.raises(TypeError, match="genid"):
            sessionware.SessionMiddleware(lambda *a: None, secret=SECRET, genid="bogus!")  # type: ignore[arg-type]

    def test_S061_provides_a_default_generator(self, make: Any) -> None:
        response = make().get("/")
        sid = response.sid()
        assert len(sid) == 32
        assert set(sid) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")

    def test_S062_allows_a_custom_function(self, make: Any) -> None:
        response = make(genid=lambda request: "apple").get("/")
        assert response.cookie() == (
            "connect.sid=s%3Aapple.D8Y%2BpkTAmeR0PobOhY4G97PRW%2Bj7bUnP%2F5m6%2FOn1MCU"
        )

    def test_S063_encodes_unsafe_chars(self, make: Any) -> None:
        response = make(genid=lambda request: "%").get("/")
        assert (
            response.cookie() == "connect.sid=s%3A%25.kzQ6x52kKVdF35Qh62AWk4ZekS28K5XYCXKa%2FOTZ01g"
        )

    def test_S064_provides_the_request(self, make: Any, transport: str) -> None:
        def genid(request: Any) -> str:
            return request["path"] if transport == "asgi" else request["PATH_INFO"]

        response = make(genid=genid).get("/foo")
        assert response.cookie() == (
            "connect.sid=s%3A%2Ffoo.paEKBtAHbV5s1IB8B2zPnzAgYmmnRPIqObW4VRYj%2FMQ"
        )


def test_S067_name_defaults_to_connect_sid(make: Any) -> None:
    assert make().get("/").set_cookie.startswith("connect.sid=")


def test_S068_name_sets_the_cookie_name(make: Any) -> None:
    assert make(name="session_id").get("/").set_cookie.startswith("session_id=")


def _set_user(req: Req) -> None:
    req.session["user"] = "bob"
    req.end()


class TestRolling:
    def test_S069_defaults_to_false(self, make: Any) -> None:
        client = make(_set_user)
        first = client.get("/")
        assert first.set_cookie is not None
        assert client.get("/", cookie=first.cookie()).set_cookie is None

    def test_S070_forces_cookie_on_unmodified_session(self, make: Any) -> None:
        client = make(_set_user, rolling=True)
        first = client.get("/")
        assert client.get("/", cookie=first.cookie()).set_cookie is not None

    def test_S071_does_not_force_cookie_on_uninitialized_session(self, make: Any) -> None:
        store = SpyStore()
        response = make(store=store, rolling=True, save_uninitialized=False).get("/")
        assert response.set_cookie is None
        assert store.count("set") == 0

    def test_S072_forces_cookie_and_saves_uninitialized_when_save_uninitialized(
        self, make: Any
    ) -> None:
        store = SpyStore()
        response = make(store=store, rolling=True, save_uninitialized=True).get("/")
        assert response.set_cookie is not None
        assert store.count("set") == 1

    def test_S073_forces_cookie_and_saves_modified_session(self, make: Any) -> None:
        store = SpyStore()
        response = make(_set_user, store=store, rolling=True, save_uninitialized=False).get("/")
        assert response.set_cookie is not None
        assert store.count("set") == 1


class TestResave:
    def test_S074_defaults_to_false(self, transport: str) -> None:
        from .harness import Client

        store = SpyStore()
        app = middleware_for(transport, _set_user, secret=SECRET, store=store)
        client = Client(app, transport)
        first = client.get("/")
        store.reset()
        client.get("/", cookie=first.cookie())
        assert store.count("set") == 0
        assert store.count("touch") == 1
        client.close()

    def test_S075_true_forces_save_on_unmodified_session(self, make: Any) -> None:
        store = SpyStore()
        client = make(_set_user, store=store, resave=True)
        first = client.get("/")
        assert store.count("set") == 1
        store.reset()
        client.get("/", cookie=first.cookie())
        assert store.count("set") == 1

    def test_S076_false_prevents_save_on_unmodified_session(self, make: Any) -> None:
        store = SpyStore()
        client = make(_set_user, store=store, resave=False)
        first = client.get("/")
        assert store.count("set") == 1
        store.reset()
        client.get("/", cookie=first.cookie())
        assert store.count("set") == 0

    def test_S077_false_still_saves_modified_session(self, make: Any) -> None:
        store = SpyStore()

        def handler(req: Req) -> None:
            if req.method == "PUT":
                req.session["token"] = req.path[1:]
            req.end("token=" + req.session.get("token", ""))

        client = make(handler, store=store, resave=False)
        first = client.request("/w6RHhwaA", method="PUT")
        assert first.text == "token=w6RHhwaA"
        assert store.count("set") == 1
        store.reset()
        read = client.get("/", cookie=first.cookie())
        assert read.text == "token=w6RHhwaA"
        assert store.count("set") == 0
        changed = client.request("/zfQ3rzM3", method="PUT", cookie=first.cookie())
        assert changed.text == "token=zfQ3rzM3"
        assert store.count("set") == 1

    def test_S078_detects_a_nested_cookie_property_as_modified(self, make: Any) -> None:
        store = SpyStore()

        def handler(req: Req) -> None:
            user = req.session.setdefault("user", {})
            user["name"] = "bob"
            user["cookie"] = user.get("cookie", 0) + 1
            req.end()

        client = make(handler, store=store, resave=False)
        first = client.get("/")
        assert store.count("set") == 1
        store.reset()
        client.get("/", cookie=first.cookie())
        assert store.count("set") == 1

    def test_S079_touch_error_is_a_500(self, make: Any, caplog: Any) -> None:
        class BadTouch(MemoryStore):
            def touch(self, sid: str, data: Any) -> None:
                raise RuntimeError("boom!")

        def handler(req: Req) -> None:
            req.session["hit"] = True
            req.end("session saved")

        client = make(handler, store=BadTouch(), resave=False)
        first = client.get("/")
        assert first.text == "session saved"
        with caplog.at_level(logging.ERROR, logger="sessionware"):
            second = client.get("/", cookie=first.cookie())
        assert second.status == 500
        assert "boom!" in caplog.text


class TestSaveUninitialized:
    def test_S080_defaults_to_false(self, transport: str) -> None:
        from .harness import Client

        store = SpyStore()
        client = Client(
            middleware_for(transport, lambda r: r.end(), secret=SECRET, store=store), transport
        )
        response = client.get("/")
        assert response.set_cookie is None
        assert store.count("set") == 0
        client.close()

    def test_S081_forces_save_of_uninitialized_session(self, make: Any) -> None:
        store = SpyStore()
        response = make(store=store, save_uninitialized=True).get("/")
        assert response.set_cookie is not None
        assert store.count("set") == 1

    def test_S082_prevents_save_of_uninitialized_session(self, make: Any) -> None:
        store = SpyStore()
        response = make(store=store, save_uninitialized=False).get("/")
        assert response.set_cookie is None
        assert store.count("set") == 0

    def test_S083_still_saves_modified_session(self, make: Any) -> None:
        store = SpyStore()

        def handler(req: Req) -> None:
            req.session["count"] = req.session.get("count", 0) + 1
            req.end()

        response = make(handler, store=store, save_uninitialized=False).get("/")
        assert response.set_cookie is not None
        assert store.count("set") == 1

    def test_S084_save_error_is_a_500(self, make: Any, caplog: Any) -> None:
        class BadSet(MemoryStore):
            def set(self, sid: str, data: Any) -> None:
                raise RuntimeError("boom!")

        with caplog.at_level(logging.ERROR, logger="sessionware"):
            response = make(
                lambda r: r.end("session saved"), store=BadSet(), save_uninitialized=True
            ).get("/")
        assert response.status == 500
        assert response.set_cookie is None
        assert "boom!" in caplog.text

    def test_S085_prevents_uninitialized_session_from_being_touched(self, make: Any) -> None:
        store = SpyStore()
        make(store=store, save_uninitialized=False, cookie={"max_age": 60}).get("/")
        assert store.count("touch") == 0


class TestSecret:
    def test_S086_rejects_empty_lists(self) -> None:
        with pytest.raises(ValueError, match="secret"):
            sessionware.SessionMiddleware(lambda *a: None, secret=[])

    @staticmethod
    def _user(req: Req) -> None:
        if "user" not in req.session:
            req.session["user"] = "bob"
            req.end("set")
        else:
            req.end('get:"' + req.session["user"] + '"')

    def test_S087_signs_and_unsigns_with_a_string(self, make: Any) -> None:
        client = make(self._user, secret="awesome cat")
        first = client.get("/")
        assert first.text == "set"
        assert client.get("/", cookie=first.cookie()).text == 'get:"bob"'

    def test_S088_signs_and_unsigns_with_bytes(self, make: Any) -> None:
        client = make(self._user, secret=os.urandom(32))
        first = client.get("/")
        assert client.get("/", cookie=first.cookie()).text == 'get:"bob"'

    def test_S089_list_signs_cookies(self, make: Any) -> None:
        response = make(_set_user, secret=["keyboard cat", "nyan cat"]).get("/")
        assert response.set_cookie.startswith("connect.sid=")

    def test_S090_list_signs_with_the_first_element(self, make: Any) -> None:
        store = MemoryStore()
        writer = make(_set_user, secret=["keyboard cat", "nyan cat"], store=store)
        reader = make(lambda r: r.end(str(r.session.get("user"))), secret="nyan cat", store=store)
        assert reader.get("/", cookie=writer.get("/").cookie()).text == "None"

    def test_S091_list_reads_with_every_element(self, make: Any) -> None:
        store = MemoryStore()
        writer = make(_set_user, secret="nyan cat", store=store)
        reader = make(
            lambda r: r.end(str(r.session.get("user"))),
            secret=["keyboard cat", "nyan cat"],
            store=store,
        )
        assert reader.get("/", cookie=writer.get("/").cookie()).text == "bob"


def _count_then_unset(req: Req) -> None:
    req.session["count"] = req.session.get("count", 0) + 1
    if req.session["count"] == 2:
        req.session = None
    req.end()


class TestUnset:
    def test_S092_rejects_unknown_values(self) -> None:
        with pytest.raises(ValueError, match="unset"):
            sessionware.SessionMiddleware(lambda *a: None, secret=SECRET, unset="bogus!")

    def test_S093_defaults_to_keep(self, make: Any) -> None:
        store = MemoryStore()
        client = make(_count_then_unset, store=store)
        first = client.get("/")
        assert store.length() == 1
        client.get("/", cookie=first.cookie())
        assert store.length() == 1

    def test_S094_destroys_on_session_none(self, make: Any) -> None:
        store = MemoryStore()
        client = make(_count_then_unset, store=store, unset="destroy")
        first = client.get("/")
        assert store.length() == 1
        client.get("/", cookie=first.cookie())
        assert store.length() == 0

    def test_S095_does_not_set_cookie_if_initial_session_destroyed(self, make: Any) -> None:
        store = MemoryStore()

        def handler(req: Req) -> None:
            req.session = None
            req.end()

        response = make(handler, store=store, unset="destroy").get("/")
        assert response.set_cookie is None
        assert store.length() == 0

    def test_S096_destroy_error_is_a_500(self, make: Any, caplog: Any) -> None:
        class BadDestroy(MemoryStore):
            def destroy(self, sid: str) -> None:
                raise RuntimeError("boom!")

        def handler(req: Req) -> None:
            req.session = None
            req.end("session destroyed")

        with caplog.at_level(logging.ERROR, logger="sessionware"):
            response = make(handler, store=BadDestroy(), unset="destroy").get("/")
        assert response.status == 500
        assert "boom!" in caplog.text


class TestReqSession:
    def test_S100_persists(self, make: Any) -> None:
        store = MemoryStore()

        def handler(req: Req) -> None:
            req.session["count"] = req.session.get("count", 0) + 1
            req.end(f"hits: {req.session['count']}")

        client = make(handler, store=store)
        first = client.get("/")
        assert first.text == "hits: 1"
        loaded = load_session(store, first.sid())
        assert loaded is not None
        assert loaded["count"] == 1
        assert client.get("/", cookie=first.cookie()).text == "hits: 2"

    def test_S101_only_sets_cookie_when_modified(self, make: Any) -> None:
        modify = [True]

        def handler(req: Req) -> None:
            if modify[0]:
                req.session["count"] = req.session.get("count", 0) + 1
            req.end(str(req.session["count"]))

        client = make(handler)
        first = client.get("/")
        assert first.text == "1"
        second = client.get("/", cookie=first.cookie())
        assert second.text == "2"
        cookie = second.cookie()
        modify[0] = False
        third = client.get("/", cookie=cookie)
        assert (third.text, third.set_cookie) == ("2", None)
        modify[0] = True
        fourth = client.get("/", cookie=cookie)
        assert fourth.text == "3"
        assert fourth.set_cookie.startswith("connect.sid=")

    def test_S102_has_no_enumerable_methods(self, make: Any) -> None:
        def handler(req: Req) -> None:
            req.session["foo"] = "foo"
            req.session["bar"] = "bar"
            req.end(",".join(sorted(key for key in req.session)))

        assert make(handler).get("/").text == "bar,foo"

    def test_S103_is_not_set_if_store_is_disconnected(self, make: Any) -> None:
        store = MemoryStore()
        client = make(lambda r: r.end(type(r.session).__name__), store=store)
        store.emit("disconnect")
        response = client.get("/")
        assert response.set_cookie is None
        assert response.text == "NoneType"

    def test_S104_is_set_when_store_reconnects(self, make: Any) -> None:
        store = MemoryStore()
        client = make(lambda r: r.end(str(r.has_session())), store=store)
        store.emit("disconnect")
        assert client.get("/").text == "False"
        store.emit("connect")
        assert client.get("/").text == "True"

    def test_S105_destroy_destroys_the_previous_session(self, make: Any) -> None:
        def handler(req: Req) -> None:
            req.destroy()
            req.end(str(req.session.destroyed))

        response = make(handler).get("/")
        assert response.set_cookie is None
        assert response.text == "True"

    def test_destroy_of_a_loaded_session_expires_the_browser_cookie(self, make: Any) -> None:
        store = MemoryStore()

        def handler(req: Req) -> None:
            if req.path == "/logout":
                req.destroy()
            else:
                req.session["user"] = "bob"
            req.end()

        client = make(handler, store=store)
        first = client.get("/")
        logout = client.get("/logout", cookie=first.cookie())
        assert logout.set_cookie.startswith("connect.sid=;")
        assert logout.cookie_attributes()["expires"] == "Thu, 01 Jan 1970 00:00:00 GMT"
        assert store.length() == 0

    def test_S106_regenerate_destroys_and_replaces_the_session(self, make: Any) -> None:
        store = MemoryStore()

        def handler(req: Req) -> None:
            old = req.session.id
            req.regenerate()
            req.end(str(req.session.id == old))

        client = make(handler, store=store)
        first = client.get("/")
        second = client.get("/", cookie=first.cookie())
        assert second.text == "False"
        assert second.sid() != first.sid()
        assert store.get(first.sid()) is None

    def test_regenerate_sends_a_cookie_even_without_save_uninitialized(self, make: Any) -> None:
        def handler(req: Req) -> None:
            if req.path == "/login":
                req.regenerate()
            else:
                req.session["visits"] = 1
            req.end()

        client = make(handler, save_uninitialized=False, resave=False)
        first = client.get("/")
        login = client.get("/login", cookie=first.cookie())
        assert login.sid() != first.sid()

    def test_S107_reload_reloads_from_store(self, make: Any) -> None:
        store = MemoryStore()

        def handler(req: Req) -> None:
            if req.path == "/":
                req.session["active"] = True
                req.end("session created")
                return
            req.session["url"] = req.path
            stored = store.get(req.session.id)
            stored["url"] = "/bar"
            store.set(req.session.id, stored)
            req.reload()
            req.end("saw " + req.session["url"])

        client = make(handler, store=store)
        first = client.get("/")
        assert client.get("/foo", cookie=first.cookie()).text == "saw /bar"

    def test_S108_reload_errors_if_session_missing(self, make: Any) -> None:
        store = MemoryStore()

        def handler(req: Req) -> None:
            if req.path == "/":
                req.session["active"] = True
                req.end("session created")
                return
            store.clear()
            try:
                req.reload()
            except SessionError as exc:
                req.status = 500
                req.end(str(exc))
            else:
                req.end()

        client = make(handler, store=store)
        first = client.get("/")
        second = client.get("/foo", cookie=first.cookie())
        assert second.status == 500
        assert "failed to load session" in second.text

    def test_S109_repeated_failing_reloads_leave_the_session_usable(self, make: Any) -> None:
        store = MemoryStore()
        failures: list[str] = []

        def handler(req: Req) -> None:
            if req.path == "/":
                req.session["active"] = True
                req.end("session created")
                return
            store.clear()
            for _ in range(20):
                try:
                    req.reload()
                except SessionError as exc:
                    failures.append(str(exc))
            req.end("ok")

        client = make(handler, store=store, resave=False)
        first = client.get("/")
        assert client.get("/foo", cookie=first.cookie()).text == "ok"
        assert len(failures) == 20

    def test_S110_save_saves_to_store(self, make: Any) -> None:
        store = MemoryStore()

        def handler(req: Req) -> None:
            req.session["hit"] = True
            req.save()
            req.end("stored" if store.get(req.session.id) else "empty")

        assert make(handler, store=store).get("/").text == "stored"

    def test_S111_save_prevents_end_of_request_save(self, make: Any) -> None:
        store = SpyStore()

        def handler(req: Req) -> None:
            req.session["hit"] = True
            req.save()
            req.end("saved")

        client = make(handler, store=store)
        first = client.get("/")
        assert (first.text, store.count("set")) == ("saved", 1)
        store.reset()
        second = client.get("/", cookie=first.cookie())
        assert (second.text, store.count("set")) == ("saved", 1)

    def test_S112_save_prevents_end_of_request_save_on_reloaded_session(self, make: Any) -> None:
        store = SpyStore()

        def handler(req: Req) -> None:
            req.session["hit"] = True
            with contextlib.suppress(SessionError):
                req.reload()
            req.save()
            req.end("saved")

        client = make(handler, store=store)
        first = client.get("/")
        assert (first.text, store.count("set")) == ("saved", 1)
        store.reset()
        second = client.get("/", cookie=first.cookie())
        assert (second.text, store.count("set")) == ("saved", 1)

    def test_S113_save_prevents_end_of_request_save_without_save_uninitialized(
        self, make: Any
    ) -> None:
        store = SpyStore()

        def handler(req: Req) -> None:
            req.session["hit"] = True
            req.save()
            req.end("saved")

        client = make(handler, store=store, save_uninitialized=False)
        first = client.get("/")
        assert (first.text, store.count("set")) == ("saved", 1)
        store.reset()
        second = client.get("/", cookie=first.cookie())
        assert (second.text, store.count("set")) == ("saved", 1)

    def test_S114_touch_resets_session_expiration(self, make: Any) -> None:
        store = MemoryStore()

        def handler(req: Req) -> None:
            req.session["hit"] = True
            req.session.touch()
            req.end()

        client = make(handler, store=store, resave=False, cookie={"max_age": 60})
        first = client.get("/")
        before = store.get(first.sid())["cookie"]["expires"]
        time.sleep(0.1)
        client.get("/", cookie=first.cookie())
        assert store.get(first.sid())["cookie"]["expires"] != before


class TestSessionCookie:
    def test_S115_serializes_as_parameters(self, make: Any) -> None:
        def handler(req: Req) -> None:
            req.session.cookie.httponly = False
            req.session.cookie.secure = True
            req.end()

        response = make(handler, proxy=True).get("/", headers={"X-Forwarded-Proto": "https"})
        attributes = response.cookie_attributes()
        assert "httponly" not in attributes
        assert "secure" in attributes

    def test_S116_defaults_to_a_browser_session_cookie(self, make: Any) -> None:
        response = make(cookie={"path": "/admin"}).get("/admin")
        assert "expires" not in response.cookie_attributes()

    def test_S117_sets_cookie_only_once_for_browser_session_cookies(self, make: Any) -> None:
        client = make(cookie={"path": "/admin"})
        first = client.get("/admin/foo")
        assert first.set_cookie is not None
        assert client.get("/admin", cookie=first.cookie()).set_cookie is None

    def test_S118_overrides_defaults(self, make: Any) -> None:
        options = {
            "httponly": False,
            "max_age": 5,
            "path": "/admin",
            "priority": "high",
            "secure": True,
        }

        def handler(req: Req) -> None:
            req.session.cookie.secure = False
            req.end()

        attributes = make(handler, cookie=options).get("/admin").cookie_attributes()
        assert "expires" in attributes
        assert "httponly" not in attributes
        assert attributes["path"] == "/admin"
        assert "secure" not in attributes
        assert attributes["priority"] == "High"

    def test_S119_invalid_cookie_options_fail_where_they_are_set(self, make: Any) -> None:
        with pytest.raises((TypeError, ValueError), match="expires"):
            make(cookie={"expires": float("nan")})

        def handler(req: Req) -> None:
            try:
                req.session.cookie.domain = "not a domain"
            except ValueError as exc:
                req.end(str(exc))

        assert "domain" in make(handler).get("/").text

    def test_S120_S121_preserves_cookies_the_app_set(self, make: Any) -> None:
        def handler(req: Req) -> None:
            req.header("Set-Cookie", "previous=cookieValue; Path=/; HttpOnly")
            req.end()

        response = make(handler).get("/")
        cookies = response.all_headers("set-cookie")
        assert cookies[0] == "previous=cookieValue; Path=/; HttpOnly"
        assert cookies[1].startswith("connect.sid=")

    def _original_max_age(self, req: Req) -> None:
        req.end(str(req.session.cookie.original_max_age_ms))

    def test_S122_original_max_age_equals_max_age(self, make: Any) -> None:
        assert make(self._original_max_age, cookie={"max_age": 2}).get("/").text == "2000"

    def test_S123_original_max_age_is_kept_for_all_requests(self, make: Any) -> None:
        client = make(self._original_max_age, cookie={"max_age": 2})
        first = client.get("/")
        time.sleep(0.1)
        assert client.get("/", cookie=first.cookie()).text == "2000"

    def test_S124_original_max_age_is_kept_with_a_store_returning_datetimes(
        self, make: Any
    ) -> None:
        class DateStore(MemoryStore):
            def get(self, sid: str) -> Any:
                data = super().get(sid)
                if data and data["cookie"].get("expires"):
                    text = data["cookie"]["expires"].replace("Z", "+00:00")
                    data["cookie"]["expires"] = datetime.fromisoformat(text)
                return data

        client = make(self._original_max_age, cookie={"max_age": 2}, store=DateStore())
        first = client.get("/")
        time.sleep(0.1)
        assert client.get("/", cookie=first.cookie()).text == "2000"

    def test_S125_sets_cookie_when_secure(self, make: Any) -> None:
        response = make(cookie={"secure": True}).get("/", scheme="https")
        assert response.set_cookie.startswith("connect.sid=")

    def test_S126_does_not_set_cookie_when_insecure(self, make: Any) -> None:
        assert make(cookie={"secure": True}).get("/").set_cookie is None

    def _expires_in(self, response: Any, started: float) -> float:
        return expires_of(response).timestamp() - started

    def test_S127_S128_S129_cookie_expires_follows_max_age(self, make: Any) -> None:
        def handler(req: Req) -> None:
            count = req.session.get("count", 0) + 1
            req.session["count"] = count
            if count == 2:
                req.session.cookie.max_age = 5
            elif count == 3:
                req.session.cookie.max_age = 3_000_000
            req.end(str(count))

        client = make(handler, cookie={"max_age": 2})
        cookie = client.get("/").cookie()
        for expected_text, delta in (("2", 5), ("3", 3_000_000), ("4", 3_000_000)):
            started = time.time()
            response = client.get("/", cookie=cookie)
            assert response.text == expected_text
            assert abs(self._expires_in(response, started) - delta) <= 1.01

    def test_S130_expires_sets_an_absolute_date(self, make: Any) -> None:
        def handler(req: Req) -> None:
            req.session.cookie.expires = datetime(1970, 1, 1, tzinfo=timezone.utc)
            req.end()

        attributes = make(handler).get("/").cookie_attributes()
        assert attributes["expires"] == "Thu, 01 Jan 1970 00:00:00 GMT"

    def test_S131_expires_none_is_a_browser_session_cookie(self, make: Any) -> None:
        def handler(req: Req) -> None:
            req.session.cookie.expires = None
            req.end()

        assert "expires" not in make(handler).get("/").cookie_attributes()

    def test_S132_expires_none_does_not_reset_cookie(self, make: Any) -> None:
        def handler(req: Req) -> None:
            req.session.cookie.expires = None
            req.end()

        client = make(handler)
        first = client.get("/")
        assert "expires" not in first.cookie_attributes()
        assert client.get("/", cookie=first.cookie()).set_cookie is None

    def test_S133_expires_none_does_not_reset_cookie_when_modified(self, make: Any) -> None:
        def handler(req: Req) -> None:
            req.session.cookie.expires = None
            req.session["hit"] = req.session.get("hit", 0) + 1
            req.end()

        client = make(handler)
        first = client.get("/")
        assert "expires" not in first.cookie_attributes()
        assert client.get("/", cookie=first.cookie()).set_cookie is None

    def test_S134_partitioned_is_off_by_default(self, make: Any) -> None:
        assert "partitioned" not in make().get("/").cookie_attributes()

    def test_S135_partitioned_false_is_not_set(self, make: Any) -> None:
        response = make(cookie={"partitioned": False}).get("/")
        assert "partitioned" not in response.cookie_attributes()

    def test_S136_partitioned_true_is_set(self, make: Any) -> None:
        assert "partitioned" in make(cookie={"partitioned": True}).get("/").cookie_attributes()


class PlainSyncStore(SyncStore):
    """A store written the way the seed document shows: three methods, nothing else."""

    def __init__(self) -> None:
        self.sessions: dict[str, Any] = {}

    def get(self, sid: str) -> Any:
        return self.sessions.get(sid)

    def set(self, sid: str, data: Any) -> None:
        self.sessions[sid] = data

    def destroy(self, sid: str) -> None:
        self.sessions.pop(sid, None)


class TestSynchronousStore:
    def test_S137_responds_correctly_on_save(self, make: Any) -> None:
        def handler(req: Req) -> None:
            req.session["count"] = req.session.get("count", 0) + 1
            req.end(f"hits: {req.session['count']}")

        store = PlainSyncStore()
        client = make(handler, store=store)
        first = client.get("/")
        assert first.text == "hits: 1"
        assert client.get("/", cookie=first.cookie()).text == "hits: 2"
        assert list(store.sessions) == [first.sid()]

    def test_S138_responds_correctly_on_destroy(self, make: Any) -> None:
        def handler(req: Req) -> None:
            req.session["count"] = req.session.get("count", 0) + 1
            count = req.session["count"]
            if count > 1:
                req.session = None
                req.write("destroyed\n")
            req.end(f"hits: {count}")

        store = PlainSyncStore()
        client = make(handler, store=store, unset="destroy")
        first = client.get("/")
        assert first.text == "hits: 1"
        assert client.get("/", cookie=first.cookie()).text == "destroyed\nhits: 2"
        assert store.sessions == {}


class TestWrappedResponse:
    """S097-S099: other code wrapping the response path before or after the session."""

    @staticmethod
    def _hello(req: Req) -> None:
        req.session["hit"] = True
        req.write("hello, ")
        req.end("world")

    @staticmethod
    def _wrap(transport: str, app: Any, seen: list[bytes]) -> Any:
        """A pass-through layer that watches the body, like a logging or gzip middleware."""
        if transport == "asgi":

            async def asgi(scope: Any, receive: Any, send: Any) -> None:
                async def watching(message: Any) -> None:
                    seen.append(message.get("body", b""))
                    await send(message)

                await app(scope, receive, watching)

            return asgi

        def wsgi(environ: Any, start_response: Any) -> Any:
            for chunk in app(environ, start_response):
                seen.append(chunk)
                yield chunk

        return wsgi

    def test_S097_handles_a_wrapper_installed_before_the_session(self, transport: str) -> None:
        from .harness import Client, asgi_app, wsgi_app

        store = MemoryStore()
        seen: list[bytes] = []
        inner = (asgi_app if transport == "asgi" else wsgi_app)(self._hello)
        session_app = middleware_for(transport, self._hello, secret=SECRET, store=store)
        session_app.app = inner
        client = Client(self._wrap(transport, session_app, seen), transport)
        response = client.get("/")
        client.close()
        assert (response.status, response.text) == (200, "hello, world")
        assert b"".join(seen) == b"hello, world"
        assert store.length() == 1

    def test_S098_handles_a_wrapper_installed_after_the_session(self, transport: str) -> None:
        from .harness import Client, asgi_app, wsgi_app

        store = MemoryStore()
        seen: list[bytes] = []
        inner = (asgi_app if transport == "asgi" else wsgi_app)(self._hello)
        session_app = middleware_for(transport, self._hello, secret=SECRET, store=store)
        session_app.app = self._wrap(transport, inner, seen)
        client = Client(session_app, transport)
        response = client.get("/")
        client.close()
        assert (response.status, response.text) == (200, "hello, world")
        assert b"".join(seen) == b"hello, world"
        assert store.length() == 1

    def test_S099_a_second_end_fails_as_it_would_without_the_session(self) -> None:
        import asyncio

        from sessionware import SessionMiddleware

        async def ends_twice(scope: Any, receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            await send({"type": "http.response.body", "body": b"foo"})

        def failure(app: Any) -> str:
            finished = False

            async def send(message: Any) -> None:
                nonlocal finished
                if finished:
                    raise RuntimeError("response already completed")
                if message["type"] == "http.response.body" and not message.get("more_body"):
                    finished = True

            scope = {"type": "http", "path": "/", "headers": [], "scheme": "http"}
            try:
                asyncio.run(app(scope, None, send))
            except RuntimeError as exc:
                return str(exc)
            return "no error"

        plain = failure(ends_twice)
        with_session = failure(SessionMiddleware(ends_twice, secret=SECRET))
        assert plain == with_session == "response already completed"

"""CookieStore: sessions sealed into the cookies themselves, over ASGI and WSGI (the engine seals
and opens; the adapters write the cookies as they write any other)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from sessionware import SessionTooLarge
from sessionware.stores.cookie import CHUNK_LENGTH, CookieStore

from .harness import Client, Req, Response, account_handler, middleware_for

SECRET = "a secret for the cookie store's tests, 32 bytes!"
KEY = "an encryption key of 32 bytes or more, for tests"
OTHER_KEY = "another encryption key, 32 bytes or more, tests!"


@pytest.fixture(params=["asgi", "wsgi"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Browser:
    """A client that keeps every cookie a response sets (and drops the ones it expires)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.jar: dict[str, str] = {}

    def get(self, path: str) -> Response:
        cookie = "; ".join(f"{name}={value}" for name, value in self.jar.items())
        response = self.client.request(path, cookie=cookie or None)
        for header in response.all_headers("set-cookie"):
            name, _, rest = header.partition("=")
            value = rest.split(";", 1)[0]
            if "Expires=Thu, 01 Jan 1970" in header or not value:
                self.jar.pop(name, None)
            else:
                self.jar[name] = value
        return response

    def data(self, path: str = "/") -> Any:
        return json.loads(self.get(path).text)


def big_handler(req: Req) -> None:
    """The account app, and ``/big?n`` puts ``n`` random-looking characters in the session."""
    if req.path.startswith("/big/"):
        import secrets

        req.session["big"] = secrets.token_hex(int(req.path.rsplit("/", 1)[1]) // 2)
        req.end(json.dumps({"size": len(req.session["big"])}))
        return
    account_handler(req)


def app(kind: str, store: CookieStore | None = None, /, **options: Any) -> Any:
    store = store or CookieStore(encryption_keys=[KEY])
    return middleware_for(kind, big_handler, secret=SECRET, store=store, **options)


@pytest.fixture
def browser(transport: str) -> Iterator[Browser]:
    client = Client(app(transport, cookie={"max_age": 3600}), transport)
    yield Browser(client)
    client.close()


def test_a_session_lives_in_its_cookie(browser: Browser) -> None:
    assert browser.data("/login") == {"user": "ann"}
    assert list(browser.jar) == ["connect.sid"]
    value = browser.jar["connect.sid"]
    assert value.startswith("c1.1.") and "ann" not in value, "the cookie is not sealed"
    assert browser.data("/write") == {"user": "ann", "n": 1}
    assert browser.data("/write") == {"user": "ann", "n": 2}
    assert browser.data("/") == {"user": "ann", "n": 2}
    assert browser.data("/logout") == {}
    assert browser.jar == {} and browser.data("/") == {}


def test_a_read_only_request_sends_no_cookie(browser: Browser) -> None:
    browser.get("/login")
    assert browser.get("/").all_headers("set-cookie") == []


def test_a_large_session_is_split_and_joined_and_shrinks_back(browser: Browser) -> None:
    browser.get("/login")
    assert browser.data("/big/12000") == {"size": 12000}
    count = len(browser.jar)
    assert count >= 3
    assert list(browser.jar) == ["connect.sid", *(f"connect.sid.{i}" for i in range(1, count))]
    assert all(len(value) <= CHUNK_LENGTH for value in browser.jar.values())
    assert browser.data("/")["user"] == "ann"
    assert len(browser.data("/")["big"]) == 12000
    browser.data("/big/10")
    assert list(browser.jar) == ["connect.sid"], "the unneeded chunks were not expired"
    assert browser.data("/")["big"] == browser.data("/")["big"]


def test_too_large_a_session_is_an_error_that_names_its_size(transport: str) -> None:
    client = Client(app(transport, CookieStore(encryption_keys=[KEY], max_chunks=2)), transport)
    response = client.get("/big/20000")
    assert response.status == 500 and response.all_headers("set-cookie") == []
    store = CookieStore(encryption_keys=[KEY], max_chunks=1)
    from sessionware._records import SessionRecord

    record = SessionRecord.from_dict({"cookie": {"originalMaxAge": None}, "x": "y" * 5000})
    with pytest.raises(SessionTooLarge, match=r"is \d+ bytes, \d+ sealed: more than the 1"):
        store.seal("connect.sid", "sid", record)
    client.close()


def _tampered(jar: dict[str, str]) -> Iterator[tuple[str, dict[str, str]]]:
    value = jar["connect.sid"]
    flipped = value[:-3] + ("A" if value[-3] != "A" else "B") + value[-2:]
    yield "flipped", {**jar, "connect.sid": flipped}
    yield "truncated", {**jar, "connect.sid": value[:-10]}
    yield "unprefixed", {**jar, "connect.sid": value.split(".", 2)[2]}
    yield "bad count", {**jar, "connect.sid": re.sub(r"^c1\.\d+\.", "c1.99.", value)}
    yield "no chunk 1", {k: v for k, v in jar.items() if k != "connect.sid.1"}
    yield (
        "reordered",
        {**jar, "connect.sid.1": jar["connect.sid.2"], "connect.sid.2": jar["connect.sid.1"]},
    )
    yield "signed sid", {"connect.sid": "s%3Aabc.def"}


def test_a_bad_cookie_is_a_fresh_session_never_an_error(transport: str) -> None:
    """Tampered, truncated, re-ordered, missing or foreign chunks (another browser's, another
    key's): each request has no session, and answers 200."""
    client = Client(app(transport, cookie={"max_age": 3600}), transport)
    ann, bob = Browser(client), Browser(client)
    ann.get("/login")
    ann.get("/big/9000")
    bob.get("/login")
    bob.get("/big/9000")
    cases = dict(_tampered(ann.jar))
    cases["foreign chunk"] = {**ann.jar, "connect.sid.1": bob.jar["connect.sid.1"]}
    other = Browser(Client(app(transport, CookieStore(encryption_keys=[OTHER_KEY])), transport))
    other.get("/login")
    cases["another key"] = other.jar
    for name, jar in cases.items():
        stranger = Browser(client)
        stranger.jar = dict(jar)
        response = stranger.get("/")
        assert (response.status, response.text) == (200, "{}"), name
    assert ann.data("/")["user"] == "ann"
    client.close()
    other.client.close()


def test_keys_rotate_and_an_expired_cookie_opens_to_nothing(transport: str) -> None:
    import time

    clock = [time.time()]
    old = CookieStore(encryption_keys=[KEY], clock=lambda: clock[0])
    browser = Browser(Client(app(transport, old, cookie={"max_age": 60}), transport))
    browser.get("/login")
    sealed = dict(browser.jar)
    rotated = CookieStore(encryption_keys=[OTHER_KEY, KEY], clock=lambda: clock[0])
    after = Browser(Client(app(transport, rotated, cookie={"max_age": 60}), transport))
    after.jar = dict(sealed)
    assert after.data("/")["user"] == "ann", "a rotated key list did not open an old cookie"
    clock[0] += 61
    after.jar = dict(sealed)
    assert after.data("/") == {}, "a replayed cookie past its lifetime opened"
    browser.client.close()
    after.client.close()


def test_regenerate_gives_a_new_id_in_a_new_cookie(browser: Browser) -> None:
    browser.get("/login")
    before = browser.jar["connect.sid"]
    browser.get("/login")
    assert browser.jar["connect.sid"] != before


def test_what_a_cookie_cannot_do_is_refused(transport: str) -> None:
    with pytest.raises(TypeError, match="per-user index"):
        app(transport, user_key="user")
    with pytest.raises(ValueError, match="transport must be 'cookie'"):
        app(transport, transport="header")
    store = CookieStore(encryption_keys=[KEY])
    with pytest.raises(TypeError, match="keeps no sessions"):
        store.all()
    with pytest.raises(ValueError, match="max_chunks"):
        CookieStore(encryption_keys=[KEY], max_chunks=0)


def test_a_lazy_session_opens_its_cookie_on_first_use(transport: str) -> None:
    client = Client(app(transport, lazy=True, cookie={"max_age": 3600}), transport)
    browser = Browser(client)
    assert browser.data("/login") == {"user": "ann"}
    assert browser.data("/write") == {"user": "ann", "n": 1}
    assert browser.data("/") == {"user": "ann", "n": 1}
    client.close()


def test_a_flood_of_chunk_cookies_is_counted_no_further_than_max_chunks() -> None:
    store = CookieStore(encryption_keys=[KEY], max_chunks=3)
    header = "; ".join(f"connect.sid.{i}=x" for i in range(1, 2000))
    assert store.chunks_in("connect.sid", header) == 3
    assert store.open("connect.sid", "connect.sid=c1.3.abc; " + header) is None

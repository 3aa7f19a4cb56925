"""Django: request.session is a sessionware session, and Django's own features on top of it work
unchanged (auth login/logout, messages, CSRF_USE_SESSIONS, the admin, django.test.Client), sync
and async, under the test client and real servers, on MemoryStore and Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import httpx
import pytest
from django.conf import settings

from .services import free_port, require_redis

if not settings.configured:
    from .django_project.settings import SETTINGS

    settings.configure(**SETTINGS)
    import django

    django.setup()

from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import AsyncClient, Client, override_settings
from django.test.utils import setup_test_environment

from sessionware.integrations.django import runtime

PASSWORD = "a password for the tests"


@pytest.fixture(scope="module", autouse=True)
def database() -> None:
    setup_test_environment()
    call_command("migrate", verbosity=0)
    if not User.objects.filter(username="ann").exists():
        User.objects.create_user("ann", password=PASSWORD)
        User.objects.create_superuser("root", password=PASSWORD)


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "memory":
        from sessionware import MemoryStore

        chosen: Any = MemoryStore()
    else:
        from sessionware.stores.redis import SyncRedisStore

        chosen = SyncRedisStore(url=require_redis(), prefix=request.getfixturevalue("redis_prefix"))
    with override_settings(SESSIONWARE={"store": chosen}):
        yield chosen


def sid_of(client: Client, name: str = "sessionid") -> str:
    value = client.cookies[name].value
    found = re.match(r"s%3A(.+)\.", value)
    assert found, value
    return found.group(1)


def test_login_cycles_the_key_and_logout_ends_the_session(store: Any) -> None:
    client = Client()
    assert client.get("/counter").content == b"1"
    before = sid_of(client)
    login = client.post("/accounts/login/", {"username": "ann", "password": PASSWORD})
    assert login.status_code == 302
    after = sid_of(client)
    assert after != before, "auth.login cycles the session key"
    assert client.get("/whoami").content == b"ann"
    assert client.get("/counter").content == b"2", "cycle_key keeps the data"
    assert store.get(before) is None
    client.post("/accounts/logout/")
    assert client.get("/whoami").content == b"anonymous"
    assert store.get(after) is None, "auth.logout flushes the stored session"


def test_messages_live_in_the_session(store: Any) -> None:
    client = Client()
    client.get("/message-set")
    assert client.get("/message-get").content == b"saved in the session"
    assert client.get("/message-get").content == b""


def test_csrf_tokens_kept_in_the_session(store: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    page = client.get("/form").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token is not None
    assert "csrftoken" not in client.cookies, "CSRF_USE_SESSIONS keeps it out of cookies"
    assert client.post("/post", {"value": "x"}).status_code == 403
    accepted = client.post("/post", {"value": "x", "csrfmiddlewaretoken": token.group(1)})
    assert accepted.content == b"posted x"


def test_the_admin_login(store: Any) -> None:
    client = Client()
    assert client.get("/admin/").status_code == 302
    login = client.post("/admin/login/?next=/admin/", {"username": "root", "password": PASSWORD})
    assert login.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_the_test_clients_session_force_login_and_logout(store: Any) -> None:
    client = Client()
    session = client.session
    session["n"] = 41
    session.save()
    assert client.get("/counter").content == b"42"
    assert client.session["n"] == 42
    client.force_login(User.objects.get(username="ann"))
    assert client.get("/whoami").content == b"ann"
    client.logout()
    assert client.get("/whoami").content == b"anonymous"


def test_async_views_and_alogin(store: Any) -> None:
    async def scenario() -> list[bytes]:
        client = AsyncClient()
        first = (await client.get("/acounter")).content
        second = (await client.get("/acounter")).content
        before = client.cookies["sessionid"].value
        await client.get("/alogin?user=ann")
        assert client.cookies["sessionid"].value != before
        return [first, second, (await client.get("/awhoami")).content]

    assert asyncio.run(scenario()) == [b"1", b"2", b"ann"]


def test_a_view_that_raises_saves_nothing(store: Any) -> None:
    client = Client(raise_request_exception=False)
    assert client.get("/boom").status_code == 500
    assert "sessionid" not in client.cookies or not client.cookies["sessionid"].value


def test_set_expiry_and_browser_session_cookies(store: Any) -> None:
    client = Client()
    assert client.get("/expiry").content == b"True"
    assert client.cookies["sessionid"]["expires"] == ""


def test_the_express_cookie_is_one_setting_away(store: Any) -> None:
    with override_settings(SESSION_COOKIE_NAME="connect.sid", SESSIONWARE={"store": store}):
        client = Client()
        client.get("/counter")
        value = client.cookies["connect.sid"].value
        assert re.fullmatch(r"s%3A[\w-]{32}\.[A-Za-z0-9%]+", value)


def test_clearsessions_and_the_management_command(tmp_path: Any, capsys: Any) -> None:
    url = f"sqlite:///{tmp_path}/sessions.db"
    with override_settings(SESSIONWARE={"store": url}):
        client = Client()
        client.get("/counter")
        sqlite = runtime().store
        sqlite._connection().execute(
            "INSERT INTO sessions (sid, expired, sess) VALUES ('old', 1, '{}')"
        )
        call_command("clearsessions")
        assert sqlite.ids() == [sid_of(client)]
        call_command("sessionware", "count")
        assert capsys.readouterr().out.startswith("1 session (")
        from sessionware.integrations.django.management.commands.sessionware import Command

        with pytest.raises(SystemExit) as exited:  # as `manage.py sessionware show -missing`
            Command().run_from_argv(["manage.py", "sessionware", "show", "-missing"])
        assert exited.value.code == 1
        assert "no session '-missing'" in capsys.readouterr().err


@contextlib.contextmanager
def _serving(interface: str) -> Iterator[str]:
    """The project on a real server (wsgiref or uvicorn) on a free port: its base URL."""
    port = free_port()
    if interface == "wsgi":
        from django.core.wsgi import get_wsgi_application

        class Quiet(WSGIRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

        server = make_server("127.0.0.1", port, get_wsgi_application(), handler_class=Quiet)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        stop = server.shutdown
    else:
        import uvicorn
        from django.core.asgi import get_asgi_application

        config = uvicorn.Config(get_asgi_application(), port=port, log_level="warning")
        uvicorn_server = uvicorn.Server(config)
        thread = threading.Thread(target=uvicorn_server.run, daemon=True)
        thread.start()

        def stop() -> None:
            uvicorn_server.should_exit = True
            thread.join(10)

    try:
        _wait(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop()


@pytest.mark.parametrize("interface", ["wsgi", "asgi"])
def test_login_over_real_http(interface: str, redis_prefix: str) -> None:
    store_setting = {"store": "memory://" if interface == "wsgi" else require_redis()}
    with (
        override_settings(SESSIONWARE=store_setting),
        _serving(interface) as url,
        httpx.Client(base_url=url) as client,
    ):
        assert client.get("/counter").text == "1"
        page = client.get("/accounts/login/").text
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token is not None
        before = client.cookies["sessionid"]
        login = client.post(
            "/accounts/login/",
            data={"username": "ann", "password": PASSWORD, "csrfmiddlewaretoken": token.group(1)},
        )
        assert login.status_code == 302
        assert client.cookies["sessionid"] != before
        assert client.get("/whoami").text == "ann"
        assert client.get("/awhoami").text == "ann"


@pytest.mark.parametrize("interface", ["wsgi", "asgi"])
def test_every_cookie_attribute_reaches_the_browser(interface: str) -> None:
    """Django's ``set_cookie`` knows six attributes; the Set-Cookie sent is the engine's own,
    ``Partitioned`` and ``Priority`` included, as every other adapter sends it."""
    cookie = {"secure": True, "partitioned": True, "priority": "high", "samesite": "none"}
    with (
        override_settings(
            SESSIONWARE={"store": "memory://", "cookie": cookie},
            SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
        ),
        _serving(interface) as url,
        httpx.Client(base_url=url) as client,
    ):
        sent = client.get("/counter", headers={"x-forwarded-proto": "https"})
        pair, *attributes = sent.headers["set-cookie"].split("; ")
        again = client.get("/counter", headers={"x-forwarded-proto": "https", "cookie": pair})
    assert pair.startswith("sessionid=s%3A")
    assert [a for a in attributes if not a.startswith("Expires=")] == [
        "Path=/",
        "HttpOnly",
        "Secure",
        "Partitioned",
        "Priority=High",
        "SameSite=None",
    ]
    assert again.text == "2"


def _wait(port: int) -> None:
    import socket
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the server did not start")


def test_exists_and_the_session_store_outside_a_request(store: Any) -> None:
    from sessionware.integrations.django import SessionStore

    client = Client()
    client.get("/counter")
    key = client.cookies["sessionid"].value
    outside = SessionStore(key)
    assert outside["n"] == 1
    assert outside.exists(key)
    assert not outside.exists("s%3Anot-a-signed-id.x")
    fresh = SessionStore()
    assert fresh.is_empty() and fresh.session_key != key


@pytest.mark.parametrize("view", ["/sign-out-others", "/asign-out-others"])
def test_sign_out_other_devices_with_djangos_user_key(view: str) -> None:
    from sessionware import MemoryStore

    store = MemoryStore()
    with override_settings(SESSIONWARE={"store": store, "user_key": "_auth_user_id"}):
        laptop, phone = Client(), Client()
        for client in (laptop, phone):
            client.post("/accounts/login/", {"username": "ann", "password": PASSWORD})
        assert laptop.get("/devices").content.decode().split() == sorted(
            [sid_of(laptop), sid_of(phone)]
        )
        assert laptop.get(view).content == b"1"
        assert phone.get("/whoami").content == b"anonymous"
        assert laptop.get("/whoami").content == b"ann"
        user_id = str(User.objects.get(username="ann").pk)
        assert list(store.user_sessions(user_id)) == [sid_of(laptop)]


@pytest.mark.parametrize("prefix", ["/", "/a"])
def test_a_user_sees_their_devices_and_ends_one(prefix: str) -> None:
    from sessionware import MemoryStore

    settings = {"store": MemoryStore(), "user_key": "_auth_user_id", "device_info": True}
    with override_settings(SESSIONWARE=settings):
        laptop, phone = Client(HTTP_USER_AGENT="Firefox/140"), Client(HTTP_USER_AGENT="Chrome")
        for client in (laptop, phone):
            client.post("/accounts/login/", {"username": "ann", "password": PASSWORD})
        rows = phone.get(f"{prefix}device-list").json()
        assert [row[1:] for row in rows] == [
            [True, "127.0.0.1", "Chrome"],
            [False, "127.0.0.1", "Firefox/140"],
        ]
        assert phone.get(f"{prefix}end-device", {"handle": rows[1][0]}).content == b"True"
        assert laptop.get("/whoami").content == b"anonymous"
        assert phone.get("/whoami").content == b"ann"
        assert phone.get(f"{prefix}end-device", {"handle": rows[1][0]}).content == b"False"


def test_a_response_cached_by_django_keeps_the_rendered_cookie() -> None:
    """Django's cache middleware pickles responses: the cookie comes back as it was rendered."""
    import pickle

    from django.http import HttpResponse

    from sessionware.integrations.django import _set_cookie

    header = "sessionid=s%3Aabc.def; Path=/; HttpOnly; Partitioned; Priority=High"
    response = HttpResponse()
    _set_cookie(response, header)
    restored = pickle.loads(pickle.dumps(response))  # noqa: S301 - what Django does
    assert restored.cookies["sessionid"].value == "s%3Aabc.def"
    assert restored.cookies["sessionid"].output(header="").strip() == header


@pytest.mark.parametrize("lazy", [True, False])
@pytest.mark.parametrize("client_class", [Client, AsyncClient])
def test_a_store_outage_is_a_503_on_every_request(client_class: Any, lazy: bool) -> None:
    """A PostgreSQL store at a port where nothing listens: every request that uses the session
    (the admin login, CSRF in the session, auth) answers 503 at once, never a 500 nor Django's
    'requires session middleware' on the next request. Lazy (the default), a request that
    needs no store (no cookie to read, nothing written) is served."""
    from sessionware.stores.postgres import PostgresStore, SyncPostgresStore

    url = f"postgresql://nobody@127.0.0.1:{free_port()}/x"
    store = SyncPostgresStore(url=url) if client_class is Client else PostgresStore(url=url)
    with override_settings(SESSIONWARE={"store": store, "lazy": lazy}):
        client = client_class(raise_request_exception=False)  # as a server: no re-raise

        def call(method: str, path: str, **data: Any) -> Any:
            response = (
                getattr(client, method)(path, data) if data else getattr(client, method)(path)
            )
            return asyncio.run(response) if asyncio.iscoroutine(response) else response

        answers = [
            call("get", "/counter"),
            call("get", "/accounts/login/"),
            call("post", "/accounts/login/", username="ann", password=PASSWORD),
            call("get", "/whoami"),
        ]
    down = (503, b"Service Unavailable")
    last = (200, b"anonymous") if lazy else down
    assert [(a.status_code, a.content) for a in answers] == [down, down, down, last]


@pytest.mark.parametrize("view", ["/accounts/logout/", "/alogout"])
def test_logout_stores_nothing_and_expires_the_cookie(view: str) -> None:
    """As Django's own sessions: ``flush()`` destroys the stored session, and a session left
    empty is not saved (sessionware used to write an empty row that lasted two weeks, and send
    a cookie for it)."""
    from sessionware import MemoryStore

    store = MemoryStore()
    with override_settings(SESSIONWARE={"store": store}):
        client = Client()
        client.post("/accounts/login/", {"username": "ann", "password": PASSWORD})
        assert store.length() == 1
        response = client.post(view)
        assert response.status_code == 302
        assert store.length() == 0
        cookie = response.cookies["sessionid"]
        assert cookie.value == ""
        assert cookie["expires"] == "Thu, 01 Jan 1970 00:00:00 GMT"
        assert client.get("/whoami").content == b"anonymous"
        assert store.length() == 0


def test_logout_can_clear_site_data() -> None:
    from sessionware import MemoryStore

    with override_settings(SESSIONWARE={"store": MemoryStore(), "clear_site_data": True}):
        client = Client()
        login = client.post("/accounts/login/", {"username": "ann", "password": PASSWORD})
        assert not login.has_header("Clear-Site-Data")
        assert client.post("/accounts/logout/")["Clear-Site-Data"] == '"cookies"'


def test_a_write_after_logout_starts_a_new_session() -> None:
    from sessionware import MemoryStore

    store = MemoryStore()
    with override_settings(SESSIONWARE={"store": store}):
        client = Client()
        client.post("/accounts/login/", {"username": "ann", "password": PASSWORD})
        before = sid_of(client)
        assert client.post("/logout-then-count").content == b"1"
        assert sid_of(client) != before
        assert store.ids() == [sid_of(client)]
        assert client.get("/counter").content == b"2"


def test_a_response_that_sets_the_cookie_is_private(store: Any) -> None:
    client = Client()
    first = client.get("/counter")
    assert first.headers["Cache-Control"] == "private"
    with override_settings(SESSIONWARE={"store": store, "cache_control": None}):
        assert "Cache-Control" not in Client().get("/counter").headers


@pytest.mark.parametrize("view", ["/session-login", "/asession-login"])
def test_the_django_session_has_sessionwares_login_too(view: str) -> None:
    from sessionware import MemoryStore

    store = MemoryStore()
    with override_settings(SESSIONWARE={"store": store, "user_key": "uid"}):
        client = Client()
        client.get("/counter")
        before = sid_of(client)
        assert client.get(view).content == b"True"
        assert sid_of(client) != before
        assert store.get(before) is None
        assert store.get(sid_of(client))["uid"] == "ann"


def test_django_over_the_header() -> None:
    from sessionware import MemoryStore

    from .test_header_transport import EXPECTED, api_round_trip

    settings = {"store": MemoryStore(), "user_key": "uid", "transport": "header"}
    with override_settings(SESSIONWARE=settings):
        client = Client()

        def call(method: str, path: str, token: str | None) -> Any:
            paths = {
                "/login": "/session-login",
                "/me": "/session-user",
                "/logout": "/session-logout",
            }
            headers = {} if token is None else {"HTTP_X_SESSION_TOKEN": token}
            return client.generic(method, paths[path], **headers)

        answers = api_round_trip(call)
    assert answers == EXPECTED
    assert not client.cookies.get("sessionid"), "Django's cookie was set anyway"


def _signed_in_by_django(engine: str, user: Any) -> str:
    """What Django's own ``login()`` leaves in a session of ``engine``: its key."""
    from importlib import import_module

    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY

    old = import_module(engine).SessionStore()
    old[SESSION_KEY] = str(user.pk)
    old[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    old[HASH_SESSION_KEY] = user.get_session_auth_hash()
    old.save()
    key = old.session_key
    assert key
    return str(key)


@pytest.mark.parametrize("view", ["/whoami", "/awhoami"])
@pytest.mark.parametrize(
    "engine",
    [
        "django.contrib.sessions.backends.db",
        "django.contrib.sessions.backends.cache",
        "django.contrib.sessions.backends.cached_db",
        "django.contrib.sessions.backends.signed_cookies",
    ],
)
def test_a_django_user_stays_signed_in_after_the_switch(engine: str, view: str) -> None:
    """Django's own engine signed ann in; the app switches to sessionware with
    ``migrate_from=DjangoSessions(engine)``: the same browser is still ann, on its next request
    and after, and the old stored session is gone."""
    from importlib import import_module

    from sessionware import MemoryStore
    from sessionware.migrate import DjangoSessions

    user = User.objects.get(username="ann")
    old_engine = import_module(engine)
    key = _signed_in_by_django(engine, user)
    store = MemoryStore()
    settings = {"store": store, "user_key": "_auth_user_id", "migrate_from": DjangoSessions(engine)}
    with override_settings(SESSIONWARE=settings):
        client = Client()
        client.cookies["sessionid"] = key
        assert client.get(view).content == b"ann", "the switch signed ann out"
        assert client.cookies["sessionid"].value.startswith("s%3A")
        assert client.get(view).content == b"ann"
        assert list(store.user_sessions(str(user.pk)))
        tampered = Client()
        tampered.cookies["sessionid"] = key[:-2] + ("xy" if not key.endswith("xy") else "ab")
        assert tampered.get(view).content == b"anonymous"
    if not engine.endswith("signed_cookies"):
        assert not old_engine.SessionStore().exists(key), "the old session was left behind"


def test_a_pickle_serializer_is_refused() -> None:
    from sessionware.migrate import DjangoSessions

    with (
        override_settings(SESSION_SERIALIZER="myapp.serializers.PickleSerializer"),
        pytest.raises(ValueError, match="never unpickles"),
    ):
        DjangoSessions()


def test_sessionware_migrate_copies_djangos_sessions_ahead_of_the_deploy(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """``sessionware migrate --from django`` copies the sessions table, keyed by Django's own
    secret; the deployed app finds ann's copy through her ``sessionid`` cookie. The cache
    engine, which cannot list its sessions, is refused with the reason."""

    from django.contrib.sessions.models import Session

    from sessionware.cli import main
    from sessionware.migrate import DjangoSessions, copy_id
    from sessionware.stores.urls import from_url

    engine = "django.contrib.sessions.backends.db"
    Session.objects.all().delete()
    user = User.objects.get(username="ann")
    key = _signed_in_by_django(engine, user)
    target = f"sqlite:///{tmp_path}/sessions.db"
    command = ["migrate", "--from", f"django:{engine}", "--to", target, "--json"]
    assert main([*command, "--user-key", "_auth_user_id"]) == 0
    assert json.loads(capsys.readouterr().out)["copied"] == 1
    assert not Session.objects.filter(session_key=key).exists()
    store = from_url(target, sync=True, user_key="_auth_user_id")
    copied = copy_id(settings.SECRET_KEY.encode(), DjangoSessions(engine), key)
    assert list(store.user_sessions(str(user.pk))) == [copied]

    options = {"store": store, "user_key": "_auth_user_id", "migrate_from": DjangoSessions(engine)}
    with override_settings(SESSIONWARE=options):
        client = Client()
        client.cookies["sessionid"] = key
        assert client.get("/whoami").content == b"ann", "the copy did not sign ann in"
        assert client.cookies["sessionid"].value.startswith(f"s%3A{copied}.")
        assert client.get("/whoami").content == b"ann"
    assert store.length() == 1
    store.close()

    cache = "django:django.contrib.sessions.backends.cache"
    assert main(["migrate", "--from", cache, "--to", target]) == 2
    assert "cannot list its sessions" in capsys.readouterr().err


def test_django_on_a_cookie_store() -> None:
    """Django's views, sync and async, with the session sealed into the ``sessionid`` cookie
    (``CookieStore``): nothing stored anywhere, the counter kept all the same."""
    from sessionware.stores.cookie import CookieStore

    store = CookieStore(encryption_keys=["a cookie key for Django's tests, 32 bytes+"])
    with override_settings(SESSIONWARE={"store": store}):
        client = Client()
        assert [client.get("/counter").content for _ in range(3)] == [b"1", b"2", b"3"]
        assert client.cookies["sessionid"].value.startswith("c1.1.")
        assert client.get("/acounter").content == b"4"
        stranger = Client()
        stranger.cookies["sessionid"] = client.cookies["sessionid"].value[:-4]
        assert stranger.get("/counter").content == b"1"


def test_manage_py_sessionware_migrate_copies_into_the_projects_store(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``manage.py sessionware migrate --from django:ENGINE``: Django's sessions copied into the
    store and with the secret the project's SESSIONWARE settings give; the settings' own
    SESSION_ENGINE (sessionware's) is refused as a source, with the reason."""
    from django.contrib.sessions.models import Session

    from sessionware import MemoryStore
    from sessionware.integrations.django.management.commands.sessionware import Command
    from sessionware.migrate import DjangoSessions, copy_id

    def manage(*words: str) -> None:  # as `manage.py sessionware ...` runs it
        Command().run_from_argv(["manage.py", "sessionware", *words])

    engine = "django.contrib.sessions.backends.db"
    Session.objects.all().delete()
    user = User.objects.get(username="ann")
    key = _signed_in_by_django(engine, user)
    store = MemoryStore()
    with override_settings(SESSIONWARE={"store": store, "user_key": "_auth_user_id"}):
        manage("migrate", "--from", f"django:{engine}", "--json")
        assert json.loads(capsys.readouterr().out)["copied"] == 1
        copied = copy_id(settings.SECRET_KEY.encode(), DjangoSessions(engine), key)
        assert list(store.user_sessions(str(user.pk))) == [copied]
        client = Client()
        client.cookies["sessionid"] = key
        with override_settings(
            SESSIONWARE={
                "store": store,
                "user_key": "_auth_user_id",
                "migrate_from": DjangoSessions(engine),
            }
        ):
            assert client.get("/whoami").content == b"ann"
        with pytest.raises(SystemExit):
            manage("migrate")
        assert "SESSION_ENGINE is sessionware's" in capsys.readouterr().err

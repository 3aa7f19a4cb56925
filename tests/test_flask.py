"""Flask's documented session behaviour, with flask.session backed by sessionware."""

from __future__ import annotations

import time
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import flask
import pytest

from sessionware import MemoryStore, StoreUnavailable
from sessionware.integrations.flask import FlaskSession, init_app


def make_app(store: Any = None, **options: Any) -> tuple[flask.Flask, Any]:
    app = flask.Flask(__name__)
    app.secret_key = "flask secret"
    app.config.update(options.pop("config", {}))
    store = store if store is not None else MemoryStore()
    init_app(app, store=store, **options)

    @app.post("/set")
    def set_value() -> str:
        flask.session["value"] = flask.request.form["value"]
        return "value set"

    @app.get("/get")
    def get_value() -> str:
        return str(flask.session.get("value", "None"))

    @app.get("/kind")
    def kind() -> str:
        current = flask.session._get_current_object()  # type: ignore[attr-defined]
        return f"{type(current).__name__} new={flask.session.new}"

    @app.get("/permanent")
    def permanent() -> str:
        flask.session.permanent = True
        return "ok"

    @app.get("/clear")
    def clear() -> str:
        flask.session.clear()
        return "cleared"

    @app.get("/login")
    def login() -> str:
        flask.session.regenerate()
        flask.session["user"] = "alice"
        return flask.session.id

    @app.get("/logout")
    def logout() -> str:
        flask.session.destroy()
        return "bye"

    @app.get("/append")
    def append() -> str:
        items = flask.session.setdefault("items", [])
        items.append(len(items))
        return str(items)

    return app, store


def set_cookie_headers(response: Any) -> list[str]:
    return response.headers.getlist("Set-Cookie")


def test_session_round_trip_with_the_test_client() -> None:
    app, store = make_app()
    client = app.test_client()
    assert client.post("/set", data={"value": "42"}).text == "value set"
    assert client.get("/get").text == "42"
    assert store.length() == 1


def test_flask_session_is_a_sessionware_session() -> None:
    app, _ = make_app()
    client = app.test_client()
    assert client.get("/kind").text == "FlaskSession new=True"
    client.post("/set", data={"value": "x"})
    assert client.get("/kind").text == "FlaskSession new=False"


def test_config_cookie_settings_are_defaults() -> None:
    app, _ = make_app(
        config={
            "SESSION_COOKIE_NAME": "flask_sid",
            "SESSION_COOKIE_DOMAIN": "example.com",
            "SESSION_COOKIE_PATH": "/",
            "SESSION_COOKIE_HTTPONLY": False,
            "SESSION_COOKIE_SECURE": True,
            "SESSION_COOKIE_SAMESITE": "Lax",
        }
    )
    response = app.test_client().post("/set", data={"value": "1"}, base_url="https://example.com")
    (header,) = set_cookie_headers(response)
    assert header.startswith("flask_sid=s%3A")
    assert "Domain=example.com" in header
    assert "HttpOnly" not in header
    assert "Secure" in header
    assert "SameSite=Lax" in header


def test_options_win_over_config() -> None:
    app, _ = make_app(name="connect.sid", cookie={"max_age": 60})
    (header,) = set_cookie_headers(app.test_client().post("/set", data={"value": "1"}))
    assert header.startswith("connect.sid=")
    assert "Expires=" in header


def test_sessions_are_browser_sessions_until_made_permanent() -> None:
    app, _ = make_app(config={"PERMANENT_SESSION_LIFETIME": timedelta(days=2)})
    client = app.test_client()
    (plain,) = set_cookie_headers(client.post("/set", data={"value": "1"}))
    assert "Expires=" not in plain
    started = time.time()
    (permanent,) = set_cookie_headers(client.get("/permanent"))
    expires = parsedate_to_datetime(permanent.split("Expires=")[1].split(";")[0]).timestamp()
    assert abs(expires - started - 2 * 86400) < 5
    assert client.get("/get").text == "1"


def test_modified_forces_a_save_of_a_cookie_only_change() -> None:
    app, store = make_app()

    @app.get("/bump")
    def bump() -> str:
        flask.session.cookie.max_age = 120
        flask.session.modified = True
        return "ok"

    client = app.test_client()
    client.post("/set", data={"value": "1"})
    sid = next(iter(store.ids()))
    assert store.get(sid)["cookie"]["originalMaxAge"] is None
    response = client.get("/bump")
    assert set_cookie_headers(response)
    assert store.get(sid)["cookie"]["originalMaxAge"] == 120_000


def test_nested_changes_are_saved_without_setting_modified() -> None:
    app, _ = make_app()
    client = app.test_client()
    client.post("/set", data={"value": "1"})
    assert client.get("/append").text == "[0]"
    assert client.get("/append").text == "[0, 1]"


def test_clear_empties_the_stored_session() -> None:
    app, store = make_app()
    client = app.test_client()
    client.post("/set", data={"value": "1"})
    assert client.get("/clear").text == "cleared"
    assert client.get("/get").text == "None"
    assert [set(data) for data in store.all().values()] == [{"cookie"}]


def test_regenerate_on_login_changes_the_id() -> None:
    app, store = make_app()
    client = app.test_client()
    client.post("/set", data={"value": "1"})
    old = next(iter(store.ids()))
    new = client.get("/login").text
    assert new != old
    assert store.ids() == [new]
    assert client.get("/get").text == "None"


def test_destroy_on_logout_expires_the_cookie() -> None:
    app, store = make_app()
    client = app.test_client()
    client.get("/login")
    (header,) = set_cookie_headers(client.get("/logout"))
    assert "Expires=Thu, 01 Jan 1970 00:00:00 GMT" in header
    assert store.length() == 0


def test_secret_key_fallbacks_keep_old_cookies_valid() -> None:
    store = MemoryStore()
    old_app, _ = make_app(store=store)
    client = old_app.test_client()
    client.post("/set", data={"value": "kept"})
    cookie = client.get_cookie("session")
    assert cookie is not None
    new_app, _ = make_app(store=store, config={"SECRET_KEY_FALLBACKS": ["flask secret"]})
    new_app.secret_key = "rotated"
    new_app.session_interface = type(new_app.session_interface)(new_app, store=store)
    other = new_app.test_client()
    other.set_cookie("session", cookie.value)
    assert other.get("/get").text == "kept"


def test_missing_secret_key_fails_at_init() -> None:
    app = flask.Flask(__name__)
    with pytest.raises(ValueError, match="secret"):
        init_app(app)


def test_a_store_that_is_down_gives_a_read_only_empty_session() -> None:
    store = MemoryStore()
    app, _ = make_app(store=store)
    store.emit("disconnect")
    client = app.test_client()
    assert client.get("/get").text == "None"
    assert client.post("/set", data={"value": "1"}).status_code == 500
    store.emit("connect")
    assert client.post("/set", data={"value": "1"}).status_code == 200


def test_a_store_that_is_down_gives_503_when_asked() -> None:
    store = MemoryStore()
    app, _ = make_app(store=store, store_unavailable="error")
    store.emit("disconnect")
    assert app.test_client().get("/get").status_code == 503


def test_a_store_failing_to_save_answers_503() -> None:
    class Failing(MemoryStore):
        def set(self, sid: str, data: Any) -> None:
            raise StoreUnavailable("down")

    app, _ = make_app(store=Failing())
    response = app.test_client().post("/set", data={"value": "1"})
    assert response.status_code == 503
    assert not set_cookie_headers(response)


def test_a_store_error_is_a_500() -> None:
    class Broken(MemoryStore):
        def set(self, sid: str, data: Any) -> None:
            raise RuntimeError("disk on fire")

    app, _ = make_app(store=Broken())
    assert app.test_client().post("/set", data={"value": "1"}).status_code == 500


def test_session_class_is_flask_compatible() -> None:
    app, _ = make_app()
    with app.test_request_context("/"):
        app.preprocess_request()
        assert isinstance(flask.session._get_current_object(), FlaskSession)  # type: ignore[attr-defined]
        assert flask.session.permanent is False


def test_a_view_that_raises_saves_nothing() -> None:
    store = MemoryStore()
    app, _ = make_app(store=store)

    @app.post("/boom")
    def boom() -> str:
        flask.session["half"] = "done"
        raise RuntimeError("view failed")

    response = app.test_client().post("/boom")
    assert response.status_code == 500
    assert not set_cookie_headers(response)
    assert store.length() == 0


def test_a_handled_http_error_still_saves() -> None:
    store = MemoryStore()
    app, _ = make_app(store=store)

    @app.post("/missing")
    def missing() -> str:
        flask.session["seen"] = True
        flask.abort(404)

    response = app.test_client().post("/missing")
    assert response.status_code == 404
    assert set_cookie_headers(response)
    assert store.length() == 1


def test_the_typed_session_regenerates_keeping_data_when_asked() -> None:
    from sessionware.integrations.flask import session

    store = MemoryStore()
    app, _ = make_app(store=store)

    @app.post("/login-keeping")
    def login_keeping() -> str:
        before = session.id
        session.regenerate(keep=True)
        session["user"] = "ann"
        return f"{before} {session.id}"

    client = app.test_client()
    client.post("/set", data={"value": "kept"})
    before, after = client.post("/login-keeping").text.split()
    assert before != after
    assert store.ids() == [after]
    assert store.get(after)["value"] == "kept"
    assert store.get(after)["user"] == "ann"


def test_sign_out_other_devices_with_flask_logins_user_key() -> None:
    from sessionware.integrations.flask import session

    app = flask.Flask(__name__)
    store = MemoryStore()
    init_app(app, secret="a flask secret that is long enough!!", store=store, user_key="_user_id")

    @app.post("/login")
    def login() -> str:
        session.regenerate()
        session["_user_id"] = "42"
        return session.id

    @app.get("/me")
    def me() -> str:
        return str(session.get("_user_id"))

    @app.post("/others")
    def others() -> str:
        return str(session.destroy_other_sessions())

    laptop, phone = app.test_client(), app.test_client()
    laptop_sid = laptop.post("/login").text
    phone.post("/login")
    assert len(store.user_sessions(42)) == 2
    assert laptop.post("/others").text == "1"
    assert phone.get("/me").text == "None"
    assert laptop.get("/me").text == "42"
    assert list(store.user_sessions("42")) == [laptop_sid]


def test_flask_on_a_cookie_store() -> None:
    from sessionware.stores.cookie import CookieStore

    app, _ = make_app(CookieStore(encryption_keys=["a cookie key for Flask's tests, 32 bytes+"]))
    client = app.test_client()
    client.post("/set", data={"value": "kept in the cookie"})
    cookie = client.get_cookie("session")
    assert cookie is not None and cookie.value.startswith("c1.1.")
    assert client.get("/get").text == "kept in the cookie"

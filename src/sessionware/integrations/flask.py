"""Flask integration: ``flask.session`` becomes a sessionware session.

``init_app(app, store=..., **options)`` installs a Flask ``SessionInterface`` driven by the same
engine as the middlewares. Flask's ``SESSION_COOKIE_*`` settings, ``SECRET_KEY`` (with
``SECRET_KEY_FALLBACKS`` for rotation), ``PERMANENT_SESSION_LIFETIME`` and
``SESSION_REFRESH_EACH_REQUEST`` are read as defaults; keyword options win over them.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from flask import Flask, Request, Response, abort, session
from flask.sessions import NullSession, SessionInterface, SessionMixin

from .._runtime import SessionRuntime
from .._wire import needs_vary_cookie
from ..options import COOKIE_FIELDS, CookieAttributes, SessionSettings
from ..session import SyncSession
from ..wsgi import open_flow

if TYPE_CHECKING:
    from typing_extensions import Unpack

logger = logging.getLogger("sessionware")


class FlaskSession(SyncSession, SessionMixin):
    """A sessionware session with Flask's session attributes (``permanent``, ``new``...)."""

    __slots__ = ()
    accessed = True
    permanent_lifetime = timedelta(days=31)

    @property
    def permanent(self) -> bool:
        """Permanent sessions outlive the browser: their cookie has an expiry date."""
        return self.cookie.expires_ms is not None

    @permanent.setter
    def permanent(self, value: bool) -> None:
        self.cookie.max_age = self.permanent_lifetime if value else None
        self.modified = True

    @property
    def new(self) -> bool:  # type: ignore[override]
        """True when this request started the session (no stored session was loaded)."""
        return self._flow.cookie_id != self.id


class UnavailableSession(NullSession):
    """What ``flask.session`` is when there is no session (store down, path outside the cookie
    path): reading gives nothing, writing fails with a message that says why."""

    def _unavailable(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the session is unavailable here (store down, or outside its path)")

    __setitem__ = _unavailable
    __delitem__ = _unavailable
    clear = _unavailable
    pop = _unavailable
    popitem = _unavailable
    update = _unavailable
    setdefault = _unavailable


def cookie_defaults(config: Any) -> dict[str, Any]:
    """The ``cookie=`` option Flask's ``SESSION_COOKIE_*`` settings amount to (the field table
    names each attribute's setting); an unset or false setting leaves our default."""
    defaults = CookieAttributes()
    cookie: dict[str, Any] = {}
    for name, field in COOKIE_FIELDS.items():
        value = config.get(field.flask_setting) if field.flask_setting else None
        if value is None or value == "" or (value is False and getattr(defaults, name) is None):
            continue
        cookie[name] = value
    cookie["path"] = cookie.get("path") or config.get("APPLICATION_ROOT") or "/"
    return cookie


class SessionwareInterface(SessionInterface):
    """Flask's hook into sessionware: open loads (or starts) a session, save stores it."""

    def __init__(self, app: Flask, **settings: Unpack[SessionSettings]) -> None:
        config = app.config
        options: dict[str, Any] = dict(settings)
        if options.get("secret") is None:
            if not app.secret_key:
                raise ValueError("secret is required: set app.secret_key or pass secret=...")
            options["secret"] = [app.secret_key, *(config.get("SECRET_KEY_FALLBACKS") or [])]
        cookie = options.get("cookie")
        if cookie is None or isinstance(cookie, dict):
            options["cookie"] = {**cookie_defaults(config), **(cookie or {})}
        options.setdefault("name", config.get("SESSION_COOKIE_NAME", "session"))
        options.setdefault("rolling", bool(config.get("SESSION_REFRESH_EACH_REQUEST", False)))
        session_class = type(
            "FlaskSession",
            (FlaskSession,),
            {"__slots__": (), "permanent_lifetime": app.permanent_session_lifetime},
        )
        self.runtime = SessionRuntime.from_options(options, session_class)
        self.options = self.runtime.options
        self.store = self.runtime.store
        self.driver = self.runtime.driver
        self.engine = self.runtime.engine

    def open_session(self, app: Flask, request: Request) -> SessionMixin:
        runtime = self.runtime
        if not runtime.store_ready:
            return UnavailableSession()
        try:
            flow = open_flow(runtime, request.environ)
        except Exception as exc:
            failure = runtime.load_failed(exc)
            if failure is not None and failure.status != 503:
                raise
            return UnavailableSession()
        if flow is None or flow.session is None:
            return UnavailableSession()
        assert isinstance(flow.session, FlaskSession)
        return flow.session

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not isinstance(session, FlaskSession):
            return
        try:
            outcome = session._flow.finish(session)  # type: ignore[attr-defined]
            if outcome.call is not None:
                self.driver.call(outcome.call)
        except Exception as exc:
            failure = self.runtime.save_failed(exc)
            assert failure is not None
            response.status_code = failure.status
            response.set_data(failure.body)
            response.headers.clear()
            response.headers.extend(failure.headers)
            return
        if outcome.vary and needs_vary_cookie(response.headers.getlist("Vary")):
            response.headers.add("Vary", "Cookie")
        if outcome.set_cookie is not None:
            response.headers.add("Set-Cookie", outcome.set_cookie)

    def refuse_when_unavailable(self) -> None:
        """With ``store_unavailable="error"``, answer 503 rather than run a view sessionless."""
        if self.options.store_unavailable == "error" and isinstance(session, UnavailableSession):
            abort(503)


def init_app(app: Flask, **settings: Unpack[SessionSettings]) -> SessionwareInterface:
    """Make ``flask.session`` a sessionware session for ``app``; options as for the middleware."""
    interface = SessionwareInterface(app, **settings)
    app.session_interface = interface
    app.before_request(interface.refuse_when_unavailable)
    return interface

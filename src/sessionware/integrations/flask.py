"""Flask integration: ``flask.session`` becomes a sessionware session.

``init_app(app, store=..., **options)`` installs a Flask ``SessionInterface`` driven by the same
engine as the middlewares. Flask's ``SESSION_COOKIE_*`` settings, ``SECRET_KEY`` (with
``SECRET_KEY_FALLBACKS`` for rotation), ``PERMANENT_SESSION_LIFETIME`` and
``SESSION_REFRESH_EACH_REQUEST`` are read as defaults; keyword options win over them.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from flask import Flask, Request, Response, abort, session
from flask.sessions import NullSession, SessionInterface, SessionMixin

from ..errors import StoreUnavailable
from ..middleware import SessionRuntime
from ..options import session_options
from ..session import SyncSession
from ..wsgi import open_flow

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


class SessionwareInterface(SessionInterface):
    """Flask's hook into sessionware: open loads (or starts) a session, save stores it."""

    def __init__(self, app: Flask, *, store: object | None = None, **options: Any) -> None:
        config = app.config
        secret = options.pop("secret", None)
        if secret is None:
            if not app.secret_key:
                raise ValueError("secret is required: set app.secret_key or pass secret=...")
            fallbacks = config.get("SECRET_KEY_FALLBACKS") or []
            secret = [app.secret_key, *fallbacks]
        cookie = options.pop("cookie", None)
        if cookie is None or isinstance(cookie, dict):
            defaults = {
                "path": config.get("SESSION_COOKIE_PATH") or config.get("APPLICATION_ROOT") or "/",
                "domain": config.get("SESSION_COOKIE_DOMAIN") or None,
                "httponly": bool(config.get("SESSION_COOKIE_HTTPONLY", True)),
                "secure": bool(config.get("SESSION_COOKIE_SECURE", False)),
                "samesite": config.get("SESSION_COOKIE_SAMESITE"),
            }
            if config.get("SESSION_COOKIE_PARTITIONED"):
                defaults["partitioned"] = True
            cookie = {**defaults, **(cookie or {})}
        options.setdefault("name", config.get("SESSION_COOKIE_NAME", "session"))
        options.setdefault("rolling", bool(config.get("SESSION_REFRESH_EACH_REQUEST", False)))
        session_class = type(
            "FlaskSession",
            (FlaskSession,),
            {"__slots__": (), "permanent_lifetime": app.permanent_session_lifetime},
        )
        validated = session_options(secret=secret, cookie=cookie, **options)
        self.runtime = SessionRuntime(validated, store, session_class)
        self.options = validated
        self.store = self.runtime.store
        self.driver = self.runtime.driver
        self.engine = self.runtime.engine

    def open_session(self, app: Flask, request: Request) -> SessionMixin:
        if not self.runtime.store_ready:
            return UnavailableSession()
        try:
            flow = open_flow(self.engine, request.environ)
        except StoreUnavailable:
            logger.warning("session store unavailable while loading a session", exc_info=True)
            return UnavailableSession()
        if flow is None or flow.session is None:
            return UnavailableSession()
        assert isinstance(flow.session, FlaskSession)
        return flow.session

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not isinstance(session, FlaskSession):
            return
        outcome = session._flow.finish(session)
        try:
            if outcome.call is not None:
                self.driver.call(outcome.call)
        except StoreUnavailable:
            logger.warning("session store unavailable while saving a session", exc_info=True)
            response.status_code = 503
            response.set_data(b"Service Unavailable")
            return
        if outcome.set_cookie is not None:
            response.headers.add("Set-Cookie", outcome.set_cookie)

    def refuse_when_unavailable(self) -> None:
        """With ``store_unavailable="error"``, answer 503 rather than run a view sessionless."""
        if self.options.store_unavailable == "error" and isinstance(session, UnavailableSession):
            abort(503)


def init_app(app: Flask, *, store: object | None = None, **options: Any) -> SessionwareInterface:
    """Make ``flask.session`` a sessionware session for ``app``; options as for the middleware."""
    interface = SessionwareInterface(app, store=store, **options)
    app.session_interface = interface
    app.before_request(interface.refuse_when_unavailable)
    return interface

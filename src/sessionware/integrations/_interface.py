"""What the Flask and Quart session interfaces share, written once.

Both frameworks call ``open_session`` before the view and ``save_session`` after it, read the
same ``SESSION_COOKIE_*`` settings and hand back werkzeug-style responses; they differ only in
whether the store is called or awaited. So the work is written as steps (generators of store
calls) that Flask drives with ``run_steps`` and Quart with ``arun_steps``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Protocol

from .._engine import Engine, Outcome
from .._runtime import Failure, SessionRuntime
from .._wire import adds_cache_control, vary_missing
from ..errors import extra_needed
from ..options import COOKIE_FIELDS, CookieAttributes
from ..session import SessionBase
from ._steps import open_steps, save_steps

with extra_needed("flask", "flask"):  # Quart's extra installs Flask too
    from flask.sessions import NullSession

__all__ = ["open_steps", "save_steps"]

NO_SESSION = "the session is unavailable here (store down, outside its path, or skipped)"
FAILED = "_sessionware_request_failed"
"""Set on the framework's ``g`` when the view raised: the end of that request saves nothing."""


class UnavailableSession(NullSession):
    """The session when there is none (store down, path outside the cookie path, skipped):
    reading gives nothing, writing fails with a message that says why. Quart's NullSession is
    Flask's, so both frameworks use this one."""

    def _unavailable(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(NO_SESSION)

    __setitem__ = _unavailable
    __delitem__ = _unavailable
    clear = _unavailable
    pop = _unavailable
    popitem = _unavailable
    update = _unavailable
    setdefault = _unavailable


def refuses(runtime: SessionRuntime, current: object) -> bool:
    """With ``store_unavailable="error"``, a request without a session is answered 503."""
    return runtime.options.store_unavailable == "error" and isinstance(current, NullSession)


class _Response(Protocol):
    status_code: int
    headers: Any

    def set_data(self, data: bytes) -> None: ...


class FrameworkSession:
    """Flask's (and Quart's) session attributes on a sessionware session."""

    __slots__ = ()
    accessed = True
    permanent_lifetime = timedelta(days=31)

    @property
    def permanent(self) -> bool:
        """Permanent sessions outlive the browser: their cookie has an expiry date."""
        assert isinstance(self, SessionBase)
        return self.cookie.expires_ms is not None

    @permanent.setter
    def permanent(self, value: bool) -> None:
        assert isinstance(self, SessionBase)
        self.cookie.max_age = self.permanent_lifetime if value else None
        self.modified = True

    @property
    def new(self) -> bool:
        """True when this request started the session (no stored session was loaded)."""
        assert isinstance(self, SessionBase)
        return self._state.flow.cookie_id != self.id


def cookie_defaults(config: Any) -> dict[str, Any]:
    """The ``cookie=`` option the ``SESSION_COOKIE_*`` settings amount to (the field table
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


class InterfaceBase:
    """The constructor of both frameworks' session interfaces."""

    session_class: type[FrameworkSession]

    def __init__(self, app: Any, **settings: Any) -> None:
        self.runtime = interface_runtime(app, settings, self.session_class)
        self.options = self.runtime.options
        self.store = self.runtime.store
        self.driver = self.runtime.driver


def interface_runtime(
    app: Any, settings: dict[str, Any], base_class: type[FrameworkSession]
) -> SessionRuntime:
    """The runtime for an app: its settings as defaults, the keyword options winning."""
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
        base_class.__name__,
        (base_class,),
        {"__slots__": (), "permanent_lifetime": app.permanent_session_lifetime},
    )
    assert issubclass(session_class, SessionBase)
    return SessionRuntime.from_options(options, session_class)


def render(response: _Response, result: Outcome | Failure | None, engine: Engine) -> None:
    """Put what ``save_steps`` decided on the framework's response."""
    if result is None:
        return
    if isinstance(result, Failure):
        response.status_code = result.status
        response.set_data(result.body)
        response.headers.clear()
        response.headers.extend(result.headers)
        return
    if result.vary:
        vary = vary_missing(response.headers.getlist("Vary"), engine.vary_on)
        if vary is not None:
            response.headers.add("Vary", vary)
    app_set_one = "Cache-Control" in response.headers
    if result.set_cookie is not None:
        response.headers.add("Set-Cookie", result.set_cookie)
    for name, value in result.headers:
        response.headers.add(name, value)
    cache_control = engine.options.cache_control
    if cache_control is not None and adds_cache_control(result.private, app_set_one):
        response.headers.add("Cache-Control", cache_control)

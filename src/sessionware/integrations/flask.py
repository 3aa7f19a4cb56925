"""Flask integration: ``flask.session`` becomes a sessionware session.

``init_app(app, store=..., **options)`` installs a Flask ``SessionInterface`` driven by the same
engine as the middlewares. Flask's ``SESSION_COOKIE_*`` settings, ``SECRET_KEY`` (with
``SECRET_KEY_FALLBACKS`` for rotation), ``PERMANENT_SESSION_LIFETIME`` and
``SESSION_REFRESH_EACH_REQUEST`` are read as defaults; keyword options win over them.

A view that raises saves nothing, as under the middlewares. For mypy, ``session`` here is
``flask.session`` typed as a ``FlaskSession`` (``session.regenerate()`` type-checks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import flask
from flask import Flask, Request, Response, abort, g, got_request_exception
from flask.sessions import SessionInterface, SessionMixin

from .._records import run_steps
from ..options import SessionSettings
from ..session import SyncSession
from ._interface import (
    FrameworkSession,
    UnavailableSession,
    interface_runtime,
    open_steps,
    refuses,
    render,
    save_steps,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

_FAILED = "_sessionware_request_failed"


class FlaskSession(SyncSession, FrameworkSession, SessionMixin):  # type: ignore[misc,override]
    """A sessionware session with Flask's session attributes (``permanent``, ``new``...)."""

    __slots__ = ()


session = cast(FlaskSession, flask.session)
"""``flask.session``, typed: what ``init_app`` makes it."""


class SessionwareInterface(SessionInterface):
    """Flask's hook into sessionware: open loads (or starts) a session, save stores it."""

    def __init__(self, app: Flask, **settings: Unpack[SessionSettings]) -> None:
        self.runtime = interface_runtime(app, dict(settings), FlaskSession)
        self.options = self.runtime.options
        self.store = self.runtime.store
        self.driver = self.runtime.driver
        self.engine = self.runtime.engine

    def open_session(self, app: Flask, request: Request) -> SessionMixin:
        environ = request.environ
        opened = run_steps(
            open_steps(
                self.runtime,
                environ,
                path=(environ.get("SCRIPT_NAME") or "") + (environ.get("PATH_INFO") or ""),
                cookie_header=environ.get("HTTP_COOKIE"),
                scheme=environ.get("wsgi.url_scheme", "http"),
                forwarded_proto=environ.get("HTTP_X_FORWARDED_PROTO"),
            ),
            self.driver.call,
        )
        return UnavailableSession() if opened is None else cast(FlaskSession, opened)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not isinstance(session, FlaskSession):
            return
        failed = bool(g.get(_FAILED, False))
        render(
            response, run_steps(save_steps(self.runtime, session, failed=failed), self.driver.call)
        )

    def refuse_when_unavailable(self) -> None:
        """With ``store_unavailable="error"``, answer 503 rather than run a view sessionless."""
        if refuses(self.runtime, flask.session):
            abort(503)


def _note_failure(sender: Flask, **extra: Any) -> None:
    g.setdefault(_FAILED, True)


def init_app(app: Flask, **settings: Unpack[SessionSettings]) -> SessionwareInterface:
    """Make ``flask.session`` a sessionware session for ``app``; options as for the middleware."""
    interface = SessionwareInterface(app, **settings)
    app.session_interface = interface
    app.before_request(interface.refuse_when_unavailable)
    got_request_exception.connect(_note_failure, app)
    return interface

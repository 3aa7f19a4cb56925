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

from .._records import run_steps
from .._runtime import NoSession
from ..errors import extra_needed
from ..options import SessionSettings
from ..session import SyncSession
from ..wsgi import environ_facts
from . import _interface as shared

with extra_needed("flask", "flask"):
    import flask
    from flask import Flask, Request, Response, abort, g, got_request_exception
    from flask.sessions import SessionInterface, SessionMixin

if TYPE_CHECKING:
    from typing_extensions import Unpack


class FlaskSession(SyncSession, shared.FrameworkSession, SessionMixin):  # type: ignore[misc,override]
    """A sessionware session with Flask's session attributes (``permanent``, ``new``...)."""

    __slots__ = ()


session = cast(FlaskSession, flask.session)
"""``flask.session``, typed: what ``init_app`` makes it."""


class SessionwareInterface(shared.InterfaceBase, SessionInterface):
    """Flask's hook into sessionware: open loads (or starts) a session, save stores it."""

    session_class = FlaskSession

    def open_session(self, app: Flask, request: Request) -> SessionMixin:
        environ = request.environ
        opened = run_steps(
            shared.open_steps(self.runtime, environ, environ_facts(environ)), self.driver.call
        )
        if isinstance(opened, NoSession):
            return shared.UnavailableSession()
        return cast(FlaskSession, opened)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not isinstance(session, FlaskSession):
            return
        steps = shared.save_steps(self.runtime, session, failed=bool(g.get(shared.FAILED, False)))
        shared.render(response, run_steps(steps, self.driver.call), self.runtime.engine)

    def refuse_when_unavailable(self) -> None:
        """With ``store_unavailable="error"``, answer 503 rather than run a view sessionless."""
        if shared.refuses(self.runtime, flask.session):
            abort(503)


def _note_failure(sender: Flask, **extra: Any) -> None:
    g.setdefault(shared.FAILED, True)


def init_app(app: Flask, **settings: Unpack[SessionSettings]) -> SessionwareInterface:
    """Make ``flask.session`` a sessionware session for ``app``; options as for the middleware."""
    interface = SessionwareInterface(app, **settings)
    app.session_interface = interface
    app.before_request(interface.refuse_when_unavailable)
    got_request_exception.connect(_note_failure, app)
    return interface

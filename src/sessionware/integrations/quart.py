"""Quart integration: ``quart.session`` becomes a sessionware session.

``init_app(app, store=..., **options)`` installs a Quart ``SessionInterface``; settings are read
as for Flask (``SECRET_KEY``, ``SECRET_KEY_FALLBACKS``, ``SESSION_COOKIE_*``...). In async views
``await session.regenerate()``; in sync views (run in a thread by Quart) plain calls work. A view
that raises saves nothing. A websocket has no response to carry a cookie: its changes are saved
when it ends, or at once with ``await session.save()``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, cast

from .._records import arun_steps
from .._runtime import NoSession
from ..asgi import scope_facts
from ..errors import extra_needed
from ..options import SessionSettings
from ..session import Session
from . import _interface as shared

with extra_needed("quart", "quart"):
    import quart
    from quart import Quart, g
    from quart.sessions import NullSession, SessionInterface, SessionMixin
    from quart.signals import got_request_exception, got_websocket_exception

if TYPE_CHECKING:
    from typing_extensions import Unpack


class QuartSession(Session, shared.FrameworkSession, SessionMixin):  # type: ignore[misc,override]
    """A sessionware session with Quart's (Flask's) session attributes."""

    __slots__ = ()


class SessionwareInterface(shared.InterfaceBase, SessionInterface):
    """Quart's hook into sessionware: open loads (or starts) a session, save stores it."""

    session_class = QuartSession

    async def open_session(self, app: Quart, request: Any) -> SessionMixin:
        scope = request.scope
        opened = await arun_steps(
            shared.open_steps(self.runtime, scope, scope_facts(scope)), self.driver.acall
        )
        if isinstance(opened, NoSession):
            return shared.UnavailableSession()
        quart_session = cast(QuartSession, opened)
        quart_session.attach_loop(asyncio.get_running_loop())
        return quart_session

    async def save_session(self, app: Quart, session: SessionMixin, response: Any) -> None:
        if not isinstance(session, QuartSession):
            return
        steps = shared.save_steps(self.runtime, session, failed=bool(g.get(shared.FAILED, False)))
        result = await arun_steps(steps, self.driver.acall)
        if response is not None:
            shared.render(response, result, self.runtime.engine)

    def is_null_session(self, instance: object) -> bool:
        return isinstance(instance, NullSession)

    async def refuse_when_unavailable(self) -> None:
        """With ``store_unavailable="error"``, answer 503 rather than run a view sessionless."""
        if shared.refuses(self.runtime, quart.session):
            quart.abort(503)


def _note_failure(sender: Quart, **extra: Any) -> None:
    setattr(g, shared.FAILED, True)


def init_app(app: Quart, **settings: Unpack[SessionSettings]) -> SessionwareInterface:
    """Make ``quart.session`` a sessionware session for ``app``; options as for the middleware."""
    interface = SessionwareInterface(app, **settings)
    app.session_interface = interface  # type: ignore[assignment]
    app.before_request(interface.refuse_when_unavailable)
    app.before_websocket(interface.refuse_when_unavailable)
    got_request_exception.connect(_note_failure, app)
    got_websocket_exception.connect(_note_failure, app)
    return interface


session = cast(QuartSession, quart.session)
"""``quart.session``, typed: what ``init_app`` makes it."""

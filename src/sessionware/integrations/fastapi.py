"""FastAPI integration: the session as a typed dependency, in HTTP and websocket endpoints.

With ``SessionMiddleware`` installed (``app.add_middleware(SessionMiddleware, secret=...)``),
a handler asks for the session by type::

    from sessionware.integrations.fastapi import SessionDep

    @app.post("/login")
    async def login(session: SessionDep) -> dict[str, str]:
        await session.regenerate()
        session["user"] = "ann"
        return {"ok": "yes"}

In a plain ``def`` endpoint the lifecycle methods are plain calls (``session.regenerate()``).
``OptionalSessionDep`` gives ``None`` instead of a 503 when the request has no session (the
store is down with ``store_unavailable="pass"``, the path is outside the cookie path, or
``skip`` matched). A websocket has no response to save the session with: call
``await session.save()`` after changing it.
"""

from __future__ import annotations

from typing import Annotated

from ..asgi import scope_session
from ..errors import extra_needed
from ..session import Session

with extra_needed("fastapi", "fastapi", "starlette"):
    from fastapi import Depends, HTTPException
    from starlette.requests import HTTPConnection


async def get_optional_session(connection: HTTPConnection) -> Session | None:
    """The request's session, loaded (with ``lazy=True`` a handler that declares it reads
    the store; one that does not costs nothing)."""
    session = scope_session(connection.scope)
    if session is not None:
        await session.load()
    return session


async def get_session(connection: HTTPConnection) -> Session:
    session = await get_optional_session(connection)
    if session is None:
        raise HTTPException(
            status_code=503,
            detail="no session for this request: the session store is unavailable",
        )
    return session


SessionDep = Annotated[Session, Depends(get_session)]
OptionalSessionDep = Annotated[Session | None, Depends(get_optional_session)]

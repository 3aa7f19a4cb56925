"""FastAPI integration: the session as a typed dependency.

With ``SessionMiddleware`` installed (``app.add_middleware(SessionMiddleware, secret=...)``),
a handler asks for the session by type::

    from sessionware.integrations.fastapi import SessionDep

    @app.post("/login")
    async def login(session: SessionDep) -> dict[str, str]:
        await session.regenerate()
        session["user"] = "ann"
        return {"ok": "yes"}

``OptionalSessionDep`` gives ``None`` instead of a 503 when the request has no session (the
store is down with ``store_unavailable="pass"``, or the path is outside the cookie path).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from ..session import Session


def get_optional_session(request: Request) -> Session | None:
    session = request.scope.get("session")
    return session if isinstance(session, Session) else None


def get_session(request: Request) -> Session:
    session = get_optional_session(request)
    if session is None:
        raise HTTPException(
            status_code=503,
            detail="no session for this request: the session store is unavailable",
        )
    return session


SessionDep = Annotated[Session, Depends(get_session)]
OptionalSessionDep = Annotated["Session | None", Depends(get_optional_session)]

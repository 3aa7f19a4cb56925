"""The demo app: a visit counter kept in the session, with login (regenerate) and logout."""

from __future__ import annotations

import html
import os
import secrets
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse
from starlette.routing import Route

from . import MemoryStore, Session, SessionMiddleware

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>sessionware demo</title>
<style>body{{font:16px system-ui;max-width:36em;margin:3em auto}}
button{{font:inherit;margin-right:.5em}}code{{background:#eee;padding:0 .3em}}</style></head>
<body><h1>sessionware demo</h1>
<p>You have visited this page <strong id="visits">{visits}</strong> time{plural}.</p>
<p>Signed in as: <strong>{user}</strong></p>
<p>Session id: <code>{sid}</code></p>
<form method="post" action="/login" style="display:inline">
<input name="user" placeholder="your name" required> <button>Log in</button></form>
<form method="post" action="/logout" style="display:inline"><button>Log out</button></form>
<p>The counter lives in the server-side session (MemoryStore); the browser only holds the signed
session id in the <code>connect.sid</code> cookie, in express-session's format.</p>
</body></html>"""


def session_of(request: Request) -> Session:
    session = request.session
    assert isinstance(session, Session)
    return session


async def home(request: Request) -> HTMLResponse:
    session = session_of(request)
    visits = int(session.get("visits", 0)) + 1
    session["visits"] = visits
    return HTMLResponse(
        PAGE.format(
            visits=visits,
            plural="" if visits == 1 else "s",
            user=html.escape(str(session.get("user", "nobody"))),
            sid=html.escape(session.id),
        )
    )


async def login(request: Request) -> RedirectResponse:
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    session = session_of(request)
    visits = session.get("visits", 0)
    await session.regenerate()
    session["user"] = form.get("user", [""])[0][:64] or "anonymous"
    session["visits"] = visits
    return RedirectResponse("/", status_code=303)


async def logout(request: Request) -> RedirectResponse:
    await session_of(request).destroy()
    return RedirectResponse("/", status_code=303)


def create_app(**options: Any) -> Starlette:
    app = Starlette(
        routes=[
            Route("/", home),
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
        ]
    )
    options.setdefault("secret", os.environ.get("SESSION_SECRET") or secrets.token_urlsafe(32))
    options.setdefault("store", MemoryStore(max_sessions=10_000))
    options.setdefault("cookie", {"max_age": 3600, "samesite": "lax", "secure": "auto"})
    app.add_middleware(SessionMiddleware, **options)
    return app

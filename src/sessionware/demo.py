"""The demo: what a server-side session is, shown in a browser.

A visit counter kept in the session; log in (any name) and out; the session id changing at login,
and why; the cookie the browser holds; your signed-in devices (``device_info``: browser, address,
last seen), each one endable, and "sign out other devices"; the live sessions in the store, each
one revocable. By
default sessions live in SQLite under the user's cache folder, with a secret generated once beside
it (mode 0600), so a restart logs nobody out; ``SESSION_SECRET`` overrides the secret, ``--store``
the store.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from . import Device, Session, SessionMiddleware
from .options import is_valid_sid
from .stores.urls import from_url

STYLE = """
:root{color-scheme:light dark;--accent:#2b6cb0}
body{font:16px/1.5 system-ui,sans-serif;max-width:42rem;margin:0 auto;padding:1rem}
h1{font-size:1.5rem}nav a{margin-right:1rem}
.card{border:1px solid #8884;border-radius:.5rem;padding:1rem;margin:1rem 0}
code{background:#8882;padding:0 .3em;border-radius:.2em;word-break:break-all}
button{font:inherit;padding:.4rem .9rem;border-radius:.4rem;border:1px solid var(--accent);
background:var(--accent);color:#fff;cursor:pointer}
button.quiet{background:none;color:var(--accent)}
input{font:inherit;padding:.35rem;border-radius:.4rem;border:1px solid #8886;max-width:12rem}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%}
td,th{text-align:left;padding:.3rem;border-bottom:1px solid #8883}
.note{color:#777;font-size:.9rem}.you{font-weight:bold}
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sessionware demo</title><style>{style}</style></head>
<body><h1>sessionware demo</h1>
<nav><a href="/">Your session</a><a href="/sessions">Live sessions</a></nav>
{body}
</body></html>"""


def _page(body: str) -> HTMLResponse:
    return HTMLResponse(PAGE.format(style=STYLE, body=body))


def _session(request: Request) -> Session:
    session = request.session
    assert isinstance(session, Session)
    return session


def _csrf_field(session: Session) -> str:
    """The hidden field every form posts: a random token kept in the session."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = session["csrf"] = secrets.token_urlsafe(24)
    return f"<input type='hidden' name='csrf' value='{token}'>"


async def _form(request: Request) -> dict[str, list[str]] | None:
    """The posted form, or ``None`` for a request another site may have made: a foreign
    ``Origin`` or ``Sec-Fetch-Site``, or no token matching the session's (compared in constant
    time). SameSite=Lax alone would still let a same-site page post."""
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        return None
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return None
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    expected = _session(request).get("csrf")
    sent = form.get("csrf", [""])[0]
    if not isinstance(expected, str) or not hmac.compare_digest(expected.encode(), sent.encode()):
        return None
    return form


REFUSED = PlainTextResponse("Refused: this form did not come from this site.", status_code=403)


async def _store_call(store: Any, method: str, *args: Any) -> Any:
    """Call a store from this async app: awaited, or in a thread for a sync store."""
    result = getattr(store, method)
    if asyncio.iscoroutinefunction(result):
        return await result(*args)
    return await asyncio.to_thread(result, *args)


async def home(request: Request) -> HTMLResponse:
    session = _session(request)
    visits = int(session.get("visits", 0)) + 1
    session["visits"] = visits
    user = session.get("user")
    cookie = session.cookie
    changed = session.pop("changed_from", None)
    csrf = _csrf_field(session)
    attributes = ", ".join(
        part
        for part in (
            f"expires {cookie.expires:%Y-%m-%d %H:%M} UTC"
            if cookie.expires
            else "ends with the browser",
            "HttpOnly (hidden from JavaScript)" if cookie.httponly else "readable by JavaScript",
            f"SameSite={cookie.samesite}" if cookie.samesite else None,
            "Secure" if cookie.secure else None,
            f"Path={cookie.path}",
        )
        if part
    )
    sealed = request.app.state.sealed
    if user and sealed:
        account = (
            f"<p>Signed in as <strong id='user'>{html.escape(str(user))}</strong>.</p>"
            f"<form method='post' action='/logout'>{csrf}<button id='logout'>Log out</button>"
            "</form><p class='note'>Logging out expires the cookie: the counter starts again "
            "at 1. A cookie store keeps no list of sessions, so there are no devices to show "
            "and no session to revoke from elsewhere.</p>"
        )
    elif user:
        devices = await session.devices()
        others = len(devices) - 1
        account = (
            f"<p>Signed in as <strong id='user'>{html.escape(str(user))}</strong>.</p>"
            f"<form method='post' action='/logout'>{csrf}<button id='logout'>Log out</button>"
            "</form>"
            "<p class='note'>Logging out destroys the session in the store and expires the "
            "cookie: the counter starts again at 1.</p>"
            f"<p>Signed in as {html.escape(str(user))} on <strong id='others'>{others}</strong> "
            f"other device{'' if others == 1 else 's'} (browsers).</p>"
            f"{_device_table(devices, csrf)}"
            f"<form method='post' action='/logout-others'>{csrf}<button id='logout-others' "
            "class='quiet'>Sign out other devices</button></form>"
            "<p class='note'>The store keeps an index from each user to their sessions "
            "(<code>user_key</code>), so this is one lookup, not a scan of every session.</p>"
        )
    else:
        account = (
            f"<p>Not signed in.</p><form method='post' action='/login'>{csrf}"
            "<input name='user' placeholder='any name' required aria-label='name'> "
            "<button id='login'>Log in</button></form>"
        )
    login_note = ""
    if changed:
        login_note = (
            "<p class='note' id='changed'>At login your session id changed from "
            f"<code>{html.escape(changed[:12])}…</code> to <code>{html.escape(session.id[:12])}…"
            "</code>, the data kept. That is session fixation protection: an id someone "
            "planted in your browser before you logged in is worth nothing after.</p>"
        )
    where = (
        "in your browser's cookie, sealed with AES-256-GCM: the server keeps nothing, and the "
        "browser cannot read or change what it holds."
        if sealed
        else "on the server, in the session store. The browser holds only a signed session id."
    )
    held = (
        "The cookie holds the whole session, sealed with the store's encryption key, its "
        "expiry inside: a copy replayed after it expired opens to nothing."
        if sealed
        else "The id is signed with the server's secret (HMAC-SHA256), in express-session's "
        "format, so a Node app with the same secret and store shares this session."
    )
    body = f"""
<div class="card"><p>You have visited this page <strong id="visits">{visits}</strong>
time{"" if visits == 1 else "s"}.</p>
<p class="note">The counter lives {where}</p></div>
<div class="card">{account}{login_note}</div>
<div class="card"><p>Session id: <code id="sid">{html.escape(session.id)}</code></p>
<p>Cookie <code>connect.sid</code>: {html.escape(attributes)}.</p>
<p class="note">{held}</p></div>"""
    return _page(body)


def _device_table(devices: list[Device], csrf: str) -> str:
    """The user's devices (``device_info``): what each browser is, where from, when last seen,
    and a button that ends it by its handle (never its session id)."""
    rows = []
    for device in devices:
        seen = f"{device.last_seen:%Y-%m-%d %H:%M} UTC" if device.last_seen else "-"
        end = (
            "this browser"
            if device.current
            else f"<form method='post' action='/devices/end'>{csrf}"
            f"<input type='hidden' name='handle' value='{html.escape(device.handle)}'>"
            "<button class='quiet end'>End</button></form>"
        )
        rows.append(
            f"<tr class='device{' you' if device.current else ''}'>"
            f"<td>{html.escape(device.user_agent or '-')}</td>"
            f"<td>{html.escape(device.address or '-')}</td><td>{seen}</td><td>{end}</td></tr>"
        )
    return (
        "<div class='scroll'><table id='devices'><tr><th>Browser</th><th>Address</th>"
        f"<th>Last seen</th><th></th></tr>{''.join(rows)}</table></div>"
        "<p class='note'>Each device is one of your sessions, listed by a handle that is not "
        "its id (an id on a page could be stolen from it).</p>"
    )


async def login(request: Request) -> Response:
    form = await _form(request)
    if form is None:
        return REFUSED
    session = _session(request)
    old = session.id
    await session.regenerate(keep=True)
    session["user"] = form.get("user", [""])[0].strip()[:64] or "anonymous"
    session["changed_from"] = old
    return RedirectResponse("/", status_code=303)


async def logout(request: Request) -> Response:
    if await _form(request) is None:
        return REFUSED
    await _session(request).destroy()
    return RedirectResponse("/", status_code=303)


async def logout_others(request: Request) -> Response:
    if await _form(request) is None:
        return REFUSED
    await _session(request).destroy_other_sessions()
    return RedirectResponse("/", status_code=303)


async def end_device(request: Request) -> Response:
    form = await _form(request)
    if form is None:
        return REFUSED
    await _session(request).end_device(form.get("handle", [""])[0])
    return RedirectResponse("/", status_code=303)


async def sessions(request: Request) -> HTMLResponse:
    store = request.app.state.store
    session = _session(request)
    mine = session.id
    csrf = _csrf_field(session)
    if request.app.state.sealed:
        return _page(
            f"<div class='card' id='no-list'>{csrf}<p>This demo runs on a cookie store: each "
            "session lives in its own browser's cookie, so there is no list to show and no "
            "session to revoke from here. Rotating the encryption key ends them all.</p></div>"
        )
    live = await _store_call(store, "all")
    rows = []
    for sid, data in sorted(live.items(), key=lambda item: str(item[1].get("cookie"))):
        expires = (data.get("cookie") or {}).get("expires")
        expires = f"{expires[:10]} {expires[11:16]} UTC" if expires else "with the browser"
        you = sid == mine
        user = html.escape(str(data.get("user") or "-"))
        rows.append(
            f"<tr class='{'you' if you else ''}'><td><code>{html.escape(sid[:8])}…</code>"
            f"{' (you)' if you else ''}</td><td>{user}</td><td>{html.escape(str(expires))}</td>"
            f"<td><form method='post' action='/sessions/revoke'>{csrf}"
            f"<input type='hidden' name='sid' value='{html.escape(sid)}'>"
            "<button class='quiet'>Revoke</button></form></td></tr>"
        )
    table = "".join(rows) or "<tr><td colspan='4'>No stored sessions.</td></tr>"
    body = f"""
<div class="card">{csrf}<p>Every session the store holds now. Revoking one deletes it: that
browser's next request starts a fresh, signed-out session.</p>
<div class="scroll"><table><tr><th>Id</th><th>User</th><th>Expires</th><th></th></tr>{table}
</table></div></div>"""
    return _page(body)


async def revoke(request: Request) -> Response:
    form = await _form(request)
    if form is None:
        return REFUSED
    sid = form.get("sid", [""])[0]
    session = _session(request)
    if sid == session.id:
        await session.destroy()
    elif is_valid_sid(sid):
        await _store_call(request.app.state.store, "destroy", sid)
    return RedirectResponse("/sessions", status_code=303)


def demo_folder() -> Path:
    """Where the demo keeps its database and secret: the user's cache folder, or here."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    folder = Path(base) / "sessionware"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    except OSError:
        return Path.cwd()


def demo_secret(folder: Path) -> str:
    """``SESSION_SECRET``, else a secret generated once and kept beside the database (0600)."""
    configured = os.environ.get("SESSION_SECRET")
    if configured:
        return configured
    path = folder / "demo.secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        secret = secrets.token_urlsafe(32)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secret)
        return secret


def create_app(*, store_url: str | None = None, **options: Any) -> Starlette:
    folder = demo_folder()
    store = options.pop("store", None)
    if store is None and store_url is not None and store_url.startswith("cookie:"):
        keys = os.environ.get("SESSIONWARE_ENCRYPTION_KEYS")
        key = keys.split(",") if keys else ["demo cookie key: " + demo_secret(folder)]
        store = from_url(store_url, encryption_keys=key)
    store = store or from_url(store_url or f"sqlite:///{folder / 'demo.db'}")
    app = Starlette(
        routes=[
            Route("/", home),
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/logout-others", logout_others, methods=["POST"]),
            Route("/devices/end", end_device, methods=["POST"]),
            Route("/sessions", sessions),
            Route("/sessions/revoke", revoke, methods=["POST"]),
        ]
    )
    app.state.store = store
    app.state.sealed = bool(getattr(store, "seals_sessions", False))
    options.setdefault("secret", demo_secret(folder))
    options.setdefault("cookie", {"max_age": 3600, "samesite": "lax", "secure": "auto"})
    if not app.state.sealed:  # a cookie keeps no per-user index
        options.setdefault("user_key", "user")
        options.setdefault("device_info", True)
    app.add_middleware(SessionMiddleware, store=store, **options)
    return app

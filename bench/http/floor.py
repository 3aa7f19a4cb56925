"""The floor: the least a server-side session middleware with sessionware's observable
behaviour on the benchmark's two routes does, written plainly (not a product, no option, no
error handling). A cached signed-cookie lookup, a dict store of JSON, one decode per request,
one encode for change detection, one for the store, a cached signature, a Set-Cookie from a
template. Over HTTP it
says what any session layer costs on this stack, so sessionware's gap to the bare app can be
read against what is reachable at all."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any
from urllib.parse import quote

MAX_AGE = 3600
HTTP_DATE = "%a, %d %b %Y %H:%M:%S GMT"
VARY = (b"vary", b"Cookie")


def add_headers(start: Any, *headers: tuple[bytes, bytes]) -> None:
    """Headers added to an ``http.response.start`` message, as both middlewares here do."""
    start["headers"] = [*start["headers"], *headers]


class FloorSessionMiddleware:
    def __init__(self, app: Any, secret: str) -> None:
        self.app = app
        self.key = secret.encode()
        self.sid_by_header: dict[bytes, str] = {}
        self.store: dict[str, str] = {}
        self.signed_by_sid: dict[str, str] = {}

    def signed(self, sid: str) -> str:
        value = self.signed_by_sid.get(sid)
        if value is None:
            mac = hmac.new(self.key, sid.encode(), hashlib.sha256).digest()
            value = quote("s:" + sid + "." + base64.b64encode(mac).decode().rstrip("="), safe="")
            self.signed_by_sid[sid] = value
        return value

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        header = next((value for name, value in scope["headers"] if name == b"cookie"), None)
        sid = self.sid_by_header.get(header) if header is not None else None
        stored = self.store.get(sid) if sid is not None else None
        if sid is None or stored is None:
            sid, data, before = secrets.token_urlsafe(24), {}, "{}"
        else:
            data = json.loads(stored)
            data.pop("cookie", None)
            before = json.dumps(data)
        scope["session"] = data

        async def send_with_session(message: Any) -> None:
            if message["type"] == "http.response.start":
                after = json.dumps(data)
                if after != before or stored is None:
                    expires = time.time() + MAX_AGE
                    cookie = {"originalMaxAge": MAX_AGE * 1000, "expires": expires, "path": "/"}
                    self.store[sid] = json.dumps({"cookie": cookie, **data})
                    value = self.signed(sid)
                    if header is None:
                        self.sid_by_header[f"connect.sid={value}".encode()] = sid
                    set_cookie = (
                        f"connect.sid={value}; Path=/; "
                        f"Expires={time.strftime(HTTP_DATE, time.gmtime(expires))}; HttpOnly"
                    )
                    add_headers(message, VARY, (b"set-cookie", set_cookie.encode()))
                elif stored is not None:
                    add_headers(message, VARY)
            await send(message)

        await self.app(scope, receive, send_with_session)


SET_COOKIE = (
    b"connect.sid=s%3AvnHhjVNvwpn7cQhuOJjcVuwTa3fCp1yD.7HMtE5Tx1GlEBbjmfSbAxz0PiBLoQQIBRWe6SWNtAiU;"
    b" Path=/; Expires=Sun, 29 Nov 2026 13:00:00 GMT; HttpOnly"
)
WRITE_HEADERS = (VARY, (b"set-cookie", SET_COOKIE))


class HeadersOnlyMiddleware:
    """No session at all: only the headers a session write adds to the response (Vary and a
    Set-Cookie of the usual length, constant), so the server's own cost of sending them is
    measured apart from any session work."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        write = scope["path"] == "/write"

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                add_headers(message, *(WRITE_HEADERS if write else ()))
            await send(message)

        await self.app(scope, receive, send_with_headers)

"""The request lifecycle of express-session, without I/O.

An adapter asks the engine what to do at each step and performs the store calls itself:

1. ``Engine.begin`` reads the sid from the Cookie header and filters by path;
2. ``Flow.load_call`` names the store read (if the client presented a valid signed sid), and
   ``Flow.loaded`` inflates what came back or generates a new session;
3. ``Flow.finish`` decides, once the app has answered, which Set-Cookie to send and which store call
   (set, touch or destroy) must complete before the response does.

Every save/touch/cookie rule of express-session lives here and nowhere else.
"""

from __future__ import annotations

import secrets as _secrets
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Protocol, TypeVar

from ._records import (
    IMMUTABLE_TYPES,
    OBSERVERS,
    TIMES_KEY,
    Base,
    Calls,
    Destroy,
    Get,
    OldSession,
    ReadOld,
    SessionRecord,
    Set,
    StoreCall,
    Touch,
    encode_json,
    user_name,
    user_of,
)
from ._wire import (
    chunk_name,
    client_of,
    decode_cookie_value,
    encode_uri_component,
    find_raw_cookie,
    header_of,
    now_ms,
    serialize_set_cookie,
)
from .cookie import Cookie
from .devices import Device, devices_of
from .errors import HeadersAlreadySent, SessionCorrupt, SessionError, SessionTooLarge, sid_tag
from .events import EventKind, SessionEvent
from .migrate import Migration, carried_over, migrated, old_cookie_expiry
from .options import (
    MAX_COOKIE_VALUE_LENGTH,
    CookieAttributes,
    CookieOptions,
    SessionOptions,
    check_prefix,
    cookie_options,
    is_valid_sid,
)
from .session import SessionBase, SessionFlow
from .signing import sign, unsign

RENEW_FRACTION = 10
"""The last-active time is rewritten once a tenth of ``idle_timeout`` has passed, not on every
request: a session may end up to a tenth early, and a busy one is not rewritten each time."""
SEEN_EVERY_MS = 60_000
"""With ``device_info`` and no ``idle_timeout``: a device's "last seen" is kept to the minute,
which costs an active session at most one write a minute."""

K = TypeVar("K")
SessionFactory = Callable[[SessionFlow, str, Cookie, "dict[str, Any] | None"], SessionBase]
"""Makes a request's session; the runtime binds the session class to its store runner."""


def default_genid(request: object) -> str:
    """24 random bytes as unpadded base64url: express's uid-safe(24), 32 characters."""
    return _secrets.token_urlsafe(24)


def path_matches(request_path: str, cookie_path: str) -> bool:
    """RFC 6265 5.1.4 path-match (express's prefix test lets /admin match /administrator)."""
    if cookie_path in (request_path, "/"):
        return True
    if not request_path.startswith(cookie_path):
        return False
    return cookie_path.endswith("/") or request_path[len(cookie_path)] == "/"


class Outcome:
    """What the adapter must do once the app has answered: headers to add and a store call
    (never changed once built; see ``StoreCall`` for why a plain class).

    ``vary`` asks for ``Vary: Cookie``: the response may depend on the session (one was loaded,
    or a cookie is set), so a shared cache must not serve it to another client.
    ``headers``: more headers the response gets as they are: the session token (header
    transport), ``Clear-Site-Data`` when the session ends. A response with a Set-Cookie or a
    token is private (the ``cache_control`` option).
    """

    __slots__ = ("call", "headers", "set_cookie", "vary")

    def __init__(
        self,
        set_cookie: str | None,
        call: StoreCall | None,
        vary: bool = False,
        headers: tuple[tuple[str, str], ...] = (),
    ):
        self.set_cookie = set_cookie
        self.call = call
        self.vary = vary
        self.headers = headers

    @property
    def private(self) -> bool:
        """Whether the response hands out a session (a cookie or a token)."""
        return self.set_cookie is not None or bool(self.headers)


_NOTHING = Outcome(None, None)
_UNREAD_COOKIE = Cookie()
"""A lazy session's cookie until it is loaded (never seen: reading the cookie loads it)."""
_VARY_ONLY = Outcome(None, None, True)
"""What most read-only requests end with (outcomes are never changed, so one is shared)."""


def _without_call(
    set_cookie: str | None, vary: bool, headers: tuple[tuple[str, str], ...] = ()
) -> Outcome:
    if set_cookie is None and vary and not headers:
        return _VARY_ONLY
    return Outcome(set_cookie, None, vary, headers)


class Engine:
    """Per-middleware state: validated options and what could be computed once at start-up."""

    def __init__(
        self,
        options: SessionOptions,
        make_session: SessionFactory,
        *,
        has_touch: bool,
        on_corrupt: Callable[[SessionCorrupt], None],
        emit: Callable[[SessionEvent], None] | None = None,
        make_lazy: SessionFactory | None = None,
        sealer: Sealer | None = None,
    ):
        self.options = options
        self.lazy = options.lazy
        self.sealer = sealer
        """A cookie store: the session is sealed into the response's cookies, read from the
        request's, and no store call is made for it."""
        if sealer is not None and options.transport != "cookie":
            raise ValueError("a CookieStore keeps sessions in cookies: transport must be 'cookie'")
        self.make_lazy = make_lazy
        """With ``lazy``: makes a request's session that reads the store on its first use."""
        self.on_corrupt = on_corrupt
        """Told of a stored value that is not a session (the runtime logs it); the client then
        gets a fresh session, never a loop of errors."""
        self.emit = emit
        """Told of what happens to sessions (the ``on_event`` option, made safe by the runtime);
        ``None`` costs nothing."""
        self.observers = OBSERVERS
        cache_control = options.cache_control
        self.cache_header: tuple[bytes, bytes] | None = (
            None if cache_control is None else (b"cache-control", cache_control.encode("latin-1"))
        )
        """The ``cache_control`` option as the ASGI header it adds, encoded once."""
        self.make_session = make_session
        self.name = options.name
        self.secrets = options.secrets
        self.genid = options.genid or default_genid
        self.static_cookie = options.cookie if isinstance(options.cookie, CookieOptions) else None
        self.has_touch = has_touch
        self.skip = options.skip
        self.read_touch_ms = (
            self.static_cookie.max_age_ms if has_touch and self.static_cookie is not None else None
        )
        """A static lifetime a store may apply as it reads (so a read-only request needs no
        second store call); ``None`` when each session's lifetime comes from a function."""
        self._verified: dict[str, str] = {}
        self._sid_by_header: dict[str | bytes, str] = {}
        self._signed_values: dict[str, str] = {}
        self.user_key = options.user_key
        self.migrations = options.migrate_from
        transport = options.transport
        self.reads_cookie = transport != "header"
        self.reads_token = transport != "cookie"
        self.sends_token = transport == "header"
        """Whether a response hands out the token, when the request carried neither."""
        header = options.header_name
        self.token_header = header.lower()
        self.header_name = header
        self.bearer = self.token_header == "authorization"  # noqa: S105
        """``header_name="Authorization"``: the token goes in the ``Bearer`` scheme."""
        self.vary_on: tuple[str, ...] = (
            ("Cookie",)
            if transport == "cookie"
            else (header,)
            if transport == "header"
            else ("Cookie", header)
        )
        """The request headers a response with a session depends on (its ``Vary``)."""
        self.vary_header = (b"vary", ", ".join(self.vary_on).encode("latin-1"))
        self.idle_ms = _ms(options.idle_timeout)
        self.absolute_ms = _ms(options.absolute_timeout)
        self.timeouts = self.idle_ms is not None or self.absolute_ms is not None
        self.device_info = options.device_info
        self.keeps_times = self.timeouts or self.device_info
        """Whether sessions carry their times (and device) under ``TIMES_KEY``."""
        self.renew_ms = (
            self.idle_ms // RENEW_FRACTION
            if self.idle_ms is not None
            else SEEN_EVERY_MS
            if self.device_info
            else None
        )
        clock = options.clock
        self.now_ms: Callable[[], int] = now_ms if clock is None else (lambda: int(clock() * 1000))
        """The clock the timeouts read (an injected one in tests)."""

    def times(self, stored: object, request: object) -> tuple[dict[str, Any], str | None]:
        """A loaded session's times (created, active; with ``device_info`` its client too) and
        the timeout it has run out of, if any. Times that are missing or malformed (a session
        from before timeouts were on, or from a Node app) start now."""
        now = self.now_ms()
        if not isinstance(stored, dict):
            return self.started(now, request), None
        if not (type(stored.get("created")) is int and type(stored.get("active")) is int):
            return {**stored, **self.started(now, request)}, None
        created, active = stored["created"], stored["active"]
        if self.absolute_ms is not None and now - created >= self.absolute_ms:
            return stored, "absolute_timeout"
        if self.idle_ms is not None and now - active >= self.idle_ms:
            return stored, "idle_timeout"
        if self.renew_ms is not None and now - active >= self.renew_ms:
            return {**stored, "active": now, **self.client(request)}, None
        return stored, None

    def started(self, now: int, request: object) -> dict[str, Any]:
        """A session's times as it starts (with ``device_info``, the client it started from)."""
        return {"created": now, "active": now, **self.client(request)}

    def client(self, request: object) -> dict[str, str]:
        if not self.device_info or request is None:
            return {}
        return client_of(request)

    def tell(
        self,
        kind: EventKind,
        sid: str | None = None,
        *,
        reason: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        """Emit an event, if anyone listens: the session by a hash of its id, its user."""
        emit, watcher = self.emit, self.observers.event
        if emit is None and watcher is None:
            return
        user = None if data is None else user_of(data, self.user_key)
        event = SessionEvent(kind, reason, user, None if sid is None else sid_tag(sid))
        if emit is not None:
            emit(event)
        if watcher is not None:
            watcher(event)

    def listened(self) -> bool:
        return self.emit is not None or self.observers.event is not None

    def read_sid(self, cookie_header: str | bytes | None) -> str | None:
        """The sid the client presented, if its signature checks out and its format is valid.

        Cookie values that verified once are remembered (a bounded cache of valid values
        only), so a returning client costs no HMAC; whole Cookie headers too, as the adapter
        has them (ASGI's bytes, WSGI's text: a browser sends the same header request after
        request), so it costs no decoding or parsing either.
        """
        if not cookie_header:
            return None
        sid = self._sid_by_header.get(cookie_header)
        if sid is not None:
            return sid
        text = (
            cookie_header.decode("latin-1") if isinstance(cookie_header, bytes) else cookie_header
        )
        raw = find_raw_cookie(text, self.name)
        if not raw:
            return None
        sid = self._verified.get(raw) or self._verify(raw)
        if sid is not None and len(cookie_header) <= _CACHED_HEADER_LENGTH:
            _remember(self._sid_by_header, cookie_header, sid)
        return sid

    def token_sid(self, request: object) -> str | None:
        """The sid a request's token header presents (header transport), by the cookie's
        rules: a value signed like the cookie's, or nothing."""
        value = header_of(request, self.token_header)
        if not value:
            return None
        if self.bearer:
            scheme, _, value = value.strip().partition(" ")
            if scheme.lower() != "bearer":
                return None
        value = value.strip()
        return self._verified.get(value) or self._verify(value)

    def token(self, sid: str) -> tuple[str, str]:
        """The response header that hands out ``sid``'s token: the cookie's signed value,
        not URI-encoded."""
        value = "s:" + sign(sid, self.secrets[0])
        return self.header_name, ("Bearer " + value if self.bearer else value)

    def _verify(self, raw: str) -> str | None:
        value = decode_cookie_value(raw) if len(raw) <= MAX_COOKIE_VALUE_LENGTH else ""
        sid = unsign(value[2:], self.secrets) if value.startswith("s:") else None
        if sid is None or not is_valid_sid(sid):
            self.tell("invalid_cookie", reason="bad_signature")
            return None
        _remember(self._verified, raw, sid)
        return sid

    def cookie_value(self, sid: str) -> str:
        """The Set-Cookie value for ``sid``: signed with the first secret, URI-encoded."""
        value = self._signed_values.get(sid)
        if value is None:
            value = encode_uri_component("s:" + sign(sid, self.secrets[0]))
            _remember(self._signed_values, sid, value)
        return value

    def is_secure(self, scheme: str, forwarded_proto: str | None) -> bool:
        """express's ``issecure``: a TLS connection, or with ``proxy=True`` X-Forwarded-Proto."""
        if scheme in ("https", "wss"):
            return True
        if self.options.proxy is not True or not forwarded_proto:
            return False
        return forwarded_proto.split(",", 1)[0].strip().lower() == "https"

    def cookie_options_for(self, request: object) -> CookieOptions:
        if self.static_cookie is not None:
            return self.static_cookie
        factory = self.options.cookie
        assert callable(factory)
        options = cookie_options(factory(request))
        check_prefix(self.name, options.attributes)
        return options

    def begin(
        self,
        request: object,
        path: str,
        cookie_header: str | bytes | None,
        scheme: str,
        forwarded_proto: str | None,
    ) -> Flow | None:
        """Start a request's flow, or ``None`` when the request has no session: its path is
        outside the cookie's path, or the ``skip`` option says so."""
        skip = self.skip
        if skip is not None and self.skips(skip, request, path):
            return None
        options = self.static_cookie or self.cookie_options_for(request)
        if options.attributes.path != "/" and not path_matches(
            path or "/", options.attributes.path or "/"
        ):
            return None
        sealed = None
        if self.sealer is not None:
            sealed = self.read_sealed(cookie_header)
            sid = None if sealed is None else sealed[0]
        else:
            sid = self.read_sid(cookie_header) if self.reads_cookie else None
        flow = Flow(self, request, options, sid, self.is_secure(scheme, forwarded_proto))
        if sealed is not None:
            flow.sealed, flow.chunks = sealed[1], sealed[2]
        if self.reads_token:
            self.answer_in_kind(flow, sid)
        if self.migrations and flow.cookie_id is None and cookie_header:
            text = (
                cookie_header.decode("latin-1")
                if isinstance(cookie_header, bytes)
                else cookie_header
            )
            found = migrated(
                self.migrations, text, self.options.migrate_keep, self.name, self.secrets[0]
            )
            if isinstance(found, ReadOld):
                flow.old_read = found
            else:
                flow.migration = found
        return flow

    def read_sealed(
        self, cookie_header: str | bytes | None
    ) -> tuple[str | None, SessionRecord | None, int] | None:
        """A cookie store's session as the request carries it: its id and record (``None`` when
        nothing opens), and how many chunk cookies came with it (to expire the unneeded ones)."""
        sealer = self.sealer
        if not cookie_header or sealer is None:
            return None
        text = (
            cookie_header.decode("latin-1") if isinstance(cookie_header, bytes) else cookie_header
        )
        name = self.name
        chunks = sealer.chunks_in(name, text)
        opened = sealer.open(name, text)
        if opened is None:
            if find_raw_cookie(text, name):
                self.tell("invalid_cookie", reason="bad_signature")
            return None if chunks == 1 else (None, None, chunks)
        return opened[0], opened[1], chunks

    def answer_in_kind(self, flow: Flow, cookie_sid: str | None) -> None:
        """Header transport: the sid a request presents may be its token's (a cookie's wins),
        and the response answers in the transport the request used (with ``"both"`` and
        neither, in both)."""
        if cookie_sid is not None:
            return
        token_sid = self.token_sid(flow.request)
        if token_sid is not None:
            flow.cookie_id = token_sid
            flow.set_cookies = False
            flow.sends_token = True
        elif self.reads_cookie:
            flow.sends_token = True

    @staticmethod
    def skips(skip: tuple[str, ...] | Callable[[Any], bool], request: object, path: str) -> bool:
        if callable(skip):
            return bool(skip(request))
        return any(path_matches(path or "/", prefix) for prefix in skip)

    def flow_for(self, sid: str | None) -> Flow:
        """A flow for session ``sid`` (or a new one) with no request: a framework's session
        object built outside the middleware (Django's ``SessionStore``)."""
        return Flow(self, None, self.static_cookie or CookieOptions(), sid, False)

    def detached_flow(self) -> Flow:
        """A flow with no request, for sessions a program loads from a store directly."""
        return Flow(self, None, self.static_cookie or CookieOptions(), None, False)


_CACHE_LIMIT = 10_000
_CACHED_HEADER_LENGTH = 512
"""Longer Cookie headers are parsed each time: the header cache stays under 5 MB."""


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


def _remember(cache: dict[K, str], key: K, value: str) -> None:
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[key] = value


class Sealer(Protocol):
    """A store that keeps sessions in the cookies themselves (``stores.cookie.CookieStore``)."""

    def seal(self, name: str, sid: str, record: SessionRecord) -> list[str]: ...

    def open(self, name: str, cookie_header: str) -> tuple[str, SessionRecord] | None: ...

    def chunks_in(self, name: str, cookie_header: str) -> int: ...


class Flow:
    """One request's session state and express-session's decisions about it."""

    __slots__ = (
        "base_json",
        "chunks",
        "cookie_id",
        "cookie_options",
        "engine",
        "expired_sid",
        "force_modified",
        "force_save",
        "from_store",
        "headers_sent",
        "loaded_data",
        "loaded_token",
        "migration",
        "old_read",
        "original_fingerprint",
        "original_id",
        "pre_touched_ms",
        "request",
        "saved",
        "sealed",
        "secure",
        "sends_token",
        "session",
        "set_cookies",
        "times",
        "touched",
    )

    def __init__(
        self,
        engine: Engine,
        request: object,
        cookie_options: CookieOptions,
        cookie_id: str | None,
        secure: bool,
    ) -> None:
        self.engine = engine
        self.request = request
        self.cookie_options = cookie_options
        self.cookie_id = cookie_id
        """The sid the request presented (in its cookie, or its token)."""
        self.secure = secure
        self.set_cookies = engine.reads_cookie
        self.sends_token = engine.sends_token
        self.session: SessionBase | None = None
        self.original_id: str | None = None
        self.original_fingerprint: str | None = None
        self.saved: tuple[str, str] | None = None
        self.touched = False
        self.force_modified = False
        self.force_save = False
        self.from_store = False
        self.headers_sent = False
        self.loaded_token: str | bytes | None = None
        self.loaded_data: dict[str, Any] | None = None
        """The data as loaded (the same objects the session was given), without timeouts."""
        self.base_json = "{}"
        self.pre_touched_ms: int | None = None
        self.times: dict[str, Any] | None = None
        """With timeouts: the session's created / last-active times, stored under TIMES_KEY."""
        self.expired_sid: str | None = None
        """A loaded session that had timed out: destroyed at the end of the request."""
        self.migration: Migration | None = None
        """``migrate_from``: the session another library's cookie carried, for a new one."""
        self.old_read: ReadOld | None = None
        """``migrate_from``, a server-side source: the old session to read instead of ours."""
        self.sealed: SessionRecord | None = None
        """A cookie store: the session the request's cookies carried."""
        self.chunks = 1
        """A cookie store: how many of its cookies the request carried."""

    # -- loading ---------------------------------------------------------------------------

    def load_call(self) -> Get | ReadOld | None:
        """The store read to perform, or ``None`` when there is no sid worth looking up (or,
        with ``migrate_from``, the old library's stored session to read)."""
        if self.cookie_id is None:
            return self.old_read
        if self.engine.sealer is not None:
            return None
        return Get(self.cookie_id, self.engine.read_touch_ms)

    def loaded(self, data: SessionRecord | Mapping[str, Any] | OldSession | None) -> SessionBase:
        """Inflate the stored data, or generate a new session when the store had nothing.

        Data that is not even a mapping is told to ``engine.on_corrupt`` (the runtime logs it)
        and the client gets a fresh session, never a loop of errors. A mapping whose cookie does
        not inflate is an error, as in express (its test S029).
        """
        if isinstance(data, OldSession):  # ``migrate_from``: the request presented no sid
            return self.carried_over(data)
        if data is None:
            data = self.sealed
        if not data:
            if self.cookie_id is not None:
                self.engine.tell("invalid_cookie", reason="unknown_id")
            return self.generate()
        sid = self.cookie_id
        assert sid is not None
        return self.stored(sid, data)

    def carried_over(self, found: OldSession) -> SessionBase:
        """An old library's session: its data in a new session, or the copy ``sessionware
        migrate`` made of it, taken on as is, with this app's cookie, saved and sent."""
        old = self.old_read
        assert old is not None
        if found.sid is None:
            self.migration = carried_over(old.source, found.data, old.keep, self.engine.name)
            return self.generate()
        self.migration = {}, old_cookie_expiry(old.source, old.keep, self.engine.name)
        session = self.stored(found.sid, found.data)
        if session._state.id == found.sid:
            session._replace(found.sid, self.fresh_cookie(), dict(session))
            self.force_modified = self.force_save = True
        return session

    def stored(self, sid: str, data: SessionRecord | Mapping[str, Any]) -> SessionBase:
        """The session ``sid`` from what the store holds for it."""
        try:
            session = self.inflate(sid, data)
        except SessionCorrupt as exc:
            self.engine.on_corrupt(exc)
            return self.generate()
        if self.expired_sid is not None:
            return self.generate()
        self.from_store = True
        self.original_id = sid
        if isinstance(data, SessionRecord):
            self.original_fingerprint = data.data_json
            self.loaded_token = data.token
            self.pre_touched_ms = data.touched_ms
            loaded = data.data
        else:
            loaded = {key: value for key, value in data.items() if key != "cookie"}
            try:
                self.original_fingerprint = encode_json(loaded)
            except (TypeError, ValueError, RecursionError) as exc:
                raise SessionError(
                    f"session {session.id!r} holds values that are not JSON", sid=session.id
                ) from exc
        if self.times is None:
            self.loaded_data = loaded
        self.base_json = self.original_fingerprint
        if not self.engine.options.resave:
            self.saved = (sid, self.original_fingerprint)
        self.session = session
        return session

    def inflate(self, sid: str, data: SessionRecord | Mapping[str, Any]) -> SessionBase:
        """Build a Session from stored data (express's ``store.createSession``); with timeouts,
        take its times out of the data (and note whether it has timed out)."""
        if isinstance(data, SessionRecord):
            session = self.engine.make_session(self, sid, data.cookie_object(), data.data)
        elif not isinstance(data, Mapping):
            raise SessionCorrupt(
                f"session {sid!r}: the store returned {type(data).__name__}", sid=sid
            )
        else:
            cookie = Cookie.from_json(data.get("cookie"))
            values = {key: value for key, value in data.items() if key != "cookie"}
            session = self.engine.make_session(self, sid, cookie, values)
        if not self.engine.keeps_times:
            if TIMES_KEY in session:  # a login's time, with no timeouts
                stored = dict.pop(session, TIMES_KEY)
                self.times = stored if isinstance(stored, dict) else None
        else:
            stored = dict.pop(session, TIMES_KEY, None)
            self.times, ended = self.engine.times(stored, self.request)
            if ended is not None:
                self.expired_sid = sid
                if self.session is None:  # loading, not a reload
                    self.engine.tell("destroyed", sid, reason=ended, data=session)
        return session

    def new_identity(self) -> tuple[str, Cookie]:
        """A fresh sid and cookie."""
        sid = self.engine.genid(self.request)
        if not is_valid_sid(sid):
            raise SessionError(f"genid returned an invalid session id: {sid!r}", sid=sid)
        return sid, self.fresh_cookie()

    def fresh_cookie(self) -> Cookie:
        """A new cookie, with ``secure``/``samesite`` "auto" resolved for this request."""
        cookie = Cookie.from_options(self.cookie_options, now_ms())
        if cookie.secure == "auto":
            cookie.secure = self.secure
        if cookie.samesite == "auto":
            cookie.samesite = "none" if self.secure else "lax"
        return cookie

    def pending(self) -> SessionBase:
        """With ``lazy``: the request's session before any store read (``load_call`` and
        ``loaded`` run on its first use; until then ``finish`` has nothing to do)."""
        make = self.engine.make_lazy
        assert make is not None
        session = make(self, "", _UNREAD_COOKIE, None)
        session._state.lazy = True
        return session

    def generate(self) -> SessionBase:
        sid, cookie = self.new_identity()
        session = self.engine.make_session(self, sid, cookie, None)
        self.original_id = sid
        self.original_fingerprint = "{}"
        if self.engine.keeps_times:
            self.times = self.fresh_times()
            self.original_fingerprint = self.fingerprint(session)
        self.saved = None
        self.session = session
        if self.migration is not None:
            dict.update(session, self.migration[0])
        return session

    # -- what the session methods need ------------------------------------------------------

    def fresh_times(self) -> dict[str, Any]:
        return self.engine.started(self.engine.now_ms(), self.request)

    def stored_data(self, session: SessionBase) -> dict[str, Any]:
        """The data as stored: the session's, with its times when timeouts are on."""
        if self.times is None:
            return session
        data = dict(session)
        data[TIMES_KEY] = self.times
        return data

    def fingerprint(self, session: SessionBase) -> str:
        """The stored data's JSON (no top-level cookie): what change detection compares.

        A session that still holds the very objects it was loaded with, in the same order, all
        of them immutable, would encode to the text it was loaded from: that text is the
        answer, with no encoding. Most requests only read the session.
        """
        loaded = self.loaded_data
        if loaded is not None and not session._state.written and len(loaded) == len(session):
            now_items = iter(dict.items(session))
            for key, value in loaded.items():
                now_key, now_value = next(now_items)
                if value is not now_value or key != now_key or type(value) not in IMMUTABLE_TYPES:
                    break
            else:
                assert self.original_fingerprint is not None
                return self.original_fingerprint
        try:
            return encode_json(session if self.times is None else self.stored_data(session))
        except (TypeError, ValueError, RecursionError) as exc:
            raise SessionError(
                f"session {session.id!r} cannot be stored as JSON: {exc}", sid=session.id
            ) from exc

    def user(self, session: SessionBase) -> str | None:
        """The signed-in user the session names under ``user_key``."""
        return user_of(session, self.engine.user_key)

    def is_modified(self, session: SessionBase, fingerprint: str | None = None) -> bool:
        """express's ``isModified``: a new id, or data that differs from what was loaded."""
        if self.force_modified or self.original_id != session._state.id:
            return True
        return self.original_fingerprint != (fingerprint or self.fingerprint(session))

    def record(
        self, session: SessionBase, data_json: str | None = None, *, check_size: bool
    ) -> SessionRecord:
        """The store payload; ``check_size`` raises ``SessionTooLarge`` before any write."""
        if data_json is None:
            data_json = self.fingerprint(session)
        data = session if self.times is None else self.stored_data(session)
        record = SessionRecord(session.cookie, data, data_json)
        limit = self.engine.options.max_size
        if check_size and limit is not None and (len(data_json) + 200) * 4 > limit:
            size = len(record.json.encode())
            if size > limit:
                raise SessionTooLarge(
                    f"session {session.id!r} is {size} bytes, over max_size={limit}; not saved",
                    sid=session.id,
                )
        return record

    def save_call(self, session: SessionBase) -> Set:
        return Set(session.id, self.record(session, check_size=True), self.base(session))

    def base(self, session: SessionBase) -> Base | None:
        """What a save of ``sid`` merges onto: only a session this request loaded, under the
        id it loaded (a new or regenerated session has nothing to merge with)."""
        engine = self.engine
        options = engine.options
        sid = session._state.id
        if not options.merge or not self.from_store or sid != self.original_id:
            return None
        merged = None
        if engine.listened():
            merged = partial(engine.tell, "merged", sid, data=session)
        return Base(
            self.loaded_token, self.base_json, options.on_conflict, options.max_size, merged
        )

    def check_headers_not_sent(self, action: str) -> None:
        if self.headers_sent:
            raise HeadersAlreadySent(
                f"{action}() after the response headers were sent: the browser would never get "
                f"the new cookie; call it before the response starts (before streaming)"
            )

    def mark_saved(self, sid: str, data_json: str) -> None:
        """After a save, a later one in the same request merges what changed since, onto a
        stored value it no longer knows exactly (the save may have merged others' keys)."""
        self.saved = (sid, data_json)
        self.force_save = False
        self.base_json = data_json
        self.loaded_token = None

    def reload(self, session: SessionBase, data: SessionRecord | Mapping[str, Any]) -> None:
        fresh = self.inflate(session.id, data)
        self.expired_sid = None  # a timeout is decided when the request starts, not mid-way
        session._replace(session.id, fresh.cookie, dict(fresh))

    def regenerate(self, session: SessionBase, *, keep: bool = False) -> None:
        sid, cookie = self.new_identity()
        session._replace(sid, cookie, dict(session) if keep else {})
        authenticated = self.authenticated_ms() if keep else None
        self.times = self.fresh_times() if self.engine.keeps_times else None
        if authenticated is not None:
            self.times = {**(self.times or {}), "auth": authenticated}
        self.saved = None
        self.engine.tell("regenerated", sid, data=session)

    def signed_in(self, session: SessionBase, user: str | int) -> None:
        """``login()``: the user under ``user_key``, and when they authenticated (kept with the
        times, under ``TIMES_KEY``, hidden from the app)."""
        key = self.engine.user_key
        if key is None:
            raise SessionError(
                "login() needs the user_key option: the session key that names the user"
            )
        session[key] = user_name(user)
        self.times = {**(self.times or {}), "auth": self.engine.now_ms()}

    def sessions_limit(self) -> int | None:
        return self.engine.options.max_sessions_per_user

    def beyond_limit(self, others: dict[str, dict[str, Any]], limit: int) -> list[str]:
        """The user's other sessions that a new one puts over ``limit``: the least recently
        active first (by the times timeouts keep, else by the cookie's expiry)."""

        def last_seen(sid: str) -> tuple[int, str]:
            data = others[sid]
            times = data.get(TIMES_KEY)
            active = times.get("active") if isinstance(times, dict) else None
            cookie = data.get("cookie")
            expires = cookie.get("expires") if isinstance(cookie, dict) else None
            return (
                active if type(active) is int else 0,
                expires if isinstance(expires, str) else "",
            )

        ordered = sorted(others, key=last_seen)
        return ordered[: max(0, len(ordered) - (limit - 1))]

    def authenticated_ms(self) -> int | None:
        found = None if self.times is None else self.times.get("auth")
        return found if type(found) is int else None

    def ended(self, session: SessionBase, reason: str, sid: str | None) -> None:
        """Sessions of this user were destroyed in the request: ``sid`` (this one, or another
        of theirs), or ``None`` for several (``destroy_other_sessions()``)."""
        self.engine.tell("destroyed", sid, reason=reason, data=session)

    def devices(
        self, session: SessionBase, stored: Mapping[str, Mapping[str, Any]]
    ) -> list[Device]:
        """The user's sessions as devices, this one as this request sees it (it may not be
        stored yet, or be stored with older times)."""
        sid = session._state.id
        current = {**stored.get(sid, {}), TIMES_KEY: self.times or {}}
        return devices_of({**stored, sid: current}, sid)

    # -- the end of the request ---------------------------------------------------------------

    def set_cookie_header(self, session: SessionBase) -> str | None:
        cookie = session.cookie
        if cookie.attributes.secure and not self.secure:
            return None
        engine = self.engine
        return serialize_set_cookie(
            engine.name, engine.cookie_value(session.id), cookie.attributes, cookie.expires_ms
        )

    def expire_cookie_header(self, session: SessionBase) -> str | None:
        """A Set-Cookie that makes the browser drop the session cookie (after destroy)."""
        if self.cookie_id is None:
            return None
        return serialize_set_cookie(self.engine.name, "", session.cookie.attributes, 0)

    def finish(self, current: object, *, header: bool = True, call: bool = True) -> Outcome:
        """Decide the Set-Cookie header and the store call once the app has answered, as
        express's header and end hooks do, in their order: what became of the session (unset,
        destroyed), its cookie's new expiry, ``should_set_cookie``, then ``should_save`` or else
        ``should_touch``.

        ``current`` is what the app left as the request's session (``None`` if it unset it). A
        streamed response asks for the header when its first chunk goes out and for the call
        before its last one; any other response asks for both at once. The decision about the
        store call is the last one, so the flow lets go of the session and the request then:
        the request holds the session, the session its flow, so a flow that kept either would
        leave a cycle for the garbage collector on every request.
        """
        if self.expired_sid is not None and call:
            return self._replacing_expired(current, header)
        session = self.session
        if session is None:
            return _NOTHING
        state = session._state
        if state.unawaited:
            session._check_lifecycle_awaited()
        if header:
            self.headers_sent = True
        if call:
            self.session = None
            self.request = None
        if current is not session:
            return self._unset(session, header, call)
        if state.destroyed:
            return self._ended(session, header, None)
        if not self.touched:
            session.cookie.reset_max_age()
            self.touched = True
        sid = state.id
        fingerprint = self.fingerprint(session)
        modified = self.is_modified(session, fingerprint)
        is_new = self.cookie_id != sid
        if self.engine.sealer is not None:
            return self._in_cookies(
                session, fingerprint, modified, is_new, header=header, call=call
            )
        set_cookie = None
        if header and self.set_cookies and self.should_set_cookie(session, is_new, modified):
            set_cookie = self.set_cookie_header(session)
        headers: tuple[tuple[str, str], ...] = ()
        if (
            header
            and is_new
            and self.sends_token
            and self.should_set_cookie(session, True, modified)
        ):
            headers = (self.engine.token(sid),)
        if header and self.migration is not None:
            headers = (*headers, *self.migration[1])
        vary = self.from_store or set_cookie is not None or bool(headers)
        if not call:
            return _without_call(set_cookie, vary, headers)
        if self.should_save(sid, is_new, modified, fingerprint):
            save = Set(sid, self.record(session, fingerprint, check_size=True), self.base(session))
            self.mark_saved(sid, fingerprint)
            if is_new and sid == self.original_id and self.engine.listened():
                save.stored = partial(self.engine.tell, "created", sid, data=session)
            return Outcome(set_cookie, save, vary, headers)
        if self.should_touch(session, is_new):
            record = self.record(session, fingerprint, check_size=False)
            return Outcome(set_cookie, Touch(sid, record), vary, headers)
        return _without_call(set_cookie, vary, headers)

    def _in_cookies(
        self,
        session: SessionBase,
        fingerprint: str,
        modified: bool,
        is_new: bool,
        *,
        header: bool,
        call: bool,
    ) -> Outcome:
        """A cookie store's response: the session sealed into its cookies whenever express
        would send the cookie or save the session, or its data changed (the cookie is where it
        is kept); the chunks a smaller session no longer needs expired. No store call."""
        sid = session._state.id
        send = (
            modified
            or self.should_set_cookie(session, is_new, modified)
            or self.should_save(sid, is_new, modified, fingerprint)
        )
        cookie = session.cookie
        sealer = self.engine.sealer
        if not header or not send or sealer is None:
            return Outcome(None, None, self.from_store)
        if call:
            self.mark_saved(sid, fingerprint)
        if cookie.attributes.secure and not self.secure:
            return Outcome(None, None, self.from_store)
        name = self.engine.name
        values = sealer.seal(name, sid, self.record(session, fingerprint, check_size=False))
        attributes, expires = cookie.attributes, cookie.expires_ms
        main = serialize_set_cookie(name, values[0], attributes, expires)
        return Outcome(main, None, True, self.chunk_cookies(values, attributes, expires))

    def chunk_cookies(
        self, values: list[str], attributes: CookieAttributes, expires_ms: int | None
    ) -> tuple[tuple[str, str], ...]:
        """A cookie store's Set-Cookie headers after its first cookie: the chunks of ``values``
        past the first, then the expiry of those the request carried beyond them."""
        name = self.engine.name
        kept = [
            (
                "Set-Cookie",
                serialize_set_cookie(chunk_name(name, index), value, attributes, expires_ms),
            )
            for index, value in enumerate(values[1:], 1)
        ]
        gone = [
            ("Set-Cookie", serialize_set_cookie(chunk_name(name, index), "", attributes, 0))
            for index in range(max(len(values), 1), self.chunks)
        ]
        return (*kept, *gone)

    def should_set_cookie(self, session: SessionBase, is_new: bool, modified: bool) -> bool:
        """express's ``shouldSetCookie``: a new session's cookie when it is saved uninitialized
        or was modified; a known one's when rolling, or when modified and its cookie persists
        (a browser-session cookie the browser holds needs no new copy)."""
        options = self.engine.options
        if is_new:
            return options.save_uninitialized or modified
        return options.rolling or (session.cookie.expires_ms is not None and modified)

    def should_save(self, sid: str, is_new: bool, modified: bool, fingerprint: str) -> bool:
        """express's ``shouldSave``: an uninitialized new session never saved is saved only
        when modified; any other unless this very data was saved already in this request."""
        if is_new and not self.engine.options.save_uninitialized and self.saved is None:
            return modified
        return self.force_save or self.saved != (sid, fingerprint)

    def should_touch(self, session: SessionBase, is_new: bool) -> bool:
        """express's ``shouldTouch`` (asked only when there is no save): a known session, on a
        store with ``touch``, unless the store's read already gave it this lifetime."""
        if is_new or not self.engine.has_touch:
            return False
        touched_at_read = self.pre_touched_ms
        return touched_at_read is None or session.cookie.original_max_age_ms != touched_at_read

    def _unset(self, session: SessionBase, header: bool, call: bool) -> Outcome:
        """The app unset the session: express's ``unset`` option says to destroy it or keep
        it."""
        if self.engine.options.unset != "destroy":
            return Outcome(None, None, self.from_store)
        if call:
            self.ended(session, "unset", session._state.id)
        return self._ended(session, header, Destroy(session._state.id) if call else None)

    def _ended(self, session: SessionBase, header: bool, call: Destroy | None) -> Outcome:
        """The response of a request that ended its session: the cookie expired, with the
        ``clear_site_data`` option's header; a token answered with an empty one."""
        set_cookie = None
        headers: tuple[tuple[str, str], ...] = ()
        if header and self.cookie_id is not None:
            engine = self.engine
            if self.set_cookies:
                set_cookie = self.expire_cookie_header(session)
                headers = self.chunk_cookies([], session.cookie.attributes, None)
                clear = engine.options.clear_site_data
                if clear is not None:
                    headers = (*headers, ("Clear-Site-Data", clear))
            if self.sends_token:
                headers = (*headers, (engine.header_name, ""))
        vary = self.from_store or set_cookie is not None or bool(headers)
        return Outcome(set_cookie, call, vary, headers)

    def _replacing_expired(self, current: object, header: bool) -> Outcome:
        """A loaded session that had timed out is destroyed before the rest is decided (its
        replacement saved, as a new session, by the same rules)."""
        expired, self.expired_sid = self.expired_sid, None
        assert expired is not None
        outcome = self.finish(current, header=header)
        destroy = Destroy(expired)
        calls = (destroy,) if outcome.call is None else (destroy, outcome.call)
        return Outcome(outcome.set_cookie, Calls(calls), outcome.vary)

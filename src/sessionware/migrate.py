"""Switching to sessionware without signing anyone out: the sessions of the library an app used
before, read once and carried over (the ``migrate_from`` option).

On a request that carries a source's cookie and no sessionware cookie, the source's session
becomes a new sessionware session with the same data; the response sets sessionware's cookie
and expires the old one (``migrate_keep=True`` keeps it, for two app versions side by side).
A source's cookie whose signature fails, that has expired or that holds anything but a JSON
object is a request without a session, never an error.

Sources verify signatures with the source library's own scheme (itsdangerous for Starlette and
Flask): ``pip install 'sessionware[migrate]'``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple, Protocol

from ._records import Get, ReadOld, SessionRecord, Set, Steps, arun_steps, run_steps
from ._wire import escape_glob, find_raw_cookie
from .cookie import Cookie
from .errors import extra_needed

logger = logging.getLogger("sessionware")

Migration = tuple[dict[str, Any], tuple[tuple[str, str], ...]]
"""A session carried over: its data, and the headers that expire the source's cookie."""


Listed = tuple[str, "dict[str, Any] | None", "int | None"]
"""A server-side source's session, as ``sessionware migrate`` copies it: its key in the source,
its data (``None`` when it cannot be read, as a pickled one), its milliseconds left (``None``:
no expiry)."""


class Source(Protocol):
    """Where sessions come from: a cookie name, and what a request's value of it holds. A
    server-side source instead says ``stored = True`` and is a ``StoredSource``."""

    cookie_name: str

    def read(self, value: str) -> dict[str, Any] | None:
        """The session a cookie value holds, or ``None`` when it does not verify."""


class StoredSource(Protocol):
    """A source that keeps its sessions on a server: its cookie names a key there. Reading is
    a store call; ``sessionware migrate`` lists and copies them ahead of time."""

    cookie_name: str
    stored: bool

    def stored_key(self, value: str) -> str | None:
        """The key a cookie value names, or ``None`` when it does not verify."""

    def read_stored(self, key: str, keep: bool) -> dict[str, Any] | None: ...

    async def aread_stored(self, key: str, keep: bool) -> dict[str, Any] | None: ...

    def listed(self) -> Iterator[Listed]: ...

    def delete_stored(self, key: str) -> None: ...


def copy_id(secret: bytes, source: object, key: str) -> str:
    """The sessionware id ``sessionware migrate`` gives the copy of the source's session
    ``key``, and under which a request carrying the old cookie finds it: keyed by the app's
    secret, so the old keys alone (a leaked table) name no sessionware session."""
    message = f"sessionware-migrate\0{type(source).__name__}\0{key}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode()


class StarletteCookieSessions:
    """Starlette's and FastAPI's own ``SessionMiddleware``: the data as base64 JSON in the
    cookie, signed by itsdangerous's ``TimestampSigner`` with ``secret_key``; ``max_age`` as the
    app configured it (``None``: no expiry)."""

    def __init__(
        self,
        secret_key: str,
        session_cookie: str = "session",
        max_age: int | None = 14 * 24 * 60 * 60,
    ) -> None:
        with extra_needed("migrate", "itsdangerous"):
            from itsdangerous import TimestampSigner
        self.cookie_name = session_cookie
        self.max_age = max_age
        self.signer = TimestampSigner(str(secret_key))

    def read(self, value: str) -> dict[str, Any] | None:
        from itsdangerous import BadSignature

        try:
            signed = self.signer.unsign(value.encode("latin-1"), max_age=self.max_age)
            return _object(json.loads(base64.b64decode(signed)))
        except (BadSignature, binascii.Error, ValueError, UnicodeError):
            return None


class FlaskCookieSessions:
    """Flask's default ``SecureCookieSessionInterface``: itsdangerous's
    ``URLSafeTimedSerializer`` with Flask's salt, HMAC key derivation and SHA-1, over Flask's
    tagged JSON. ``secret_key`` may be a list, newest first (``SECRET_KEY_FALLBACKS``).
    ``max_age`` is ``PERMANENT_SESSION_LIFETIME`` in seconds."""

    def __init__(
        self,
        secret_key: str | bytes | Sequence[str | bytes],
        salt: str = "cookie-session",
        session_cookie: str = "session",
        max_age: int | None = 31 * 24 * 60 * 60,
    ) -> None:
        with extra_needed("migrate", "itsdangerous"):
            from itsdangerous import URLSafeTimedSerializer
        with extra_needed("flask", "flask"):
            from flask.json.tag import TaggedJSONSerializer
        keys: list[Any] = [secret_key] if isinstance(secret_key, (str, bytes)) else list(secret_key)
        self.cookie_name = session_cookie
        self.max_age = max_age
        self.serializer = URLSafeTimedSerializer(
            list(reversed(keys)),  # itsdangerous signs with the last key
            salt=salt,
            serializer=TaggedJSONSerializer(),
            signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha1},
        )

    def read(self, value: str) -> dict[str, Any] | None:
        from itsdangerous import BadSignature

        try:
            return _object(_plain(self.serializer.loads(value, max_age=self.max_age)))
        except (BadSignature, ValueError, TypeError, UnicodeError):
            return None


def _object(value: object) -> dict[str, Any] | None:
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        return None
    return value


def _plain(value: Any) -> Any:
    """Flask's tagged JSON gives back tuples, bytes, datetimes, UUIDs and Markup: as JSON
    holds them (lists, text, ISO dates)."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "isoformat"):
        return value  # sessionware's JSON writes datetimes as JavaScript does
    return str(value)


class DjangoSessions:
    """Django's own sessions, read with Django's own session engine and settings (``db``,
    ``cache``, ``cached_db``, ``signed_cookies``...; ``SECRET_KEY``, ``SESSION_SERIALIZER``):
    the signed-in user stays signed in (``_auth_user_id``, ``_auth_user_backend``,
    ``_auth_user_hash`` come across). The old session is deleted once copied, unless
    ``migrate_keep``. A pickle serializer is refused: unpickling what a store holds runs code."""

    stored = True
    """A server-side source: reading it is a store call, not a cookie's verification."""

    def __init__(
        self,
        engine: str = "django.contrib.sessions.backends.db",
        session_cookie: str | None = None,
    ) -> None:
        import importlib

        with extra_needed("django", "django"):
            from django.conf import settings
        serializer = str(getattr(settings, "SESSION_SERIALIZER", ""))
        if "pickle" in serializer.lower():
            raise ValueError(
                f"SESSION_SERIALIZER is {serializer!r}: sessionware never unpickles (unpickling "
                "what a store holds runs code); switch Django to its JSONSerializer first"
            )
        self.engine = importlib.import_module(engine)
        self.cookie_name = session_cookie or str(settings.SESSION_COOKIE_NAME)

    def stored_key(self, value: str) -> str | None:
        """The key a cookie value names in the source (Django's cookie is the key itself)."""
        return value

    def read_stored(self, key: str, keep: bool) -> dict[str, Any] | None:
        store = self.engine.SessionStore(session_key=key)
        data = _object(_plain(dict(store.load())))
        if data and not keep:
            store.delete()
        return data or None

    async def aread_stored(self, key: str, keep: bool) -> dict[str, Any] | None:
        """Through Django's own bridge (its ORM is sync-only before 5.1's ``aload``)."""
        from asgiref.sync import sync_to_async

        found: dict[str, Any] | None = await sync_to_async(self.read_stored)(key, keep)
        return found

    def listed(self) -> Iterator[Listed]:
        """Every live session, for ``sessionware migrate``: from the sessions table, which the
        ``db`` and ``cached_db`` engines keep (a cache alone cannot be listed)."""
        from django.utils import timezone

        if not hasattr(self.engine.SessionStore, "get_model_class"):
            raise ValueError(
                f"{self.engine.__name__} cannot list its sessions (only the db and cached_db "
                "engines can): they carry over on each user's next request, with migrate_from"
            )
        model = self.engine.SessionStore.get_model_class()
        now = timezone.now()
        for row in model.objects.filter(expire_date__gt=now).iterator():
            ms_left = int((row.expire_date - now).total_seconds() * 1000)
            yield row.session_key, _object(_plain(row.get_decoded())), ms_left

    def delete_stored(self, key: str) -> None:
        self.engine.SessionStore(session_key=key).delete()


class _RedisSource:
    """A server-side source on Redis: a cookie naming a key, the key's value decoded by the
    subclass. A sync client for sync apps, an asyncio one for async apps (each made on first
    use); the old key is deleted once copied, unless ``migrate_keep``."""

    stored = True
    cookie_name: str
    prefix: str

    def __init__(self, url: str) -> None:
        with extra_needed("redis", "redis"):
            import redis  # noqa: F401
        self.url = url
        self._sync: Any = None
        self._async: Any = None

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()

    async def aclose(self) -> None:
        """Close the asyncio client, on the loop it was made on."""
        self.close()
        if self._async is not None:
            await self._async.aclose()

    def stored_key(self, value: str) -> str | None:
        """The Redis key the cookie's value names, or ``None`` when it does not verify."""
        return self.prefix + value

    def decode(self, raw: bytes) -> dict[str, Any] | None:
        raise NotImplementedError

    def _steps(self, key: str, keep: bool) -> Steps[tuple[str, ...], dict[str, Any] | None]:
        """Read the old session, then delete it: Redis commands that the sync and the asyncio
        client run alike."""
        raw = yield ("GET", key)
        data = None if raw is None else self.decode(raw)
        if data is not None and not keep:
            yield ("DEL", key)
        return data

    def _client(self) -> Any:
        import redis

        if self._sync is None:
            self._sync = redis.Redis.from_url(self.url)
        return self._sync

    def read_stored(self, key: str, keep: bool) -> dict[str, Any] | None:
        client = self._client()
        return run_steps(self._steps(key, keep), lambda command: client.execute_command(*command))

    async def aread_stored(self, key: str, keep: bool) -> dict[str, Any] | None:
        import redis.asyncio

        if self._async is None:
            self._async = redis.asyncio.Redis.from_url(self.url)
        client = self._async
        return await arun_steps(
            self._steps(key, keep), lambda command: client.execute_command(*command)
        )

    def listed(self) -> Iterator[Listed]:
        """Every session under the prefix, for ``sessionware migrate``: SCAN, then each key's
        value and time to live in one round trip per batch."""
        client = self._client()
        batch: list[bytes] = []
        for key in client.scan_iter(match=escape_glob(self.prefix) + "*", count=500):
            batch.append(key)
            if len(batch) == 500:
                yield from self._values(client, batch)
                batch = []
        yield from self._values(client, batch)

    def _values(self, client: Any, keys: list[bytes]) -> Iterator[Listed]:
        pipeline = client.pipeline(transaction=False)
        for key in keys:
            pipeline.get(key)
            pipeline.pttl(key)
        replies = pipeline.execute()
        for index, key in enumerate(keys):
            raw, ms_left = replies[2 * index], replies[2 * index + 1]
            if raw is not None and ms_left != -2:
                name = key.decode("utf-8", "replace")
                yield name, self.decode(raw), None if ms_left < 0 else int(ms_left)

    def delete_stored(self, key: str) -> None:
        self._client().delete(key)


class FlaskSessionStore(_RedisSource):
    """Flask-Session 0.8 on Redis: the cookie holds the session id (signed when the app had
    ``SESSION_USE_SIGNER``: pass its ``secret_key``), Redis holds msgspec's MessagePack (or
    JSON) under ``key_prefix + id``. A session Flask-Session wrote with pickle (before 0.7, and
    still read by 0.8) is refused: unpickling what a store holds runs code."""

    def __init__(
        self,
        url: str,
        key_prefix: str = "session:",
        session_cookie: str = "session",
        secret_key: str | bytes | None = None,
    ) -> None:
        super().__init__(url)
        with extra_needed("migrate", "msgspec"):
            import msgspec  # noqa: F401
        self.prefix = key_prefix
        self.cookie_name = session_cookie
        self.signer: Any = None
        if secret_key is not None:
            with extra_needed("migrate", "itsdangerous"):
                from itsdangerous import Signer
            self.signer = Signer(secret_key, salt="flask-session", key_derivation="hmac")

    def stored_key(self, value: str) -> str | None:
        if self.signer is None:
            return self.prefix + value
        from itsdangerous import BadSignature

        try:
            sid: bytes = self.signer.unsign(value.encode("latin-1"))
            return self.prefix + sid.decode()
        except (BadSignature, UnicodeError):
            return None

    def decode(self, raw: bytes) -> dict[str, Any] | None:
        import msgspec

        if raw[:1] == b"\x80":
            logger.error(
                "a Flask-Session session stored with pickle was not carried over: sessionware "
                "never unpickles (unpickling what a store holds runs code)"
            )
            return None
        for decode in (msgspec.msgpack.decode, msgspec.json.decode):
            try:
                return _object(_plain(decode(raw)))
            except (msgspec.DecodeError, ValueError):
                continue
        return None


class StarsessionsStore(_RedisSource):
    """starsessions on Redis: the cookie holds the session id, Redis holds JSON under
    ``prefix + id`` (starsessions' ``__metadata__`` is left behind)."""

    def __init__(self, url: str, prefix: str = "starsessions.", cookie_name: str = "session"):
        super().__init__(url)
        self.prefix = prefix
        self.cookie_name = cookie_name

    def decode(self, raw: bytes) -> dict[str, Any] | None:
        try:
            data = _object(json.loads(raw))
        except (ValueError, UnicodeError):
            return None
        if data is not None:
            data.pop("__metadata__", None)
        return data or None


def carried_over(source: Source, data: object, keep: bool, own_name: str) -> Migration | None:
    """A source's session as a migration: its data, and the Set-Cookie headers that expire the
    source's cookie: none with ``keep``, nor when sessionware's cookie has the same name (as
    under Flask and Django, where the new cookie replaces the old)."""
    found = _object(data)
    if not found:
        return None
    return found, old_cookie_expiry(source, keep, own_name)


def old_cookie_expiry(source: Source, keep: bool, own_name: str) -> tuple[tuple[str, str], ...]:
    if keep or source.cookie_name == own_name:
        return ()
    expire = f"{source.cookie_name}=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0"
    return (("Set-Cookie", expire),)


def migrated(
    sources: tuple[Source, ...], cookie_header: str, keep: bool, own_name: str, secret: bytes
) -> Migration | ReadOld | None:
    """What the first source whose cookie the request carries has for it: a cookie source's
    session, verified here (``None`` when it does not verify), or for a server-side source the
    store call that reads it (the copy ``sessionware migrate`` made first)."""
    for source in sources:
        value = find_raw_cookie(cookie_header, source.cookie_name)
        if not value:
            continue
        if getattr(source, "stored", False):
            stored: StoredSource = source  # type: ignore[assignment]
            key = stored.stored_key(value)
            if key is None:
                logger.info(
                    "a %s cookie did not verify: no session to carry over", source.cookie_name
                )
                continue
            return ReadOld(source, key, keep, copy_id(secret, source, key))
        data = source.read(value)
        if data is None:
            logger.info("a %s cookie did not verify: no session to carry over", source.cookie_name)
            continue
        return carried_over(source, data, keep, own_name)
    return None


class Copied(NamedTuple):
    """What ``sessionware migrate`` did (or, with ``dry_run``, would do)."""

    copied: int
    already: int
    unreadable: int


DEFAULT_COPY_LIFETIME_MS = 14 * 24 * 60 * 60 * 1000
"""A copy's lifetime when the source's session has none of its own (a Redis key with no TTL)."""


def copy_all(
    source: StoredSource,
    perform: Callable[[Get | Set], Any],
    secret: bytes,
    *,
    keep: bool = False,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Copied:
    """Copy every live session of ``source`` into a store, ahead of the deploy: each under
    ``copy_id``, where the app's ``migrate_from`` finds it on the user's next request (so the
    copy is made with the app's first secret). ``perform`` runs a store call on the store, sync
    or async alike (``StoreDriver.call``). A copy already there is left as it is, so a run can
    be repeated (a run with ``keep``, a check, then one without it to clean up); the source's
    session is deleted once copied, unless ``keep``."""
    copied = already = unreadable = 0
    for key, data, ms_left in source.listed():
        if data is None:
            unreadable += 1
            continue
        if ms_left is not None and ms_left <= 0:
            continue
        sid = copy_id(secret, source, key)
        found = perform(Get(sid, None)) is not None
        if found:
            already += 1
        else:
            copied += 1
        if dry_run:
            continue
        if not found:
            cookie = Cookie(max_age=(ms_left or DEFAULT_COPY_LIFETIME_MS) / 1000)
            record = SessionRecord.from_dict({"cookie": cookie.to_json(), **_without_cookie(data)})
            perform(Set(sid, record, None))
        if not keep:
            source.delete_stored(key)
        if progress is not None:
            progress(copied + already)
    return Copied(copied, already, unreadable)


def _without_cookie(data: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in data.items() if name != "cookie"}


def source_from_url(url: str) -> StoredSource:
    """A server-side source named on the command line:

    flask-session+redis://HOST:PORT/DB[?key_prefix=session:]
    starsessions+redis://HOST:PORT/DB[?prefix=starsessions.]
    django[:ENGINE]       (Django's SESSION_ENGINE by default; DJANGO_SETTINGS_MODULE set)
    """
    from urllib.parse import parse_qsl, urlsplit

    scheme, _, rest = url.partition("+")
    if url == "django" or url.startswith("django:"):
        import django
        from django.conf import settings

        django.setup()
        engine = url.partition(":")[2] or str(settings.SESSION_ENGINE)
        if engine.startswith("sessionware"):
            raise ValueError(
                "SESSION_ENGINE is sessionware's already: name the engine the project used "
                "before, as django:django.contrib.sessions.backends.db"
            )
        return DjangoSessions(engine)
    kinds: dict[str, tuple[type[_RedisSource], str]] = {
        "flask-session": (FlaskSessionStore, "key_prefix"),
        "starsessions": (StarsessionsStore, "prefix"),
    }
    if scheme not in kinds or not rest.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(
            "a source is flask-session+redis://..., starsessions+redis://... or django[:ENGINE]"
        )
    kind, prefix_name = kinds[scheme]
    parts = urlsplit(rest)
    query = dict(parse_qsl(parts.query))
    unknown = set(query) - {prefix_name}
    if unknown:
        raise ValueError(f"unknown option {sorted(unknown)[0]!r}: only {prefix_name} is accepted")
    server = parts._replace(query="").geturl()
    return kind(server, **query) if query else kind(server)

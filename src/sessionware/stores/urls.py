"""One function from a URL to the right store: what the CLI, the demo and settings files use.

    from_url("memory://")
    from_url("sqlite:///sessions.db")            # relative to the current folder
    from_url("sqlite:////var/lib/app/sessions.db")  # absolute
    from_url("redis://127.0.0.1:6379/0")          # also rediss://, unix://, redis+cluster://
    from_url("postgresql://user@host/db")         # also postgres://
    from_url("mysql://root@127.0.0.1/test")       # also mariadb://
    from_url("cached://?cache=redis://127.0.0.1:6379/0&store=postgresql://user@host/db")
    from_url("cookie://", encryption_keys=[key])   # or SESSIONWARE_ENCRYPTION_KEYS

``sync=True`` gives the store for WSGI apps (``SyncRedisStore`` ...), else the asyncio one where
there is one. Keyword options go to the store, and so do the store's options in the URL's query
(``postgresql://host/db?schema=app&table=sessions``, ``redis://host/0?prefix=app:``): where a
URL is the only way in (a setting, the CLI). A query parameter that is neither the store's nor
its driver's is refused at once, naming the accepted ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode


def _flag(text: str) -> bool:
    lowered = text.lower()
    if lowered not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"not a flag: {text!r} (true or false)")
    return lowered in ("true", "1", "yes")


def _seconds_or_none(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


_SQL: dict[str, Callable[[str], Any]] = {
    "table": str,
    "ttl": int,
    "disable_touch": _flag,
    "touch_after": float,
    "create_table": _flag,
    "prune_interval": _seconds_or_none,
    "prune_batch": int,
    "retry_interval": float,
    "user_key": str,
    "timeout": float,
}
_URL_OPTIONS: dict[str, dict[str, Callable[[str], Any]]] = {
    "memory": {"ttl": int, "max_sessions": int, "user_key": str},
    "sqlite": _SQL,
    "postgres": {**_SQL, "schema": str, "min_size": int, "max_size": int},
    "mysql": {**_SQL, "max_size": int},
    "redis": {
        "prefix": str,
        "ttl": int,
        "disable_ttl": _flag,
        "disable_touch": _flag,
        "touch_after": float,
        "scan_count": int,
        "user_key": str,
        "user_prefix": str,
        "timeout": float,
        "retry_interval": float,
        "client_cache": _flag,
        "client_cache_size": int,
        "auto_pipeline": _flag,
    },
    "cached": {"cache": str, "store": str, "touch_after": float, "user_key": str},
    "cookie": {"max_chunks": int, "max_age": int},
}
"""The options each kind of store takes from the URL's query, with how to read each."""


def _store_options(kind: str, url: str) -> tuple[str, dict[str, Any]]:
    """``url`` without the store's options in its query, and those options read. The
    parameters left are the driver's (libpq's, redis-py's); SQLite and MySQL URLs have none."""
    base, _, query = url.partition("?")
    accepted = _URL_OPTIONS[kind]
    options: dict[str, Any] = {}
    kept: list[tuple[str, str]] = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in accepted:
            try:
                options[name] = accepted[name](value)
            except ValueError as exc:
                raise ValueError(f"store URL option {name}={value!r}: {exc}") from None
        else:
            kept.append((name, value))
    if kept and kind in ("memory", "sqlite", "mysql", "cached", "cookie"):
        raise ValueError(_unknown(kind, kept[0][0]))
    return (base + "?" + urlencode(kept) if kept else base), options


def _unknown(kind: str, name: str, driver: str = "") -> str:
    names = ", ".join(sorted(_URL_OPTIONS[kind]))
    return f"unknown store URL option {name!r} for a {kind} store; accepted: {names}{driver}"


_SCHEMES = {
    "memory": ("memory", None),
    "sqlite": ("sqlite", None),
    "redis": ("redis", "redis"),
    "rediss": ("redis", "redis"),
    "unix": ("redis", "redis"),
    "redis+cluster": ("redis", "redis"),
    "rediss+cluster": ("redis", "redis"),
    "postgresql": ("postgres", "postgres"),
    "postgres": ("postgres", "postgres"),
    "mysql": ("mysql", "mysql"),
    "mariadb": ("mysql", "mysql"),
    "cached": ("cached", None),
    "cookie": ("cookie", "encryption"),
}


def from_url(url: str, *, sync: bool = False, **options: Any) -> Any:
    """The store ``url`` names; a bad URL is a ``ValueError`` naming the accepted schemes, a
    missing driver an ``ImportError`` naming the extra to install."""
    scheme, separator, rest = url.partition("://") if isinstance(url, str) else ("", "", "")
    if not separator or scheme.lower() not in _SCHEMES:
        accepted = ", ".join(f"{name}://" for name in _SCHEMES)
        raise ValueError(f"not a session store URL: {url!r}; accepted: {accepted}")
    kind, extra = _SCHEMES[scheme.lower()]
    url, from_query = _store_options(kind, url)
    rest = url.partition("://")[2]
    try:
        return _build(kind, scheme.lower(), url, rest, sync=sync, options={**from_query, **options})
    except ImportError as exc:
        raise ImportError(
            f"{scheme}:// needs the {extra!r} extra: pip install 'sessionware[{extra}]'"
        ) from exc


def _build(kind: str, scheme: str, url: str, rest: str, *, sync: bool, options: Any) -> Any:
    if kind == "cached":
        return _cached(sync=sync, **options)
    if kind == "cookie":
        return _cookie(**options)
    if kind == "memory":
        from .memory import MemoryStore

        return MemoryStore(**options)
    if kind == "sqlite":
        from .sqlite import SQLiteStore

        path = rest[1:] if rest.startswith("/") else rest
        return SQLiteStore(path or ":memory:", **options)
    if kind == "redis":
        from .redis import RedisStore, SyncRedisStore

        cluster = scheme.endswith("+cluster")
        target = url.replace("+cluster", "", 1)
        store_class = SyncRedisStore if sync else RedisStore
        return store_class(url=target, cluster=cluster, **options)
    if kind == "postgres":
        from .postgres import PostgresStore, SyncPostgresStore

        target = "postgresql://" + rest
        _check_libpq(target)
        return (SyncPostgresStore if sync else PostgresStore)(url=target, **options)
    from .mysql import MySQLStore, SyncMySQLStore

    return (SyncMySQLStore if sync else MySQLStore)(url=url, **options)


def _cached(
    *, sync: bool, cache: str = "", store: str = "", user_key: str | None = None, **options: Any
) -> Any:
    """``cached://?cache=URL&store=URL``: a cache in front of a durable store, each named by a
    URL of its own (percent-encoded where it has a query of its own)."""
    from .cached import CachedStore, SyncCachedStore

    if not cache or not store:
        raise ValueError("cached:// needs both: cached://?cache=URL&store=URL")
    durable_options = {} if user_key is None else {"user_key": user_key}
    in_front, durable = from_url(cache, sync=sync), from_url(store, sync=sync, **durable_options)
    return (SyncCachedStore if sync else CachedStore)(in_front, durable, **options)


def _cookie(*, encryption_keys: Any = None, **options: Any) -> Any:
    """``cookie://``: sessions sealed into the cookies; the keys come as the
    ``encryption_keys`` option (never in a URL), or from SESSIONWARE_ENCRYPTION_KEYS."""
    import os

    from .cookie import CookieStore

    if encryption_keys is None:
        found = os.environ.get("SESSIONWARE_ENCRYPTION_KEYS")
        if not found:
            raise ValueError(
                "cookie:// needs its keys: the encryption_keys option, or "
                "SESSIONWARE_ENCRYPTION_KEYS (comma-separated, the first seals)"
            )
        encryption_keys = found.split(",")
    return CookieStore(encryption_keys, **options)


def _check_libpq(url: str) -> None:
    """libpq refuses an unknown parameter only when it connects: at every connection, after
    the pool's retries. Found here instead."""
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(url)
    except ProgrammingError as exc:
        name = str(exc).rpartition(":")[2].strip().strip('"')
        raise ValueError(_unknown("postgres", name, " (or a libpq parameter)")) from None

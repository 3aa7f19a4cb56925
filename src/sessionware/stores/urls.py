"""One function from a URL to the right store: what the CLI, the demo and settings files use.

    from_url("memory://")
    from_url("sqlite:///sessions.db")            # relative to the current folder
    from_url("sqlite:////var/lib/app/sessions.db")  # absolute
    from_url("redis://127.0.0.1:6379/0")          # also rediss://, unix://, redis+cluster://
    from_url("postgresql://user@host/db")         # also postgres://
    from_url("mysql://root@127.0.0.1/test")       # also mariadb://

``sync=True`` gives the store for WSGI apps (``SyncRedisStore`` ...), else the asyncio one where
there is one. Keyword options go to the store.
"""

from __future__ import annotations

from typing import Any

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
}


def from_url(url: str, *, sync: bool = False, **options: Any) -> Any:
    """The store ``url`` names; a bad URL is a ``ValueError`` naming the accepted schemes, a
    missing driver an ``ImportError`` naming the extra to install."""
    scheme, separator, rest = url.partition("://") if isinstance(url, str) else ("", "", "")
    if not separator or scheme.lower() not in _SCHEMES:
        accepted = ", ".join(f"{name}://" for name in _SCHEMES)
        raise ValueError(f"not a session store URL: {url!r}; accepted: {accepted}")
    kind, extra = _SCHEMES[scheme.lower()]
    try:
        return _build(kind, scheme.lower(), url, rest, sync=sync, options=options)
    except ImportError as exc:
        raise ImportError(
            f"{scheme}:// needs the {extra!r} extra: pip install 'sessionware[{extra}]'"
        ) from exc


def _build(kind: str, scheme: str, url: str, rest: str, *, sync: bool, options: Any) -> Any:
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
        return (SyncPostgresStore if sync else PostgresStore)(url=target, **options)
    from .mysql import MySQLStore, SyncMySQLStore

    return (SyncMySQLStore if sync else MySQLStore)(url=url, **options)

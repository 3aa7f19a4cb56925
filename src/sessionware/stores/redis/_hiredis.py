"""Commands packed by hiredis for redis-py's asyncio connections.

Kept out of the compiled build: it mixes into connection classes made at run time, which a
compiled class cannot. It overrides two public methods of redis-py's connections.
"""

from __future__ import annotations

from typing import Any

try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - the [redis] extra installs hiredis
    _hiredis_pack = None  # type: ignore[assignment]

HIREDIS = _hiredis_pack is not None
"""Whether hiredis is installed (the ``[redis]`` extra installs it)."""


class _HiredisPacking:
    """Commands packed by hiredis, in C. redis-py's sync client does this when hiredis is
    installed; its asyncio connections pack in Python, a large share of the client's time under
    concurrent writes (bench/README.md, "Redis: less client work per command")."""

    def pack_command(self, *args: Any) -> list[bytes]:
        if args and isinstance(args[0], str) and " " in args[0]:
            return super().pack_command(*args)  # type: ignore[misc,no-any-return]
        return [_hiredis_pack(args)]

    def pack_commands(self, commands: list[tuple[Any, ...]]) -> list[bytes]:
        """A batch in one piece (what the store sends has no command name with a space)."""
        if any(" " in command[0] for command in commands if isinstance(command[0], str)):
            return super().pack_commands(commands)  # type: ignore[misc,no-any-return]
        return [b"".join([_hiredis_pack(command) for command in commands])]


def pack_with_hiredis(pool: Any) -> None:
    """Have the connections of a pool the store built pack commands with hiredis (when it is
    installed), whatever connection class the URL chose (TCP, TLS, Unix socket)."""
    if not HIREDIS:
        return
    base = pool.connection_class
    pool.connection_class = type(f"HiredisPacked{base.__name__}", (_HiredisPacking, base), {})

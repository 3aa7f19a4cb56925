"""A user's sessions as the devices they are signed in on (the ``device_info`` option).

A device is named by a handle, never by its session id (a credential, which a page listing
devices would otherwise print): the hash the logs and events name the session by, which is
meaningless to anyone who does not already hold the id, and which ``end_device()`` accepts only
among the signed-in user's own sessions.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ._records import TIMES_KEY
from .errors import sid_tag


@dataclass(frozen=True)
class Device:
    """One of a user's sessions: where and when it was used, and the handle that ends it."""

    handle: str
    """Pass it to ``end_device()``; the events' ``sid_hash`` without its ``sid#``."""
    created: datetime | None
    last_seen: datetime | None
    address: str | None
    """The client address the app's proxy settings trust (ASGI ``client``, ``REMOTE_ADDR``)."""
    user_agent: str | None
    current: bool
    """Whether this is the session of the request that asked."""


def handle_of(sid: str) -> str:
    return sid_tag(sid).removeprefix("sid#")


def sid_of_handle(handle: object, sids: Iterable[str]) -> str | None:
    """The session among ``sids`` that ``handle`` names, compared in constant time."""
    if not isinstance(handle, str):
        return None
    wanted = handle.encode()
    found = None
    for sid in sids:
        if hmac.compare_digest(handle_of(sid).encode(), wanted):
            found = sid
    return found


def device_of(sid: str, data: Mapping[str, Any], current: str | None = None) -> Device:
    """A stored session as a device; what its times do not hold (a session stored before
    ``device_info`` was on, or by a Node app) is ``None``."""
    times = data.get(TIMES_KEY)
    if not isinstance(times, dict):
        times = {}
    address, agent = times.get("address"), times.get("agent")
    return Device(
        handle=handle_of(sid),
        created=_when(times.get("created")),
        last_seen=_when(times.get("active")),
        address=address if isinstance(address, str) else None,
        user_agent=agent if isinstance(agent, str) else None,
        current=sid == current,
    )


def devices_of(stored: Mapping[str, Mapping[str, Any]], current: str) -> list[Device]:
    """Every session of a user as a device: this one first, then the most recently seen."""
    devices = [device_of(sid, data, current) for sid, data in stored.items()]
    oldest = datetime.min.replace(tzinfo=timezone.utc)
    devices.sort(key=lambda device: (not device.current, -(device.last_seen or oldest).timestamp()))
    return devices


def _when(ms: object) -> datetime | None:
    if type(ms) is not int:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)

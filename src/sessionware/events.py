"""What happened to sessions, for an operator: the ``on_event`` option's one argument.

An event names the session by a hash of its id (``sid_hash``, as the logs do), never the id,
which is a credential; and the user where ``user_key`` names one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

EventKind = Literal[
    "created",
    "regenerated",
    "destroyed",
    "invalid_cookie",
    "merged",
    "conflict",
    "store_unavailable",
    "store_available",
]
"""``created``: a new session stored; ``regenerated``: a new id (login); ``destroyed``: ended,
for ``reason``; ``invalid_cookie``: a cookie whose signature fails (``bad_signature``) or whose id
the store does not know (``unknown_id``); ``merged``: a save applied onto another request's
concurrent changes (``merge=True``), none lost; ``conflict``: a save refused by
``on_conflict="error"``;
``store_unavailable`` / ``store_available``: the store went down / came back."""

DestroyReason = Literal["logout", "idle_timeout", "absolute_timeout", "revoked", "limit", "unset"]


@dataclass(frozen=True)
class SessionEvent:
    """One thing that happened to a session (or to its store)."""

    kind: EventKind
    reason: str | None = None
    user: str | None = None
    sid_hash: str | None = None

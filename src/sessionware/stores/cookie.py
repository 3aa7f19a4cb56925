"""Sessions in the cookie itself, encrypted: no server at all (``pip install
'sessionware[encryption]'``).

    app.add_middleware(SessionMiddleware, secret=..., store=CookieStore(encryption_keys=[key]))

The session (its id, its data, its cookie) is sealed with AES-256-GCM under the first of
``encryption_keys`` (every key opens, so keys rotate as at rest), bound to the cookie's name, with
its expiry sealed inside: a replayed cookie past its lifetime opens to nothing. A value over
``CHUNK_LENGTH`` characters is split over numbered cookies (``connect.sid``, ``connect.sid.1``,
...), sealed as one, so a truncated, re-ordered or foreign set of chunks does not open either:
the request simply has no session. A session that needs more than ``max_chunks`` cookies is
``SessionTooLarge`` when it is saved, naming its size.

What a cookie cannot do: there is no per-user index (``user_key`` is refused), no revoking one
session (only rotating the keys ends them all), no merge of concurrent writes (the last response
wins), no ``reload()``. The engine seals and opens; this store is the keys and the format.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from .._records import SessionRecord
from .._wire import chunk_name, find_raw_cookie
from ..errors import SessionCorrupt, SessionTooLarge
from ..options import is_valid_sid
from .base import SessionData, SyncRecordStore
from .encryption import Encryption, EncryptionKeys

CHUNK_LENGTH = 3800
"""Characters of sealed value per cookie: with its name and attributes, a Set-Cookie stays under
the 4,096 bytes every browser keeps."""
DEFAULT_MAX_CHUNKS = 5
DEFAULT_MAX_AGE = 14 * 24 * 60 * 60
"""Seconds a browser-session cookie (no ``max_age``) stays valid when replayed."""
_FORMAT = "c1"


class CookieStore(SyncRecordStore):
    """The store that stores nothing: ``seals_sessions`` tells the engine to put the session in
    the response's cookies and read it from the request's."""

    seals_sessions = True
    blocking = False

    def __init__(
        self,
        encryption_keys: EncryptionKeys,
        *,
        max_chunks: int = DEFAULT_MAX_CHUNKS,
        max_age: int = DEFAULT_MAX_AGE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(max_chunks, bool) or not isinstance(max_chunks, int) or max_chunks < 1:
            raise ValueError(f"max_chunks must be a whole number >= 1, got {max_chunks!r}")
        self.encryption = Encryption(encryption_keys)
        self.max_chunks = max_chunks
        self.max_age_ms = int(max_age * 1000)
        self.clock = clock

    # -- what the engine asks ------------------------------------------------------------------

    def seal(self, name: str, sid: str, record: SessionRecord) -> list[str]:
        """The cookie values for ``record``, in order (the first under ``name``, then ``name.1``
        ...); ``SessionTooLarge`` when they would take more than ``max_chunks`` cookies."""
        now = int(self.clock() * 1000)
        expires = record.expires_ms
        until = now + self.max_age_ms if expires is None else expires
        payload = '{"i":' + json.dumps(sid) + ',"x":' + str(until) + "}\n" + record.json
        body = self.encryption.seal_text(payload.encode(), name.encode())
        count = -(-(len(body) + 8) // CHUNK_LENGTH)
        if count > self.max_chunks:
            raise SessionTooLarge(
                f"session {sid!r} is {len(payload.encode())} bytes, {len(body)} sealed: more "
                f"than the {self.max_chunks} cookies of {CHUNK_LENGTH} characters max_chunks "
                "allows; not saved",
                sid=sid,
            )
        text = f"{_FORMAT}.{count}.{body}"
        return [text[start : start + CHUNK_LENGTH] for start in range(0, len(text), CHUNK_LENGTH)]

    def open(self, name: str, cookie_header: str) -> tuple[str, SessionRecord] | None:
        """The session the request's cookies carry, or ``None`` when they hold none that opens
        (missing chunks, tampered, another key, expired)."""
        first = find_raw_cookie(cookie_header, name)
        if not first:
            return None
        form, _, rest = first.partition(".")
        count_text, _, body = rest.partition(".")
        if form != _FORMAT or not count_text.isdigit():
            return None
        count = int(count_text)
        if not 1 <= count <= self.max_chunks:
            return None
        parts = [body]
        for index in range(1, count):
            part = find_raw_cookie(cookie_header, chunk_name(name, index))
            if not part:
                return None
            parts.append(part)
        plain = self.encryption.open_text("".join(parts), name.encode())
        if plain is None:
            return None
        head, _, stored = plain.decode("utf-8", "replace").partition("\n")
        try:
            sealed = json.loads(head)
            sid, until = sealed["i"], sealed["x"]
        except (ValueError, KeyError, TypeError):
            return None
        if not is_valid_sid(sid) or type(until) is not int or until <= self.clock() * 1000:
            return None
        try:
            record = SessionRecord.from_stored(sid, stored)
        except SessionCorrupt:
            return None
        return None if record is None else (sid, record)

    def chunks_in(self, name: str, cookie_header: str) -> int:
        """How many of ``name``'s numbered cookies the request carries (to expire the ones a
        smaller session no longer needs), counted no further than this store ever sets."""
        if chunk_name(name, 1) + "=" not in cookie_header:  # the usual case: no parsing
            return 1
        count = 1
        while count < self.max_chunks and find_raw_cookie(cookie_header, chunk_name(name, count)):
            count += 1
        return count

    # -- the store API: nothing is kept on a server ----------------------------------------

    def get_record(self, sid: str) -> SessionRecord | None:
        """Never found: a cookie session is read from its request (``reload()`` has nothing
        to read)."""
        return None

    def set_record(self, sid: str, record: SessionRecord) -> None:
        """Nothing to do: the response's cookie carries the session."""

    def destroy(self, sid: str) -> None:
        """Nothing to do: the response expires the cookie."""

    def all(self) -> dict[str, SessionData]:
        raise TypeError("a CookieStore keeps no sessions to list: they are in the browsers")

    def clear(self) -> None:
        raise TypeError("a CookieStore keeps no sessions: rotate encryption_keys to end them all")

    def __repr__(self) -> str:
        return f"CookieStore(max_chunks={self.max_chunks})"

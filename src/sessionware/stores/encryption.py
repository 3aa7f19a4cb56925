"""Encryption at rest: a store seals each session's stored text with AES-256-GCM.

The key list rotates like ``secret``: the first key encrypts, every key decrypts, so a new key
goes first and an old one stays until the sessions it sealed have expired. Each key is stretched
to 256 bits with HKDF-SHA256; the session id is authenticated with the data, so a sealed value
copied under another id does not open. The sealed value is a JSON string (``"sw1:..."``), valid
in a JSON column, and nothing a Node app can read. The id, the expiry and the per-user index stay
outside it, so TTLs, pruning and ``user_sessions`` work as before.

A value that does not open (another key, tampered, or stored unencrypted) is ``SessionCorrupt``:
the request gets a fresh session and the reason is logged.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence

from ..errors import SessionCorrupt

MIN_KEY_BYTES = 32
_MARK = '"sw1:'
_NONCE_BYTES = 12
_INFO = b"sessionware session encryption v1"

EncryptionKeys = str | bytes | Sequence[str | bytes]


def _key_bytes(keys: EncryptionKeys) -> list[bytes]:
    items = [keys] if isinstance(keys, (str, bytes)) else list(keys)
    found: list[bytes] = []
    for item in items:
        key = item.encode() if isinstance(item, str) else item
        if not isinstance(key, bytes) or len(key) < MIN_KEY_BYTES:
            raise ValueError(
                f"each encryption key must be a str or bytes of at least {MIN_KEY_BYTES} bytes "
                f"(secrets.token_urlsafe(32) makes one)"
            )
        found.append(key)
    if not found:
        raise ValueError("encryption_keys must hold at least one key (the first encrypts)")
    return found


class Encryption:
    """Seals and opens stored session text under a rotating key list."""

    def __init__(self, keys: EncryptionKeys) -> None:
        try:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
            from cryptography.hazmat.primitives.hashes import SHA256
            from cryptography.hazmat.primitives.kdf.hkdf import HKDF
        except ImportError:
            raise ImportError(
                "encryption_keys needs: pip install 'sessionware[encryption]'"
            ) from None
        self._ciphers = [
            AESGCM(HKDF(SHA256(), 32, salt=None, info=_INFO).derive(key))
            for key in _key_bytes(keys)
        ]

    def seal(self, sid: str, text: str | bytes) -> str:
        plain = text.encode() if isinstance(text, str) else text
        return _MARK + self.seal_text(plain, sid.encode()) + '"'

    def seal_text(self, plain: bytes, associated: bytes) -> str:
        """``plain`` sealed with the first key, bound to ``associated``: unpadded base64url."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = nonce + self._ciphers[0].encrypt(nonce, plain, associated)
        return base64.urlsafe_b64encode(sealed).decode().rstrip("=")

    def open_text(self, body: str, associated: bytes) -> bytes | None:
        """What ``seal_text`` sealed, with any of the keys; ``None`` when it does not open."""
        from cryptography.exceptions import InvalidTag

        try:
            sealed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            return None
        nonce, ciphertext = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
        for cipher in self._ciphers:
            try:
                plain: bytes = cipher.decrypt(nonce, ciphertext, associated)
            except (InvalidTag, ValueError):
                continue
            return plain
        return None

    def open(self, sid: str, stored: str | bytes) -> str:
        """The plain text of a sealed value, or ``SessionCorrupt``."""
        text = stored.decode(errors="replace") if isinstance(stored, bytes) else stored
        if not (text.startswith(_MARK) and text.endswith('"')):
            raise SessionCorrupt(
                f"session {sid!r} is not encrypted (encryption_keys is set)", sid=sid
            )
        body = text[len(_MARK) : -1]
        plain = self.open_text(body, sid.encode())
        if plain is None:
            raise SessionCorrupt(
                f"session {sid!r} does not decrypt with any of the encryption keys", sid=sid
            )
        return plain.decode()


def encryption(keys: EncryptionKeys | None) -> Encryption | None:
    return None if keys is None else Encryption(keys)


def plain_text(sealer: Encryption | None, sid: str, stored: str | bytes) -> str | bytes:
    """A stored value as text to parse: opened when the store encrypts; a sealed value met by a
    store without keys says so (not "not JSON")."""
    if sealer is not None:
        return sealer.open(sid, stored)
    if stored[:5] in (_MARK, _MARK.encode()):
        raise SessionCorrupt(
            f"session {sid!r} is encrypted: the store needs its encryption_keys", sid=sid
        )
    return stored

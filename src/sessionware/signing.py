"""Signing of the session id, byte-compatible with node's cookie-signature 1.0.x.

A signed value is ``sid + "." + base64(HMAC-SHA256(secret, sid))`` without padding. Only the first
secret signs; every secret verifies, so a secret can be rotated without logging anyone out.
"""

from __future__ import annotations

import hmac
from binascii import b2a_base64
from collections.abc import Sequence

_HASH = "sha256"


def signature(value: str, secret: bytes) -> str:
    """Return the unpadded standard-base64 HMAC-SHA256 of ``value`` under ``secret``."""
    mac = hmac.digest(secret, value.encode(), _HASH)
    return b2a_base64(mac, newline=False).decode("ascii")[:-1]


def sign(value: str, secret: bytes) -> str:
    """Return ``value.signature``, the form cookie-signature's ``sign`` produces."""
    return f"{value}.{signature(value, secret)}"


def unsign(signed: str, secrets: Sequence[bytes]) -> str | None:
    """Return the value inside ``signed`` if any secret produced its signature, else ``None``.

    The split is at the last dot (a sid may contain dots) and every comparison is constant-time.
    """
    dot = signed.rfind(".")
    if dot < 0:
        return None
    value = signed[:dot]
    presented = signed.encode()
    for secret in secrets:
        if hmac.compare_digest(sign(value, secret).encode(), presented):
            return value
    return None

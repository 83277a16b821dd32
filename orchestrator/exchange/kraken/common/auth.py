"""Signing requests as Kraken's clients must (docs/kraken/rest.md sections 1.3 and 5.2).

The client's own implementation: it never borrows the simulator's, so that the simulator
accepting our signatures is evidence that both read Kraken's rules the same way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Final

_DERIVATIVES: Final = "/derivatives"


def spot_sign(secret_b64: str, uri_path: str, nonce: int | str, body: bytes) -> str:
    """API-Sign: base64(HMAC-SHA512(b64decode(secret), path + SHA256(nonce + body)))."""
    inner = hashlib.sha256(str(nonce).encode("ascii") + body).digest()
    mac = hmac.new(base64.b64decode(secret_b64), uri_path.encode("ascii") + inner, hashlib.sha512)
    return base64.b64encode(mac.digest()).decode("ascii")


def futures_sign(secret_b64: str, post_data: str, nonce: str, endpoint_path: str) -> str:
    """Authent: base64(HMAC-SHA512(b64decode(secret), SHA256(postData + nonce + path))).

    `endpoint_path` may include `/derivatives`; Kraken signs the path without it.
    """
    path = endpoint_path.removeprefix(_DERIVATIVES)
    inner = hashlib.sha256((post_data + nonce + path).encode("utf-8")).digest()
    mac = hmac.new(base64.b64decode(secret_b64), inner, hashlib.sha512)
    return base64.b64encode(mac.digest()).decode("ascii")


def key_fingerprint(key: str) -> str:
    """A short, non-reversible name for an API key, for Redis keys and limiter scopes."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]

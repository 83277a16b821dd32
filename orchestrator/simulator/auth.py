"""The venue side of Kraken's authentication: signatures, nonces, permissions, lockouts.

Facts from `docs/kraken/rest.md` sections 1, 5.2 and 6, `docs/kraken/websocket.md` section 7
and `docs/kraken/rate-limits.md` section 4; the maths is done here with hashlib/hmac on purpose,
never borrowed from the clients, so that a client and the simulator agreeing means both read
the facts the same way.

Pure: no clock and no I/O; the caller passes `now_s`. Choices where Kraken says nothing:
- A nonce that is not canonical decimal text of an unsigned 64-bit integer (`0` or digits without a
  leading zero, below 2**64) is refused as `EAPI:Invalid nonce`, like a missing one: the nonce is
  what is wrong, and a client treats both the same way.
- Missing `API-Key` is `EAPI:Invalid key`; missing `API-Sign` is `EAPI:Invalid signature`.
- The nonce window is inclusive: with window w and highest accepted h, an unseen n with
  h - w <= n < h is accepted.
- Lockout: invalid key, signature and nonce count per `API-Key` string (unknown strings too);
  a success does not forgive earlier failures. The call that reaches the threshold gets its own
  error; the calls after it get `EGeneral:Temporary lockout`, and each of them restarts the
  lockout period (Kraken: retrying extends it). Permission refusals do not count.
- Futures: Kraken documents no lockout, so none is modelled. The tolerance for out-of-order nonces
  ("brief", unquantified) is the key's `nonce_window`. A `Nonce` header that is not u64 text is
  `invalidArgument`; a key lacking a permission is `authenticationError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections import Counter, deque
from typing import Final, Literal

import msgspec

from orchestrator.simulator.errors import (
    INVALID_KEY,
    INVALID_NONCE,
    INVALID_SIGNATURE,
    PERMISSION_DENIED,
    TEMPORARY_LOCKOUT,
    KrakenError,
)

Permission = Literal[
    "query_funds",
    "query_open",
    "query_closed",
    "trade",
    "cancel",
    "withdraw",
    "websocket",
    "query_ledger",
]

# Futures error strings (docs/kraken/rest.md section 5.3).
FUTURES_AUTHENTICATION_ERROR: Final = "authenticationError"
FUTURES_NONCE_BELOW_THRESHOLD: Final = "nonceBelowThreshold"
FUTURES_NONCE_DUPLICATE: Final = "nonceDuplicate"
FUTURES_INVALID_ARGUMENT: Final = "invalidArgument"

_DERIVATIVES_PREFIX: Final = "/derivatives"
_U64_MAX: Final = 2**64 - 1
_NONCE_TEXT: Final = re.compile(r"0|[1-9][0-9]{0,19}")


def _utf8(text: str) -> bytes:
    """UTF-8 that cannot raise: request text may carry lone surrogates from a lenient decode."""
    return text.encode("utf-8", "surrogatepass")


def _secret_bytes(secret_b64: str) -> bytes:
    return base64.b64decode(secret_b64, validate=True)


def _hmac_b64(secret_b64: str, message: bytes) -> str:
    mac = hmac.new(_secret_bytes(secret_b64), message, hashlib.sha512).digest()
    return base64.b64encode(mac).decode("ascii")


def spot_signature(secret_b64: str, uri_path: str, nonce: str, body: bytes) -> str:
    """`API-Sign`: base64(HMAC-SHA512(secret, path + SHA256(nonce + body))), raw digests."""
    inner = hashlib.sha256(_utf8(nonce) + body).digest()
    return _hmac_b64(secret_b64, _utf8(uri_path) + inner)


def futures_authent(secret_b64: str, post_data: str, nonce: str, endpoint_path: str) -> str:
    """`Authent`: base64(HMAC-SHA512(secret, SHA256(postData + nonce + path))).

    `endpoint_path` may keep its `/derivatives` prefix; it is signed without it."""
    path = endpoint_path.removeprefix(_DERIVATIVES_PREFIX)
    inner = hashlib.sha256(_utf8(post_data + nonce + path)).digest()
    return _hmac_b64(secret_b64, inner)


def sign_challenge(secret_b64: str, challenge: str) -> str:
    """Futures WebSocket `signed_challenge`: base64(HMAC-SHA512(secret, SHA256(challenge)))."""
    return _hmac_b64(secret_b64, hashlib.sha256(_utf8(challenge)).digest())


def parse_nonce(nonce: str | None) -> int | None:
    """The nonce as an int, or None when it is not canonical unsigned 64-bit decimal text."""
    if nonce is None or _NONCE_TEXT.fullmatch(nonce) is None:
        return None
    value = int(nonce)
    return value if value <= _U64_MAX else None


def _same(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode("ascii"), _utf8(given))


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    secret_b64: str
    account: str
    permissions: frozenset[Permission]
    nonce_window: int = 0


NonceVerdict = Literal["accepted", "below", "duplicate"]


class NonceBook:
    """One key's nonce state: the highest accepted nonce and those seen inside the window."""

    def __init__(self, window: int) -> None:
        if window < 0:
            raise ValueError(f"nonce window must be >= 0, got {window}")
        self._window = window
        self._highest: int | None = None
        self._seen: set[int] = set()

    @property
    def highest(self) -> int | None:
        return self._highest

    def check(self, nonce: int) -> NonceVerdict:
        """Judge `nonce` without recording it."""
        if self._highest is None or nonce > self._highest:
            return "accepted"
        if nonce < self._highest - self._window:
            return "below"
        return "duplicate" if nonce in self._seen else "accepted"

    def record(self, nonce: int) -> None:
        """Remember an accepted nonce; only the ones still inside the window are kept."""
        if self._highest is None or nonce > self._highest:
            self._highest = nonce
            floor = nonce - self._window
            self._seen = {seen for seen in self._seen if seen >= floor}
        self._seen.add(nonce)


class _Lockout:
    """Failure history and lockout deadline per identity (an `API-Key` string)."""

    def __init__(self, after: int, window_s: float, lockout_s: float) -> None:
        if after < 1 or window_s <= 0 or lockout_s <= 0:
            raise ValueError("lockout_after >= 1, lockout_window_s > 0 and lockout_s > 0")
        self._after = after
        self._window_s = window_s
        self._lockout_s = lockout_s
        self._failures_at: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}

    def check(self, identity: str, now_s: float) -> bool:
        """True when locked; a call during a lockout restarts it."""
        until = self._locked_until.get(identity)
        if until is None:
            return False
        if now_s >= until:
            del self._locked_until[identity]
            return False
        self._locked_until[identity] = now_s + self._lockout_s
        return True

    def fail(self, identity: str, now_s: float) -> None:
        times = self._failures_at.setdefault(identity, deque())
        times.append(now_s)
        while times and times[0] <= now_s - self._window_s:
            times.popleft()
        if len(times) >= self._after:
            self._locked_until[identity] = now_s + self._lockout_s
            del self._failures_at[identity]


class _Keys:
    def __init__(self) -> None:
        self.keys: dict[str, ApiKey] = {}
        self.nonces: dict[str, NonceBook] = {}
        self.failures: Counter[str] = Counter()

    def add(self, key: ApiKey) -> None:
        if key.key in self.keys:
            raise ValueError(f"API key {key.key!r} is already registered")
        try:
            _secret_bytes(key.secret_b64)
        except binascii.Error as exc:
            raise ValueError(f"secret of API key {key.key!r} is not base64") from exc
        self.keys[key.key] = key
        self.nonces[key.key] = NonceBook(key.nonce_window)

    def require(self, key: ApiKey, permission: Permission, code: str) -> None:
        if permission not in key.permissions:
            raise self.refuse(code, f"key {key.key} lacks {permission}")

    def refuse(self, code: str, detail: str | None = None) -> KrakenError:
        self.failures[code] += 1
        return KrakenError(code, detail)


class SpotAuthenticator:
    """Checks `API-Key`, `API-Sign` and the nonce of spot private calls, in Kraken's order."""

    def __init__(
        self, lockout_after: int = 10, lockout_window_s: float = 60.0, lockout_s: float = 900.0
    ) -> None:
        self._keys = _Keys()
        self._lockout = _Lockout(lockout_after, lockout_window_s, lockout_s)

    def add_key(self, key: ApiKey) -> None:
        self._keys.add(key)

    def authenticate(
        self,
        api_key: str | None,
        api_sign: str | None,
        uri_path: str,
        nonce: str | None,
        body: bytes,
        *,
        now_s: float,
    ) -> ApiKey:
        """The key, or KrakenError. The nonce is judged after the signature, so that only a
        holder of the secret can use up nonces; `nonce` is the body's `nonce` field as text."""
        identity = api_key or ""
        if self._lockout.check(identity, now_s):
            raise self._keys.refuse(TEMPORARY_LOCKOUT)
        try:
            return self._verify(api_key, api_sign, uri_path, nonce, body)
        except KrakenError:
            self._lockout.fail(identity, now_s)
            raise

    def _verify(
        self,
        api_key: str | None,
        api_sign: str | None,
        uri_path: str,
        nonce: str | None,
        body: bytes,
    ) -> ApiKey:
        key = self._keys.keys.get(api_key or "")
        if key is None:
            raise self._keys.refuse(INVALID_KEY)
        expected = spot_signature(key.secret_b64, uri_path, nonce or "", body)
        if api_sign is None or not _same(expected, api_sign):
            raise self._keys.refuse(INVALID_SIGNATURE)
        value = parse_nonce(nonce)
        if value is None:
            raise self._keys.refuse(INVALID_NONCE, "not an unsigned 64-bit decimal")
        book = self._keys.nonces[key.key]
        verdict = book.check(value)
        if verdict != "accepted":
            raise self._keys.refuse(INVALID_NONCE, f"{verdict}; highest {book.highest}")
        book.record(value)
        return key

    def require(self, key: ApiKey, permission: Permission) -> None:
        self._keys.require(key, permission, PERMISSION_DENIED)

    def failures(self) -> dict[str, int]:
        """Refusals so far, by error code."""
        return dict(self._keys.failures)


class FuturesAuthenticator:
    """Checks `APIKey`, `Authent` and the optional `Nonce` header of futures private calls."""

    def __init__(self) -> None:
        self._keys = _Keys()

    def add_key(self, key: ApiKey) -> None:
        self._keys.add(key)

    def authenticate(
        self,
        api_key: str | None,
        authent: str | None,
        post_data: str,
        nonce: str | None,
        endpoint_path: str,
    ) -> ApiKey:
        """The key, or KrakenError with a futures code. No `Nonce` header means no nonce check
        (Kraken: optional); a present one must beat the key's highest, within its window."""
        key = self._keys.keys.get(api_key or "")
        if key is None:
            raise self._keys.refuse(FUTURES_AUTHENTICATION_ERROR, "unknown key")
        expected = futures_authent(key.secret_b64, post_data, nonce or "", endpoint_path)
        if authent is None or not _same(expected, authent):
            raise self._keys.refuse(FUTURES_AUTHENTICATION_ERROR, "bad Authent")
        if not nonce:
            return key
        value = parse_nonce(nonce)
        if value is None:
            raise self._keys.refuse(FUTURES_INVALID_ARGUMENT, "Nonce is not u64 text")
        book = self._keys.nonces[key.key]
        match book.check(value):
            case "below":
                raise self._keys.refuse(FUTURES_NONCE_BELOW_THRESHOLD)
            case "duplicate":
                raise self._keys.refuse(FUTURES_NONCE_DUPLICATE)
            case "accepted":
                book.record(value)
        return key

    def require(self, key: ApiKey, permission: Permission) -> None:
        self._keys.require(key, permission, FUTURES_AUTHENTICATION_ERROR)

    def failures(self) -> dict[str, int]:
        return dict(self._keys.failures)

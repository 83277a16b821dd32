"""Kraken's futures error codes mapped into our error tree (docs/kraken/rest.md section 5.3).

As for spot, what matters is the outcome: a refusal executed nothing; `Unavailable`,
`Server Error`, `unknownError` (and any code Kraken does not document) on a call that acts may
have executed it, so the caller reconciles before any retry.
"""

from __future__ import annotations

from typing import Final

from orchestrator.errors import (
    AmbiguousOutcome,
    AuthError,
    InsufficientFunds,
    InvalidNonce,
    InvalidRequest,
    VenueError,
    VenueRateLimited,
    VenueRejected,
    VenueUnavailable,
)

RATE_LIMITED: Final = frozenset({"apiLimitExceeded"})
BAD_NONCE: Final = frozenset({"nonceBelowThreshold", "nonceDuplicate"})
AUTH: Final = frozenset({"authenticationError", "accountInactive"})
FUNDS: Final = frozenset({"insufficientFunds"})
INVALID: Final = frozenset(
    {
        "invalidArgument",
        "invalidAmount",
        "invalidUnit",
        "invalidAccount",
        "requiredArgumentMissing",
        "notFound",
        "Json Parse Error",
    }
)
NOT_EXECUTED: Final = frozenset({"marketUnavailable"})
UNKNOWN_OUTCOME: Final = frozenset({"Unavailable", "Server Error", "unknownError"})
NO_CODE: Final = "unknownError"  # `result: "error"` without an `error` field


def to_exception(code: str, *, acting: bool, call: str) -> VenueError:
    """The error for a futures reply `{"result": "error", "error": code}`.

    `notFound` (an unknown sub-account uid, HTTP 404) is an `InvalidRequest` whose `codes` are
    `("notFound",)`. A code Kraken does not document is a refusal for a query, but an
    `AmbiguousOutcome` for a call that acts: we cannot tell that nothing moved.
    """
    message = f"{call}: {code}"
    codes = (code,)
    if code in RATE_LIMITED:
        return VenueRateLimited(message, codes=codes)
    if code in BAD_NONCE:
        return InvalidNonce(message, codes=codes)
    if code in AUTH:
        return AuthError(message, codes=codes)
    if code in FUNDS:
        return InsufficientFunds(message, codes=codes)
    if code in INVALID:
        return InvalidRequest(message, codes=codes)
    if code in NOT_EXECUTED:
        return VenueUnavailable(message, codes=codes)
    if acting:  # `Unavailable`, `Server Error`, `unknownError`, or a code we do not know
        return AmbiguousOutcome(message, codes=codes)
    if code in UNKNOWN_OUTCOME:
        return VenueUnavailable(message, codes=codes)
    return VenueRejected(message, codes=codes)

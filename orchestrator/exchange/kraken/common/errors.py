"""Kraken's error strings mapped into our error tree (docs/kraken/rest.md section 4).

What matters is the outcome: `VenueRejected` and `VenueUnavailable` executed nothing;
`AmbiguousOutcome` may have (EService:Unavailable/Busy and internal errors on order entry or
transfers are UNKNOWN per Kraken), so the caller reconciles before any retry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal

from orchestrator.errors import (
    AmbiguousOutcome,
    AuthError,
    InsufficientFunds,
    InvalidNonce,
    InvalidRequest,
    UnknownOrder,
    VenueError,
    VenueRateLimited,
    VenueRejected,
    VenueUnavailable,
)

RateLimitKind = Literal["rest", "trading", "domain", "futures"]  # futures: a futures key's budget

_RATE_LIMITS: Final[dict[str, RateLimitKind]] = {
    "EAPI:Rate limit exceeded": "rest",
    "EGeneral:Too many requests": "rest",
    "EAuth:Rate limit exceeded": "rest",
    "EOrder:Rate limit exceeded": "trading",
    "EOrder:Domain rate limit exceeded": "domain",
}
_AUTH: Final = frozenset(
    {
        "EAPI:Invalid key",
        "EAPI:Invalid signature",
        "EGeneral:Permission denied",
        "EAPI:Permission denied",
        "EGeneral:Temporary lockout",
        "EAPI:Invalid token",
        "ESession:Invalid session",
    }
)
_UNKNOWN_OUTCOME: Final = (
    "EService:Unavailable",
    "EService:Busy",
    "EGeneral:Internal error",
    "EDatabase:",
)
DEADLINE_ELAPSED: Final = "EService:Deadline elapsed"
_FUNDS: Final = frozenset({"EOrder:Insufficient funds", "EFunding:Insufficient funds"})
_UNKNOWN_ORDER: Final = frozenset({"EOrder:Unknown order", "EOrder:Invalid order"})


def rate_limit_kind(code: str) -> RateLimitKind | None:
    if code.startswith("EService:Throttled"):
        return "rest"
    return _RATE_LIMITS.get(code)


def to_exception(codes: Sequence[str], *, acting: bool, method: str) -> VenueError:
    """The error for a reply whose `error` list is `codes` (warnings, `W...`, are ignored).

    `acting`: the request changes state at the venue (orders, transfers, withdrawals).
    """
    errors = tuple(c for c in codes if not c.startswith("W"))
    code = errors[0] if errors else "EGeneral:Unknown error"
    message = f"{method}: {code}"
    if rate_limit_kind(code) is not None:
        return VenueRateLimited(message, codes=errors)
    if code == "EAPI:Invalid nonce":
        return InvalidNonce(message, codes=errors)
    if code in _AUTH:
        return AuthError(message, codes=errors)
    if code in _FUNDS:
        return InsufficientFunds(message, codes=errors)
    if code in _UNKNOWN_ORDER:
        return UnknownOrder(message, codes=errors)
    if code == DEADLINE_ELAPSED:  # the engine refused it: nothing executed, resend anew
        return VenueUnavailable(message, codes=errors)
    if code.startswith(_UNKNOWN_OUTCOME):
        return (
            AmbiguousOutcome(message, codes=errors)
            if acting
            else VenueUnavailable(message, codes=errors)
        )
    if code.startswith(("EGeneral:Invalid arguments", "EOrder:", "EQuery:", "EFunding:")):
        return InvalidRequest(message, codes=errors)
    return VenueRejected(message, codes=errors)

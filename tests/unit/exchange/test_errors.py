"""Kraken's error strings land in the right branch of our error tree."""

from __future__ import annotations

import pytest

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
from orchestrator.exchange.kraken.common.errors import rate_limit_kind, to_exception


@pytest.mark.parametrize(
    ("code", "acting", "expected"),
    [
        ("EAPI:Rate limit exceeded", False, VenueRateLimited),
        ("EOrder:Rate limit exceeded", True, VenueRateLimited),
        ("EOrder:Domain rate limit exceeded", True, VenueRateLimited),
        ("EService:Throttled:1700000000", False, VenueRateLimited),
        ("EAPI:Invalid nonce", True, InvalidNonce),
        ("EAPI:Invalid key", False, AuthError),
        ("EAPI:Invalid signature", False, AuthError),
        ("EGeneral:Permission denied", True, AuthError),
        ("EGeneral:Temporary lockout", False, AuthError),
        ("EOrder:Insufficient funds", True, InsufficientFunds),
        ("EFunding:Insufficient funds", True, InsufficientFunds),
        ("EOrder:Unknown order", True, UnknownOrder),
        ("EOrder:Invalid order", False, UnknownOrder),
        ("EService:Unavailable", True, AmbiguousOutcome),
        ("EService:Deadline elapsed", True, VenueUnavailable),  # the engine refused it in time
        ("EService:Busy", True, AmbiguousOutcome),
        ("EGeneral:Internal error", True, AmbiguousOutcome),
        ("EService:Unavailable", False, VenueUnavailable),
        ("EService:Busy", False, VenueUnavailable),
        ("EGeneral:Invalid arguments:volume", True, InvalidRequest),
        ("EOrder:Order minimum not met", True, InvalidRequest),
        ("EQuery:Unknown asset pair", False, InvalidRequest),
        ("EFunding:Unknown withdraw key", True, InvalidRequest),
        ("ESomething:New", False, VenueRejected),
    ],
)
def test_mapping(code: str, acting: bool, expected: type[VenueError]) -> None:
    error = to_exception([code], acting=acting, method="AddOrder")
    assert type(error) is expected
    assert error.codes == (code,)
    assert code in str(error)


def test_warnings_are_not_errors() -> None:
    error = to_exception(
        ["WGeneral:Deprecated", "EOrder:Unknown order"], acting=True, method="CancelOrder"
    )
    assert isinstance(error, UnknownOrder)


def test_rate_limit_kinds() -> None:
    assert rate_limit_kind("EOrder:Domain rate limit exceeded") == "domain"
    assert rate_limit_kind("EOrder:Rate limit exceeded") == "trading"
    assert rate_limit_kind("EAPI:Rate limit exceeded") == "rest"
    assert rate_limit_kind("EOrder:Insufficient funds") is None

"""`act_once` after an ambiguous send: a lookup that cannot ask yet (venue, limiter, rate limit) is
asked again later; any other failure of the lookup leaves the outcome ambiguous and never reads as
the call having failed, so a caller never resends an executed call."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from orchestrator.clock import ManualClock
from orchestrator.errors import (
    AmbiguousOutcome,
    AuthError,
    LimiterUnavailable,
    OrchestratorError,
    RateLimited,
    VenueRateLimited,
    VenueUnavailable,
)
from orchestrator.exchange.kraken.common.reconcile import act_once

T = TypeVar("T")


async def drive(clock: ManualClock, call: Coroutine[Any, Any, T]) -> T:
    """Run `call`, moving the manual clock on while it sleeps."""
    task = asyncio.ensure_future(call)
    while not task.done():
        await clock.advance(1.0)
    return await task


class Scripted:
    """A send that is ambiguous once, and a lookup that fails as told, then finds the call."""

    def __init__(self, failures: list[OrchestratorError]) -> None:
        self.failures = failures
        self.sent = 0
        self.looked = 0

    async def send(self) -> str:
        self.sent += 1
        raise AmbiguousOutcome("reply lost")

    async def lookup(self) -> str | None:
        self.looked += 1
        if self.failures:
            raise self.failures.pop(0)
        return "executed"


@pytest.mark.parametrize(
    "failure",
    [
        VenueUnavailable("lookup: timeout"),
        VenueRateLimited("lookup: apiLimitExceeded", codes=("apiLimitExceeded",)),
        RateLimited("futures:history:k", 3.0),
        LimiterUnavailable("limiter cannot decide"),
    ],
)
async def test_a_lookup_that_cannot_ask_yet_is_asked_again(failure: OrchestratorError) -> None:
    clock = ManualClock()
    call = Scripted([failure, failure])
    assert await drive(clock, act_once("t", call.send, call.lookup, clock=clock)) == "executed"
    assert (call.sent, call.looked) == (1, 3)


async def test_a_lookup_that_never_can_ask_leaves_the_outcome_ambiguous() -> None:
    clock = ManualClock()
    call = Scripted([VenueRateLimited("lookup: 429", codes=("HTTP 429",))] * 10)
    with pytest.raises(AmbiguousOutcome, match="cannot reconcile"):
        await drive(clock, act_once("t", call.send, call.lookup, clock=clock))
    assert call.sent == 1


async def test_any_other_lookup_failure_is_ambiguous_not_the_calls_error() -> None:
    clock = ManualClock()
    call = Scripted([AuthError("lookup: key lacks permission", codes=("authenticationError",))])
    with pytest.raises(AmbiguousOutcome, match="cannot reconcile") as raised:
        await drive(clock, act_once("t", call.send, call.lookup, clock=clock))
    assert isinstance(raised.value.__cause__, AuthError)
    assert (call.sent, call.looked) == (1, 1)


async def test_a_lookup_that_cannot_tell_stops_at_once() -> None:
    clock = ManualClock()
    call = Scripted([AmbiguousOutcome("an unknown transfer in the log")])
    with pytest.raises(AmbiguousOutcome, match="unknown transfer"):
        await drive(clock, act_once("t", call.send, call.lookup, clock=clock))
    assert (call.sent, call.looked) == (1, 1)

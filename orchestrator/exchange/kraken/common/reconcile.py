"""Acting exactly once over an unreliable link: after an ambiguous outcome, look before resending.

A call that acts (AddOrder, AmendOrder, CancelOrder, CancelAll, AccountTransfer, Withdraw, the
futures transfers) whose reply is lost, garbled or cut off may or may not have been executed
(docs/outcomes.md). Kraken has no idempotency key for any of them, so each has a *lookup* that
tells from the venue's state what happened: the order by its `cl_ord_id`, the order's state for
amends and cancels, the source account's ledger for a transfer, the withdrawal list for a
withdrawal, the futures account log for a futures transfer. `act_once` sends, and after an
ambiguous outcome asks the lookup; only when the venue has certainly not acted does it send
again. A lookup miss is confirmed once more after `confirm_delay_s` (Kraken notes a just-placed
order can be briefly missing from OpenOrders). While the lookup cannot ask (the venue or the
limiter cannot answer, or a rate limit says wait) it backs off; if it never can, or fails for any
other reason, the outcome stays ambiguous and `AmbiguousOutcome` is raised: an error of the
lookup must never read as the call having failed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from orchestrator.clock import Clock
from orchestrator.errors import (
    AmbiguousOutcome,
    LimiterUnavailable,
    OrchestratorError,
    RateLimited,
    VenueRateLimited,
    VenueUnavailable,
)
from orchestrator.logs import get_logger

log = get_logger(__name__)

T = TypeVar("T")
ATTEMPTS: Final = 3
_LOOKUPS: Final = 5
# The lookup could not ask now; asking again later may work.
_CANNOT_ASK_YET: Final = (VenueUnavailable, VenueRateLimited, RateLimited, LimiterUnavailable)


async def act_once(
    what: str,
    send: Callable[[], Awaitable[T]],
    lookup: Callable[[], Awaitable[T | None]],
    *,
    clock: Clock,
    attempts: int = ATTEMPTS,
    confirm_delay_s: float = 0.5,
) -> T:
    """`send()`'s result, the call executed once. `lookup()` returns the result the venue shows
    for an executed call, or None when it has certainly not executed it (it raises
    `AmbiguousOutcome` when the venue's state cannot tell)."""
    last: AmbiguousOutcome | None = None
    for attempt in range(attempts):
        try:
            return await send()
        except AmbiguousOutcome as exc:
            last = exc
            log.warning("venue.ambiguous", call=what, attempt=attempt, error=str(exc))
        found = await _settle(what, lookup, clock, confirm_delay_s)
        if found is not None:
            log.info("venue.reconciled", call=what, attempt=attempt)
            return found
        log.info("venue.not_executed", call=what, attempt=attempt)
    assert last is not None  # noqa: S101 - the loop only ends here after an ambiguous outcome
    raise last


async def _settle(
    what: str, lookup: Callable[[], Awaitable[T | None]], clock: Clock, confirm_delay_s: float
) -> T | None:
    delay_s = max(confirm_delay_s, 0.01)
    for attempt in range(_LOOKUPS):
        try:
            found = await lookup()
            if found is None:
                await clock.sleep(confirm_delay_s)
                found = await lookup()
        except AmbiguousOutcome:
            raise
        except _CANNOT_ASK_YET as exc:
            if attempt == _LOOKUPS - 1:
                raise AmbiguousOutcome(f"{what}: cannot reconcile ({exc})") from exc
            await clock.sleep(delay_s)
            delay_s *= 2
            continue
        except OrchestratorError as exc:  # any other failure of the lookup: still unknown
            raise AmbiguousOutcome(f"{what}: cannot reconcile ({exc})") from exc
        return found
    return None  # pragma: no cover - the loop returns or raises

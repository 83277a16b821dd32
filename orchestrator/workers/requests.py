"""One order's cancel and amend, sent until the venue answers (cancels) or a few times (amends).

A cancel must reach the venue: it is retried, with backoff, through every failure that leaves
the order open (the venue or the limiter cannot take it now, an ambiguous answer: cancelling
twice does no harm). An amend is sent a few times at most: a refusal is the strategy's to act
on. Either way, an order found closed meanwhile is refreshed from the venue.
"""

from __future__ import annotations

import contextlib
from decimal import Decimal
from typing import TYPE_CHECKING, Final

from orchestrator.clock import Backoff
from orchestrator.errors import (
    AmbiguousOutcome,
    LimiterUnavailable,
    OrchestratorError,
    RateLimited,
    UnknownOrder,
    VenueRateLimited,
    VenueRejected,
    VenueUnavailable,
)
from orchestrator.logs import get_logger
from orchestrator.workers import order_states as st
from orchestrator.workers.order_states import TrackedOrder
from orchestrator.workers.stopping import RETRY_INITIAL_S, RETRY_MAX_S

if TYPE_CHECKING:
    from orchestrator.workers.orders import OrderManager

log = get_logger(__name__)

AMEND_ATTEMPTS: Final = 3
# What says the venue did not take a request now (nothing executed): sent again later.
NOT_SENT: Final = (VenueUnavailable, RateLimited, LimiterUnavailable)


def retry_backoff(manager: OrderManager) -> Backoff:
    """The pacing of a request the venue could not take now."""
    return Backoff(manager.clock, initial_s=RETRY_INITIAL_S, max_s=RETRY_MAX_S)


async def cancel(manager: OrderManager, order: TrackedOrder) -> None:
    """Until the venue answers: cancels always go through."""
    backoff = retry_backoff(manager)
    while order.is_open:
        if order.txid is None:  # the place's outcome is unknown yet: wait for it
            await backoff.wait()
            continue
        try:
            cancelled = await manager.venue.cancel(order.ref())
        except UnknownOrder:
            cancelled = False
        except (*NOT_SENT, VenueRateLimited, AmbiguousOutcome) as exc:
            manager.count("cancel", "retry")
            log.warning("order.cancel_retry", cl_ord_id=order.cl_ord_id, error=str(exc))
            await backoff.wait()
            continue
        except VenueRejected as exc:
            manager.count("cancel", "refused")
            manager.tell(order, st.on_cancel_refused(order, str(exc)))
            return
        manager.count("cancel", "ok" if cancelled else "closed")
        if cancelled:
            manager.tell(order, st.on_cancelled(order, "cancelled on request"))
        else:
            await refresh(manager, order)
        return


async def amend(
    manager: OrderManager, order: TrackedOrder, *, price: Decimal | None, volume: Decimal | None
) -> None:
    backoff = retry_backoff(manager)
    for _ in range(AMEND_ATTEMPTS):
        if not order.is_open or order.cancel_requested:
            return
        if order.txid is None:
            await backoff.wait()
            continue
        try:
            ref = await manager.venue.amend(order.ref(), price=price, volume=volume)
        except UnknownOrder:  # closed meanwhile (filled, cancelled): learn how
            await refresh(manager, order)
            return
        except (*NOT_SENT, VenueRateLimited) as exc:
            manager.count("amend", "retry")
            log.info("order.amend_retry", cl_ord_id=order.cl_ord_id, error=str(exc))
            await backoff.wait()
            continue
        except AmbiguousOutcome as exc:
            manager.count("amend", "ambiguous")
            manager.tell(order, st.on_amend_refused(order, f"outcome unknown: {exc}"))
            await refresh(manager, order)
            return
        except VenueRejected as exc:
            manager.count("amend", "refused")
            manager.tell(order, st.on_amend_refused(order, str(exc)))
            return
        manager.count("amend", "ok")
        manager.tell(
            order,
            st.on_amended(
                order,
                price=price,
                volume=volume,
                rested_s=ref.rested_s or manager.clock.time(),
            ),
        )
        return
    manager.tell(order, st.on_amend_refused(order, "not sent: the venue could not take it"))


async def refresh(manager: OrderManager, order: TrackedOrder) -> None:
    """The order's state from the venue (after a cancel found it closed, ...)."""
    with contextlib.suppress(OrchestratorError):
        state = await manager.venue.find_order(order.cl_ord_id)
        if state is not None:
            manager.tell(order, st.on_reconciled(order, state))

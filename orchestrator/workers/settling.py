"""What became of a place: the venue's answer told to the strategy and settled in the journal.

A reference means placed; a refusal, rejected; "could not take it now", not placed. An
ambiguous answer (the venue may have acted) keeps the order in flight and asks the venue by
`cl_ord_id` until it can tell; only past the order's deadline is a miss final. The journal
write follows the venue's truth and never decides it: a settle Redis refuses is tried again in
the background, and whatever is still pending at the next start is settled by reconciliation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Literal

from orchestrator.clock import Backoff
from orchestrator.errors import AmbiguousOutcome, OrchestratorError, StoreError, VenueRejected
from orchestrator.exchange.protocol import OrderRef
from orchestrator.logs import get_logger
from orchestrator.workers import order_states as st
from orchestrator.workers.order_states import TrackedOrder
from orchestrator.workers.stopping import RETRY_INITIAL_S, RETRY_MAX_S

if TYPE_CHECKING:
    from orchestrator.workers.orders import OrderManager

log = get_logger(__name__)

Outcome = Literal["placed", "not_placed", "rejected"]
# How often an order whose place outcome is unknown is looked up again.
LOOKUP_EVERY_S: Final = 2.0
SETTLE_ATTEMPTS: Final = 8  # a settle Redis refused: tried again with backoff (about 2 min)
SETTLE_RETRY_MAX_S: Final = RETRY_MAX_S * 6


async def placed(
    manager: OrderManager, order: TrackedOrder, outcome: OrderRef | OrchestratorError
) -> None:
    """One place's answer (alone or in a batch), told and journalled."""
    if isinstance(outcome, AmbiguousOutcome):
        manager.count("place", "ambiguous")
        log.warning("order.place_ambiguous", strategy=manager.strategy,
                    cl_ord_id=order.cl_ord_id, error=str(outcome))  # fmt: skip
        await settle_unknown(manager, order)
        return
    manager.in_flight.discard(order.cl_ord_id)
    if isinstance(outcome, OrchestratorError):
        refused = isinstance(outcome, VenueRejected)
        manager.count("place", "rejected" if refused else "not_sent")
        reason = str(outcome) if refused else f"not sent: {outcome}"
        manager.tell(order, st.on_place_failed(order, reason))
        await settle(manager, order, "rejected" if refused else "not_placed", reason=str(outcome))
        return
    manager.count("place", "ok")
    manager.tell(order, st.on_placed(order, outcome))
    await settle(manager, order, "placed", txid=outcome.txid)


async def settle_unknown(manager: OrderManager, order: TrackedOrder) -> None:
    """The venue could not say whether the order exists: ask it by `cl_ord_id` until it can
    (the order stays in flight; executions may tell first)."""
    clock = manager.clock
    sent_s = clock.time()
    while order.cl_ord_id in manager.in_flight:
        await clock.sleep(LOOKUP_EVERY_S)
        if order.txid is not None:  # an execution named it meanwhile
            break
        try:
            state = await manager.venue.find_order(order.cl_ord_id)
        except OrchestratorError as exc:
            log.info("order.lookup_failed", cl_ord_id=order.cl_ord_id, error=str(exc))
            continue
        if state is None:
            if clock.time() - sent_s < manager.place_final_after_s:
                continue  # it may still be queued at the venue
            manager.in_flight.discard(order.cl_ord_id)
            manager.tell(order, st.on_place_failed(order, "not placed (reconciled)"))
            await settle(manager, order, "not_placed", reason="absent after its deadline")
            return
        manager.tell(order, st.on_reconciled(order, state))
        break
    manager.in_flight.discard(order.cl_ord_id)
    await settle(manager, order, "placed", txid=order.txid)


async def settle(
    manager: OrderManager, order: TrackedOrder, outcome: Outcome, *,
    txid: str | None = None, reason: str | None = None,
) -> None:  # fmt: skip
    """Settle the journal entry; Redis down leaves it pending and retried in the background."""
    try:
        await manager.journal.settle(order.cl_ord_id, outcome, txid=txid, reason=reason)
    except StoreError as exc:
        log.warning("order.settle_deferred", cl_ord_id=order.cl_ord_id, error=str(exc))
        manager.retry_settle_later(_settle_later(manager, order.cl_ord_id, outcome, txid, reason))


async def _settle_later(
    manager: OrderManager, cl_ord_id: str, outcome: Outcome, txid: str | None,
    reason: str | None,
) -> None:  # fmt: skip
    backoff = Backoff(manager.clock, initial_s=RETRY_INITIAL_S, max_s=SETTLE_RETRY_MAX_S)
    for attempt in range(1, SETTLE_ATTEMPTS):
        await backoff.wait()
        try:
            await manager.journal.settle(cl_ord_id, outcome, txid=txid, reason=reason)
        except StoreError as exc:
            log.warning("order.settle_deferred", cl_ord_id=cl_ord_id, attempt=attempt,
                        error=str(exc))  # fmt: skip
        else:
            return
    log.warning("order.settle_left_to_reconciliation", cl_ord_id=cl_ord_id)

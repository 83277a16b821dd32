"""Stopping a strategy's orders: every order of its account cancelled, whatever Redis does.

One CancelAll first: it also catches orders we could not know of (a place whose reply is still
on its way). Orders placed after it (their place was in flight) are then cancelled one by one.
Nothing here needs the journal: cancels reach the venue even when Redis does not answer.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Final

from orchestrator.clock import Backoff
from orchestrator.errors import OrchestratorError
from orchestrator.logs import get_logger
from orchestrator.workers import order_states as st

if TYPE_CHECKING:
    from orchestrator.workers.orders import OrderManager

log = get_logger(__name__)

# Retries of a request the venue could not take now (nothing executed), for every cancel path.
RETRY_INITIAL_S: Final = 0.2
RETRY_MAX_S: Final = 5.0
CANCEL_ALL_CONFIRM_S: Final = 0.5  # how long a stop waits for CancelAll's executions
POLL_S: Final = 0.05
LATE_ACK_GRACE_S: Final = 0.1  # an order acked after CancelAll: its cancellation's grace


async def cancel_everything(manager: OrderManager, *, timeout_s: float) -> int:
    """Stop sending new orders and cancel every order of the account within `timeout_s`;
    how many orders are still open when done (0 is success)."""
    manager.drop_unsent()
    clock = manager.clock
    acked_s: dict[str, float] = {}  # when each order's txid was first seen open after CancelAll
    with contextlib.suppress(TimeoutError):
        async with clock.timeout(timeout_s):
            await _cancel_all_once(manager)
            while manager.open_orders():
                now_s = clock.monotonic()
                for order in manager.open_orders():
                    if order.txid is None or order.cancel_requested:
                        continue
                    # An order acknowledged after CancelAll went out may have been on the book
                    # before it: its `canceled` execution follows within moments. A cancel of
                    # its own then would be answered "Unknown order" (and looked up at a cost
                    # to the account's counter), so it waits that long first.
                    if now_s - acked_s.setdefault(order.cl_ord_id, now_s) >= LATE_ACK_GRACE_S:
                        manager.cancel(order.cl_ord_id)
                await clock.sleep(POLL_S)
    left = len(manager.open_orders())
    if left:
        log.error("order.cancel_incomplete", strategy=manager.strategy, open=left)
    return left


async def _cancel_all_once(manager: OrderManager) -> None:
    known = {o.cl_ord_id for o in manager.open_orders() if o.txid is not None}
    resting = [o.ref() for o in manager.open_orders() if o.cl_ord_id in known]
    backoff = Backoff(manager.clock, initial_s=RETRY_INITIAL_S, max_s=RETRY_MAX_S)
    while True:
        try:
            await manager.venue.cancel_all(resting)
            break
        except OrchestratorError as exc:  # every failure: cancels must go through
            log.warning("order.cancel_all_retry", strategy=manager.strategy, error=str(exc))
            await backoff.wait()
    # The venue's `canceled` executions (or a last trade) normally close them within
    # milliseconds; those that have not said so by then are taken as cancelled, since
    # asking REST order by order would cost more than a stop can wait.
    with contextlib.suppress(TimeoutError):
        async with manager.clock.timeout(CANCEL_ALL_CONFIRM_S):
            while any(o.cl_ord_id in known for o in manager.open_orders()):
                await manager.clock.sleep(POLL_S / 5)
    # Only the orders known before the request went out: one the venue took after it (its
    # txid arrived since) is still open there and gets its own cancel.
    for order in manager.open_orders():
        if order.cl_ord_id in known:
            manager.tell(order, st.on_cancelled(order, "cancel_all"))

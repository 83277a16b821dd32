"""Reconciliation: what the venue holds is the truth; the journal says which of it is ours.

At start (`reconcile_at_start`), before the strategy hears anything: every journal entry still
pending is looked up by its `cl_ord_id` (open, then closed orders) and settled from what the venue
shows: placed (the order is adopted, whatever state it reached) or, once the order's deadline has
certainly passed, not placed. Orders open on the sub-account that the journal settled as ours are
adopted; any other open order is an orphan (placed by hand, or by a process whose journal was
lost) and is cancelled or adopted as the strategy's config says.

After a reconnect of the private socket (`reconcile_open`): an order we believe open but the venue
no longer lists is looked up for its final state, since its executions may have been missed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from orchestrator.clock import Backoff
from orchestrator.errors import OrchestratorError, UnknownOrder
from orchestrator.exchange.instruments import Instruments
from orchestrator.exchange.protocol import OrderRef, OrderState
from orchestrator.logs import get_logger
from orchestrator.workers import order_states as st
from orchestrator.workers.journal import JournalEntry
from orchestrator.workers.order_states import TrackedOrder
from orchestrator.workers.orders import OrderManager

log = get_logger(__name__)

OrphanPolicy = Literal["cancel", "adopt"]
# How many settled journal entries are read to recognise our own open orders at start.
SETTLED_LOOKBACK: int = 10_000
ORPHAN_ATTEMPTS: int = 6  # 0.2 s doubling: about 12 s, then the dead man's switch
ORPHAN_RETRY_S: float = 0.2


@dataclass(slots=True)
class ReconcileReport:
    settled_placed: int = 0
    settled_not_placed: int = 0
    adopted: int = 0
    orphans_cancelled: int = 0
    orphans_adopted: int = 0
    refreshed: int = 0


async def reconcile_at_start(
    manager: OrderManager,
    instruments: Instruments,
    *,
    orphans: OrphanPolicy,
    place_final_after_s: float,
) -> ReconcileReport:
    report = ReconcileReport()
    venue, journal, clock = manager.venue, manager.journal, manager.clock
    pending = await journal.pending()
    # By cl_ord_id where the order has one, else by txid (placed by hand: never ours, since
    # every order we send carries a cl_ord_id), so no open order escapes the policy.
    open_now = {s.cl_ord_id or f"txid:{s.txid}": s for s in await venue.open_orders()}
    for entry in pending:
        state = open_now.pop(entry.cl_ord_id, None) or await venue.find_order(entry.cl_ord_id)
        wait_s = entry.created_s + place_final_after_s - clock.time()
        if state is None and wait_s > 0:  # it may still be queued: ask again past its deadline
            await clock.sleep(wait_s)
            state = await venue.find_order(entry.cl_ord_id)
        if state is None:
            await journal.settle(entry.cl_ord_id, "not_placed", reason="absent after its deadline")
            report.settled_not_placed += 1
            continue
        order = _from_entry(entry, instruments)
        st.on_reconciled(order, state)  # first: the txid is known when the order is indexed
        manager.track(order)
        await journal.settle(entry.cl_ord_id, "placed", txid=state.txid)
        report.settled_placed += 1
    settled = await journal.settled(SETTLED_LOOKBACK)
    ours = {s.entry.cl_ord_id for s in settled if s.outcome == "placed"}
    for cl_ord_id, state in open_now.items():
        if cl_ord_id in manager.orders or state.txid in manager.orders:
            continue
        if cl_ord_id in ours:
            _adopt(manager, state, instruments)
            report.adopted += 1
        elif orphans == "adopt":
            _adopt(manager, state, instruments)
            report.orphans_adopted += 1
        else:
            await _cancel_orphan(manager, state, instruments)
            report.orphans_cancelled += 1
    log.info("orders.reconciled", strategy=manager.strategy, account=manager.account,
             **{k: getattr(report, k) for k in report.__slots__})  # fmt: skip
    return report


async def reconcile_open(manager: OrderManager) -> int:
    """After a reconnect: bring every order we hold open up to the venue's state (executions
    sent while the socket was down are not sent again). What filled meanwhile is then told by
    the worker as one fill per order (`missed_fill`), so positions equal what the venue
    executed."""
    try:
        listed = {s.txid: s for s in await manager.venue.open_orders()}
    except OrchestratorError as exc:
        log.warning("orders.reconcile_failed", strategy=manager.strategy, error=str(exc))
        return 0
    refreshed = 0
    for order in manager.open_orders():
        if order.txid is None or order.cl_ord_id in manager.in_flight:
            continue
        state = listed.get(order.txid)
        if state is None:
            try:
                state = await manager.venue.find_order(order.cl_ord_id)
            except OrchestratorError as exc:
                log.warning("orders.refresh_failed", cl_ord_id=order.cl_ord_id, error=str(exc))
                continue
        if state is not None:
            manager.tell(order, st.on_reconciled(order, state))
            refreshed += 1
    return refreshed


def _from_entry(entry: JournalEntry, instruments: Instruments) -> TrackedOrder:
    return TrackedOrder(cl_ord_id=entry.cl_ord_id, instrument=instruments.get(entry.pair),
                        side=entry.side, order_type=entry.order_type,
                        time_in_force=entry.time_in_force, post_only=entry.post_only,
                        volume=entry.volume, price=entry.price)  # fmt: skip


def _adopt(manager: OrderManager, state: OrderState, instruments: Instruments) -> TrackedOrder:
    order_type: Literal["limit", "market"] = "market" if state.order_type == "market" else "limit"
    order = TrackedOrder(cl_ord_id=state.cl_ord_id or state.txid,
                         instrument=instruments.get(state.pair), side=state.side,
                         order_type=order_type, time_in_force="GTC", post_only=False,
                         volume=state.volume, price=state.price, txid=state.txid,
                         rested_s=state.opened_s)  # fmt: skip
    st.on_reconciled(order, state)
    manager.track(order)
    return order


async def _cancel_orphan(
    manager: OrderManager, state: OrderState, instruments: Instruments
) -> None:
    """Cancel an order nobody owns; retried while the venue cannot take it now (a cancel
    cannot do harm twice), and never fatal to the start: past the attempts it is logged and
    left to the dead man's switch."""
    instrument = instruments.get(state.pair)
    ref = OrderRef(txid=state.txid, cl_ord_id=state.cl_ord_id, instrument=instrument,
                   rested_s=state.opened_s)  # fmt: skip
    log.warning("orders.orphan_cancelled", strategy=manager.strategy, txid=state.txid,
                pair=state.pair, volume=str(state.volume - state.executed))  # fmt: skip
    backoff = Backoff(manager.clock, initial_s=ORPHAN_RETRY_S,
                      max_s=ORPHAN_RETRY_S * 2**ORPHAN_ATTEMPTS)  # fmt: skip
    for attempt in range(ORPHAN_ATTEMPTS):
        try:
            await manager.venue.cancel(ref)
        except UnknownOrder:
            return  # closed meanwhile
        except OrchestratorError as exc:
            log.warning("orders.orphan_cancel_retry", txid=state.txid, attempt=attempt,
                        error=str(exc))  # fmt: skip
            await backoff.wait()
        else:
            return
    log.error("orders.orphan_left_open", strategy=manager.strategy, txid=state.txid)

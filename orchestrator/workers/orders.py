"""The order manager of one strategy: intents in, orders at the venue, nothing lost or doubled.

    manager = OrderManager(strategy="mm", account="mm-xbt", venue=..., journal=..., clock=...,
                           listener=worker)
    manager.place(order)          # a TrackedOrder the worker built and risk-checked
    manager.amend(cl_ord_id, price=...); manager.cancel(cl_ord_id)
    await manager.run()           # executes the intents (owned by the worker's TaskGroup)

Every order has our `cl_ord_id`, written to the journal (Redis) *before* it is sent; the journal
entry is settled from the venue's answer (placed, rejected, not placed), and when the answer is
lost (`AmbiguousOutcome`) the order stays in flight, looked up by `cl_ord_id` until the venue
tells. Nothing is re-sent on a guess: a place is sent once; a lost cancel is simply sent again
(cancelling twice cannot do harm).

Requests of one order run in order (a cancel waits for its place), each order in its own task of
the manager's TaskGroup; the orders of a strategy run concurrently. Pending amends coalesce (only
the newest is sent); a cancel drops the amends queued before it. Order states come from the
private `executions` channel (`on_execution`) and from the replies (`order_states.py`).

Redis down: a place is refused (nothing is sent without its journal entry); cancels need no
journal and always go to the venue, retried until the venue answers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, Literal, Protocol

from orchestrator.clock import Clock
from orchestrator.errors import (
    AmbiguousOutcome,
    LimiterUnavailable,
    OrchestratorError,
    RateLimited,
    StoreError,
    UnknownOrder,
    VenueRateLimited,
    VenueRejected,
    VenueUnavailable,
)
from orchestrator.exchange.kraken.ws.schemas import Execution, execution_problem
from orchestrator.exchange.protocol import OrderRef, TradingVenue
from orchestrator.logs import get_logger
from orchestrator.metrics import Registry
from orchestrator.strategy import Fill, OrderUpdate
from orchestrator.workers import order_states as st
from orchestrator.workers.journal import OrderJournal, journal_entry
from orchestrator.workers.order_states import Applied, TrackedOrder
from orchestrator.workers.stopping import RETRY_INITIAL_S, RETRY_MAX_S, cancel_everything

log = get_logger(__name__)

# Retries of a request the venue could not take now (nothing executed): cancels retry until the
# venue answers; amends a few times (the strategy re-decides on a refusal anyway).
AMEND_ATTEMPTS: Final = 3
# How often an order whose place outcome is unknown is looked up again.
LOOKUP_EVERY_S: Final = 2.0
SETTLE_ATTEMPTS: Final = 8  # a settle Redis refused: tried again with backoff (about 2 min)
_NOT_SENT: Final = (VenueUnavailable, RateLimited, LimiterUnavailable)
# What a place can come back with besides its reference (anything else is a bug, raised).
PLACE_OUTCOMES: Final = (AmbiguousOutcome, *_NOT_SENT, VenueRateLimited, VenueRejected)


class OrderListener(Protocol):
    """Who hears what became of the orders (the worker): called synchronously, must be cheap."""

    def on_order_update(self, update: OrderUpdate) -> None: ...

    def on_order_fill(self, fill: Fill, order: TrackedOrder) -> None: ...


@dataclass(frozen=True, slots=True)
class _Amend:
    price: Decimal | None
    volume: Decimal | None


Op = Literal["place", "cancel"] | _Amend


@dataclass(slots=True)
class _Lane:
    """The queued requests of one order and whether a task is working through them."""

    ops: deque[Op] = field(default_factory=deque)
    busy: bool = False


class OrderManager:
    def __init__(
        self,
        *,
        strategy: str,
        account: str,
        venue: TradingVenue,
        journal: OrderJournal,
        clock: Clock,
        listener: OrderListener,
        registry: Registry,
        place_final_after_s: float,
    ) -> None:
        """`place_final_after_s`: after how long a place the venue does not show is final
        (its `deadline` plus clock slack: the engine can no longer execute it)."""
        self.strategy = strategy
        self.place_final_after_s = place_final_after_s
        self.account = account
        self.venue = venue
        self.journal = journal
        self.clock = clock
        self.listener = listener
        self.orders: dict[str, TrackedOrder] = {}
        self._by_txid: dict[str, str] = {}
        self._open: dict[str, TrackedOrder] = {}  # the orders of `orders` not final yet
        self._retries: set[asyncio.Task[None]] = set()  # journal settles tried again
        self._lanes: dict[str, _Lane] = {}
        self._tg: asyncio.TaskGroup | None = None
        self._started = asyncio.Event()
        self._stop = asyncio.Event()
        self._closing = False  # no new order is sent (the strategy stops, or the service does)
        self.in_flight: set[str] = set()  # places whose outcome is not known yet
        self._sent = registry.counter(
            "orch_order_requests_total", "Order requests sent, by kind and outcome",
            ("strategy", "kind", "outcome"),
        )  # fmt: skip
        self._malformed = registry.counter(
            "orch_executions_malformed_total", "Executions refused for unusable numbers",
            ("strategy",),
        )  # fmt: skip
        self._unmatched = registry.counter(
            "orch_executions_unmatched_total", "Executions for orders no one tracks", ("strategy",)
        )

    # --- the worker's side (synchronous) ------------------------------------------------------
    def close(self) -> None:
        """Send no new order from now on (queued places are refused; cancels still go)."""
        self._closing = True

    def is_closing(self) -> bool:
        return self._closing

    def open_orders(self) -> list[TrackedOrder]:
        """The orders not final yet, from an index kept on every change (`track`, `tell`):
        every intent reads it, so it must not cost a scan of the closed orders kept."""
        return list(self._open.values())

    def track(self, order: TrackedOrder) -> None:
        """Know an order without sending it (adopted at reconciliation)."""
        self.orders[order.cl_ord_id] = order
        self._index(order)

    def _index(self, order: TrackedOrder) -> None:
        if order.txid is not None:
            self._by_txid[order.txid] = order.cl_ord_id
        if order.is_open:
            self._open[order.cl_ord_id] = order
        else:
            self._open.pop(order.cl_ord_id, None)

    def place(self, order: TrackedOrder) -> None:
        """Send a new order (already risk-checked); its fate arrives through the listener."""
        if order.cl_ord_id in self.orders:
            raise ValueError(f"order {order.cl_ord_id} is already tracked")
        self.track(order)
        self._queue(order.cl_ord_id, "place")

    def amend(self, cl_ord_id: str, *, price: Decimal | None, volume: Decimal | None) -> None:
        self._queue(cl_ord_id, _Amend(price, volume))

    def pending_amend(self, cl_ord_id: str) -> tuple[Decimal | None, Decimal | None] | None:
        """(price, volume) of the amend queued and not sent yet, if any: a newer amend replaces
        it, so the worker folds it into the newer one (what it left None) before checking."""
        lane = self._lanes.get(cl_ord_id)
        queued = [op for op in lane.ops if isinstance(op, _Amend)] if lane is not None else []
        return (queued[-1].price, queued[-1].volume) if queued else None

    def cancel(self, cl_ord_id: str) -> None:
        order = self.orders.get(cl_ord_id)
        if order is None or order.is_terminal:
            return
        order.cancel_requested = True
        self._queue(cl_ord_id, "cancel")

    def _queue(self, cl_ord_id: str, op: Op) -> None:
        lane = self._lanes.setdefault(cl_ord_id, _Lane())
        if isinstance(op, _Amend):  # only the newest amend matters
            lane.ops = deque(o for o in lane.ops if not isinstance(o, _Amend))
        elif op == "cancel":  # nothing queued before a cancel is worth sending
            if "cancel" in lane.ops:
                return
            lane.ops = deque(o for o in lane.ops if o == "place")
        lane.ops.append(op)
        if not lane.busy and self._tg is not None:
            lane.busy = True
            self._tg.create_task(self._drive(cl_ord_id, lane), name=f"order-{cl_ord_id}")

    # --- executing -----------------------------------------------------------------------------
    async def run(self) -> None:
        """Work through the intents until `stop()`; the tasks of every order are owned here."""
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            for cl_ord_id, lane in self._lanes.items():  # intents made before run()
                if lane.ops and not lane.busy:
                    lane.busy = True
                    tg.create_task(self._drive(cl_ord_id, lane), name=f"order-{cl_ord_id}")
            self._started.set()
            await self._stop.wait()
        self._tg = None

    def stop(self) -> None:
        """End `run()` once the orders' tasks are done (the caller bounds the wait). Journal
        settles still being retried are dropped: the next start settles them from the venue."""
        self._stop.set()
        for task in self._retries:
            task.cancel()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` in the manager's TaskGroup (owned, never fire-and-forget); before `run()`
        it is dropped with a log line, since nothing could own it."""
        if self._tg is None:
            work.close()
            log.warning("order.spawn_dropped", strategy=self.strategy)
            return
        self._tg.create_task(work)

    def forget(self, cl_ord_ids: Iterable[str]) -> None:
        """Drop closed orders from memory (the venue and the journal keep their history)."""
        for cl_ord_id in cl_ord_ids:
            order = self.orders.get(cl_ord_id)
            if order is None or not order.is_terminal or self._lanes.get(cl_ord_id, _Lane()).busy:
                continue
            del self.orders[cl_ord_id]
            self._open.pop(cl_ord_id, None)
            self._lanes.pop(cl_ord_id, None)
            if order.txid is not None:
                self._by_txid.pop(order.txid, None)

    async def _drive(self, cl_ord_id: str, lane: _Lane) -> None:
        try:
            while lane.ops:
                op = lane.ops.popleft()
                order = self.orders[cl_ord_id]
                if op == "place":
                    await self._place(order)
                elif op == "cancel":
                    await self._cancel(order)
                else:
                    await self._amend(order, op)
        finally:
            lane.busy = False

    def tell(self, order: TrackedOrder, applied: Applied) -> None:
        """Index what changed, then tell the listener: fills first, then the new state."""
        self._index(order)
        for fill in applied.fills:
            self.listener.on_order_fill(fill, order)
        if applied.changed:
            self.listener.on_order_update(order.update())
            if order.is_open:
                order.reason = None  # an open order's reason (a refused amend) is told once

    async def _place(self, order: TrackedOrder) -> None:
        if not await self.ready_to_send(order):
            return
        try:
            ref = await self.venue.place(order.spec())
        except PLACE_OUTCOMES as exc:
            await self.placed(order, exc)
            return
        await self.placed(order, ref)

    async def ready_to_send(self, order: TrackedOrder) -> bool:
        """Whether `order` may go now: not cancelled before it was sent, the strategy not
        stopping, and its journal entry written (then it is in flight)."""
        if order.is_terminal:  # cancelled before it was sent: nothing to send
            return False
        if self.is_closing():
            self.tell(order, st.on_place_failed(order, "not sent: the strategy is stopping"))
            return False
        try:
            entry = journal_entry(order, strategy=self.strategy, account=self.account,
                                  created_s=self.clock.time())  # fmt: skip
            await self.journal.record(entry)
        except StoreError as exc:
            self._count("place", "no_journal")
            self.tell(order, st.on_place_failed(order, f"not sent: journal unavailable ({exc})"))
            return False
        self.in_flight.add(order.cl_ord_id)
        return True

    async def placed(self, order: TrackedOrder, outcome: OrderRef | OrchestratorError) -> None:
        """What the venue said of one place (alone or in a batch), journalled and told."""
        if isinstance(outcome, AmbiguousOutcome):
            self._count("place", "ambiguous")
            log.warning("order.place_ambiguous", strategy=self.strategy, cl_ord_id=order.cl_ord_id,
                        error=str(outcome))  # fmt: skip
            await self._settle_unknown(order)
            return
        if isinstance(outcome, OrchestratorError):
            self.in_flight.discard(order.cl_ord_id)
            refused = isinstance(outcome, VenueRejected)
            self._count("place", "rejected" if refused else "not_sent")
            self.tell(order, st.on_place_failed(order, str(outcome) if refused
                                                else f"not sent: {outcome}"))  # fmt: skip
            await self._settle(order, "rejected" if refused else "not_placed", reason=str(outcome))
            return
        self.in_flight.discard(order.cl_ord_id)
        self._count("place", "ok")
        self.tell(order, st.on_placed(order, outcome))
        await self._settle(order, "placed", txid=outcome.txid)
        if self.is_closing() and order.is_open:  # placed while the strategy was stopping
            order.cancel_requested = True
            await self._cancel(order)

    async def _settle_unknown(self, order: TrackedOrder) -> None:
        """The venue could not say whether the order exists: ask it by `cl_ord_id` until it
        can (the order stays in flight; executions may tell first)."""
        sent_s = self.clock.time()
        while order.cl_ord_id in self.in_flight:
            await self.clock.sleep(LOOKUP_EVERY_S)
            if order.txid is not None:  # an execution named it meanwhile
                break
            try:
                state = await self.venue.find_order(order.cl_ord_id)
            except OrchestratorError as exc:
                log.info("order.lookup_failed", cl_ord_id=order.cl_ord_id, error=str(exc))
                continue
            if state is None:
                if self.clock.time() - sent_s < self.place_final_after_s:
                    continue  # it may still be queued at the venue
                self.in_flight.discard(order.cl_ord_id)
                self.tell(order, st.on_place_failed(order, "not placed (reconciled)"))
                await self._settle(order, "not_placed", reason="absent after its deadline")
                return
            self.tell(order, st.on_reconciled(order, state))
            break
        self.in_flight.discard(order.cl_ord_id)
        await self._settle(order, "placed", txid=order.txid)

    async def _settle(
        self, order: TrackedOrder, outcome: Literal["placed", "not_placed", "rejected"],
        *, txid: str | None = None, reason: str | None = None,
    ) -> None:  # fmt: skip
        """Settle the journal entry. Redis down leaves it pending: the settle is tried again
        in the background a few times, and whatever is still pending at the next start is
        settled from the venue by reconciliation (the truth does not depend on this write)."""
        try:
            await self.journal.settle(order.cl_ord_id, outcome, txid=txid, reason=reason)
        except StoreError as exc:
            log.warning("order.settle_deferred", cl_ord_id=order.cl_ord_id, error=str(exc))
            if self._tg is not None:  # the order's own lane goes on meanwhile
                task = self._tg.create_task(self._settle_later(order.cl_ord_id, outcome, txid,
                                                               reason))  # fmt: skip
                self._retries.add(task)
                task.add_done_callback(self._retries.discard)

    async def _settle_later(
        self, cl_ord_id: str, outcome: Literal["placed", "not_placed", "rejected"],
        txid: str | None, reason: str | None,
    ) -> None:  # fmt: skip
        delay_s = RETRY_INITIAL_S
        for attempt in range(1, SETTLE_ATTEMPTS):
            await self.clock.sleep(delay_s)
            delay_s = min(RETRY_MAX_S * 6, delay_s * 2)
            try:
                await self.journal.settle(cl_ord_id, outcome, txid=txid, reason=reason)
            except StoreError as exc:
                log.warning("order.settle_deferred", cl_ord_id=cl_ord_id, attempt=attempt,
                            error=str(exc))  # fmt: skip
            else:
                return
        log.warning("order.settle_left_to_reconciliation", cl_ord_id=cl_ord_id)

    async def _cancel(self, order: TrackedOrder) -> None:
        """Until the venue answers: cancels always go through."""
        delay_s = RETRY_INITIAL_S
        while order.is_open:
            if order.txid is None:  # the place's outcome is unknown yet: wait for it
                await self.clock.sleep(delay_s)
                delay_s = min(RETRY_MAX_S, delay_s * 2)
                continue
            try:
                cancelled = await self.venue.cancel(order.ref())
            except UnknownOrder:
                cancelled = False
            except (*_NOT_SENT, VenueRateLimited, AmbiguousOutcome) as exc:
                self._count("cancel", "retry")
                log.warning("order.cancel_retry", cl_ord_id=order.cl_ord_id, error=str(exc))
                await self.clock.sleep(delay_s)
                delay_s = min(RETRY_MAX_S, delay_s * 2)
                continue
            except VenueRejected as exc:
                self._count("cancel", "refused")
                self.tell(order, st.on_cancel_refused(order, str(exc)))
                return
            self._count("cancel", "ok" if cancelled else "closed")
            if cancelled:
                self.tell(order, st.on_cancelled(order, "cancelled on request"))
            else:
                await self._refresh(order)
            return

    async def _amend(self, order: TrackedOrder, amend: _Amend) -> None:
        delay_s = RETRY_INITIAL_S
        for _ in range(AMEND_ATTEMPTS):
            if not order.is_open or order.cancel_requested:
                return
            if order.txid is None:
                await self.clock.sleep(delay_s)
                delay_s = min(RETRY_MAX_S, delay_s * 2)
                continue
            try:
                ref = await self.venue.amend(order.ref(), price=amend.price, volume=amend.volume)
            except UnknownOrder:  # closed meanwhile (filled, cancelled): learn how
                await self._refresh(order)
                return
            except (*_NOT_SENT, VenueRateLimited) as exc:
                self._count("amend", "retry")
                log.info("order.amend_retry", cl_ord_id=order.cl_ord_id, error=str(exc))
                await self.clock.sleep(delay_s)
                delay_s = min(RETRY_MAX_S, delay_s * 2)
                continue
            except AmbiguousOutcome as exc:
                self._count("amend", "ambiguous")
                self.tell(order, st.on_amend_refused(order, f"outcome unknown: {exc}"))
                await self._refresh(order)
                return
            except VenueRejected as exc:
                self._count("amend", "refused")
                self.tell(order, st.on_amend_refused(order, str(exc)))
                return
            self._count("amend", "ok")
            self.tell(
                order,
                st.on_amended(
                    order,
                    price=amend.price,
                    volume=amend.volume,
                    rested_s=ref.rested_s or self.clock.time(),
                ),
            )
            return
        self.tell(order, st.on_amend_refused(order, "not sent: the venue could not take it"))

    async def _refresh(self, order: TrackedOrder) -> None:
        """The order's state from the venue (after a cancel found it closed, ...)."""
        with contextlib.suppress(OrchestratorError):
            state = await self.venue.find_order(order.cl_ord_id)
            if state is not None:
                self.tell(order, st.on_reconciled(order, state))

    def _count(self, kind: str, outcome: str) -> None:
        self._sent.inc(self.strategy, kind, outcome)

    # --- the venue's side ----------------------------------------------------------------------
    def on_execution(self, execution: Execution) -> None:
        """One `executions` element of this account (from the private socket). One with
        unusable numbers is the venue's garbage: counted and logged, never applied."""
        problem = execution_problem(execution)
        if problem is not None:
            self._malformed.inc(self.strategy)
            log.warning("order.execution_refused", strategy=self.strategy,
                        order_id=execution.order_id, problem=problem)  # fmt: skip
            return
        cl_ord_id = execution.cl_ord_id or self._by_txid.get(execution.order_id)
        order = self.orders.get(cl_ord_id) if cl_ord_id is not None else None
        if order is None:
            self._unmatched.inc(self.strategy)
            return
        applied = st.apply_execution(order, execution, now_s=self.clock.time())
        if order.txid is not None and order.cl_ord_id in self.in_flight:
            self.in_flight.discard(order.cl_ord_id)  # the venue named it: it was placed
        self.tell(order, applied)

    # --- stopping ------------------------------------------------------------------------------
    def drop_unsent(self) -> None:
        """Stop sending new orders; intents not sent yet are refused (reported rejected), not
        left pending. Queued cancels stay: they still go."""
        self.close()
        for cl_ord_id, lane in self._lanes.items():
            order = self.orders.get(cl_ord_id)
            if order is not None and "place" in lane.ops:
                self.tell(order, st.on_place_failed(order, "not sent: the strategy is stopping"))
            lane.ops = deque(op for op in lane.ops if op == "cancel")

    async def cancel_everything(self, *, timeout_s: float) -> int:
        """Every order of the account cancelled (stopping.py); how many are left open."""
        return await cancel_everything(self, timeout_s=timeout_s)

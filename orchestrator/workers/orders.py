"""The order manager of one strategy: intents in, orders at the venue, nothing lost or doubled.

    manager = OrderManager(strategy="mm", account="mm-xbt", venue=..., journal=..., clock=...,
                           listener=worker, registry=..., place_final_after_s=10.0)
    manager.place(order)          # a TrackedOrder the worker built and risk-checked
    manager.amend(cl_ord_id, price=...); manager.cancel(cl_ord_id)
    await manager.run()           # executes the intents (owned by the worker's TaskGroup)

Every order has our `cl_ord_id`, written to the journal (Redis) *before* it is sent; the journal
entry is settled from the venue's answer (placed, rejected, not placed), and when the answer is
lost (`AmbiguousOutcome`) the order stays in flight, looked up by `cl_ord_id` until the venue
tells. Nothing is re-sent on a guess: a place is sent once; a lost cancel is simply sent again
(cancelling twice cannot do harm).

Requests of one order run in order (a cancel waits for its place), each order in its own task of
the manager's TaskGroup; the orders of a strategy run concurrently. Places of one pair asked for
in the same turn of the loop go as one batch (`batching.py`: Kraken prices n at n/2). Pending
amends coalesce (only the newest is sent); a cancel drops the amends queued before it. Order
states come from the private `executions` channel (`on_execution`) and from the replies
(`order_states.py`); what each answer means is `settling.py`, how cancels and amends are sent
`requests.py`, how a stop cancels everything `stopping.py`.

Redis down: a place is refused (nothing is sent without its journal entry); cancels need no
journal and always go to the venue, retried until the venue answers.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, Literal, Protocol

from orchestrator.clock import Clock
from orchestrator.errors import (
    AmbiguousOutcome,
    OrchestratorError,
    StoreError,
    VenueRateLimited,
    VenueRejected,
)
from orchestrator.exchange.kraken.ws.schemas import Execution, execution_problem
from orchestrator.exchange.protocol import OrderRef, TradingVenue
from orchestrator.logs import get_logger
from orchestrator.metrics import Registry
from orchestrator.strategy import Fill, OrderUpdate
from orchestrator.workers import order_states as st
from orchestrator.workers import requests, settling
from orchestrator.workers.batching import PlaceBatcher
from orchestrator.workers.journal import OrderJournal, journal_entry
from orchestrator.workers.order_states import Applied, TrackedOrder
from orchestrator.workers.stopping import cancel_everything

log = get_logger(__name__)

# What a place can come back with besides its reference (anything else is a bug, raised).
PLACE_OUTCOMES: Final = (AmbiguousOutcome, *requests.NOT_SENT, VenueRateLimited, VenueRejected)


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
        self._batcher = PlaceBatcher(self)
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

    def reopen(self) -> None:
        """Send new orders again (trading resumed after a halt closed the manager)."""
        self._closing = False

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
        if self._tg is None:  # before run(): run() starts its lane
            self._queue(order.cl_ord_id, "place")
            return
        lane = self._lanes.setdefault(order.cl_ord_id, _Lane())
        lane.ops.append("place")
        lane.busy = True  # driven by the batcher until its place is answered
        self._batcher.add(order)

    # --- the batcher's side (batching.py) -------------------------------------------------------
    place_outcomes = PLACE_OUTCOMES

    def spawn_lane_work(self, work: Coroutine[Any, Any, None]) -> None:
        assert self._tg is not None  # noqa: S101 - the batcher runs only while run() does
        self._tg.create_task(work)

    def take_place(self, cl_ord_id: str) -> bool:
        """The batcher takes the order's place op; False when it was dropped meanwhile."""
        lane = self._lanes[cl_ord_id]
        if lane.ops and lane.ops[0] == "place":
            lane.ops.popleft()
            return True
        return False

    async def send_place(self, order: TrackedOrder) -> None:
        """One order, ready (journalled): sent alone."""
        try:
            ref = await self.venue.place(order.spec())
        except PLACE_OUTCOMES as exc:
            await self.placed(order, exc)
            return
        await self.placed(order, ref)

    def continue_lane(self, cl_ord_id: str) -> None:
        """What was queued after the order's place runs now (its own task)."""
        lane = self._lanes[cl_ord_id]
        if lane.ops and self._tg is not None:
            self._tg.create_task(self._drive(cl_ord_id, lane), name=f"order-{cl_ord_id}")
        else:
            lane.busy = False

    def release_lane(self, cl_ord_id: str) -> None:
        self._lanes[cl_ord_id].busy = False

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
                    await requests.cancel(self, order)
                else:
                    await requests.amend(self, order, price=op.price, volume=op.volume)
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
        if await self.ready_to_send(order):
            await self.send_place(order)

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
            self.count("place", "no_journal")
            self.tell(order, st.on_place_failed(order, f"not sent: journal unavailable ({exc})"))
            return False
        self.in_flight.add(order.cl_ord_id)
        return True

    async def placed(self, order: TrackedOrder, outcome: OrderRef | OrchestratorError) -> None:
        """What the venue said of one place (alone or in a batch), journalled and told."""
        await settling.placed(self, order, outcome)
        if self.is_closing() and order.is_open and order.txid is not None:
            order.cancel_requested = True  # placed while the strategy was stopping
            await requests.cancel(self, order)

    def retry_settle_later(self, work: Coroutine[Any, Any, None]) -> None:
        """A journal settle Redis refused, tried again in the background (dropped at stop)."""
        if self._tg is None:
            work.close()
            return
        task = self._tg.create_task(work)
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)

    def count(self, kind: str, outcome: str) -> None:
        self._sent.inc(self.strategy, kind, outcome)

    def counted(self, kind: str, outcome: str) -> int:
        """How many requests of `kind` ended in `outcome` (status screen, summaries)."""
        return int(self._sent.get(self.strategy, kind, outcome))

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

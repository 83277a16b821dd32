"""A strategy's worker: runs its callbacks, checks and executes its intents, contains its failures.

One worker per strategy, bound to the strategy's sub-account. `run()` reconciles the account
(journal against venue), loads the balances, subscribes the market data, calls `on_start`, then
delivers what happened (own orders and fills first, then balances, the latest book of each
pair, tickers, trades, timers) until stopped. The worker is the strategy's whole world: the
venue client, the journal and the account reader are the worker's, never the strategy's.

A batch whose callbacks handed intents to the order manager is followed by one turn of the
loop before the worker re-arms its wait, so their requests start (permit, send) ahead of the
loop's own upkeep; it is taken only where the loop would have waited anyway (nothing new in
the inbox), so what is delivered, in which order, and which intents share a turn (one
`batch_add`, coalesced amends) are as without it.

Containment: a callback that raises, or that overruns its time budget `OVERRUNS_ALLOWED` times
within `OVERRUN_WINDOW_S`, stops this strategy alone: the failure is logged, counted and
published, and its orders are cancelled at once; the worker's `run()` returns normally, so the
other workers (and the supervisor) carry on.

Health (`health()`, read by the dead man's switch): the loop ticks at least every
`TICK_S`; a loop that has not ticked for `STALL_S`, a book not whole for `FEED_GAP_S`, or an
unhealthy dependency (Redis) stops the refreshes, and Kraken cancels the account's orders when
the countdown runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Coroutine, Mapping
from decimal import Decimal
from typing import Any, Final, Literal

from orchestrator.clock import Backoff
from orchestrator.config import StrategyConfig
from orchestrator.errors import (
    AmbiguousOutcome,
    LimiterUnavailable,
    OrchestratorError,
    RateLimited,
    StoreError,
    StrategyError,
    VenueRateLimited,
    VenueUnavailable,
)
from orchestrator.exchange.instruments import Instrument
from orchestrator.exchange.kraken.ws.schemas import BalanceSnapshot, Execution, LedgerUpdate
from orchestrator.logs import get_logger
from orchestrator.strategy import (
    BalanceUpdate,
    Fill,
    OrderUpdate,
    Strategy,
    StrategyParams,
    Ticker,
    Trade,
)
from orchestrator.workers import order_states as st
from orchestrator.workers import risk
from orchestrator.workers.balances import AccountBalances
from orchestrator.workers.containment import CallbackGuard
from orchestrator.workers.context import WorkerContext
from orchestrator.workers.deps import WorkerDeps
from orchestrator.workers.fills import FillTally
from orchestrator.workers.inbox import Batch, Inbox
from orchestrator.workers.intents import IntentChecker
from orchestrator.workers.order_states import TrackedOrder
from orchestrator.workers.orders import OrderManager
from orchestrator.workers.positions import PositionBook
from orchestrator.workers.reconcile import reconcile_at_start, reconcile_open
from orchestrator.workers.timers import Timers

log = get_logger(__name__)

WorkerState = Literal["starting", "running", "paused", "stopping", "stopped", "failed"]
TICK_S: Final = 1.0
STALL_S: Final = 5.0
FEED_GAP_S: Final = 30.0
KEEP_CLOSED_ORDERS: Final = 1_000
REBALANCE_EVERY_S: Final = 5.0  # a strategy's requests per asset, at most one per interval
START_RETRY_INITIAL_S: Final = 0.5
START_RETRY_MAX_S: Final = 15.0


class StrategyWorker:
    def __init__(
        self,
        config: StrategyConfig,
        strategy_cls: type[Strategy[Any]],
        params: StrategyParams,
        deps: WorkerDeps,
    ) -> None:
        self.config = config
        self.name = config.name
        self.account = config.account
        self.clock = deps.clock
        self.market = deps.market
        self.trading_state = deps.trading_state
        self._deps = deps
        self._instruments = {i.wsname: i for i in (deps.instruments.get(p) for p in config.pairs)}
        self.pairs: tuple[str, ...] = tuple(self._instruments)
        self.state: WorkerState = "starting"
        self.failure: str | None = None
        self.pause_reason = "daily loss limit"
        self.failed_s: float | None = None
        self.fill_count = 0
        self._tally = FillTally()  # what each order's fills told, to find what they did not
        self.inbox = Inbox()
        self.timers = Timers(self.clock.monotonic, on_change=self.inbox.poke)
        self.positions = PositionBook()
        self.balances = AccountBalances(self._instruments.values())
        self.manager = OrderManager(strategy=self.name, account=self.account, venue=deps.venue,
                                    journal=deps.journal, clock=self.clock, listener=self,
                                    registry=deps.registry,
                                    place_final_after_s=deps.place_final_after_s)  # fmt: skip
        self.checker = IntentChecker(self)
        self.context: WorkerContext[Any] = WorkerContext(self, params)
        try:
            self.strategy = strategy_cls(self.context)
        except BaseException as exc:
            raise StrategyError(self.name, f"__init__ raised {type(exc).__name__}: {exc}") from exc
        self.loop_tick_s = self.clock.monotonic()
        self._started = False
        self._rebalance_asked_s: dict[str, float] = {}
        self._stop = asyncio.Event()
        self._suspended = asyncio.Event()
        self._suspended.set()
        self._guard = CallbackGuard(self.name, config.callback_budget_ms / 1000, deps.registry,
                                    on_failure=self._fail)  # fmt: skip
        self._not_whole_since: dict[str, float] = {}
        self._reconcile_wanted = False
        self._handed_over = False  # an intent went to the manager since the loop last waited
        self._daily = risk.DailyLoss(config.risk.max_daily_loss)
        reg = deps.registry
        self._failures = reg.counter(
            "orch_strategy_failures_total", "Strategies stopped by a failure", ("strategy", "kind")
        )
        self._fills = reg.counter("orch_fills_total", "Fills by strategy", ("strategy",))
        self._refused = reg.counter(
            "orch_intents_refused_total", "Intents refused before sending", ("strategy", "check")
        )

    # --- running -------------------------------------------------------------------------------
    async def run(self) -> None:
        """Until `stop()` or a failure; then the strategy's orders are cancelled (failure, or
        `cancel_on_stop`) and the market unsubscribed. A failure of the strategy returns
        normally; only the worker's own bugs raise."""
        async with asyncio.TaskGroup() as tg:
            manager = tg.create_task(self.manager.run(), name=f"{self.name}-orders")
            try:
                await self._start()
                if self.state == "starting":
                    self.state = "running"
                    await self._loop()
            finally:
                await self._finish()
                self.manager.stop()
                await manager

    async def _start(self) -> None:
        """Reconcile, load balances, subscribe, then `on_start`. The venue's passing trouble
        (unavailable, rate limited, Redis down) is waited out with backoff, until `stop()`:
        every step may run again without harm."""
        deps = self._deps
        backoff = Backoff(self.clock, initial_s=START_RETRY_INITIAL_S, max_s=START_RETRY_MAX_S)
        while True:
            try:
                await reconcile_at_start(self.manager, deps.instruments,
                                         orphans=self.config.orphans,
                                         place_final_after_s=deps.place_final_after_s)  # fmt: skip
                self.balances.load(await deps.reader.balances())
                break
            except (VenueUnavailable, RateLimited, VenueRateLimited, LimiterUnavailable,
                    StoreError, AmbiguousOutcome) as exc:  # fmt: skip
                log.warning("strategy.start_retry", strategy=self.name, error=str(exc))
                with contextlib.suppress(TimeoutError):
                    async with self.clock.timeout(backoff.next_s()):  # or until stop()
                        await self._stop.wait()
                if self._stop.is_set():
                    return
        await self.market.subscribe(list(self._instruments.values()), self)
        self._started = True
        self._call("on_start", self.strategy.on_start)

    async def _loop(self) -> None:
        while not self._stop.is_set() and self.state in ("running", "paused"):
            await self._suspended.wait()
            if self._handed_over:
                self._handed_over = False
                if not self.inbox.has_news():
                    # The order tasks the last batch started take their first step (permit,
                    # send) before this loop's own upkeep: it was going to wait now anyway, so
                    # this turn is the wait's first; with news pending it does not wait, and
                    # neither does this (the next batch stays in the same turn, as before).
                    await asyncio.sleep(0)
            self.loop_tick_s = self.clock.monotonic()
            due_s = self.timers.next_due_s()
            wait_s = TICK_S if due_s is None else min(TICK_S, max(0.0, due_s - self.loop_tick_s))
            with contextlib.suppress(TimeoutError):
                async with self.clock.timeout(wait_s):
                    await self.inbox.wait()
            if self._reconcile_wanted:
                self._reconcile_wanted = False
                await reconcile_open(self.manager)
                self._tell_missed_fills()
            if self._deps.turns is not None and self.inbox.has_news():
                await self._deps.turns.take()  # a burst of workers is spread over turns
            self._deliver(self.inbox.take())
            for name in self.timers.pop_due():
                self._call("on_timer", self.strategy.on_timer, name)
            self._check_daily_loss()
            self._prune()

    def _deliver(self, batch: Batch) -> None:
        strategy = self.strategy
        for event in batch.orders:
            if isinstance(event, Fill):
                self._call("on_fill", strategy.on_fill, event)
            else:
                self._call("on_order", strategy.on_order, event)
        if batch.balance is not None:
            self._call("on_balance", strategy.on_balance, batch.balance)
        for pair in batch.books:
            book = self.market.book(pair)
            if book is not None:  # stale since it was marked: nothing to deliver
                self._call("on_book", strategy.on_book, book)
        for ticker in batch.tickers:
            self._call("on_ticker", strategy.on_ticker, ticker)
        for trade in batch.trades:
            self._call("on_trade", strategy.on_trade, trade)

    def _call(self, callback: str, fn: Callable[..., None], *args: Any) -> None:
        """One callback, contained (containment.py); nothing runs once the strategy ended."""
        if self.state not in ("failed", "stopped"):
            self._guard.call(callback, fn, *args)

    def _fail(self, kind: str, reason: str) -> None:
        self.state = "failed"
        self.failure = reason
        self.failed_s = self.clock.time()
        self._failures.inc(self.name, kind)
        self.manager.close()  # no further order is sent, from this instant
        log.error("strategy.failed", strategy=self.name, kind=kind, reason=reason)
        self.inbox.poke()

    def stop(self) -> None:
        """Ask `run()` to end (it cancels the orders if configured, then returns)."""
        self._stop.set()
        self._suspended.set()  # a suspended loop (a simulated hang) ends too
        self.inbox.poke()

    def resume_loop(self) -> None:
        """The loop takes events again (the end of a simulated hang)."""
        self._suspended.set()

    def suspend_loop(self) -> None:
        """The loop stops taking events, as a hung worker would (tests of the dead man's
        switch): `health()` then reports a stall."""
        self._suspended.clear()

    async def _finish(self) -> None:
        failed = self.state == "failed"
        if not failed:
            self.state = "stopping"
            if self._started:  # on_stop pairs with on_start
                self._call("on_stop", self.strategy.on_stop)
            failed = self.failure is not None
        if failed or self.config.cancel_on_stop:
            left = await self.manager.cancel_everything(timeout_s=self._deps.stop_cancel_timeout_s)
            if left:
                log.error("strategy.orders_left", strategy=self.name, open=left)
        with contextlib.suppress(OrchestratorError):
            await self.market.unsubscribe(list(self._instruments.values()), self)
        if failed:
            await self._publish("strategy_failed", reason=self.failure, failed_s=self.failed_s)
        self.state = "failed" if failed else "stopped"

    async def _publish(self, kind: str, **fields: str | int | float | None) -> None:
        try:
            await self._deps.events.publish(kind, strategy=self.name, account=self.account,
                                            **fields)  # fmt: skip
        except OrchestratorError as exc:
            log.warning("strategy.event_lost", strategy=self.name, kind=kind, error=str(exc))

    # --- health --------------------------------------------------------------------------------
    def health(self) -> str | None:
        """Why the worker is unhealthy (the dead man's switch stops refreshing), or None."""
        now_s = self.clock.monotonic()
        if self.state in ("stopped", "failed"):
            return f"strategy {self.state}"
        if now_s - self.loop_tick_s > STALL_S:
            return f"worker loop stalled for {now_s - self.loop_tick_s:.1f} s"
        for pair in self.pairs:
            if self.market.is_whole(pair):
                self._not_whole_since.pop(pair, None)
            elif now_s - self._not_whole_since.setdefault(pair, now_s) > FEED_GAP_S:
                return f"book {pair} not whole for more than {FEED_GAP_S:g} s"
        return self._deps.dependency_health()

    # --- listeners: market, orders, account (synchronous, cheap) --------------------------------
    def on_book_changed(self, pair: str) -> None:
        self.inbox.book(pair)

    def on_book_stale(self, pair: str, reason: str) -> None:
        self.inbox.forget_book(pair)

    def on_trade(self, trade: Trade) -> None:
        self.inbox.trade(trade)

    def on_ticker(self, ticker: Ticker) -> None:
        self.inbox.ticker(ticker)

    def on_order_update(self, update: OrderUpdate) -> None:
        self.inbox.order(update)

    def _tell_missed_fills(self) -> None:
        """Fills the venue made while the private socket was down (its reconnect snapshot or
        REST moved `filled` without a trade frame): told now, once, as one fill per order."""
        for order in list(self.manager.orders.values()):
            fill = self._tally.missed(order, now_s=self.clock.time())
            if fill is not None:
                self.on_order_fill(fill, order)

    def on_order_fill(self, fill: Fill, order: TrackedOrder) -> None:
        unseen = self._tally.unseen(fill, order)
        if unseen is None:
            return
        fill = unseen
        self._tally.record(fill, order.instrument)
        self.positions.on_fill(fill, order.instrument)
        self.fill_count += 1
        self._fills.inc(self.name)
        self.inbox.order(fill)

    def on_execution(self, execution: Execution) -> None:
        self.manager.on_execution(execution)

    def on_balance(self, event: BalanceSnapshot | LedgerUpdate) -> None:
        if self.balances.apply(event):
            self.inbox.balance(BalanceUpdate(totals=dict(self.balances.totals)))

    def on_private_reconnected(self) -> None:
        """The private socket came back: executions may have been missed meanwhile."""
        self._reconcile_wanted = True
        self.inbox.poke()

    # --- intents (from the Context) -------------------------------------------------------------
    def intend_place(self, pair: str, side: Any, volume: Any, price: Any, *, order_type: Any,
                     time_in_force: Any, post_only: Any) -> str:  # fmt: skip
        cl_ord_id = uuid.uuid4().hex  # Kraken takes a UUID's 32 hex digits as a cl_ord_id
        order, reason = self.checker.place(cl_ord_id, pair, side, volume, price,
                                           order_type=order_type, time_in_force=time_in_force,
                                           post_only=post_only)  # fmt: skip
        if order is None:  # not even an order of ours: an unknown pair
            self._refused.inc(self.name, "shape")
            self.inbox.order(OrderUpdate(cl_ord_id=cl_ord_id, pair=str(pair),
                                         side=side if side in ("buy", "sell") else "buy",
                                         order_type=order_type if order_type in ("limit", "market")
                                         else "limit", status="rejected", volume=Decimal(0),
                                         filled=Decimal(0), price=None, avg_price=None,
                                         reason=reason))  # fmt: skip
        elif reason is not None:
            self._refuse(order, reason)
        else:
            self.manager.place(order)
            self._handed_over = True
        return cl_ord_id

    def intend_amend(self, cl_ord_id: str, *, price: Any, volume: Any) -> None:
        order = self.manager.orders.get(cl_ord_id)
        if order is None or not order.is_open:
            return
        pending = self.manager.pending_amend(cl_ord_id)
        if pending is not None:  # it is replaced by this one: what this one leaves, it keeps
            price = pending[0] if price is None else price
            volume = pending[1] if volume is None else volume
        reason = self.checker.amend(order, price=price, volume=volume)
        if reason is not None:
            self._refused.inc(self.name, reason.partition(":")[0])
            self.manager.tell(order, st.on_amend_refused(order, reason))
            return
        self.manager.amend(cl_ord_id, price=price, volume=volume)
        self._handed_over = True

    def intend_cancel(self, cl_ord_id: str) -> None:
        self.manager.cancel(cl_ord_id)
        self._handed_over = True

    def _refuse(self, order: TrackedOrder, reason: str) -> None:
        self._refused.inc(self.name, reason.partition(":")[0])
        self.manager.track(order)
        self.manager.tell(order, st.on_place_failed(order, reason))

    def request_rebalance(self, asset: str, reason: str) -> None:
        if not isinstance(asset, str) or not isinstance(reason, str) or not asset:
            raise ValueError(f"request_rebalance takes an asset name and a reason as text, "
                             f"got {asset!r}, {reason!r}")  # fmt: skip
        now_s = self.clock.monotonic()
        if now_s - self._rebalance_asked_s.get(asset, -REBALANCE_EVERY_S) < REBALANCE_EVERY_S:
            return  # asked already: one request per asset per interval reaches the stream
        self._rebalance_asked_s[asset] = now_s
        log.info("strategy.rebalance_requested", strategy=self.name, asset=asset, reason=reason)
        self._spawn(self._publish("rebalance_requested", asset=asset, reason=reason[:200]))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Work the manager's TaskGroup owns (no fire-and-forget)."""
        self.manager.spawn(work)

    # --- state the context reads ---------------------------------------------------------------
    def mark(self, pair: str) -> Decimal | None:
        book = self.market.book(pair)
        return None if book is None else book.mid

    def pnl(self) -> Decimal:
        marks = {p: m for p in self.pairs if (m := self.mark(p)) is not None}
        return self.positions.pnl(marks)

    def market_instrument(self, pair: str) -> Instrument:
        return self._instruments[pair]

    def daily_pnl(self) -> Decimal:
        return self._daily.today_pnl(self.pnl(), self.clock.time())

    def holds_except(self, cl_ord_id: str | None) -> dict[str, Decimal]:
        """What the open and pending orders hold, per asset (`cl_ord_id`'s own excepted)."""
        held: dict[str, Decimal] = {}
        for order in self.manager.open_orders():
            if order.cl_ord_id == cl_ord_id:
                continue
            hold = self.checker.hold_of(order)
            if hold is not None:  # None: a market buy never priced, nothing to hold by
                asset, amount = hold
                held[asset] = held.get(asset, Decimal(0)) + amount
        return held

    def available(self) -> Mapping[str, Decimal]:
        return self.balances.available(self.holds_except(None))

    def _check_daily_loss(self) -> None:
        if self.state != "running" or self.config.risk.max_daily_loss is None:
            return
        if self._daily.breached(self.pnl(), self.clock.time()):
            self.pause("daily loss limit")

    def pause(self, reason: str) -> bool:
        """Place nothing new and cancel the open orders; the strategy's callbacks go on (it
        sees its orders close). False when it is not running."""
        if self.state != "running":
            return False
        self.state = "paused"
        self.pause_reason = reason
        log.warning("strategy.paused", strategy=self.name, reason=reason)
        for order in self.manager.open_orders():
            self.manager.cancel(order.cl_ord_id)
        self._spawn(self._publish("strategy_paused", reason=reason))
        return True

    def resume(self) -> bool:
        """Back to running from a pause; False when it was not paused. A daily loss limit
        still breached pauses it again at the next turn."""
        if self.state != "paused":
            return False
        self.state = "running"
        log.info("strategy.resumed", strategy=self.name)
        self.inbox.poke()
        return True

    async def cancel_all(self, *, timeout_s: float) -> int:
        """Every order of the strategy's account cancelled, queued places refused; how many
        are still open after `timeout_s`. The strategy goes on and may place again, unless the
        domain is HALTED (the kill switch): then its order manager stays closed."""
        left = await self.manager.cancel_everything(timeout_s=timeout_s)
        if self.trading_state.state != "HALTED":  # a halt keeps the manager closed
            self.resume_trading()
        return left

    def resume_trading(self) -> None:
        """Send orders again after a halt (not once the strategy failed or is stopping)."""
        if self.state in ("running", "paused", "starting"):
            self.manager.reopen()
            self.inbox.poke()

    def set_params(self, params: StrategyParams) -> None:
        """Replace the params whole (already validated against the strategy's Struct)."""
        if type(params) is not type(self.context.params):
            raise TypeError(f"{self.name}: params must be {type(self.context.params).__name__}")
        self.context.replace_params(params)

    def _prune(self) -> None:
        """Forget the oldest closed orders once there are twice as many as are kept (so the
        scan runs once per `KEEP_CLOSED_ORDERS` closed orders, not once per event)."""
        if len(self.manager.orders) <= 2 * KEEP_CLOSED_ORDERS:
            return
        closed = [o.cl_ord_id for o in self.manager.orders.values() if o.is_terminal]
        gone = closed[: len(closed) - KEEP_CLOSED_ORDERS]
        self.manager.forget(gone)
        for cl_ord_id in gone:
            self._tally.forget(cl_ord_id)
            self.checker.forget(cl_ord_id)

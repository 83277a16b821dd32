"""The live worker's behaviour through the replay harness: stale books, conflation, timers,
params, trading state, the daily loss pause, amends, cancels racing places, balances, events.

Each test drives a small strategy with the production worker, order manager and risk checks
against the simulator's engine in-process (manual clock, fakeredis journal). What the venue
holds is read from the engine itself (`replay.venue.engine`), never from the worker's view.
Strategies act from their own callbacks: the test queues actions (`Scripted.todo`) that the
strategy runs on its next `on_book`, as real strategy code would.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import pytest

from orchestrator.errors import ConfigError, VenueError
from orchestrator.exchange.protocol import OrderRef, OrderSpec, OrderState
from orchestrator.simulator.orders import Order as VenueOrder
from orchestrator.simulator.settings import SimSettings
from orchestrator.strategy import (
    TERMINAL_STATUSES,
    BalanceUpdate,
    BookView,
    Context,
    Fill,
    OrderUpdate,
    Strategy,
    StrategyParams,
)
from orchestrator.strategy_loader import parse_params
from orchestrator.testing.harness import ReplayHarness
from orchestrator.testing.venue import InProcessVenue
from orchestrator.workers.worker import StrategyWorker

XBT = "XBT/USD"
ETH = "ETH/USD"
ACCOUNT = "mm-xbt"  # the demo domain's sub-account: 10 000 USD, 0.5 XBT
SETTINGS = SimSettings()
SIZE = Decimal("0.01")


def config(name: str = "s", *, pairs: tuple[str, ...] = (XBT,), **extra: Any) -> dict[str, Any]:
    return {"name": name, "module": __name__, "account": ACCOUNT, "pairs": list(pairs)} | extra


Action = Callable[["Scripted"], Any]


class Scripted(Strategy[StrategyParams]):
    """Remembers what it heard; runs the actions the test queued on its next `on_book`."""

    def __init__(self, ctx: Context[StrategyParams]) -> None:
        super().__init__(ctx)
        self.books: list[tuple[str, Decimal | None, Decimal | None]] = []  # pair, bid, ask
        self.updates: list[OrderUpdate] = []
        self.fills: list[Fill] = []
        self.balance_updates: list[BalanceUpdate] = []
        self.timers: list[tuple[str, float]] = []
        self.todo: list[Action] = []
        self.results: list[Any] = []  # what the actions returned, in order
        self.mids: dict[str, Decimal] = {}

    def on_book(self, book: BookView) -> None:
        bid, ask = book.best_bid, book.best_ask
        self.books.append((book.pair, bid and bid[0], ask and ask[0]))
        if book.mid is not None:
            self.mids[book.pair] = book.mid
        todo, self.todo = self.todo, []
        for action in todo:
            self.results.append(action(self))

    def on_order(self, order: OrderUpdate) -> None:
        self.updates.append(order)

    def on_fill(self, fill: Fill) -> None:
        self.fills.append(fill)

    def on_balance(self, balance: BalanceUpdate) -> None:
        self.balance_updates.append(balance)

    def on_timer(self, name: str) -> None:
        self.timers.append((name, self.ctx.now_s()))

    # --- what the actions use ------------------------------------------------------------------
    def price(self, pair: str, factor: str) -> Decimal:
        return self.ctx.instrument(pair).round_price(self.mids[pair] * Decimal(factor))

    def bid(self, pair: str = XBT, factor: str = "0.99") -> str:
        """A resting bid `factor` of the mid."""
        return self.ctx.place(pair, "buy", SIZE, self.price(pair, factor))

    def take(self, side: str, pair: str = XBT) -> str:
        """An IOC that crosses at once: a buy at the ask, a sell at the bid."""
        book = self.ctx.book(pair)
        assert book is not None
        top = book.best_ask if side == "buy" else book.best_bid
        assert top is not None
        return self.ctx.place(pair, "buy" if side == "buy" else "sell", SIZE, top[0],
                              time_in_force="IOC")  # fmt: skip

    def statuses(self, cl_ord_id: str) -> list[str]:
        return [u.status for u in self.updates if u.cl_ord_id == cl_ord_id]

    def last(self, cl_ord_id: str) -> OrderUpdate:
        return [u for u in self.updates if u.cl_ord_id == cl_ord_id][-1]


def state_of(worker: StrategyWorker) -> str:
    """The worker's state now (a call: mypy must not narrow it across awaits)."""
    return worker.state


def strategy_of(worker: StrategyWorker) -> Scripted:
    strategy = worker.strategy
    assert isinstance(strategy, Scripted)
    return strategy


async def act(replay: ReplayHarness, strategy: Scripted, *actions: Action,
              seconds: float = 1.0) -> list[Any]:  # fmt: skip
    """Have the strategy run `actions` in its next `on_book`, then let `seconds` pass; returns
    what they returned."""
    done = len(strategy.results)
    strategy.todo.extend(actions)
    await replay.run_for(seconds)
    assert not strategy.todo, "the strategy heard no book"
    return strategy.results[done : done + len(actions)]


def venue_orders(replay: ReplayHarness) -> list[VenueOrder]:
    return [o for o in replay.venue.engine.orders.values() if o.account == ACCOUNT]


def venue_order(replay: ReplayHarness, cl_ord_id: str) -> VenueOrder:
    [order] = [o for o in venue_orders(replay) if o.cl_ord_id == cl_ord_id]
    return order


def venue_open(replay: ReplayHarness) -> list[str]:
    return [o.cl_ord_id or o.txid for o in replay.venue.engine.open_orders(ACCOUNT).values()]


def venue_price(order: VenueOrder) -> Decimal:
    assert order.price is not None
    return Decimal(order.price).scaleb(-order.pair.pair_decimals)


def venue_top(replay: ReplayHarness, pair: str) -> tuple[Decimal, Decimal]:
    """The best bid and ask of the venue's own book of `pair`."""
    spec = replay.venue.catalog.pair(pair)
    book = replay.venue.public_books[spec.key]
    [(bid, _)], [(ask, _)] = book.top("bid", 1), book.top("ask", 1)
    return Decimal(bid).scaleb(-spec.pair_decimals), Decimal(ask).scaleb(-spec.pair_decimals)


async def started(replay: ReplayHarness, cfg: dict[str, Any]) -> tuple[StrategyWorker, Scripted]:
    worker = replay.add(cfg, Scripted)
    await replay.start()
    await replay.run_for(0.5)  # reconciled, started, books heard
    assert worker.state == "running"
    return worker, strategy_of(worker)


# --- 1. stale books ---------------------------------------------------------------------------
async def test_a_stale_book_is_not_delivered_and_refuses_orders_until_resynced() -> None:
    async with ReplayHarness(SETTINGS) as replay:
        worker, strategy = await started(replay, config(pairs=(XBT, ETH)))
        [resting] = await act(replay, strategy, lambda s: s.bid())
        price = strategy.price(XBT, "0.99")

        replay.market.step(0.25)  # a change is marked for the worker ...
        replay.market.mark_stale(XBT)  # ... and the book goes stale before it runs
        heard = len(strategy.books)
        await replay.run_for(2.0)
        assert {pair for pair, _, _ in strategy.books[heard:]} == {ETH}  # the other one flows
        assert worker.context.book(XBT) is None

        [refused] = await act(replay, strategy, lambda s: s.ctx.place(XBT, "buy", SIZE, price),
                              seconds=0.5)  # fmt: skip
        update = strategy.last(refused)
        assert update.status == "rejected"
        assert update.reason is not None
        assert update.reason.startswith("book")
        assert [o.cl_ord_id for o in venue_orders(replay)] == [resting]  # nothing sent
        assert await worker.manager.journal.pending() == []
        assert [e.cl_ord_id for e in await worker.manager.journal.settled()] == [resting]
        await act(replay, strategy, lambda s: s.ctx.amend(resting, price=price - 1), seconds=0.5)
        assert (strategy.last(resting).reason or "").startswith("book")  # the amend refused
        assert [a.amend_type for a in venue_order(replay, resting).amends] == ["original"]
        await act(replay, strategy, lambda s: s.ctx.cancel(resting), seconds=0.5)
        assert venue_order(replay, resting).status == "canceled"  # a cancel always goes

        replay.market.resync(XBT)
        heard = len(strategy.books)
        await replay.run_for(1.0)
        xbt_books = [b for b in strategy.books[heard:] if b[0] == XBT]
        assert xbt_books
        assert xbt_books[-1][1:] == venue_top(replay, XBT)
        [placed] = await act(replay, strategy, lambda s: s.bid())
        assert venue_open(replay) == [placed]
        assert strategy.last(placed).status == "new"


# --- 2. conflation ----------------------------------------------------------------------------
async def test_a_late_strategy_hears_one_book_per_pair_and_the_latest() -> None:
    async with ReplayHarness(SETTINGS) as replay:
        worker, strategy = await started(replay, config(pairs=(XBT, ETH)))
        inbox = worker.inbox
        marks: list[list[str]] = []
        mark = inbox.book

        def spying(pair: str) -> None:
            mark(pair)
            marks.append(inbox.marked_books())

        inbox.book = spying  # type: ignore[method-assign]
        for _ in range(3):
            heard = len(strategy.books)
            for _ in range(6):  # the markets move six times while the worker cannot run
                replay.market.step(0.25)
            await replay.settle()
            delivered = strategy.books[heard:]
            assert sorted(pair for pair, _, _ in delivered) == [ETH, XBT]  # one book each
            for pair, bid, ask in delivered:
                assert (bid, ask) == venue_top(replay, pair)  # the latest, not a stale one
        assert len(marks) > 3 * 2 * 2  # the books did change between the deliveries
        assert all(len(pending) == len(set(pending)) <= 2 for pending in marks)


# --- 3. timers --------------------------------------------------------------------------------
async def test_timers_fire_on_venue_time_repeat_without_drift_replace_and_cancel() -> None:
    async with ReplayHarness(SETTINGS) as replay:
        worker, strategy = await started(replay, config())
        t0: list[float] = []

        def arm(s: Scripted) -> None:
            t0.append(s.ctx.now_s())
            s.ctx.set_timer("once", 0.6)
            s.ctx.set_timer("every", 0.3, repeat=True)
            s.ctx.set_timer("moved", 0.2)
            s.ctx.set_timer("moved", 1.1)  # the same name: replaces the first
            s.ctx.set_timer("dropped", 0.4)
            s.ctx.cancel_timer("dropped")
            s.ctx.cancel_timer("never set")  # harmless

        await act(replay, strategy, arm, seconds=0.25)
        start_s = t0[0]
        await replay.run_for(start_s + 3.1 - replay.clock.time())
        fired: dict[str, list[float]] = {}
        for name, at_s in strategy.timers:
            fired.setdefault(name, []).append(at_s - start_s)
        assert set(fired) == {"once", "every", "moved"}
        assert fired["once"] == pytest.approx([0.6], abs=1e-5)
        assert fired["moved"] == pytest.approx([1.1], abs=1e-5)
        # Every 0.3 s, on the dot, though the harness steps 0.25 s: no drift after ten.
        assert fired["every"] == pytest.approx([0.3 * k for k in range(1, 11)], abs=1e-5)

        strategy.todo.append(lambda s: s.ctx.cancel_timer("every"))
        await replay.run_for(0.25)
        count = len(strategy.timers)
        await replay.run_for(2.0)
        assert len(strategy.timers) == count  # cancelled: silent
        assert worker.state == "running"


@pytest.mark.parametrize("delay", [math.nan, math.inf, -1.0, "1", None, True, Decimal("1")])
async def test_a_bad_timer_delay_raises_value_error_into_the_callback(delay: Any) -> None:
    async with ReplayHarness(SETTINGS) as replay:
        worker, strategy = await started(replay, config())

        def careful(s: Scripted) -> str:
            try:
                s.ctx.set_timer("bad", delay)
            except ValueError as exc:
                return str(exc)
            return "accepted"

        [caught] = await act(replay, strategy, careful, seconds=2.0)
        assert caught.startswith("timer 'bad': delay_s must be")
        assert strategy.timers == []
        assert state_of(worker) == "running"  # it caught it: it runs on

        [placed] = await act(replay, strategy, lambda s: s.bid())
        assert venue_open(replay) == [placed]
        await act(replay, strategy, lambda s: s.ctx.set_timer("bad", delay))  # uncaught
        assert state_of(worker) == "failed"  # contained as any exception of a callback
        assert worker.failure is not None
        assert worker.failure.startswith("on_book raised ValueError: timer 'bad'")
        assert venue_open(replay) == []  # its orders cancelled
        events = await replay.events.recent(10)
        assert [e["kind"] for e in events if e.get("strategy") == "s"] == ["strategy_failed"]


async def test_a_repeating_timer_needs_a_positive_delay() -> None:
    async with ReplayHarness(SETTINGS) as replay:
        worker, strategy = await started(replay, config())

        def zero_repeat(s: Scripted) -> str:
            try:
                s.ctx.set_timer("spin", 0, repeat=True)
            except ValueError as exc:
                return str(exc)
            return "accepted"

        [caught] = await act(replay, strategy, zero_repeat)
        assert "repeating timer needs delay_s >= 0.001" in caught
        await act(replay, strategy, lambda s: s.ctx.set_timer("now", 0))  # one-shot 0: fine
        assert [name for name, _ in strategy.timers] == ["now"]
        assert worker.state == "running"


async def test_a_held_up_repeating_timer_fires_once_and_keeps_its_grid() -> None:
    async with ReplayHarness(SETTINGS) as replay:
        worker, strategy = await started(replay, config())
        t0: list[float] = []

        def arm(s: Scripted) -> None:
            t0.append(s.ctx.now_s())
            s.ctx.set_timer("every", 1.0, repeat=True)

        await act(replay, strategy, arm, seconds=0.25)
        start_s = t0[0]
        worker.suspend_loop()  # the loop is held up past three of its periods ...
        await replay.run_for(start_s + 3.6 - replay.clock.time())
        assert strategy.timers == []
        worker.resume_loop()  # ... and goes on
        await replay.settle()
        await replay.run_for(start_s + 5.5 - replay.clock.time())
        fired = [at_s - start_s for _, at_s in strategy.timers]
        # Once for the periods missed, then on its own grid again (5.0), not 1 s after the late
        # one: a held-up loop neither replays a backlog nor shifts the timer.
        assert fired == pytest.approx([3.6, 4.0, 5.0], abs=1e-5)


class TimerBoss(Scripted):
    """Its timer `first` cancels `second` and sets `third` anew."""

    def on_timer(self, name: str) -> None:
        super().on_timer(name)
        if name == "first":
            self.ctx.cancel_timer("second")
            self.ctx.set_timer("third", 1.0)


async def test_a_timer_cancelled_or_reset_by_one_due_with_it_does_not_fire() -> None:
    async with ReplayHarness(SETTINGS) as replay:
        worker = replay.add(config(), TimerBoss)
        await replay.start()
        await replay.run_for(0.5)
        strategy = strategy_of(worker)
        t0: list[float] = []

        def arm(s: Scripted) -> None:
            t0.append(s.ctx.now_s())
            for name in ("first", "second", "third"):  # all due at the same instant
                s.ctx.set_timer(name, 0.5)

        await act(replay, strategy, arm, seconds=0.25)
        await replay.run_for(t0[0] + 2.0 - replay.clock.time())
        fired = [(name, at_s - t0[0]) for name, at_s in strategy.timers]
        assert [name for name, _ in fired] == ["first", "third"]
        assert [at_s for _, at_s in fired] == pytest.approx([0.5, 1.5], abs=1e-5)


async def test_timers_due_together_fire_in_the_order_set_whatever_their_names() -> None:
    async with ReplayHarness(SETTINGS) as replay:
        worker, strategy = await started(replay, config())
        names: list[Any] = ["b", 7, ("a", 1), "a"]  # names need not even compare

        def arm(s: Scripted) -> None:
            for name in names:
                s.ctx.set_timer(name, 0.5)

        await act(replay, strategy, arm, seconds=1.0)
        assert [name for name, _ in strategy.timers] == names
        assert worker.state == "running"


# --- 4. set_params ----------------------------------------------------------------------------
class SizeParams(StrategyParams, frozen=True):
    size: Decimal
    label: str = "first"


class OtherParams(StrategyParams, frozen=True):
    size: Decimal


class Sized(Scripted):
    Params = SizeParams

    def on_book(self, book: BookView) -> None:
        self.results.append(self.ctx.params)
        super().on_book(book)


async def test_set_params_replaces_them_whole_between_callbacks() -> None:
    async with ReplayHarness(SETTINGS) as replay:
        worker = replay.add(config(params={"size": "0.01"}), Sized)
        await replay.start()
        await replay.run_for(0.5)
        strategy = strategy_of(worker)
        first = worker.context.params
        assert first == SizeParams(size=Decimal("0.01"))
        assert strategy.results
        assert all(p is first for p in strategy.results)

        second = parse_params(Sized, {"size": "0.02", "label": "second"}, where="strategies[0]")
        worker.set_params(second)
        seen = len(strategy.results)
        await replay.run_for(0.5)
        assert strategy.results[seen:]
        assert all(p is second for p in strategy.results[seen:])  # the new one, whole

        with pytest.raises(ConfigError, match=r"strategies\[0\]\.params") as refused:
            parse_params(Sized, {"size": "0.03", "sizes": "1"}, where="strategies[0]")
        assert "sizes" in str(refused.value)
        with pytest.raises(TypeError, match="SizeParams"):
            worker.set_params(OtherParams(size=Decimal("0.03")))
        with pytest.raises(TypeError):
            worker.set_params({"size": Decimal(1)})  # type: ignore[arg-type]
        seen = len(strategy.results)
        await replay.run_for(0.5)
        assert worker.context.params is second
        assert all(p is second for p in strategy.results[seen:])  # the old kept


# --- 5. trading state -------------------------------------------------------------------------
async def test_halted_refuses_places_and_amends_but_cancels_go_through() -> None:
    async with ReplayHarness(SETTINGS) as replay:
        worker, strategy = await started(replay, config())
        [resting] = await act(replay, strategy, lambda s: s.bid())
        txid = venue_order(replay, resting).txid
        price_before = venue_price(venue_order(replay, resting))
        replay.trading_state.state = "HALTED"

        [refused] = await act(replay, strategy, lambda s: s.bid(factor="0.98"))
        assert strategy.last(refused).status == "rejected"
        assert (strategy.last(refused).reason or "").startswith("trading_state")
        amended = strategy.price(XBT, "0.985")
        await act(replay, strategy, lambda s: s.ctx.amend(resting, price=amended))
        assert (strategy.last(resting).reason or "").startswith("trading_state")
        assert strategy.last(resting).status == "new"
        order = venue_order(replay, resting)
        assert venue_price(order) == price_before
        assert [a.amend_type for a in order.amends] == ["original"]  # no amend sent
        assert [o.cl_ord_id for o in venue_orders(replay)] == [resting]  # nor a new order

        await act(replay, strategy, lambda s: s.ctx.cancel(resting))
        assert replay.venue.engine.orders[txid].status == "canceled"
        assert strategy.last(resting).status == "canceled"
        assert worker.state == "running"


async def test_reducing_allows_only_an_order_that_shrinks_the_position() -> None:
    async with ReplayHarness(SETTINGS) as replay:
        worker, strategy = await started(replay, config())
        [bought] = await act(replay, strategy, lambda s: s.take("buy"))
        assert strategy.last(bought).status == "filled"
        assert worker.positions.position(XBT, None).qty == SIZE
        replay.trading_state.state = "REDUCING"

        more, flip, reduce, again = await act(
            replay,
            strategy,
            lambda s: s.bid(),  # grows the long
            lambda s: s.ctx.place(XBT, "sell", SIZE * 2, s.price(XBT, "1.01")),  # crosses zero
            lambda s: s.ctx.place(XBT, "sell", SIZE, s.price(XBT, "1.01")),  # back to flat
            lambda s: s.ctx.place(XBT, "sell", SIZE, s.price(XBT, "1.02")),  # with it: short
        )
        for cl_ord_id in (more, flip, again):
            assert strategy.last(cl_ord_id).status == "rejected"
            assert (strategy.last(cl_ord_id).reason or "").startswith("trading_state: REDUCING")
        assert strategy.last(reduce).status == "new"
        assert venue_open(replay) == [reduce]
        assert venue_order(replay, reduce).side == "sell"

        await act(replay, strategy, lambda s: s.ctx.amend(reduce, volume=SIZE * 2))  # too far
        assert (strategy.last(reduce).reason or "").startswith("trading_state: REDUCING")
        assert [a.amend_type for a in venue_order(replay, reduce).amends] == ["original"]
        lower = strategy.price(XBT, "1.005")
        await act(replay, strategy, lambda s: s.ctx.amend(reduce, price=lower))  # still reduces
        assert venue_price(venue_order(replay, reduce)) == lower


# --- 6. daily loss ----------------------------------------------------------------------------
class LosesMoney(Scripted):
    """Rests a bid far below, then buys at the ask and sells at the bid, again and again."""

    def on_book(self, book: BookView) -> None:
        super().on_book(book)
        if not self.results:
            self.results.append(self.bid(factor="0.97"))
            return
        if any(o.cl_ord_id != self.results[0] for o in self.ctx.open_orders()):
            return  # an IOC still open: wait for it
        long = self.ctx.position(XBT).qty > 0
        self.results.append(self.take("sell" if long else "buy"))


async def test_past_the_daily_loss_the_strategy_is_paused_and_its_orders_cancelled() -> None:
    async with ReplayHarness(SETTINGS) as replay:
        worker = replay.add(config(risk={"max_daily_loss": "4"}), LosesMoney)
        await replay.start()
        for _ in range(40):
            await replay.run_for(0.25)
            if worker.state != "running":
                break
        strategy = strategy_of(worker)
        assert worker.state == "paused"
        assert worker.pnl() < Decimal(-4)
        round_trips = [f for f in strategy.fills if f.side == "sell"]
        assert round_trips, "it lost on at least one round trip before the pause"
        resting = strategy.results[0]
        await replay.run_for(1.0)
        assert venue_open(replay) == []  # the resting bid cancelled at the venue
        assert venue_order(replay, resting).status == "canceled"
        assert strategy.last(resting).status == "canceled"
        events = await replay.events.recent(10)
        [paused] = [e for e in events if e["kind"] == "strategy_paused"]
        assert paused["strategy"] == "s"
        assert paused["reason"] == "daily loss limit"

        venue_count, heard = len(venue_orders(replay)), len(strategy.updates)
        await replay.run_for(1.0)
        refused = [u for u in strategy.updates[heard:] if u.status == "rejected"]
        assert refused, "it kept trying"
        assert all((u.reason or "").startswith("paused") for u in refused)
        assert len(venue_orders(replay)) == venue_count  # nothing sent
        assert worker.state == "paused"


# --- 7. amends --------------------------------------------------------------------------------
async def test_an_amend_keeps_the_txid_and_quick_amends_coalesce() -> None:
    async with ReplayHarness(SETTINGS) as replay:
        _, strategy = await started(replay, config())
        [cl_ord_id] = await act(replay, strategy, lambda s: s.bid())
        txid = venue_order(replay, cl_ord_id).txid

        price = strategy.price(XBT, "0.985")
        await act(replay, strategy, lambda s: s.ctx.amend(cl_ord_id, price=price))
        order = replay.venue.engine.orders[txid]
        assert order.cl_ord_id == cl_ord_id
        assert venue_price(order) == price
        assert [a.amend_type for a in order.amends] == ["original", "user"]
        assert strategy.last(cl_ord_id).price == price

        prices = [strategy.price(XBT, f) for f in ("0.98", "0.981", "0.982")]

        def three(s: Scripted) -> None:
            for p in prices:
                s.ctx.amend(cl_ord_id, price=p)

        await act(replay, strategy, three)
        order = replay.venue.engine.orders[txid]
        assert [a.amend_type for a in order.amends] == ["original", "user", "user"]  # one sent
        assert venue_price(order) == prices[-1]
        assert strategy.last(cl_ord_id).price == prices[-1]
        assert [o.txid for o in venue_orders(replay)] == [txid]


async def test_quick_amends_of_price_then_volume_coalesce_into_both() -> None:
    async with ReplayHarness(SETTINGS) as replay:
        worker = replay.add(config(risk={"max_order_notional": "1500"}), Scripted)
        await replay.start()
        await replay.run_for(0.5)
        strategy = strategy_of(worker)
        [cl_ord_id] = await act(replay, strategy, lambda s: s.bid())
        price = strategy.price(XBT, "0.985")

        def price_then_volume(s: Scripted) -> None:
            s.ctx.amend(cl_ord_id, price=price)
            s.ctx.amend(cl_ord_id, volume=SIZE * 2)

        await act(replay, strategy, price_then_volume)
        order = venue_order(replay, cl_ord_id)
        assert [a.amend_type for a in order.amends] == ["original", "user"]  # one sent ...
        assert venue_price(order) == price  # ... with both changes
        assert Decimal(order.volume).scaleb(-order.pair.lot_decimals) == SIZE * 2
        assert (strategy.last(cl_ord_id).price, strategy.last(cl_ord_id).volume) == (
            price,
            SIZE * 2,
        )

        # Each amend passes the notional limit alone; both together would not: the second is
        # checked with the first still pending, and refused.
        high = strategy.price(XBT, "1.03")

        def volume_then_price(s: Scripted) -> None:
            s.ctx.amend(cl_ord_id, volume=Decimal("0.025"))  # x 0.985 mid = 1477: < 1500
            s.ctx.amend(cl_ord_id, price=high)  # 0.02 x 1.03 mid: < 1500; 0.025 x: 1545

        await act(replay, strategy, volume_then_price)
        order = venue_order(replay, cl_ord_id)
        assert any((u.reason or "").startswith("max_order_notional") for u in strategy.updates)
        assert venue_price(order) == price
        assert Decimal(order.volume).scaleb(-order.pair.lot_decimals) == Decimal("0.025")


async def test_an_amend_of_a_closed_order_sends_nothing() -> None:
    async with ReplayHarness(SETTINGS) as replay:
        worker, strategy = await started(replay, config())
        [resting, taken] = await act(replay, strategy, lambda s: s.bid(), lambda s: s.take("buy"))
        await act(replay, strategy, lambda s: s.ctx.cancel(resting))
        assert strategy.last(resting).status == "canceled"
        assert strategy.last(taken).status == "filled"
        heard = len(strategy.updates)
        price = strategy.price(XBT, "0.98")
        await act(
            replay,
            strategy,
            lambda s: s.ctx.amend(resting, price=price),
            lambda s: s.ctx.amend(taken, price=price),
            lambda s: s.ctx.amend("no such order", price=price),
        )
        for cl_ord_id in (resting, taken):
            assert [a.amend_type for a in venue_order(replay, cl_ord_id).amends] == ["original"]
        assert strategy.updates[heard:] == []  # no news of a closed order
        assert worker.state == "running"


async def test_an_amend_queued_with_a_cancel_is_dropped() -> None:
    async with ReplayHarness(SETTINGS) as replay:
        worker, strategy = await started(replay, config())
        [resting] = await act(replay, strategy, lambda s: s.bid())
        price = strategy.price(XBT, "0.98")

        def cancel_then_amend(s: Scripted) -> None:
            s.ctx.amend(resting, price=price)
            s.ctx.cancel(resting)
            s.ctx.amend(resting, price=price)

        await act(replay, strategy, cancel_then_amend)
        order = venue_order(replay, resting)
        assert order.status == "canceled"
        assert [a.amend_type for a in order.amends] == ["original"]
        assert strategy.last(resting).status == "canceled"
        assert worker.state == "running"


class ClosedUnderAmend:
    """The account's `TradingVenue`, where the venue closes every order of the account (as
    its dead man's switch or an operator would) just before each amend reaches it."""

    def __init__(self, inner: InProcessVenue) -> None:
        self._inner = inner

    async def place(self, spec: OrderSpec) -> OrderRef:
        return await self._inner.place(spec)

    async def place_batch(self, specs: Sequence[OrderSpec]) -> list[OrderRef | VenueError]:
        return await self._inner.place_batch(specs)

    async def amend(
        self, ref: OrderRef, *, volume: Decimal | None = None, price: Decimal | None = None
    ) -> OrderRef:
        await self._inner.cancel_all([])
        return await self._inner.amend(ref, volume=volume, price=price)

    async def cancel(self, ref: OrderRef) -> bool:
        return await self._inner.cancel(ref)

    async def cancel_all(self, resting: Sequence[OrderRef]) -> int:
        return await self._inner.cancel_all(resting)

    async def dead_man_switch(self, timeout_s: int) -> str:
        return await self._inner.dead_man_switch(timeout_s)

    async def open_orders(self) -> list[OrderState]:
        return await self._inner.open_orders()

    async def find_order(self, cl_ord_id: str) -> OrderState | None:
        return await self._inner.find_order(cl_ord_id)


async def test_an_amend_racing_the_orders_close_at_the_venue_learns_how_it_closed() -> None:
    async with ReplayHarness(SETTINGS) as replay:
        worker = replay.add(config(), Scripted, wrap_venue=ClosedUnderAmend)
        await replay.start()
        await replay.run_for(0.5)
        strategy = strategy_of(worker)
        [resting] = await act(replay, strategy, lambda s: s.bid())
        price = strategy.price(XBT, "0.98")
        await act(replay, strategy, lambda s: s.ctx.amend(resting, price=price))
        order = venue_order(replay, resting)
        assert order.status == "canceled"
        assert [a.amend_type for a in order.amends] == ["original"]
        assert strategy.last(resting).status == "canceled"  # heard from the venue, not guessed
        assert [o.cl_ord_id for o in venue_orders(replay)] == [resting]  # nothing replaced it
        assert worker.manager.open_orders() == []
        assert worker.state == "running"


# --- 8. a cancel racing its place ---------------------------------------------------------------
@pytest.mark.parametrize("fault", [None, "lost", "unavailable"])
async def test_a_cancel_right_after_its_place_ends_the_order_once(fault: Any) -> None:
    async with ReplayHarness(SETTINGS) as replay:
        worker, strategy = await started(replay, config())
        if fault is not None:
            replay.venues["s"].fail_next("add_order", fault)

        def place_and_cancel(s: Scripted) -> str:
            cl_ord_id = s.bid()
            s.ctx.cancel(cl_ord_id)
            return cl_ord_id

        [cl_ord_id] = await act(replay, strategy, place_and_cancel, seconds=4.0)
        at_venue = [o for o in venue_orders(replay) if o.cl_ord_id == cl_ord_id]
        final = strategy.last(cl_ord_id)
        assert final.status in TERMINAL_STATUSES
        assert [s for s in strategy.statuses(cl_ord_id) if s in TERMINAL_STATUSES] == [final.status]
        if fault == "unavailable":  # never sent
            assert at_venue == []
            assert final.status == "rejected"
        else:
            assert [o.status for o in at_venue] == ["canceled"]
            assert final.status == "canceled"
        assert venue_open(replay) == []
        assert worker.manager.open_orders() == []
        assert await worker.manager.journal.pending() == []  # resolved either way


# --- 9. cancel_all(pair) ----------------------------------------------------------------------
async def test_cancel_all_of_a_pair_leaves_the_other_pairs_orders() -> None:
    async with ReplayHarness(SETTINGS) as replay:
        worker, strategy = await started(replay, config(pairs=(XBT, ETH)))
        xbt, eth, xbt2 = await act(replay, strategy, lambda s: s.bid(XBT), lambda s: s.bid(ETH),
                                   lambda s: s.bid(XBT, "0.98"))  # fmt: skip
        assert sorted(venue_open(replay)) == sorted([xbt, eth, xbt2])
        await act(replay, strategy, lambda s: s.ctx.cancel_all(XBT))
        assert venue_open(replay) == [eth]
        assert venue_order(replay, xbt).status == venue_order(replay, xbt2).status == "canceled"
        assert [o.cl_ord_id for o in worker.context.open_orders()] == [eth]
        assert worker.context.open_orders(XBT) == []


# --- 10. balances -------------------------------------------------------------------------------
async def test_balances_are_the_venue_totals_less_the_holds_of_open_and_pending_orders() -> None:
    async with ReplayHarness(SETTINGS) as replay:
        account = replay.venue.domain.accounts[ACCOUNT]
        worker, strategy = await started(replay, config())
        assert dict(worker.context.balances()) == {
            a: v for a, v in account.balances.items() if a in worker.context.balances()
        }
        assert worker.context.balances()["ZUSD"] == account.balances["ZUSD"]

        def bid_and_look(s: Scripted) -> tuple[str, dict[str, Decimal]]:
            cl_ord_id = s.bid()
            return cl_ord_id, dict(s.ctx.balances())  # pending: not even sent yet

        [(resting, pending)] = await act(replay, strategy, bid_and_look)
        order = strategy.last(resting)
        assert order.price is not None
        hold = SIZE * order.price
        assert pending["ZUSD"] == account.balances["ZUSD"] - hold
        assert pending["XXBT"] == account.balances["XXBT"]
        assert worker.context.balances()["ZUSD"] == account.balances["ZUSD"] - hold  # open

        usd_before = account.balances["ZUSD"]
        [taken] = await act(replay, strategy, lambda s: s.take("buy"))
        assert strategy.last(taken).status == "filled"
        assert account.balances["ZUSD"] < usd_before  # the venue's totals moved ...
        totals = strategy.balance_updates[-1].totals
        assert totals["ZUSD"] == account.balances["ZUSD"]  # ... and the strategy heard them
        assert totals["XXBT"] == account.balances["XXBT"]
        available = worker.context.balances()
        assert available["ZUSD"] == account.balances["ZUSD"] - hold  # the bid still holds
        assert available["XXBT"] == account.balances["XXBT"]


# --- 11. rebalance ----------------------------------------------------------------------------
class AsksForDollars(Scripted):
    def on_start(self) -> None:
        self.ctx.request_rebalance("ZUSD", "starting short of dollars")


async def test_request_rebalance_publishes_an_event() -> None:
    async with ReplayHarness(SETTINGS) as replay:
        worker = replay.add(config(), AsksForDollars)
        await replay.start()
        await replay.run_for(0.5)
        strategy = strategy_of(worker)
        await act(replay, strategy, lambda s: s.ctx.request_rebalance("XXBT", "too much bitcoin"))
        events = [e for e in await replay.events.recent(10) if e["kind"] == "rebalance_requested"]
        assert [(e["strategy"], e["account"], e["asset"], e["reason"]) for e in events] == [
            ("s", ACCOUNT, "ZUSD", "starting short of dollars"),
            ("s", ACCOUNT, "XXBT", "too much bitcoin"),
        ]
        assert worker.state == "running"

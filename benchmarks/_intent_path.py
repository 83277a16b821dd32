"""The intent path in-process: what the worker's checks cost per intent, no socket, no venue.

    python -m benchmarks._intent_path                # 5 repeats x 2000 intents per case
    python -m benchmarks._intent_path --quick        # 3 x 500
    python -m benchmarks._intent_path --json         # one JSON object, for scripts

A `ReplayHarness` worker (the production worker, order manager and risk checks against the
simulator's engine, on a manual clock) runs a strategy that rests orders on XBT/USD; once they
rest, the real `IntentChecker` is timed directly: `amend` of the first order to the price it
has and one tick under it, alternately (what the tick-to-order strategy asks for every tick),
and `place` of a new post-only bid (checked, not sent). Nothing is sent while timing: an
intent's check is synchronous, and the harness's loop is not run meanwhile.

Two cases: `tick`, the tick-to-order benchmark's config (default limits, one resting order);
`loaded`, a strategy with every limit set (`max_daily_loss`, `max_position`,
`max_order_notional`) and ten orders resting (five bids, five asks), so the daily-loss and
open-order work is in the path too. Each figure is the median over repeats of the mean per
intent, in microseconds. `intent_path_us()` is what a test or another benchmark calls.

Comparing two versions of the code: run this module from each tree (`PYTHONPATH=<tree>`, in
alternation); the module reads nothing the worker did not already have before the change.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final

import msgspec

from benchmarks._common import percentile
from orchestrator.clock import RealClock
from orchestrator.config import StrategyConfig
from orchestrator.exchange.instruments import Instrument
from orchestrator.exchange.protocol import OrderRef
from orchestrator.simulator.settings import SimSettings
from orchestrator.strategy import BookView, Strategy, StrategyParams, Ticker, Trade
from orchestrator.strategy_loader import parse_params
from orchestrator.testing.harness import ReplayHarness
from orchestrator.testing.venue import InProcessVenue
from orchestrator.workers.deps import WorkerDeps
from orchestrator.workers.journal import OrderJournal
from orchestrator.workers.order_states import TrackedOrder
from orchestrator.workers.worker import StrategyWorker

PAIR: Final = "XBT/USD"
ACCOUNT: Final = "mm-xbt"  # a demo sub-account: 10,000 USD, 0.5 XBT
SIZE: Final = Decimal("0.01")
CASES: Final = ("tick", "loaded")
_WARMUP: Final = 200
_TICK_STEP_S: Final = 0.25  # one move of the simulated market per tick
# Venue time per tick: the simulated counters decay meanwhile, so no amend is rate limited
# (the limit would be measured, not the path) and no order is young enough to cost more.
_TICK_VENUE_S: Final = 5.0
_TICK_WAIT_S: Final = 5.0  # a tick that causes no amend in this long is a benchmark bug
_SETTLE_TURNS: Final = 50  # turns of the loop between ticks: the venue answers, books settle


class Params(StrategyParams, frozen=True):
    bids: int = 1
    asks: int = 0


class RestsOrders(Strategy[Params]):
    """Rests `bids` bids and `asks` asks, 1% and more off the mid, on the first whole book."""

    def on_start(self) -> None:
        self.placed: list[str] = []

    def on_book(self, book: BookView) -> None:
        mid = book.mid
        if self.placed or mid is None:
            return
        instrument = self.ctx.instrument(book.pair)
        for i in range(self.ctx.params.bids):
            price = instrument.round_price(mid * (Decimal("0.99") - Decimal("0.001") * i))
            self.placed.append(self.ctx.place(book.pair, "buy", SIZE, price, post_only=True))
        for i in range(self.ctx.params.asks):
            price = instrument.round_price(mid * (Decimal("1.01") + Decimal("0.001") * i))
            self.placed.append(self.ctx.place(book.pair, "sell", SIZE, price, post_only=True))


def _config(case: str) -> dict[str, Any]:
    config: dict[str, Any] = {"name": f"intents-{case}", "module": __name__,
                              "account": ACCOUNT, "pairs": [PAIR]}  # fmt: skip
    if case == "loaded":
        config["params"] = {"bids": 5, "asks": 5}
        config["risk"] = {"max_daily_loss": "500", "max_position": {PAIR: "1"},
                          "max_order_notional": "5000"}  # fmt: skip
    return config


def _time_amends(worker: StrategyWorker, order: TrackedOrder, n: int) -> float:
    """Mean us per `checker.amend`, alternating the order's price and one tick under it."""
    assert order.price is not None
    prices = (order.price, order.price - order.instrument.tick_size)
    amend = worker.checker.amend
    for i in range(_WARMUP):
        amend(order, price=prices[i & 1], volume=None)
    start_ns = time.perf_counter_ns()
    for i in range(n):
        reason = amend(order, price=prices[i & 1], volume=None)
    elapsed_ns = time.perf_counter_ns() - start_ns
    if reason is not None:
        raise RuntimeError(f"the benchmark's amend was refused: {reason}")
    return elapsed_ns / n / 1_000


def _time_places(worker: StrategyWorker, order: TrackedOrder, n: int) -> float:
    """Mean us per `checker.place` of a post-only bid one tick under `order` (not sent)."""
    assert order.price is not None
    price = order.price - order.instrument.tick_size
    place = worker.checker.place
    for _ in range(_WARMUP):
        place("0" * 32, PAIR, "buy", SIZE, price, order_type="limit", time_in_force="GTC",
              post_only=True)  # fmt: skip
    start_ns = time.perf_counter_ns()
    for _ in range(n):
        _, reason = place("0" * 32, PAIR, "buy", SIZE, price, order_type="limit",
                          time_in_force="GTC", post_only=True)  # fmt: skip
    elapsed_ns = time.perf_counter_ns() - start_ns
    if reason is not None:
        raise RuntimeError(f"the benchmark's place was refused: {reason}")
    return elapsed_ns / n / 1_000


async def _case(case: str, n: int, repeats: int) -> dict[str, float]:
    async with ReplayHarness(SimSettings()) as replay:
        worker = replay.add(_config(case), RestsOrders)
        await replay.start()
        await replay.run_for(2.0)
        strategy = worker.strategy
        assert isinstance(strategy, RestsOrders)
        orders = [worker.manager.orders[cl_ord_id] for cl_ord_id in strategy.placed]
        if not orders or not all(o.status == "new" for o in orders):
            raise RuntimeError(f"{case}: the orders did not rest: {[o.status for o in orders]}")
        amend_us = statistics.median(_time_amends(worker, orders[0], n) for _ in range(repeats))
        place_us = statistics.median(_time_places(worker, orders[0], n) for _ in range(repeats))
        return {"amend_us": amend_us, "place_us": place_us, "open_orders": len(orders)}


class FollowsTheBid(Strategy[StrategyParams]):
    """One bid 1% under the mid; each book whose best bid moved amends it, to its first price
    or one tick under, in turn (as the tick-to-order strategy amends once per tick). Tells
    `decided(False)` when a book causes no amend (set by the driver)."""

    decided: Callable[[bool], None] = staticmethod(lambda amended: None)

    def on_start(self) -> None:
        self.order_id: str | None = None
        self.best: Decimal | None = None
        self.prices: tuple[Decimal, Decimal] = (Decimal(0), Decimal(0))

    def on_book(self, book: BookView) -> None:
        best = book.best_bid
        if best is None:
            return
        if self.order_id is None:
            instrument = self.ctx.instrument(book.pair)
            mid = book.mid
            assert mid is not None
            price = instrument.round_price(mid * Decimal("0.99"))
            self.prices = (price, price - instrument.tick_size)
            self.order_id = self.ctx.place(book.pair, "buy", SIZE, price, post_only=True)
            self.best = best[0]
            return
        order = self.ctx.order(self.order_id)
        if best[0] == self.best or order is None or not order.is_open:
            self.decided(False)
            return
        self.best = best[0]
        price = self.prices[1] if order.price == self.prices[0] else self.prices[0]
        self.ctx.amend(self.order_id, price=price)


class _Stamps:
    """A tick's two instants: the book's change heard (the first listener of the pair, as
    the hub tells them) and the amend reaching the venue (`venue.amend` called)."""

    def __init__(self) -> None:
        self.armed = False
        self.changed_ns = 0
        self.sent_ns = 0
        self.done = asyncio.Event()

    # --- a MarketListener subscribed before the worker ---
    def on_book_changed(self, pair: str) -> None:
        if self.armed:
            self.armed = False
            self.changed_ns = time.perf_counter_ns()

    def on_book_stale(self, pair: str, reason: str) -> None:
        pass

    def on_trade(self, trade: Trade) -> None:
        pass

    def on_ticker(self, ticker: Ticker) -> None:
        pass

    def decided(self, amended: bool) -> None:
        if not amended and self.changed_ns and not self.sent_ns:
            self.done.set()


class _StampedVenue:
    """The worker's venue: the in-process one, with `amend` stamped as it is called."""

    def __init__(self, venue: InProcessVenue, stamps: _Stamps) -> None:
        self._venue = venue
        self._stamps = stamps

    async def amend(self, ref: OrderRef, *, price: Decimal | None = None,
                    volume: Decimal | None = None) -> OrderRef:  # fmt: skip
        stamps = self._stamps
        if stamps.changed_ns and not stamps.sent_ns:
            stamps.sent_ns = time.perf_counter_ns()
            stamps.done.set()
        return await self._venue.amend(ref, price=price, volume=volume)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._venue, name)


async def _tick_run(ticks: int) -> list[float]:
    """us from a book's change heard to its amend at the venue, per tick that amended."""
    async with ReplayHarness(SimSettings()) as replay:
        config = msgspec.convert({"name": "intents-ticks", "module": __name__,
                                  "account": ACCOUNT, "pairs": [PAIR]}, StrategyConfig)  # fmt: skip
        stamps = _Stamps()
        venue = InProcessVenue(replay.venue, ACCOUNT, replay.instruments)
        deps = WorkerDeps(
            market=replay.market,
            venue=_StampedVenue(venue, stamps),
            reader=venue,
            journal=OrderJournal(replay.redis, replay.keys, ACCOUNT),
            clock=RealClock(),  # the worker's loop waits as live; the venue's time is manual
            registry=replay.registry,
            events=replay.events,
            instruments=replay.instruments,
            trading_state=replay.trading_state,
        )
        params = parse_params(FollowsTheBid, config.params, where="strategy")
        worker = StrategyWorker(config, FollowsTheBid, params, deps)
        venue.subscribe_executions(worker.on_execution)
        venue.subscribe_balances(worker.on_balance)
        instrument: Instrument = replay.instruments.get(PAIR)
        await replay.market.subscribe([instrument], stamps)  # heard before the worker hears
        async with asyncio.TaskGroup() as tg:
            tg.create_task(worker.run())
            try:
                return await _drive_ticks(replay, worker, stamps, ticks)
            finally:
                worker.stop()


async def _drive_ticks(
    replay: ReplayHarness, worker: StrategyWorker, stamps: _Stamps, ticks: int
) -> list[float]:
    strategy = worker.strategy
    assert isinstance(strategy, FollowsTheBid)
    strategy.decided = stamps.decided
    for _ in range(_SETTLE_TURNS * 4):  # start, place, rest
        await asyncio.sleep(0)
    order = worker.manager.orders.get(strategy.order_id or "")
    if order is None or order.status != "new":
        raise RuntimeError(f"the tick benchmark's bid did not rest: {order}")
    latencies_us: list[float] = []
    while len(latencies_us) < ticks:
        stamps.changed_ns = stamps.sent_ns = 0
        stamps.done.clear()
        await replay.clock.advance(_TICK_VENUE_S)  # wakes no one of the worker's (real clock)
        stamps.armed = True
        replay.market.step(_TICK_STEP_S)
        if stamps.changed_ns:  # the step changed the book: the worker decides
            async with asyncio.timeout(_TICK_WAIT_S):
                await stamps.done.wait()
        if stamps.sent_ns:
            latencies_us.append((stamps.sent_ns - stamps.changed_ns) / 1_000)
        for _ in range(_SETTLE_TURNS):
            await asyncio.sleep(0)
    return latencies_us


def tick_to_amend_us(*, ticks: int = 1000, use_uvloop: bool = True) -> dict[str, float]:
    """p50 and p99 (us) of a book change heard to its amend called on the venue, through the
    worker with a real clock (inbox, loop, callback guard, strategy, checks, order manager,
    the amend's task): the product's in-process share of tick to order, less the order
    entry's own encoding and limiter permit."""
    runner: Callable[[Any], list[float]] = asyncio.run
    if use_uvloop:
        import uvloop  # noqa: PLC0415 - optional, as the service's own choice

        runner = uvloop.run
    latencies_us = runner(_tick_run(ticks))
    return {"p50_us": percentile(latencies_us, 0.5), "p99_us": percentile(latencies_us, 0.99),
            "ticks": float(len(latencies_us))}  # fmt: skip


def intent_path_us(*, n: int = 2000, repeats: int = 5) -> dict[str, dict[str, float]]:
    """Per case (`tick`, `loaded`): the median over `repeats` of the mean us per intent of
    `amend_us` and `place_us`, with `open_orders` resting meanwhile."""
    return {case: asyncio.run(_case(case, n, repeats)) for case in CASES}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats x 500 intents")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    n, repeats = (500, 3) if args.quick else (2000, 5)
    figures = intent_path_us(n=n, repeats=repeats)
    if args.json:
        print(json.dumps(figures))
        return 0
    print(f"intent path, us per intent (median of {repeats} x {n})")
    for case, row in figures.items():
        print(f"  {case:<7} amend {row['amend_us']:7.1f}  place {row['place_us']:7.1f}  "
              f"({row['open_orders']:.0f} open)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

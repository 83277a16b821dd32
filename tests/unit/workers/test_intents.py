"""The state an intent is checked against, built in one pass over the open orders: the same
numbers as reading each part of the worker on its own, and today's PnL only when a daily loss
limit reads it. Through the replay harness (the production worker on the simulator's engine)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from orchestrator.simulator.settings import SimSettings
from orchestrator.strategy import BookView, Strategy, StrategyParams
from orchestrator.testing.harness import ReplayHarness
from orchestrator.workers import risk
from orchestrator.workers.order_states import TrackedOrder
from orchestrator.workers.risk import RiskState
from orchestrator.workers.worker import StrategyWorker

PAIR = "XBT/USD"
ACCOUNT = "mm-xbt"  # the demo domain's sub-account: 10 000 USD, 0.5 XBT
SIZE = Decimal("0.01")


class RestsBidsAndAsks(Strategy[StrategyParams]):
    """Three bids and two asks, 1% and more off the mid, on the first book."""

    def on_start(self) -> None:
        self.placed: list[str] = []

    def on_book(self, book: BookView) -> None:
        mid = book.mid
        if self.placed or mid is None:
            return
        instrument = self.ctx.instrument(book.pair)
        for i in range(3):
            price = instrument.round_price(mid * (Decimal("0.99") - Decimal("0.001") * i))
            self.placed.append(self.ctx.place(book.pair, "buy", SIZE * (i + 1), price))
        for i in range(2):
            price = instrument.round_price(mid * (Decimal("1.01") + Decimal("0.001") * i))
            self.placed.append(self.ctx.place(book.pair, "sell", SIZE, price))


def config(**risk_limits: Any) -> dict[str, Any]:
    return {"name": "s", "module": __name__, "account": ACCOUNT, "pairs": [PAIR],
            "risk": risk_limits}  # fmt: skip


def state_part_by_part(worker: StrategyWorker, order: TrackedOrder) -> RiskState:
    """The state as the worker's reads give it one by one (how it was built before)."""
    pair = order.instrument.wsname
    others = [o for o in worker.manager.open_orders() if o.cl_ord_id != order.cl_ord_id]
    on_pair = [o for o in others if o.instrument.wsname == pair]
    held: dict[str, Decimal] = {}
    for other in others:
        intent = worker.checker.intent_of(other, remaining=True)
        asset, amount = risk.order_hold(intent)
        held[asset] = held.get(asset, Decimal(0)) + amount
    limited = worker.config.risk.max_daily_loss is not None
    return RiskState(
        trading_state=worker.trading_state.state,
        paused=worker.state == "paused",
        book_whole=worker.market.is_whole(pair),
        mid=worker.mark(pair),
        open_orders=len(others),
        position=worker.positions.position(pair, None).qty,
        open_buy=sum((o.remaining for o in on_pair if o.side == "buy"), Decimal(0)),
        open_sell=sum((o.remaining for o in on_pair if o.side == "sell"), Decimal(0)),
        available=worker.balances.available(held),
        daily_pnl=worker.daily_pnl() if limited else None,
    )


@pytest.mark.parametrize("limits", [{}, {"max_daily_loss": "50"}], ids=["no_limit", "limit"])
async def test_the_state_of_an_intent_is_the_workers_own_numbers(limits: dict[str, Any]) -> None:
    async with ReplayHarness(SimSettings()) as replay:
        worker = replay.add(config(**limits), RestsBidsAndAsks)
        await replay.start()
        await replay.run_for(1.0)
        strategy = worker.strategy
        assert isinstance(strategy, RestsBidsAndAsks)
        resting = [worker.manager.orders[cl_ord_id] for cl_ord_id in strategy.placed]
        assert [o.status for o in resting] == ["new"] * 5
        new = TrackedOrder(cl_ord_id="0" * 32, instrument=resting[0].instrument, side="buy",
                           order_type="limit", time_in_force="GTC", post_only=False,
                           volume=SIZE, price=resting[0].price)  # fmt: skip
        for order in [*resting, new]:  # amends (the order itself left out), and a place
            state = worker.checker._state(order)
            assert state == state_part_by_part(worker, order)
            assert (state.daily_pnl is None) == (not limits)
        assert worker.checker._state(new).open_orders == 5


async def test_an_orders_hold_is_what_its_intent_holds_a_market_buys_at_the_bands_edge() -> None:
    async with ReplayHarness(SimSettings()) as replay:
        worker = replay.add(config(), RestsBidsAndAsks)
        await replay.start()
        await replay.run_for(1.0)
        orders = worker.manager.open_orders()
        instrument = orders[0].instrument
        market_buy = TrackedOrder(cl_ord_id="1" * 32, instrument=instrument, side="buy",
                                  order_type="market", time_in_force="IOC", post_only=False,
                                  volume=SIZE, price=None)  # fmt: skip
        for order in [*orders, market_buy]:
            assert worker.checker.hold_of(order) == risk.order_hold(
                worker.checker.intent_of(order, remaining=True)
            )
        mark = worker.mark(PAIR)
        assert mark is not None
        band = Decimal(str(worker.config.risk.price_band_pct)) / 100
        assert worker.checker.hold_of(market_buy) == (instrument.quote, SIZE * (mark * (1 + band)))
        bids = sum(o.remaining * (o.price or 0) for o in orders if o.side == "buy")
        asks = sum(o.remaining for o in orders if o.side == "sell")
        assert worker.holds_except(None) == {instrument.quote: bids, instrument.base: asks}

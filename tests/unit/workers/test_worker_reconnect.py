"""Executions missed while the private socket was down: the reconnect's reconciliation tells
the fill the venue made meanwhile, so the strategy's position equals what the venue executed."""

from __future__ import annotations

import uuid
from decimal import Decimal

from orchestrator.exchange.kraken.ws.schemas import Execution
from orchestrator.exchange.protocol import OrderSpec
from orchestrator.simulator.settings import SimSettings
from orchestrator.strategy import BookView, Fill, Strategy, StrategyParams
from orchestrator.testing.harness import ReplayHarness
from orchestrator.testing.venue import InProcessVenue

PAIR = "XBT/USD"


class BidsAtTheTop(Strategy[StrategyParams]):
    """One bid a tick under the ask: the best bid, first to be hit."""

    def on_start(self) -> None:
        self.placed: str | None = None
        self.fills: list[Fill] = []

    def on_book(self, book: BookView) -> None:
        ask = book.best_ask
        if self.placed is None and ask is not None:
            instrument = self.ctx.instrument(PAIR)
            self.placed = self.ctx.place(PAIR, "buy", Decimal("0.02"),
                                         ask[0] - instrument.tick_size)  # fmt: skip

    def on_fill(self, fill: Fill) -> None:
        self.fills.append(fill)


async def test_a_fill_made_while_disconnected_is_told_after_the_reconnect() -> None:
    async with ReplayHarness(SimSettings()) as replay:
        replay.venue.markets_frozen = True  # only the seller below trades with the bid
        worker = replay.add({"name": "bidder", "module": "x", "account": "mm-xbt",
                             "pairs": [PAIR]}, BidsAtTheTop)  # fmt: skip
        await replay.start()
        await replay.run_for(1.0)
        strategy = worker.strategy
        assert isinstance(strategy, BidsAtTheTop)
        assert strategy.placed is not None
        [order] = worker.manager.open_orders()
        assert order.status == "new"

        lost: list[Execution] = []
        replay.venues["bidder"].subscribe_executions(lost.append)  # the socket is down
        seller = InProcessVenue(replay.venue, "master", replay.instruments)
        await seller.place(OrderSpec(instrument=replay.instruments.get(PAIR), side="sell",
                                     order_type="market", volume=Decimal("0.005"),
                                     cl_ord_id=uuid.uuid4().hex))  # fmt: skip
        await replay.settle()
        assert any(e.exec_type == "trade" for e in lost)  # the venue told a socket nobody read
        assert worker.positions.position(PAIR, None).qty == 0

        replay.venues["bidder"].subscribe_executions(worker.on_execution)  # reconnected
        worker.on_private_reconnected()
        await replay.run_for(2.0)
        venue_order = replay.venue.engine.orders[order.txid or ""]
        executed = Decimal(venue_order.executed) / 10**8  # the engine counts base in 1e-8 units
        assert executed == Decimal("0.005")
        assert worker.positions.position(PAIR, None).qty == executed
        [fill] = strategy.fills
        assert fill.qty == executed
        assert fill.exec_id.startswith("reconciled:")
        assert order.filled == executed
        assert worker.manager.orders[order.cl_ord_id].update().status == "partially_filled"
        seller.close()

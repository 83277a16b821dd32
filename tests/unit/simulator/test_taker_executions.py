"""A taker order that trades several levels: each `trade` frame shows the order as it was after
that trade (running `cum_qty`, `partially_filled` until the last), as Kraken's frames do, not its
state after the whole match."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from orchestrator.clock import ManualClock
from orchestrator.exchange.kraken.ws.schemas import Execution
from orchestrator.exchange.protocol import OrderSpec
from orchestrator.simulator.settings import SimSettings
from orchestrator.testing.venue import InProcessVenue, build_inprocess_domain


async def test_each_trade_frame_carries_the_running_quantity_and_status() -> None:
    sim, instruments = build_inprocess_domain(SimSettings(seed=3), ManualClock())
    venue = InProcessVenue(sim, "master", instruments)  # funded enough to take several levels
    heard: list[Execution] = []
    venue.subscribe_executions(heard.append, snapshot=False)
    await asyncio.sleep(0)
    ref = await venue.place(OrderSpec(instrument=instruments.get("XBT/USD"), side="buy",
                                      order_type="market", volume=Decimal(3),
                                      cl_ord_id="sweep"))  # fmt: skip
    trades = [e for e in heard if e.order_id == ref.txid and e.exec_type == "trade"]
    assert len(trades) > 1, "the order took several levels"
    running = Decimal(0)
    cost = Decimal(0)
    for trade in trades:
        assert trade.last_qty is not None
        assert trade.cost is not None
        running += trade.last_qty
        cost += trade.cost
        assert trade.cum_qty == running
        assert trade.cum_cost == cost
    assert [t.order_status for t in trades[:-1]] == ["partially_filled"] * (len(trades) - 1)
    assert trades[-1].order_status == "filled"
    assert running == Decimal(3)
    venue.close()

"""The kill switch test's ladder (tests/fixtures/strategies/ladder.py) through the replay
harness: `levels` bids and asks 2-3 % from the mid, on the tick and at least the pair's minimums;
a halt's cancels and its refusals leave the levels empty, and the ladder is back once trading
resumes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orchestrator.simulator.settings import SimSettings, domain_accounts
from orchestrator.testing.harness import ReplayHarness

MODULE = "tests.fixtures.strategies.ladder"
FUNDS = {"ZUSD": Decimal(50_000), "XXBT": Decimal(2), "XETH": Decimal(20), "SOL": Decimal(500)}
SETTINGS = SimSettings(accounts=domain_accounts(1, FUNDS))


def config(pair: str, size: str) -> dict[str, object]:
    return {"name": "ladder", "module": MODULE, "account": "s0", "pairs": [pair],
            "params": {"size": size, "levels": 5}}  # fmt: skip


@pytest.mark.parametrize(
    ("pair", "size"), [("XBT/USD", "0.001"), ("ETH/USD", "0.02"), ("SOL/USD", "0.000001")]
)
async def test_it_rests_its_levels_far_from_the_mid(pair: str, size: str) -> None:
    async with ReplayHarness(SETTINGS) as replay:
        replay.add(config(pair, size))
        await replay.start()
        await replay.run_for(2.0)
        resting = list(replay.venue.engine.open_orders("s0").values())
        instrument = replay.instruments.get(pair)
        mid = replay.market.book(pair).mid  # type: ignore[union-attr]
        assert mid is not None
        assert sorted(o.side for o in resting) == ["buy"] * 5 + ["sell"] * 5
        for order in resting:
            assert order.price is not None
            price = Decimal(order.price).scaleb(-instrument.price_decimals)
            volume = Decimal(order.volume).scaleb(-instrument.qty_decimals)
            assert price % instrument.tick_size == 0
            assert Decimal("0.019") < abs(price - mid) / mid < Decimal("0.031"), (price, mid)
            assert volume >= max(Decimal(size), instrument.ordermin)
            assert price * volume >= instrument.costmin  # the tiny SOL size is raised to it
        await replay.stop()


async def test_halted_it_places_nothing_and_resumed_it_is_back() -> None:
    async with ReplayHarness(SETTINGS) as replay:
        worker = replay.add(config("XBT/USD", "0.001"))
        await replay.start()
        await replay.run_for(2.0)
        engine = replay.venue.engine
        assert len(engine.open_orders("s0")) == 10
        replay.trading_state.state = "HALTED"
        assert await worker.cancel_all(timeout_s=5.0) == 0
        placed = len(engine.orders)
        await replay.run_for(5.0)  # its levels closed: it asks again, and is refused
        assert engine.open_orders("s0") == {}
        assert len(engine.orders) == placed
        replay.trading_state.state = "ACTIVE"
        worker.resume_trading()
        await replay.run_for(2.0)
        assert len(engine.open_orders("s0")) == 10
        await replay.stop()

"""The example grid through the replay harness: a post-only ladder around the mid, every fill
traded back one step toward the center, bounded in open orders and inventory, loaded by its entry
point as the service loads it.

What the venue holds and did is read from the simulator's engine, never from the strategy."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from orchestrator.errors import ConfigError
from orchestrator.exchange.instruments import Instrument
from orchestrator.simulator.orders import Order
from orchestrator.simulator.settings import SimSettings
from orchestrator.strategy_loader import load_strategy_class, parse_params
from orchestrator.testing.harness import STEP_S, ReplayHarness
from orchestrator.workers.worker import StrategyWorker
from strategies.grid import Grid, ladder, trade_back

PAIR = "XBT/USD"
ACCOUNT = "mm-xbt"  # the demo domain's: 10000 USD, 0.5 XBT
SIZE = Decimal("0.001")


def grid_config(risk: dict[str, Any] | None = None, **params: Any) -> dict[str, Any]:
    return {"name": "grid", "module": "grid", "account": ACCOUNT, "pairs": [PAIR],
            "params": {"size": str(SIZE), "levels": 3, "step_bps": 5} | params,
            "risk": risk or {}}  # fmt: skip


def venue_orders(replay: ReplayHarness, *, open_only: bool = False) -> list[Order]:
    engine = replay.venue.engine
    found = engine.open_orders(ACCOUNT).values() if open_only else engine.orders.values()
    return sorted((o for o in found if o.account == ACCOUNT), key=lambda o: o.opened_s)


def price(order: Order) -> Decimal:
    assert order.price is not None
    return Decimal(order.price).scaleb(-order.pair.pair_decimals)


def executed(order: Order) -> Decimal:
    return Decimal(order.executed).scaleb(-order.pair.lot_decimals)


def volume(order: Order) -> Decimal:
    return Decimal(order.volume).scaleb(-order.pair.lot_decimals)


def balances(replay: ReplayHarness) -> tuple[Decimal, Decimal]:
    account = replay.venue.domain.accounts[ACCOUNT]
    return account.balances["ZUSD"], account.balances["XXBT"]


async def started(replay: ReplayHarness, config: dict[str, Any]) -> tuple[StrategyWorker, Grid]:
    worker = replay.add(config)
    await replay.start()
    await replay.run_for(STEP_S)  # reconciled, started, first book heard
    assert worker.state == "running"
    strategy = worker.strategy
    assert isinstance(strategy, Grid)
    return worker, strategy


# --- loading -----------------------------------------------------------------------------------
def test_it_is_found_by_its_entry_point_name() -> None:
    assert load_strategy_class("grid") is Grid


@pytest.mark.parametrize(
    ("change", "field"),
    [({"size": "0"}, "size"), ({"levels": 0}, "levels"), ({"step_bps": "-2"}, "step_bps"),
     ({"levels": 100, "step_bps": 100}, "step_bps"), ({"center": "-1"}, "center"),
     ({"max_inventory": "0"}, "max_inventory"), ({"retry_after_s": -1.0}, "retry_after_s"),
     ({"step": 5}, "step")],
)  # fmt: skip
def test_bad_params_are_refused_naming_the_field(change: dict[str, object], field: str) -> None:
    params = grid_config()["params"] | change
    with pytest.raises(ConfigError, match=field):
        parse_params(Grid, params, where="strategies[0]")


# --- the ladder --------------------------------------------------------------------------------
@pytest.mark.parametrize("offset_bps", [None, Decimal(2)])  # the mid, or a center given
async def test_it_lays_a_post_only_ladder_around_the_center(offset_bps: Decimal | None) -> None:
    async with ReplayHarness(SimSettings()) as replay:
        replay.venue.markets_frozen = True  # the book holds still: nothing fills
        instrument = replay.instruments.get(PAIR)
        synthetic = replay.venue.markets[instrument.rest_name]  # the mid before anyone trades
        scaled = Decimal(synthetic.best_bid_int + synthetic.best_ask_int) / 2
        mid = scaled.scaleb(-instrument.price_decimals)
        center = None if offset_bps is None else mid * (1 + offset_bps / 10_000)
        config = grid_config() if center is None else grid_config(center=str(center))
        worker, grid = await started(replay, config)
        expected_center = mid if center is None else center
        assert grid.center == expected_center
        step = Decimal(5) / 10_000
        want = sorted(
            [("buy", instrument.round_price(expected_center * (1 - k * step))) for k in (1, 2, 3)]
            + [("sell", instrument.round_price(expected_center * (1 + k * step), up=True))
               for k in (1, 2, 3)]
        )  # fmt: skip
        resting = venue_orders(replay, open_only=True)
        assert sorted((o.side, price(o)) for o in resting) == want
        assert all(o.post_only and volume(o) == SIZE for o in resting)
        assert sorted(ladder(expected_center, 3, Decimal(5), instrument)) == want
        await replay.stop()
        assert replay.venue.engine.open_orders(ACCOUNT) == {}
        assert worker.state == "stopped"


async def test_each_fill_is_traded_back_one_step_toward_the_center() -> None:
    step_bps, levels = Decimal(2), 3
    async with ReplayHarness(SimSettings()) as replay:
        before = balances(replay)
        worker, grid = await started(replay, grid_config(step_bps=step_bps, levels=levels))
        for _ in range(int(60 / STEP_S)):  # the market walks through the levels
            await replay.run_for(STEP_S)
            assert len(venue_orders(replay, open_only=True)) <= 2 * levels
        instrument = replay.instruments.get(PAIR)
        orders = venue_orders(replay)
        filled = sorted((o for o in orders if o.status == "closed"), key=lambda o: o.closed_s or 0)
        assert len(filled) >= 4, "the walk crossed levels both ways"
        assert {o.side for o in filled} == {"buy", "sell"}
        later = [o for o in orders if o not in orders[: 2 * levels]]  # not the first ladder
        waiting: list[tuple[str, Decimal, Decimal]] = [
            (p.side, p.price, p.qty) for p in grid.places if p.cl_ord_id is None
        ]
        for fill in filled:
            step = 1 + step_bps / 10_000  # a buy at p sells at p x step, a sell buys at p / step
            back = (
                ("sell", instrument.round_price(price(fill) * step, up=True), executed(fill))
                if fill.side == "buy"
                else ("buy", instrument.round_price(price(fill) / step), executed(fill))
            )
            match = next((o for o in later if (o.side, price(o), volume(o)) == back
                          and o.opened_s >= (fill.closed_s or 0)), None)  # fmt: skip
            if match is not None:
                later.remove(match)  # each fill is traded back by an order of its own
            else:
                waiting.remove(back)  # not placed yet (it would cross, or inventory)
        assert later == []  # and nothing else was placed
        usd, xbt = balances(replay)
        mark = worker.mark(PAIR)
        assert mark is not None
        assert worker.positions.position(PAIR, None).qty == xbt - before[1]
        assert worker.pnl() == (usd - before[0]) + (xbt - before[1]) * mark
        await replay.stop()
        assert replay.venue.engine.open_orders(ACCOUNT) == {}


def test_a_round_trip_comes_back_to_its_price() -> None:
    instrument = Instrument(rest_name="XXBTZUSD", altname="XBTUSD", wsname=PAIR, symbol="BTC/USD",
                            base="XXBT", quote="ZUSD", price_decimals=1, qty_decimals=8,
                            tick_size=Decimal("0.1"), ordermin=Decimal("0.0001"),
                            costmin=Decimal("0.5"))  # fmt: skip
    for start in (Decimal("59988.0"), Decimal("60012.3"), Decimal("1234.5")):
        sell = trade_back("buy", start, Decimal(7), instrument)
        assert sell > start
        assert trade_back("sell", sell, Decimal(7), instrument) == start


# --- bounds ------------------------------------------------------------------------------------
async def test_max_inventory_holds_back_the_outer_levels() -> None:
    async with ReplayHarness(SimSettings()) as replay:
        replay.venue.markets_frozen = True
        _, grid = await started(replay, grid_config(max_inventory=str(2 * SIZE)))
        await replay.run_for(2.0)
        resting = venue_orders(replay, open_only=True)
        assert grid.center is not None
        nearest_two = ladder(grid.center, 2, Decimal(5), replay.instruments.get(PAIR))
        assert sorted((o.side, price(o)) for o in resting) == sorted(nearest_two)
        waiting = [(p.side, p.price) for p in grid.places if p.cl_ord_id is None]
        assert sorted(waiting) == sorted(ladder(grid.center, 3, Decimal(5),
                                                replay.instruments.get(PAIR))[4:])  # fmt: skip


async def test_orders_the_risk_limits_refuse_are_rejected_sent_nowhere_and_retried() -> None:
    async with ReplayHarness(SimSettings()) as replay:
        worker, grid = await started(replay, grid_config(risk={"max_open_orders": 4},
                                                         retry_after_s=2.0))  # fmt: skip
        await replay.run_for(5.0)
        refused = [o for o in worker.manager.orders.values() if o.status == "rejected"]
        assert refused
        assert all((o.reason or "").startswith("max_open_orders") for o in refused)
        assert not {o.cl_ord_id for o in venue_orders(replay)} & {o.cl_ord_id for o in refused}
        settled = {e.cl_ord_id for e in await worker.manager.journal.settled()}
        assert not settled & {o.cl_ord_id for o in refused}  # never journalled: never sent
        resting = venue_orders(replay, open_only=True)
        assert len(resting) == 4
        assert grid.center is not None
        assert sorted((o.side, price(o)) for o in resting) == sorted(
            ladder(grid.center, 2, Decimal(5), replay.instruments.get(PAIR))
        )  # the nearest two levels a side; the third is refused
        # Offered again every retry_after_s, not on each of the 20 books: at once, 2 s, 4 s.
        assert len(refused) == 2 * 3

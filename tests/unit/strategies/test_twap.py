"""The example TWAP through the replay harness: a parent order cut into timed slices, each first
passive at the touch and then a bounded IOC, loaded by its entry point as the service loads it.

What the venue did is read from the simulator's engine (its orders, executions and balances),
never from the strategy; the strategy's own reports are checked against it."""

from __future__ import annotations

import logging
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
from strategies.twap import Twap, min_qty, slice_qty

PAIR = "ETH/USD"
ACCOUNT = "twap-eth"  # the demo domain's: 5000 USD, 5 ETH
ETH = Instrument(rest_name="XETHZUSD", altname="ETHUSD", wsname=PAIR, symbol=PAIR, base="XETH",
                 quote="ZUSD", price_decimals=2, qty_decimals=8, tick_size=Decimal("0.01"),
                 ordermin=Decimal("0.002"), costmin=Decimal("0.5"))  # fmt: skip


def twap_config(**params: Any) -> dict[str, Any]:
    return {"name": "twap", "module": "twap", "account": ACCOUNT, "pairs": [PAIR],
            "params": {"side": "buy", "quantity": "1", "duration_s": 60, "slices": 6,
                       "fallback_after_s": 4} | params}  # fmt: skip


def strategy_of(worker: StrategyWorker) -> Twap:
    strategy = worker.strategy
    assert isinstance(strategy, Twap)
    return strategy


def venue_orders(replay: ReplayHarness) -> list[Order]:
    """The account's orders as the engine holds them, in the order they were entered."""
    orders = [o for o in replay.venue.engine.orders.values() if o.account == ACCOUNT]
    return sorted(orders, key=lambda o: o.opened_s)


def executed(order: Order) -> Decimal:
    return Decimal(order.executed).scaleb(-order.pair.lot_decimals)


def volume(order: Order) -> Decimal:
    return Decimal(order.volume).scaleb(-order.pair.lot_decimals)


def price(order: Order) -> Decimal:
    assert order.price is not None
    return Decimal(order.price).scaleb(-order.pair.pair_decimals)


def balances(replay: ReplayHarness) -> tuple[Decimal, Decimal]:
    account = replay.venue.domain.accounts[ACCOUNT]
    return account.balances["ZUSD"], account.balances["XETH"]


async def started(replay: ReplayHarness, config: dict[str, Any]) -> tuple[StrategyWorker, Twap]:
    worker = replay.add(config)
    await replay.start()
    await replay.run_for(STEP_S)  # reconciled, started, first book heard
    assert worker.state == "running"
    return worker, strategy_of(worker)


def assert_pnl_is_the_venues(replay: ReplayHarness, worker: StrategyWorker,
                             before: tuple[Decimal, Decimal]) -> None:  # fmt: skip
    """Position and PnL (net of fees, at the mid) equal what the venue's balances moved by."""
    usd, eth = balances(replay)
    mark = worker.mark(PAIR)
    assert mark is not None
    assert worker.positions.position(PAIR, None).qty == eth - before[1]
    assert worker.pnl() == (usd - before[0]) + (eth - before[1]) * mark


# --- loading -----------------------------------------------------------------------------------
def test_it_is_found_by_its_entry_point_name() -> None:
    assert load_strategy_class("twap") is Twap


@pytest.mark.parametrize(
    ("change", "field"),
    [({"quantity": "-1"}, "quantity"), ({"side": "hold"}, "side"),
     ({"duration_s": 0}, "duration_s"), ({"slices": 0}, "slices"),
     ({"slice_interval_s": 5.0}, "slice_interval_s"),  # and slices: give one
     ({"fallback_after_s": 10.0}, "fallback_after_s"),  # not shorter than the 10 s slice
     ({"max_slippage_bps": "-1"}, "max_slippage_bps"), ({"qty": "1"}, "qty")],
)  # fmt: skip
def test_bad_params_are_refused_naming_the_field(change: dict[str, object], field: str) -> None:
    params = twap_config()["params"] | change
    with pytest.raises(ConfigError, match=field):
        parse_params(Twap, params, where="strategies[0]")


# --- slicing (pure) ----------------------------------------------------------------------------
def test_a_slice_is_an_equal_share_at_the_pairs_decimals_and_minimum() -> None:
    assert slice_qty(Decimal(1), 6, ETH.ordermin, ETH) == Decimal("0.16666666")  # rounded down
    assert slice_qty(Decimal(1), 1, ETH.ordermin, ETH) == Decimal(1)  # the last takes all
    # 0.005 in 3: a third is below ordermin, so 0.002; the rest, 0.003, cannot be cut in two.
    assert slice_qty(Decimal("0.005"), 3, ETH.ordermin, ETH) == Decimal("0.002")
    assert slice_qty(Decimal("0.003"), 2, ETH.ordermin, ETH) == Decimal("0.003")
    assert slice_qty(Decimal("0.001"), 2, ETH.ordermin, ETH) == 0  # less than can be sent
    cheap = min_qty(ETH, Decimal("100"))  # where costmin (0.5 USD) asks more than ordermin
    assert cheap == Decimal("0.005")
    assert cheap * 100 >= ETH.costmin


# --- execution ---------------------------------------------------------------------------------
@pytest.mark.parametrize("side", ["buy", "sell"])
async def test_it_executes_the_parent_in_timed_slices_and_reports_slippage(side: str) -> None:
    interval_s, duration_s = 10.0, 60.0
    async with ReplayHarness(SimSettings()) as replay:
        before = balances(replay)
        worker, twap = await started(replay, twap_config(side=side))
        assert twap.started_s is not None
        parent = Decimal(1)
        for _ in range(int(duration_s / STEP_S)):
            await replay.run_for(STEP_S)
            orders = venue_orders(replay)
            open_volume = sum((volume(o) - executed(o) for o in orders if o.status == "open"),
                              Decimal(0))  # fmt: skip
            assert sum(executed(o) for o in orders) + open_volume <= parent  # never over
        assert twap.done
        orders = venue_orders(replay)
        assert sum(executed(o) for o in orders) == parent
        assert max(o.closed_s or 0.0 for o in orders) <= twap.started_s + duration_s
        passive = [o for o in orders if o.timeinforce == "GTC"]
        assert [o.opened_s - twap.started_s for o in passive] == pytest.approx(
            [k * interval_s for k in range(6)], abs=STEP_S
        )  # one passive order per slice, spaced as configured
        assert all(o.side == side for o in orders)
        assert twap.filled == parent
        assert twap.progress == 1
        # Slippage from the venue's own executions against the arrival mid.
        avg = sum((o.cost for o in orders), Decimal(0)) / parent
        arrival = twap.arrival_mid
        assert arrival is not None
        worse = avg - arrival if side == "buy" else arrival - avg
        assert twap.slippage_bps == pytest.approx(worse / arrival * 10_000, abs=Decimal("1e-9"))
        assert_pnl_is_the_venues(replay, worker, before)
        await replay.stop()
        assert replay.venue.engine.open_orders(ACCOUNT) == {}


async def test_a_slice_the_touch_does_not_fill_falls_back_to_a_bounded_ioc(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="strategy.twap")
    async with ReplayHarness(SimSettings()) as replay:
        replay.venue.markets_frozen = True  # nobody trades with a resting order
        before = balances(replay)
        worker, twap = await started(replay, twap_config(quantity="0.3", slices=3, duration_s=30,
                                                         max_slippage_bps=5))  # fmt: skip
        book = replay.market.book(PAIR)
        assert book is not None
        assert book.best_bid is not None
        assert book.best_ask is not None
        bid, ask = book.best_bid[0], book.best_ask[0]
        assert twap.arrival_mid == (bid + ask) / 2  # the market has not moved since
        await replay.run_for(30.0)
        assert twap.done
        orders = venue_orders(replay)
        passive, taken = orders[0::2], orders[1::2]
        assert len(passive) == len(taken) == 3
        bound = replay.instruments.get(PAIR).round_price(ask * (1 + Decimal(5) / 10_000))
        for resting, ioc in zip(passive, taken, strict=True):
            assert (resting.timeinforce, price(resting), resting.status) == ("GTC", bid, "canceled")
            assert executed(resting) == 0
            assert ioc.opened_s - resting.opened_s == pytest.approx(4.0, abs=STEP_S)
            assert (ioc.timeinforce, price(ioc)) == ("IOC", bound)  # through the ask, bounded
            assert executed(ioc) == volume(resting)  # the whole slice, taken
        assert sum(executed(o) for o in taken) == Decimal("0.3")
        assert twap.progress == 1
        avg = sum((o.cost for o in taken), Decimal(0)) / Decimal("0.3")
        assert avg >= ask  # took the offer: paid at least the ask, at most the bound
        assert avg <= bound
        assert twap.slippage_bps == pytest.approx((avg - twap.arrival_mid) / twap.arrival_mid
                                                  * 10_000, abs=Decimal("1e-9"))  # fmt: skip
        assert twap.slippage_bps is not None
        assert twap.slippage_bps > 0  # crossing the spread is worse than the mid
        assert_pnl_is_the_venues(replay, worker, before)
        reports = {event: [r.__dict__["fields"] for r in caplog.records if r.getMessage() == event]
                   for event in ("twap.fill", "twap.completed")}  # fmt: skip
        assert [f["progress"] for f in reports["twap.fill"]][-1] == 1  # one per fill
        assert len(reports["twap.fill"]) == worker.fill_count
        [completed] = reports["twap.completed"]
        assert (completed["filled"], completed["slippage_bps"]) == (twap.filled, twap.slippage_bps)


async def test_a_slice_the_risk_limits_refuse_is_rejected_sent_nowhere_and_left_unfilled() -> None:
    config = twap_config(slices=4, duration_s=40) | {"risk": {"max_position": {PAIR: "0.5"}}}
    async with ReplayHarness(SimSettings()) as replay:
        before = balances(replay)
        worker, twap = await started(replay, config)
        await replay.run_for(40.0)
        assert twap.done
        refused = [o for o in worker.manager.orders.values() if o.status == "rejected"]
        assert refused, "the slices past 0.5 ETH were refused"
        assert all((o.reason or "").startswith("max_position") for o in refused)
        sent = {o.cl_ord_id for o in venue_orders(replay)}
        assert not sent & {o.cl_ord_id for o in refused}  # nothing of them reached the venue
        settled = {e.cl_ord_id for e in await worker.manager.journal.settled()}
        assert not settled & {o.cl_ord_id for o in refused}  # nor was journalled
        bought = sum(executed(o) for o in venue_orders(replay))
        assert bought == Decimal("0.5")  # two slices of 0.25, then the limit
        assert twap.filled == bought
        assert twap.progress == Decimal("0.5")
        assert_pnl_is_the_venues(replay, worker, before)


async def test_short_of_funds_for_the_parent_it_asks_the_rebalancer() -> None:
    heard: list[dict[str, str]] = []
    async with ReplayHarness(SimSettings()) as replay:  # twap-eth holds 5000 USD
        replay.events.listen("rebalance_requested", lambda fields: heard.append(dict(fields)))
        _, twap = await started(replay, twap_config(quantity="3", slices=6, duration_s=60))
        await replay.run_for(1.0)
        assert twap.child is not None  # the first slice went out with what there is
    assert heard, "3 ETH at ~3000 USD needs more than the account's 5000 USD"
    assert heard[0]["asset"] == "ZUSD"
    assert heard[0]["strategy"] == "twap"
    assert "twap needs" in heard[0]["reason"]


async def test_with_funds_enough_it_asks_for_nothing() -> None:
    heard: list[dict[str, str]] = []
    async with ReplayHarness(SimSettings()) as replay:
        replay.events.listen("rebalance_requested", lambda fields: heard.append(dict(fields)))
        await started(replay, twap_config(quantity="0.5", slices=5, duration_s=50))
        await replay.run_for(20.0)
    assert heard == []

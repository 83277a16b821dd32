"""The example market maker through the replay harness: two-sided quotes around the mid that
follow it by amend, inventory-aware, loaded by its entry point as the service loads it; its PnL
and its refused quotes checked against what the venue executed and holds."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orchestrator.errors import ConfigError
from orchestrator.simulator.settings import SimSettings
from orchestrator.strategy_loader import load_strategy_class, parse_params
from orchestrator.testing.harness import ReplayHarness
from strategies.market_maker import MarketMaker

PAIR = "XBT/USD"


def test_it_is_found_by_its_entry_point_name() -> None:
    assert load_strategy_class("market_maker") is MarketMaker


@pytest.mark.parametrize(
    ("params", "field"),
    [({"size": "-1"}, "size"), ({"size": "0.01", "spread_bps": "0"}, "spread_bps"),
     ({"size": "0.01", "spread": 3}, "spread")],
)  # fmt: skip
def test_bad_params_are_refused_naming_the_field(params: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        parse_params(MarketMaker, params, where="strategies[0]")


async def test_it_quotes_both_sides_and_follows_the_mid_by_amend() -> None:
    config = {"name": "mm", "module": "market_maker", "account": "mm-xbt", "pairs": [PAIR],
              "params": {"size": "0.01", "spread_bps": 5, "requote_bps": 1}}  # fmt: skip
    async with ReplayHarness(SimSettings()) as replay:
        worker = replay.add(config)
        await replay.start()
        await replay.run_for(1.0)
        resting = list(replay.venue.engine.open_orders("mm-xbt").values())
        assert sorted(o.side for o in resting) == ["buy", "sell"]
        mid = replay.market.book(PAIR).mid  # type: ignore[union-attr]
        assert mid is not None
        bid = next(o for o in resting if o.side == "buy")
        ask = next(o for o in resting if o.side == "sell")
        assert bid.price is not None
        assert ask.price is not None
        decimals = replay.instruments.get(PAIR).price_decimals  # the engine's prices are scaled
        assert Decimal(bid.price).scaleb(-decimals) < mid < Decimal(ask.price).scaleb(-decimals)
        await replay.run_for(60.0)
        # An order's amend history starts with its original entry.
        amends = sum(len(o.amends) - 1 for o in replay.venue.engine.orders.values()
                     if o.account == "mm-xbt")  # fmt: skip
        assert amends > 0, "the quotes followed the mid in place"
        assert worker.state == "running"
        assert len(replay.venue.engine.open_orders("mm-xbt")) <= 2
        await replay.stop()
        assert replay.venue.engine.open_orders("mm-xbt") == {}


def balances(replay: ReplayHarness, account: str) -> tuple[Decimal, Decimal]:
    held = replay.venue.domain.accounts[account].balances
    return held["ZUSD"], held["XXBT"]


async def test_its_position_and_pnl_are_what_the_venues_fills_imply() -> None:
    config = {"name": "mm", "module": "market_maker", "account": "mm-xbt", "pairs": [PAIR],
              "params": {"size": "0.01", "spread_bps": 1, "requote_bps": 1}}  # fmt: skip
    async with ReplayHarness(SimSettings()) as replay:
        usd_before, xbt_before = balances(replay, "mm-xbt")
        worker = replay.add(config)
        await replay.start()
        await replay.run_for(60.0)
        assert worker.fill_count > 0
        usd, xbt = balances(replay, "mm-xbt")
        mark = worker.mark(PAIR)
        assert mark is not None
        position = worker.positions.position(PAIR, mark)
        assert position.qty == xbt - xbt_before
        # Realized + unrealized at the mid, net of fees: the cash the venue moved plus the
        # position at the mid (every fee the venue charged is in its USD balance).
        assert worker.pnl() == (usd - usd_before) + (xbt - xbt_before) * mark
        assert worker.pnl() == position.realized_pnl + position.unrealized_pnl - position.fees
        fees = sum((o.fee for o in replay.venue.engine.orders.values() if o.account == "mm-xbt"),
                   Decimal(0))  # fmt: skip
        assert position.fees == fees


async def test_a_quote_past_the_risk_limits_is_rejected_and_never_sent() -> None:
    config = {"name": "mm", "module": "market_maker", "account": "mm-xbt", "pairs": [PAIR],
              "params": {"size": "0.01", "spread_bps": 1, "requote_bps": 1},
              "risk": {"max_position": {PAIR: "0.01"}}}  # fmt: skip
    async with ReplayHarness(SimSettings()) as replay:
        worker = replay.add(config)
        await replay.start()
        for _ in range(240):
            await replay.run_for(0.25)
            assert abs(worker.positions.position(PAIR, None).qty) <= Decimal("0.01")
        refused = [o for o in worker.manager.orders.values() if o.status == "rejected"]
        assert refused, "a quote that would take the position past 0.01 was refused"
        assert all((o.reason or "").startswith("max_position") for o in refused)
        sent = {o.cl_ord_id for o in replay.venue.engine.orders.values()}
        assert not sent & {o.cl_ord_id for o in refused}
        settled = {e.cl_ord_id for e in await worker.manager.journal.settled()}
        assert not settled & {o.cl_ord_id for o in refused}  # never journalled: never sent
        assert worker.fill_count > 0
        # A refused side waits retry_after_s (1 s) before quoting again, not one per book (240).
        assert len(refused) <= 2 * (60 + 1)

"""The rebalancer as the service wires it (`open_rebalancer`), against the simulator: a band
left is topped up in one cycle, a transfer the venue refuses is planned again next cycle and
nothing is stuck, and a futures flex wallet driven under its margin threshold is topped up in
one period by the amount the unified wallet's formulas give (docs/kraken/accounts-and-transfers.md
section 4), checked on the venue's own figures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from orchestrator.config import Config
from orchestrator.exchange.protocol import Balance
from orchestrator.metrics import Registry
from orchestrator.rebalancer.component import Rebalancer
from orchestrator.rebalancer.transfers import PlannedTransfer
from orchestrator.rebalancer.wiring import open_rebalancer
from orchestrator.service_events import ServiceEvents
from orchestrator.simulator.futures_payloads import flex_margin_level, flex_wallet
from orchestrator.strategy import BookView
from tests.sim_domains import sim_config
from tests.unit.rebalancer.desk import Desk, open_desk


class NoBooks:
    def book(self, pair: str) -> BookView | None:
        return None


def rebalancer_of(desk: Desk, **section: Any) -> tuple[Rebalancer, Config, ServiceEvents]:
    config = sim_config(desk.sim, rebalancer={"interval_s": 30} | section)
    events = ServiceEvents(desk.redis, desk.keys, clock=desk.clock, registry=Registry())
    rebalancer = open_rebalancer(config, desk.domain, redis=desk.redis, keys=desk.keys,
                                 clock=desk.clock, registry=Registry(), events=events,
                                 books=NoBooks())  # fmt: skip
    return rebalancer, config, events


BAND = {"account": "s0", "asset": "ZUSD", "low": 5000, "target": 10000, "high": 20000}


async def test_a_band_left_is_topped_up_in_one_cycle_and_published() -> None:
    async with open_desk() as desk:
        rebalancer, _, events = rebalancer_of(desk, targets=[BAND])
        master_before = desk.balance("master", "ZUSD")
        report = await rebalancer.cycle("period")
        assert [(p.source, p.target, p.amount) for p in report.planned] == [
            ("master", "s0", Decimal(9000))
        ]  # 1000 held -> the target 10000
        assert [r.state for r in report.records] == ["complete"]
        assert desk.balance("s0", "ZUSD") == 10000
        assert desk.balance("master", "ZUSD") == master_before - 9000
        kinds = [e["kind"] for e in await events.recent()]
        assert kinds[-1] == "transfer_complete"
        again = await rebalancer.cycle("period")
        assert again.planned == []  # in band now: nothing more


async def test_a_transfer_the_venue_refuses_is_planned_again_and_nothing_is_stuck() -> None:
    async with open_desk() as desk:
        rebalancer, _, _ = rebalancer_of(desk, targets=[BAND])
        master = desk.sim.venue.domain.accounts["master"]
        planner = rebalancer._planner
        kept: dict[str, Decimal] = {}

        async def drained_after_planning(balances: Mapping[str, Mapping[str, Balance]],
                                         in_flight: set[tuple[str, str]],
                                         now_s: float) -> Sequence[PlannedTransfer]:  # fmt: skip
            plan = await planner(balances, in_flight, now_s)
            if not kept:  # the first cycle: the money leaves between the read and the call
                kept["ZUSD"] = master.balances["ZUSD"]
                master.balances["ZUSD"] = Decimal(10)
            return plan

        rebalancer._planner = drained_after_planning
        first = await rebalancer.cycle("period")
        assert [r.state for r in first.records] == ["failed"]
        assert "Insufficient funds" in (first.records[0].error or "")
        master.balances["ZUSD"] = kept["ZUSD"]
        second = await rebalancer.cycle("period")
        assert [r.state for r in second.records] == ["complete"]  # planned again, not stuck
        assert desk.balance("s0", "ZUSD") == 10000
        assert await rebalancer._journal.in_flight() == set()


async def test_a_flex_wallet_under_its_threshold_is_topped_up_within_one_period() -> None:
    async with open_desk() as desk:
        rule = {"account": "s0", "asset": "USD", "min_margin_level": 2, "target_margin_level": 3}
        rebalancer, _, _ = rebalancer_of(desk, margin=[rule])
        venue = desk.sim.venue
        # s0's flex holds 100 USD; a position needing 1000 maintenance margin, 50 USD under water.
        venue.set_flex_risk("s0", initial_margin=2000, maintenance_margin=1000, unrealized_pnl=-50)
        s0 = venue.domain.accounts["s0"]
        before = flex_margin_level(flex_wallet(venue, s0))
        assert before is not None
        assert before < 200  # percent: under the 2.0 threshold
        flex_before = desk.flex("s0")
        report = await rebalancer.cycle("period")  # one period's cycle
        # Section 4: the level is (collateral + unrealized PnL) / maintenance margin; USD has no
        # haircut, so 3 x 1000 - (-50) - 100 = 2950 USD bring it to 3.
        assert [(p.kind, p.target, p.asset, p.amount) for p in report.planned] == [
            ("futures_transfer", "s0", "USD", Decimal(2950))
        ]
        assert [r.state for r in report.records] == ["complete"]
        assert desk.flex("s0") == flex_before + 2950
        after = flex_margin_level(flex_wallet(venue, s0))
        assert after == 300  # the venue's own figure: exactly the target
        assert (await rebalancer.cycle("period")).planned == []  # above the threshold now

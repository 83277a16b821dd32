"""The plan, by example: who is topped up or swept, from where, and what caps cut."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from decimal import Decimal as D
from typing import Any

import pytest

from benchmarks import rebalance as rebalance_benchmark
from orchestrator.config import AssetTransferLimits, RampStep, RebalanceTarget, parse_config
from orchestrator.rebalancer.plan import (
    Band,
    hub_account,
    plan_cycle,
    plan_transfers,
    ramp_fraction,
    resolve_bands,
)
from orchestrator.rebalancer.portfolio import AccountFunds, Portfolio
from orchestrator.rebalancer.transfers import PlannedTransfer

USD = "ZUSD"


def book(**accounts: str | tuple[str, str]) -> Portfolio:
    """account=total or account=(total, held), all in ZUSD."""
    funds = []
    for name, amounts in accounts.items():
        total, held = amounts if isinstance(amounts, tuple) else (amounts, "0")
        funds.append(AccountFunds(name, {USD: D(total)}, {USD: D(held)}))
    return Portfolio(funds)


def band(account: str, target: str, low: str, high: str, floor: str = "0") -> Band:
    return Band(account=account, asset=USD, target=D(target), low=D(low), high=D(high),
                floor=D(floor))  # fmt: skip


def plan(
    portfolio: Portfolio,
    bands: Sequence[Band],
    *,
    limits: Mapping[str, AssetTransferLimits] | None = None,
    senders: Collection[str] | None = None,
    receivers: Collection[str] | None = None,
    in_flight: Collection[tuple[str, str]] = (),
    moved_today: Mapping[str, D] | None = None,
    decimals: Mapping[str, int] | None = None,
) -> list[PlannedTransfer]:
    return plan_transfers(portfolio, bands, hub="master", limits=limits or {}, senders=senders,
                          receivers=receivers, in_flight=in_flight,
                          moved_today=moved_today or {}, decimals=decimals)  # fmt: skip


def move(source: str, target: str, amount: str, reason: Any) -> PlannedTransfer:
    return PlannedTransfer(asset=USD, amount=D(amount), source=source, target=target,
                           reason=reason)  # fmt: skip


def limit(**fields: str) -> dict[str, AssetTransferLimits]:
    return {USD: AssetTransferLimits(asset=USD, **{k: D(v) for k, v in fields.items()})}


def test_below_low_is_topped_up_to_target_from_the_hub() -> None:
    result = plan(book(master="10000", a="100"), [band("a", "1000", "800", "1200")])
    assert result == [move("master", "a", "900", "band_low")]


def test_above_high_is_swept_down_to_target_to_the_hub() -> None:
    result = plan(book(master="0", a="1500"), [band("a", "1000", "800", "1200")])
    assert result == [move("a", "master", "500", "band_high")]


def test_in_band_is_left_alone() -> None:
    assert plan(book(master="10000", a="800", b="1200"),
                [band("a", "1000", "800", "1200"), band("b", "1000", "800", "1200")]) == []  # fmt: skip


def test_held_funds_count_as_absent_and_never_leave() -> None:
    # a holds 1000 of its 1500 in orders: available 500, below its band
    assert plan(book(master="10000", a=("1500", "1000")), [band("a", "1000", "800", "1200")]) == [
        move("master", "a", "500", "band_low")
    ]
    # b has 3000, 1500 held: sends 1500 - 1000 = 500, not 2000
    assert plan(book(master="0", b=("3000", "1500")), [band("b", "1000", "800", "1200")]) == [
        move("b", "master", "500", "band_high")
    ]


def test_a_sweep_never_breaks_the_senders_floor() -> None:
    result = plan(book(master="0", a="1500"), [band("a", "1000", "800", "1200", floor="1100")])
    assert result == [move("a", "master", "400", "band_high")]


def test_the_hubs_band_triggers_nothing_but_its_floor_holds() -> None:
    portfolio = book(master="1500", a="0", b="100")
    bands = [band("master", "100", "0", "200", floor="1000"),
             band("a", "1000", "800", "1200"), band("b", "1000", "800", "1200")]  # fmt: skip
    # 500 above the hub's floor: the largest deficit (a: 1000) first, in part; b gets nothing
    assert plan(portfolio, bands) == [move("master", "a", "500", "band_low")]


def test_a_sweep_does_not_fund_a_deficit_of_the_same_cycle() -> None:
    portfolio = book(master="0", a="2000", b="0")
    bands = [band("a", "1000", "800", "1200"), band("b", "1000", "800", "1200")]
    assert plan(portfolio, bands) == [move("a", "master", "1000", "band_high")]


def test_deficits_come_largest_first_then_surpluses() -> None:
    portfolio = book(master="5000", a="700", b="100", c="1300", d="1900")
    bands = [band(name, "1000", "800", "1200") for name in "abcd"]
    assert plan(portfolio, bands) == [
        move("master", "b", "900", "band_low"),
        move("master", "a", "300", "band_low"),
        move("d", "master", "900", "band_high"),
        move("c", "master", "300", "band_high"),
    ]


def test_min_transfer_and_max_per_transfer() -> None:
    portfolio = book(master="10000", a="790", b="0")
    bands = [band("a", "1000", "800", "1200"), band("b", "1000", "800", "1200")]
    result = plan(portfolio, bands, limits=limit(min_transfer="250", max_per_transfer="600"))
    assert result == [move("master", "b", "600", "band_low")]  # a's 210 is below 250


def test_day_cap_counts_moved_today_and_this_plan() -> None:
    portfolio = book(master="10000", a="0", b="0", c="3000")
    bands = [band(name, "1000", "800", "1200") for name in "abc"]
    result = plan(portfolio, bands, limits=limit(max_per_day="3000"),
                  moved_today={USD: D(1500)})  # fmt: skip
    # 1500 left today: a 1000 (ties by name), b the remaining 500, c's sweep nothing
    assert result == [
        move("master", "a", "1000", "band_low"),
        move("master", "b", "500", "band_low"),
    ]


def test_the_day_cap_already_spent_moves_nothing() -> None:
    portfolio = book(master="10000", a="0")
    result = plan(portfolio, [band("a", "1000", "800", "1200")], limits=limit(max_per_day="100"),
                  moved_today={USD: D(250)})  # fmt: skip
    assert result == []


def test_senders_and_receivers() -> None:
    portfolio = book(master="10000", a="0", b="5000")
    bands = [band("a", "1000", "800", "1200"), band("b", "1000", "800", "1200")]
    assert plan(portfolio, bands, senders={"master"}) == [move("master", "a", "1000", "band_low")]
    assert plan(portfolio, bands, receivers={"a"}) == [move("master", "a", "1000", "band_low")]
    assert plan(portfolio, bands, receivers={"master"}) == [
        move("b", "master", "4000", "band_high")
    ]
    assert plan(portfolio, bands, senders={"a", "b"}, receivers={"a", "b"}) == []


def test_an_account_in_flight_gets_nothing_new_but_the_hub_is_exempt() -> None:
    portfolio = book(master="10000", a="0", b="0")
    bands = [band("a", "1000", "800", "1200"), band("b", "1000", "800", "1200")]
    result = plan(portfolio, bands, in_flight={("a", USD), ("master", USD), ("b", "XXBT")})
    assert result == [move("master", "b", "1000", "band_low")]


def test_amounts_are_rounded_down_to_the_assets_decimals() -> None:
    portfolio = book(master="10000", a="0.12345")
    result = plan(portfolio, [band("a", "1000.00005", "800", "1200")], decimals={USD: 2})
    assert result == [move("master", "a", "999.87", "band_low")]


def test_a_band_of_an_account_never_read_is_an_error() -> None:
    with pytest.raises(KeyError, match="ghost"):
        plan(book(master="1"), [band("ghost", "1", "1", "1")])


def test_a_band_out_of_order_is_refused() -> None:
    with pytest.raises(ValueError, match="low <= target <= high"):
        band("a", "1000", "1100", "1200")


def test_ramp_fraction_is_the_last_step_started() -> None:
    steps = [RampStep(after_s=0, fraction=D("0.1")), RampStep(after_s=3600, fraction=D("0.5")),
             RampStep(after_s=7200, fraction=D(1))]  # fmt: skip
    assert ramp_fraction([], 0) == 1
    assert ramp_fraction(steps, 0) == D("0.1")
    assert ramp_fraction(steps, 3599.9) == D("0.1")
    assert ramp_fraction(steps, 3600) == D("0.5")
    assert ramp_fraction(steps, 10**9) == 1


def test_resolve_weights_fractions_and_ramps() -> None:
    portfolio = Portfolio([AccountFunds("master", {USD: D(6000)}, {}),
                           AccountFunds("a", {USD: D(4000)}, {USD: D(1000)})])  # fmt: skip
    targets = [
        RebalanceTarget(account="a", asset=USD, weight=D("0.25"), band=D("0.2"), floor=D(10),
                        ramp=[RampStep(after_s=0, fraction=D("0.5")),
                              RampStep(after_s=60, fraction=D(1))]),
        RebalanceTarget(account="master", asset=USD, target=D(100), low=D(50), high=D(900)),
    ]  # fmt: skip
    early, master = resolve_bands(targets, portfolio, elapsed_s={})
    # 0.25 of the domain total (10000, held included), half of it while the ramp is young
    assert (early.target, early.low, early.high, early.floor) == (D(1250), D(1000), D(1500), D(10))
    assert early.ramp_fraction == D("0.5")
    assert (master.target, master.low, master.high) == (D(100), D(50), D(900))
    late = resolve_bands(targets, portfolio, elapsed_s={("a", USD): 61.0})[0]
    assert (late.target, late.low, late.high) == (D(2500), D(2000), D(3000))


def test_plan_cycle_from_config() -> None:
    config = parse_config(
        {
            "accounts": [{"name": "treasury", "role": "master"}, {"name": "mm", "role": "sub"}],
            "rebalancer": {
                "targets": [{"account": "mm", "asset": USD, "target": D(1000), "band": D("0.1")}],
                "limits": [{"asset": USD, "max_per_transfer": D(300)}],
            },
        }
    )
    assert hub_account(config) == "treasury"
    portfolio = Portfolio([AccountFunds("treasury", {USD: D(5000)}, {}),
                           AccountFunds("mm", {USD: D(100)}, {})])  # fmt: skip
    bands, result = plan_cycle(config, portfolio, in_flight=set(), moved_today={},
                               elapsed_s={})  # fmt: skip
    assert result == [move("treasury", "mm", "300", "band_low")]
    assert [(b.account, b.low, b.target, b.high) for b in bands] == [
        ("mm", D(900), D(1000), D(1100))
    ]


def test_the_benchmarks_domain_plans_validly(capsys: pytest.CaptureFixture[str]) -> None:
    """benchmarks/rebalance.py checks every plan it times; a small run of it exits 0."""
    argv = ["--rounds", "1", "--runs", "2", "--subs", "10", "--no-plots"]
    assert rebalance_benchmark.main(argv) == 0
    out = capsys.readouterr().out
    assert "200 bands" in out
    assert "PROBLEM" not in out

"""Treasury sweeps and margin top-ups (pure): what is withdrawn above `keep` within every cap,
and the top-up that brings a flex wallet under its threshold back to the target level."""

from __future__ import annotations

from decimal import Decimal as D

from orchestrator.config import MarginTopUp, WithdrawalRule
from orchestrator.exchange.protocol import Balance
from orchestrator.rebalancer.margin import flex_figures
from orchestrator.rebalancer.portfolio import Portfolio, portfolio_from
from orchestrator.rebalancer.sweeps import plan_top_ups, plan_withdrawals
from tests.unit.rebalancer.test_margin import exact_wallet

PRICES = {"XXBT": D(60000), "ZUSD": D(1), "USD": D(1)}


def portfolio(master_xbt: str, master_usd: str = "0") -> Portfolio:
    return portfolio_from({"master": {
        "XXBT": Balance(asset="XXBT", total=D(master_xbt), held=D("0.5")),
        "ZUSD": Balance(asset="ZUSD", total=D(master_usd), held=D(0)),
    }})  # fmt: skip


def withdrawals(rules: list[WithdrawalRule], *, master_xbt: str = "10.5",
                today: dict[str, D] | None = None, tier_usd: str = "10000000",
                in_flight: frozenset[tuple[str, str]] = frozenset()) -> list[tuple[str, D, str]]:  # fmt: skip
    plan = plan_withdrawals(portfolio(master_xbt), rules, source="master",
                            withdrawn_today=today or {}, usd_prices=PRICES,
                            tier_limit_usd=D(tier_usd), in_flight=in_flight,
                            decimals={"XXBT": 8})  # fmt: skip
    assert all(p.kind == "withdrawal" and p.source == "master" and p.reason == "sweep"
               for p in plan)  # fmt: skip
    return [(p.asset, p.amount, p.target) for p in plan]


def test_what_is_available_above_keep_is_withdrawn_to_the_rules_key() -> None:
    rule = WithdrawalRule(asset="XXBT", key="cold", keep=D(4))
    assert withdrawals([rule]) == [("XXBT", D(6), "cold")]  # 10.5 total - 0.5 held - 4 kept


def test_the_days_cap_counts_what_was_withdrawn_today() -> None:
    rule = WithdrawalRule(asset="XXBT", key="cold", keep=D(4), max_per_day=D(5))
    assert withdrawals([rule], today={"XXBT": D("3.5")}) == [("XXBT", D("1.5"), "cold")]
    assert withdrawals([rule], today={"XXBT": D(5)}) == []


def test_the_tiers_daily_limit_in_usd_is_shared_by_every_asset() -> None:
    rule = WithdrawalRule(asset="XXBT", key="cold", keep=D(0))
    # Starter: 5,000 USD a day; 2,000 USD of USD withdrawn already -> 3,000 USD of XBT at 60,000.
    got = withdrawals([rule], today={"ZUSD": D(2000)}, tier_usd="5000")
    assert got == [("XXBT", D("0.05"), "cold")]
    assert withdrawals([rule], today={"ZUSD": D(5000)}, tier_usd="5000") == []


def test_nothing_below_min_amount_nor_with_a_move_open_on_the_source() -> None:
    rule = WithdrawalRule(asset="XXBT", key="cold", keep=D(4), min_amount=D(7))
    assert withdrawals([rule]) == []
    open_rule = WithdrawalRule(asset="XXBT", key="cold", keep=D(4))
    assert withdrawals([open_rule], in_flight=frozenset({("master", "XXBT")})) == []


def test_two_rules_of_one_asset_never_withdraw_the_same_funds_twice() -> None:
    rules = [WithdrawalRule(asset="XXBT", key="cold", keep=D(4)),
             WithdrawalRule(asset="XXBT", key="other", keep=D(4))]  # fmt: skip
    assert withdrawals(rules) == [("XXBT", D(6), "cold")]


def test_a_wallet_under_its_threshold_is_topped_up_to_the_target_level() -> None:
    low = exact_wallet({"USD": D(1000)}, mm=D(1000), upnl=D(-200))  # level 0.8
    fine = exact_wallet({"USD": D(5000)}, mm=D(1000))  # level 5
    flat = exact_wallet({"USD": D(10)}, mm=D(0))  # no position: no level
    rules = [MarginTopUp(account=name, min_margin_level=D(2), target_margin_level=D(3))
             for name in ("low", "fine", "flat", "unread")]  # fmt: skip
    plan = plan_top_ups({"low": low, "fine": fine, "flat": flat}, rules, source="master",
                        usd_prices=PRICES, in_flight=frozenset())  # fmt: skip
    assert [(p.kind, p.target, p.asset, p.amount, p.reason) for p in plan] == [
        ("futures_transfer", "low", "USD", D(2200), "margin")
    ]  # 3 x 1000 + 200 - 1000
    after = exact_wallet({"USD": D(1000) + plan[0].amount}, mm=D(1000), upnl=D(-200))
    assert flex_figures(after).margin_level == D(3)
    busy = plan_top_ups({"low": low}, rules[:1], source="master", usd_prices=PRICES,
                        in_flight=frozenset({("low", "USD")}))  # fmt: skip
    assert busy == []

"""Kraken's tables as the limiter's policy: costs by age, scopes by Decision settings."""

from __future__ import annotations

from typing import Literal

import pytest

from orchestrator.config import LimitsConfig
from orchestrator.exchange.kraken.common.methods import (
    ADD_ORDER,
    ADD_ORDER_BATCH,
    BALANCE,
    CANCEL_ALL,
    CANCEL_ORDER,
    method,
)
from orchestrator.ratelimit.policy import (
    TIERS,
    Charge,
    Policy,
    VenueRequest,
    batch_add_cost,
    trading_cost,
)


def test_tier_tables() -> None:
    assert (TIERS["starter"].rest_max, TIERS["starter"].rest_decay_per_s) == (15, 0.33)
    assert (TIERS["intermediate"].trade_threshold, TIERS["intermediate"].trade_decay_per_s) == (
        125,
        2.34,
    )
    assert (
        TIERS["pro"].trade_threshold,
        TIERS["pro"].trade_decay_per_s,
        TIERS["pro"].rest_decay_per_s,
    ) == (180, 3.75, 1.0)
    assert [TIERS[t].max_open_orders_per_pair for t in ("starter", "intermediate", "pro")] == [
        60,
        80,
        225,
    ]


@pytest.mark.parametrize(
    ("action", "costs"),
    [
        ("add", [1, 1, 1, 1, 1, 1, 1]),
        ("amend", [4, 3, 2, 1, 1, 1, 1]),
        ("edit", [7, 6, 5, 3, 2, 1, 1]),
        ("cancel", [8, 6, 5, 4, 2, 1, 0]),
    ],
)
def test_costs_by_age_at_every_boundary(action: str, costs: list[int]) -> None:
    ages = [0.0, 5.0, 10.0, 15.0, 45.0, 90.0, 300.0]
    assert [trading_cost(action, age) for age in ages] == costs  # type: ignore[arg-type]
    below = [4.999, 9.999, 14.999, 44.999, 89.999, 299.999]
    assert [trading_cost(action, age) for age in below] == costs[:6]  # type: ignore[arg-type]


def test_never_rested_orders_have_no_age_part() -> None:
    assert trading_cost("cancel", None) == 0
    assert trading_cost("amend", None) == 1


def test_batch_and_rest_costs() -> None:
    assert [batch_add_cost(n) for n in (2, 3, 15)] == [1, 2, 8]
    cost = {name: method(name).rest_cost for name in ("Ledgers", "QueryLedgers", "Balance",
                                                      "CancelAll", "AddOrder", "CancelOrder")}  # fmt: skip
    assert cost["Ledgers"] == cost["QueryLedgers"] == 2
    assert cost["Balance"] == cost["CancelAll"] == 1
    assert cost["AddOrder"] == cost["CancelOrder"] == 0


def names(charges: list[Charge]) -> dict[str, float]:
    return {c.scope.name: c.cost for c in charges}


def test_charges_default_decisions() -> None:
    policy = Policy("intermediate", LimitsConfig())
    add = policy.charges_for(
        VenueRequest(method=ADD_ORDER, pair="XBT/USD"), account="a", key_id="k"
    )
    assert names(add) == {"trade:a:XBT/USD": 1, "domain:XBT/USD": 1}
    pool = next(c.scope for c in add if c.scope.name.startswith("domain"))
    assert pool.threshold == 625
    assert pool.decay_per_s == pytest.approx(11.7)
    balance = policy.charges_for(VenueRequest(method=BALANCE), account="a", key_id="k")
    assert names(balance) == {"rest:k": 1}
    cancel_all = VenueRequest(
        method=CANCEL_ALL, cancel_all=(("XBT/USD", 1.0), ("XBT/USD", 100.0), ("ETH/USD", None))
    )
    assert names(policy.charges_for(cancel_all, account="a", key_id="k")) == {
        "rest:k": 1, "trade:a:XBT/USD": 9, "domain:XBT/USD": 9,
    }  # fmt: skip
    ws_cancel = VenueRequest(method=CANCEL_ORDER, pair="XBT/USD", order_ages_s=(20.0,), via_ws=True)
    assert names(policy.charges_for(ws_cancel, account="a", key_id="k")) == {
        "trade:a:XBT/USD": 4,
        "domain:XBT/USD": 4,
    }
    assert ws_cancel.lane == "risk_reducing"


@pytest.mark.parametrize(
    ("scope", "cap"), [("pair", True), ("pair", False), ("all", True), ("all", False)]
)
def test_every_decision_combination(scope: Literal["pair", "all"], cap: bool) -> None:
    policy = Policy(
        "pro", LimitsConfig(domain_scope=scope, per_account_cap=cap, domain_multiplier=3)
    )
    charges = policy.charges_for(
        VenueRequest(method=ADD_ORDER_BATCH, pair="ETH/USD", batch_size=5), account="s1", key_id="k"
    )
    expected = {("domain:*" if scope == "all" else "domain:ETH/USD"): 3}
    if cap:
        expected["trade:s1:ETH/USD"] = 3
    assert names(charges) == expected
    pool = next(c.scope for c in charges if c.scope.name.startswith("domain"))
    assert (pool.threshold, pool.decay_per_s) == (540, 11.25)

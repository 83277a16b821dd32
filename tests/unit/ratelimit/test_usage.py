"""The limiter's recent-usage tally: shares of the pools, waits, and pool rate against decay."""

from __future__ import annotations

import pytest

from orchestrator.ratelimit.policy import Charge, Scope
from orchestrator.ratelimit.usage import NO_STRATEGY, LimiterUsage

POOL = Scope("domain:XBT/USD", 625.0, 11.7)
OTHER_POOL = Scope("domain:ETH/USD", 625.0, 11.7)
TRADE = Scope("trade:a:XBT/USD", 125.0, 2.34)
REST = Scope("rest:k", 20.0, 0.5)


def test_shares_count_only_pool_cost_and_sum_to_one() -> None:
    usage = LimiterUsage(window_s=10.0)
    usage.record("mm", [Charge(TRADE, 1), Charge(POOL, 1)], 0.0, now_s=1.0)
    usage.record("mm", [Charge(TRADE, 3), Charge(POOL, 3)], 0.2, now_s=2.0)
    usage.record("grid", [Charge(OTHER_POOL, 4)], 0.0, now_s=3.0)
    usage.record(None, [Charge(REST, 1)], 0.1, now_s=3.0)  # a query: no pool cost
    view = usage.view(now_s=4.0)
    assert view.strategies["mm"].pool_cost == 4
    assert view.strategies["mm"].share == pytest.approx(0.5)
    assert view.strategies["grid"].share == pytest.approx(0.5)
    assert view.strategies[NO_STRATEGY].share == 0
    assert view.strategies["mm"].permits == 2
    assert view.strategies["mm"].mean_wait_s == pytest.approx(0.1)
    assert view.strategies["mm"].max_wait_s == pytest.approx(0.2)
    assert view.pools["domain:XBT/USD"].cost_per_s == pytest.approx(0.4)
    assert view.pools["domain:XBT/USD"].rate_ratio == pytest.approx(0.4 / 11.7)
    assert set(view.pools) == {"domain:XBT/USD", "domain:ETH/USD"}


def test_grants_older_than_the_window_are_forgotten_but_pools_stay_listed() -> None:
    usage = LimiterUsage(window_s=5.0)
    usage.record("mm", [Charge(POOL, 2)], 0.0, now_s=0.0)
    usage.record("mm", [Charge(POOL, 1)], 0.0, now_s=4.0)
    assert usage.view(now_s=4.5).strategies["mm"].pool_cost == 3
    assert usage.view(now_s=6.0).strategies["mm"].pool_cost == 1
    later = usage.view(now_s=20.0)
    assert later.strategies == {}
    assert later.pools["domain:XBT/USD"].rate_ratio == 0


def test_a_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="window_s"):
        LimiterUsage(window_s=0)

"""The limiter benchmark's arithmetic: budgets, steady state, burst detection, fairness."""

from __future__ import annotations

import math

import pytest

from benchmarks._limiter_meter import (
    POOL_DECAY_PER_S,
    POOL_THRESHOLD,
    first_full_s,
    median_index,
    pool_budget,
    share_error_floor,
    share_errors,
    steady_state,
)


def test_the_budget_is_the_burst_plus_the_decay_and_the_reserve_comes_off_the_burst() -> None:
    assert pool_budget(60.0) == pytest.approx(625 + 11.7 * 60)
    assert pool_budget(60.0, reserve=0.1) == pytest.approx(562.5 + 11.7 * 60)


def test_steady_state_counts_only_the_last_two_thirds_of_the_window() -> None:
    burst = [(0.5, "a", POOL_THRESHOLD)]
    paced = [(3.0 + k / POOL_DECAY_PER_S, "a", 1.0) for k in range(round(POOL_DECAY_PER_S * 6))]
    assert steady_state(burst + paced, 9.0) == pytest.approx(1.0, rel=0.02)
    assert steady_state(burst, 9.0) == 0.0


def test_the_burst_is_spent_when_the_replayed_level_first_reaches_the_limit() -> None:
    events = [(t / 10, "a", 10.0) for t in range(100)]  # 100/s: 88.3/s net of decay
    at_s = first_full_s(events, limit=500.0)
    assert at_s is not None
    assert 5.0 < at_s < 6.0
    assert first_full_s(events[:10], limit=500.0) is None


def test_share_errors_are_relative_to_each_weight_largest_first() -> None:
    errors = share_errors({"a": 20.0, "b": 40.0, "c": 40.0}, {"a": 1.0, "b": 2.0, "c": 1.0})
    assert errors == pytest.approx(
        [0.6, 0.2, 0.2]
    )  # c took 40% for 25%; a 20% of 25%, b 40% of 50%
    assert share_errors({"a": 0.0}, {"a": 1.0}) == [math.inf]


def test_an_exact_share_is_no_error_and_a_missing_strategy_a_whole_one() -> None:
    assert share_errors({"a": 10.0, "b": 20.0}, {"a": 1.0, "b": 2.0}) == pytest.approx([0, 0])
    assert share_errors({"a": 10.0}, {"a": 1.0, "b": 1.0}) == pytest.approx([1.0, 1.0])


def test_the_fairness_floor_is_what_whole_requests_allow() -> None:
    weights = {f"g{i}": (1.0, 2.0)[i % 2] for i in range(200)}  # the scale section's N = 200
    assert share_error_floor(1200.0, weights) == 0.0  # 4 and 8 requests: exact
    # 1156 requests: a weight-1 strategy's fair take is 3.853, so 4 whole ones are 3.8% off
    assert share_error_floor(1156.0, weights) == pytest.approx(4 / (1156 / 300) - 1)
    assert share_error_floor(0.0, weights) == math.inf


def test_the_median_run_is_the_middle_one_or_the_lower_middle() -> None:
    assert median_index([3.0, 1.0, 2.0]) == 2
    assert median_index([4.0, 1.0, 3.0, 2.0]) == 3

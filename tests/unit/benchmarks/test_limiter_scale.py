"""The scale section's windows: long enough that fairness can be graded at all."""

from __future__ import annotations

import pytest

from benchmarks._limiter_meter import RESERVE, pool_budget
from benchmarks._limiter_scale import LIGHTEST_PERMITS, SIZES, WEIGHTS, scale_window_s


@pytest.mark.parametrize(("n", "window_s"), [(10, 60.0), (50, 81.0), (200, 465.0)])
def test_the_window_grows_with_n_past_the_floor(n: int, window_s: float) -> None:
    assert scale_window_s(n, 60.0) == window_s


@pytest.mark.parametrize("n", SIZES)
def test_the_lightest_share_expects_its_permits_in_the_window(n: int) -> None:
    weight_sum = sum(WEIGHTS[i % len(WEIGHTS)] for i in range(n))
    window_s = scale_window_s(n, 20.0)
    expected = pool_budget(window_s, reserve=RESERVE) * min(WEIGHTS) / weight_sum
    assert expected >= LIGHTEST_PERMITS
    # and not much longer than it takes: one second less would not do (past the floor)
    if window_s > 20.0:
        short = pool_budget(window_s - 1.0, reserve=RESERVE) * min(WEIGHTS) / weight_sum
        assert short < LIGHTEST_PERMITS

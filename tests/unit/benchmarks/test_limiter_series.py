"""The limiter figure's binning: each grant's cost lands in the bin of its time, once."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks._limiter_plots import bin_costs, bin_count, bin_widths_s


def test_costs_land_in_the_bin_of_their_time() -> None:
    grants = [(0.0, 1.0), (0.49, 8.0), (0.5, 1.0), (1.2, 2.0), (1.99, 1.0)]
    assert bin_costs(grants, duration_s=2.0, bin_s=0.5) == [9.0, 1.0, 2.0, 1.0]


def test_a_grant_at_the_end_counts_in_the_last_bin_and_outside_the_run_in_none() -> None:
    grants = [(-0.001, 5.0), (2.0, 3.0), (2.001, 7.0)]
    assert bin_costs(grants, duration_s=2.0, bin_s=1.0) == [0.0, 3.0]


def test_a_bin_that_does_not_divide_the_run_leaves_a_shorter_last_bin() -> None:
    assert bin_count(5.0, 2.0) == 3
    assert bin_widths_s(5.0, 2.0) == [2.0, 2.0, 1.0]
    assert bin_costs([(4.5, 1.0), (5.0, 1.0)], duration_s=5.0, bin_s=2.0) == [0.0, 0.0, 2.0]


def test_a_bin_that_divides_the_run_up_to_rounding_adds_no_empty_bin() -> None:
    assert bin_count(2.1, 0.3) == 7  # 2.1 / 0.3 is 7.000000000000001
    assert bin_count(20.0, 1.0) == 20


def test_no_grants_give_empty_bins() -> None:
    assert bin_costs([], duration_s=1.0, bin_s=0.25) == [0.0] * 4


@pytest.mark.parametrize(("duration_s", "bin_s"), [(0.0, 1.0), (1.0, 0.0), (-1.0, 1.0)])
def test_an_empty_run_or_bin_is_refused(duration_s: float, bin_s: float) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        bin_count(duration_s, bin_s)


@given(
    grants=st.lists(st.tuples(st.floats(0.0, 20.0), st.integers(0, 8).map(float)), max_size=200),
    bin_s=st.sampled_from([0.25, 0.5, 1.0, 3.0]),
)
def test_every_grant_inside_the_run_is_counted_once(
    grants: list[tuple[float, float]], bin_s: float
) -> None:
    totals = bin_costs(grants, duration_s=20.0, bin_s=bin_s)
    assert len(totals) == len(bin_widths_s(20.0, bin_s))
    assert sum(totals) == pytest.approx(sum(cost for _, cost in grants))

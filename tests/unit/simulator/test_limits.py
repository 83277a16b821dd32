"""The venue's limits against `docs/kraken/rate-limits.md`: tables, counters, scopes, Decisions."""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import defaultdict
from functools import partial
from itertools import accumulate

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.simulator.errors import (
    DOMAIN_RATE_LIMIT,
    ORDERS_LIMIT,
    REST_RATE_LIMIT,
    TRADING_RATE_LIMIT,
    KrakenError,
)
from orchestrator.simulator.limits import (
    TIERS,
    Counter,
    DomainSettings,
    ScopeInfo,
    Tier,
    TierLimits,
    TradingAction,
    VenueLimits,
    batch_add_cost,
    batch_cancel_cost,
    fixed_trading_cost,
    rest_cost,
    trading_cost,
)

# --- tables -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tier", "expected"),
    [
        ("starter", TierLimits(15, 0.33, 60, 1.0, 60)),
        ("intermediate", TierLimits(20, 0.5, 125, 2.34, 80)),
        ("pro", TierLimits(20, 1.0, 180, 3.75, 225)),
    ],
)
def test_tier_numbers_match_limits_md(tier: Tier, expected: TierLimits) -> None:
    assert TIERS[tier] == expected


def test_tiers_are_exactly_the_three() -> None:
    assert set(TIERS) == {"starter", "intermediate", "pro"}


# Totals (fixed + age part) per age column: <5, <10, <15, <45, <90, <300, >=300.
_TOTALS: dict[TradingAction, tuple[int, ...]] = {
    "add": (1, 1, 1, 1, 1, 1, 1),
    "amend": (4, 3, 2, 1, 1, 1, 1),
    "edit": (7, 6, 5, 3, 2, 1, 1),
    "cancel": (8, 6, 5, 4, 2, 1, 0),
}
_BOUNDS_S = (
    (4.99, 5.0),
    (9.99, 10.0),
    (14.99, 15.0),
    (44.99, 45.0),
    (89.99, 90.0),
    (299.99, 300.0),
)
_CELLS = [
    (action, age_s, totals[column + side])
    for action, totals in _TOTALS.items()
    for column, pair in enumerate(_BOUNDS_S)
    for side, age_s in enumerate(pair)
]


@pytest.mark.parametrize(("action", "age_s", "expected"), _CELLS)
def test_trading_cost_every_cell_at_each_boundary(
    action: TradingAction, age_s: float, expected: int
) -> None:
    assert trading_cost(action, age_s) == expected


@pytest.mark.parametrize(
    ("action", "expected"), [("add", 1), ("amend", 1), ("edit", 1), ("cancel", 0)]
)
def test_fixed_cost(action: TradingAction, expected: int) -> None:
    assert fixed_trading_cost(action) == expected


@pytest.mark.parametrize("action", ["add", "amend", "edit", "cancel"])
def test_extreme_ages(action: TradingAction) -> None:
    assert trading_cost(action, 0.0) == _TOTALS[action][0]
    assert trading_cost(action, 1e9) == _TOTALS[action][-1]


@pytest.mark.parametrize(
    ("action", "expected"), [("add", 1), ("amend", 1), ("edit", 1), ("cancel", 0)]
)
def test_never_rested_order_pays_fixed_part_only(action: TradingAction, expected: int) -> None:
    assert trading_cost(action, None) == expected


def test_negative_age_is_a_bug() -> None:
    with pytest.raises(ValueError, match="age"):
        trading_cost("cancel", -0.1)


@pytest.mark.parametrize(("n", "expected"), [(0, 0), (1, 1), (2, 1), (3, 2), (4, 2), (15, 8)])
def test_batch_add_cost_rounds_up(n: int, expected: int) -> None:
    assert batch_add_cost(n) == expected


def test_batch_add_cost_rejects_negative() -> None:
    with pytest.raises(ValueError, match="batch"):
        batch_add_cost(-1)


def test_batch_cancel_cost_sums_each_order_by_age() -> None:
    assert (
        batch_cancel_cost([1.0, 5.0, 12.0, 30.0, 60.0, 299.0, 300.0, None]) == 8 + 6 + 5 + 4 + 2 + 1
    )
    assert batch_cancel_cost([]) == 0


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        *[(m, 2) for m in ("Ledgers", "QueryLedgers", "TradesHistory", "QueryTrades")],
        *[
            (m, 0)
            for m in (
                "AddOrder",
                "AddOrderBatch",
                "AmendOrder",
                "EditOrder",
                "CancelOrder",
                "CancelOrderBatch",
            )
        ],
        *[(m, 1) for m in ("Balance", "OpenOrders", "CancelAll", "CancelAllOrdersAfter", "Nope")],
    ],
)
def test_rest_cost(method: str, expected: int) -> None:
    assert rest_cost(method) == expected


# --- Counter ----------------------------------------------------------------------------------


def test_counter_decays_continuously_and_never_below_zero() -> None:
    counter = Counter(threshold=20, decay_per_s=2.0)
    counter.add(10, now_s=100.0)
    assert counter.level_at(100.0) == 10
    assert counter.level_at(100.25) == pytest.approx(9.5)
    assert counter.level_at(101.5) == pytest.approx(7.0)
    assert counter.level_at(105.0) == 0
    assert counter.level_at(1000.0) == 0
    counter.add(3, now_s=110.0)  # the idle 10 s left no credit behind
    assert counter.level_at(110.0) == 3


def test_counter_time_running_backwards_decays_nothing() -> None:
    counter = Counter(threshold=20, decay_per_s=1.0)
    counter.add(10, now_s=50.0)
    assert counter.level_at(40.0) == 10


def test_counter_exact_boundary_is_admitted() -> None:
    counter = Counter(threshold=60, decay_per_s=1.0)
    counter.add(59, now_s=0.0)
    assert counter.fits(1, 0.0)
    assert not counter.fits(1.001, 0.0)


@pytest.mark.parametrize("tier", ["starter", "intermediate", "pro"])
def test_exact_boundary_survives_float_decay(tier: Tier) -> None:
    limits = TIERS[tier]
    for threshold, decay_per_s in (
        (limits.rest_max, limits.rest_decay_per_s),
        (limits.trade_threshold, limits.trade_decay_per_s),
    ):
        counter = Counter(threshold, decay_per_s)
        counter.fill(0.0)
        for step in range(1, 8):
            assert counter.fits(decay_per_s * 0.7, step * 0.7)
            assert not counter.fits(decay_per_s * 0.7 + 0.01, step * 0.7)
            counter.add(decay_per_s * 0.7, step * 0.7)


def test_counter_wait_s() -> None:
    counter = Counter(threshold=10, decay_per_s=2.0)
    counter.add(10, now_s=0.0)
    assert counter.wait_s(4, 0.0) == pytest.approx(2.0)
    assert counter.wait_s(4, 1.0) == pytest.approx(1.0)
    assert counter.wait_s(4, 2.0) == 0
    assert counter.wait_s(4, 3.0) == 0
    assert counter.fits(4, 0.0 + counter.wait_s(4, 0.0))
    assert counter.wait_s(11, 100.0) == math.inf


def test_counter_without_decay_never_frees() -> None:
    counter = Counter(threshold=5, decay_per_s=0.0)
    counter.add(5, now_s=0.0)
    assert counter.level_at(1e6) == 5
    assert counter.wait_s(1, 0.0) == math.inf


def test_counter_fill_then_decay() -> None:
    counter = Counter(threshold=15, decay_per_s=0.5)
    counter.add(1, now_s=0.0)
    counter.fill(2.0)
    assert counter.level_at(2.0) == 15
    assert counter.level_at(4.0) == pytest.approx(14.0)


def test_counter_add_is_unconditional() -> None:
    counter = Counter(threshold=5, decay_per_s=1.0)
    counter.add(8, now_s=0.0)
    assert counter.level_at(0.0) == 8


@pytest.mark.parametrize(("threshold", "decay_per_s"), [(0, 1.0), (-1, 1.0), (10, -0.1)])
def test_counter_rejects_bad_parameters(threshold: float, decay_per_s: float) -> None:
    with pytest.raises(ValueError, match="counter"):
        Counter(threshold, decay_per_s)


# --- REST -------------------------------------------------------------------------------------


def test_rest_counter_per_key() -> None:
    limits = VenueLimits("starter")
    for _ in range(15):
        limits.charge_rest("k1", "Balance", 0.0)
    with pytest.raises(KrakenError) as info:
        limits.charge_rest("k1", "Balance", 0.0)
    assert info.value.code == REST_RATE_LIMIT
    assert limits.levels(0.0) == {"rest:k1": 15}
    limits.charge_rest("k2", "Balance", 0.0)  # another key, its own counter
    limits.charge_rest("k1", "Balance", 1 / 0.33)  # one call decayed away
    assert limits.rejections() == {"rest:k1": 1}


def test_rest_two_point_calls_and_order_entry() -> None:
    limits = VenueLimits("intermediate")
    for _ in range(9):
        limits.charge_rest("k", "Ledgers", 0.0)
    limits.charge_rest("k", "Balance", 0.0)
    for method in ("Ledgers", "QueryLedgers", "TradesHistory", "QueryTrades"):
        with pytest.raises(KrakenError):
            limits.charge_rest("k", method, 0.0)  # 19 + 2 > 20
    limits.charge_rest("k", "CancelAll", 0.0)
    assert limits.levels(0.0) == {"rest:k": 20}
    for _ in range(100):
        limits.charge_rest("k", "AddOrder", 0.0)
        limits.charge_rest("fresh", "CancelOrderBatch", 0.0)
    assert limits.levels(0.0) == {"rest:k": 20}


# --- trading counter and domain pool ----------------------------------------------------------


def _fill_to_refusal(limits: VenueLimits, account: str, pair: str, now_s: float) -> tuple[int, str]:
    """Charge 1 until refused; return how many were admitted and the refusal's code."""
    for admitted in range(10_000):
        try:
            limits.charge_trading(account, pair, 1, now_s)
        except KrakenError as error:
            return admitted, error.code
    raise AssertionError("never refused")


def test_per_account_cap_refuses_at_one_threshold() -> None:
    limits = VenueLimits("starter")
    limits.charge_trading("a", "XBT/USD", 60, 0.0)
    with pytest.raises(KrakenError) as info:
        limits.charge_trading("a", "XBT/USD", 1, 0.0)
    assert info.value.code == TRADING_RATE_LIMIT
    limits.charge_trading("a", "XBT/USD", 1, 1.0)  # decay 1/s
    limits.charge_trading("a", "ETH/USD", 60, 1.0)  # other pairs unaffected


def test_pool_refuses_when_accounts_together_exceed_five_times() -> None:
    limits = VenueLimits("starter")
    for account in "abcde":
        limits.charge_trading(account, "XBT/USD", 60, 0.0)
    with pytest.raises(KrakenError) as info:
        limits.charge_trading("f", "XBT/USD", 1, 0.0)
    assert info.value.code == DOMAIN_RATE_LIMIT
    assert limits.rejections() == {"domain:XBT/USD": 1}
    limits.charge_trading("f", "XBT/USD", 5, 1.0)  # pool decays 5/s
    with pytest.raises(KrakenError):
        limits.charge_trading("g", "XBT/USD", 1, 1.0)


def test_account_counter_is_checked_before_pool() -> None:
    limits = VenueLimits("starter", DomainSettings(multiplier=1))
    limits.charge_trading("a", "XBT/USD", 60, 0.0)
    with pytest.raises(KrakenError) as info:
        limits.charge_trading("a", "XBT/USD", 1, 0.0)
    assert info.value.code == TRADING_RATE_LIMIT
    assert limits.rejections() == {"trade:a:XBT/USD": 1}


def test_refusal_by_pool_leaves_every_scope_unchanged() -> None:
    limits = VenueLimits("starter")
    for account in "abcd":
        limits.charge_trading(account, "XBT/USD", 60, 0.0)
    limits.charge_trading("e", "XBT/USD", 50, 0.0)
    limits.charge_trading("f", "XBT/USD", 5, 0.0)
    before = limits.levels(0.0)
    with pytest.raises(KrakenError) as info:
        limits.charge_trading("f", "XBT/USD", 6, 0.0)  # fits f's own 5/60, not the pool 295/300
    assert info.value.code == DOMAIN_RATE_LIMIT
    with pytest.raises(KrakenError) as info:
        limits.charge_trading("new", "XBT/USD", 6, 0.0)
    assert info.value.code == DOMAIN_RATE_LIMIT
    assert limits.levels(0.0) == before
    assert "trade:new:XBT/USD" not in before


def test_refusal_by_account_leaves_pool_unchanged() -> None:
    limits = VenueLimits("pro")
    limits.charge_trading("a", "XBT/USD", 170, 0.0)
    with pytest.raises(KrakenError):
        limits.charge_trading("a", "XBT/USD", 11, 0.0)
    assert limits.levels(0.0) == {"trade:a:XBT/USD": 170, "domain:XBT/USD": 170}


def test_zero_cost_always_passes_and_negative_is_a_bug() -> None:
    limits = VenueLimits("starter", DomainSettings(multiplier=1))
    limits.charge_trading("a", "XBT/USD", 60, 0.0)
    limits.charge_trading("a", "XBT/USD", 0, 0.0)
    limits.charge_trading("b", "ETH/USD", trading_cost("cancel", None), 0.0)
    assert limits.levels(0.0) == {"trade:a:XBT/USD": 60, "domain:XBT/USD": 60}
    with pytest.raises(ValueError, match="cost"):
        limits.charge_trading("a", "XBT/USD", -1, 0.0)


_COMBOS = [(scope, cap) for scope in ("pair", "all") for cap in (True, False)]


@pytest.mark.parametrize(("scope", "cap"), _COMBOS)
def test_one_account_capacity_by_setting(scope: str, cap: bool) -> None:
    domain = DomainSettings(scope="pair" if scope == "pair" else "all", per_account_cap=cap)
    limits = VenueLimits("starter", domain)
    admitted, code = _fill_to_refusal(limits, "a", "XBT/USD", 0.0)
    assert (admitted, code) == ((60, TRADING_RATE_LIMIT) if cap else (300, DOMAIN_RATE_LIMIT))
    pool = "domain:XBT/USD" if scope == "pair" else "domain:*"
    expected = {pool: float(admitted)} | ({"trade:a:XBT/USD": 60.0} if cap else {})
    assert limits.levels(0.0) == expected


@pytest.mark.parametrize(("scope", "cap"), _COMBOS)
def test_pairs_share_a_pool_only_with_scope_all(scope: str, cap: bool) -> None:
    domain = DomainSettings(scope="pair" if scope == "pair" else "all", per_account_cap=cap)
    limits = VenueLimits("starter", domain)
    for account in "abcde":
        limits.charge_trading(account, "XBT/USD", 60, 0.0)
    if scope == "all":
        with pytest.raises(KrakenError) as info:
            limits.charge_trading("z", "ETH/USD", 1, 0.0)
        assert info.value.code == DOMAIN_RATE_LIMIT
        assert limits.rejections() == {"domain:*": 1}
    else:
        limits.charge_trading("z", "ETH/USD", 60, 0.0)
        assert limits.levels(0.0)["domain:ETH/USD"] == 60
        assert limits.rejections() == {}


@pytest.mark.parametrize(("scope", "cap"), _COMBOS)
def test_scope_names_by_setting(scope: str, cap: bool) -> None:
    domain = DomainSettings(scope="pair" if scope == "pair" else "all", per_account_cap=cap)
    limits = VenueLimits("pro", domain)
    limits.charge_trading("a", "XBT/USD", 3, 0.0)
    limits.charge_trading("b", "ETH/USD", 4, 0.0)
    pools = {"domain:XBT/USD": 3.0, "domain:ETH/USD": 4.0} if scope == "pair" else {"domain:*": 7.0}
    own = {"trade:a:XBT/USD": 3.0, "trade:b:ETH/USD": 4.0} if cap else {}
    assert limits.levels(0.0) == pools | own


def test_multiplier_sets_pool_threshold_and_decay() -> None:
    limits = VenueLimits("starter", DomainSettings(multiplier=3))
    for account in "abc":
        limits.charge_trading(account, "XBT/USD", 60, 0.0)
    with pytest.raises(KrakenError) as info:
        limits.charge_trading("d", "XBT/USD", 1, 0.0)
    assert info.value.code == DOMAIN_RATE_LIMIT
    with pytest.raises(KrakenError):
        limits.charge_trading("d", "XBT/USD", 4, 1.0)
    limits.charge_trading("d", "XBT/USD", 3, 1.0)  # the pool decays 3/s
    pool = next(info for info in limits.scope_info(1.0) if info.scope == "domain:XBT/USD")
    assert (pool.threshold, pool.decay_per_s, pool.level) == (180, 3.0, 180)


def test_default_pool_is_five_times_the_tier() -> None:
    limits = VenueLimits("intermediate")
    limits.charge_trading("a", "XBT/USD", 1, 0.0)
    assert limits.scope_info(0.0) == [
        ScopeInfo(scope="domain:XBT/USD", level=1, threshold=625, decay_per_s=5 * 2.34),
        ScopeInfo(scope="trade:a:XBT/USD", level=1, threshold=125, decay_per_s=2.34),
    ]


def test_domain_settings_defaults_and_validation() -> None:
    assert DomainSettings() == DomainSettings(multiplier=5, scope="pair", per_account_cap=True)
    with pytest.raises(ValueError, match="multiplier"):
        DomainSettings(multiplier=0)


# --- open orders, reporting, reset ------------------------------------------------------------


@pytest.mark.parametrize(("tier", "cap"), [("starter", 60), ("intermediate", 80), ("pro", 225)])
def test_open_order_cap(tier: Tier, cap: int) -> None:
    limits = VenueLimits(tier)
    limits.check_open_orders("a", "XBT/USD", cap - 1)
    with pytest.raises(KrakenError) as info:
        limits.check_open_orders("a", "XBT/USD", cap)
    assert info.value.code == ORDERS_LIMIT
    assert limits.rejections() == {"orders:a:XBT/USD": 1}


def test_rejections_and_levels_by_scope_name() -> None:
    limits = VenueLimits("starter")
    for _ in range(7):
        limits.charge_rest("k", "Ledgers", 0.0)
    for account in "abcde":
        limits.charge_trading(account, "XBT/USD", 60, 0.0)
    refused = [
        (REST_RATE_LIMIT, partial(limits.charge_rest, "k", "Ledgers", 0.0)),
        (TRADING_RATE_LIMIT, partial(limits.charge_trading, "a", "XBT/USD", 1, 0.0)),
        (DOMAIN_RATE_LIMIT, partial(limits.charge_trading, "f", "XBT/USD", 1, 0.0)),
        (DOMAIN_RATE_LIMIT, partial(limits.charge_trading, "g", "XBT/USD", 2, 0.0)),
    ]
    for code, call in refused:
        with pytest.raises(KrakenError) as info:
            call()
        assert info.value.code == code
    assert limits.rejections() == {"rest:k": 1, "trade:a:XBT/USD": 1, "domain:XBT/USD": 2}
    levels = limits.levels(10.0)
    assert levels == pytest.approx(
        {"rest:k": 14 - 3.3, "domain:XBT/USD": 300 - 50}
        | {f"trade:{account}:XBT/USD": 50 for account in "abcde"}
    )


def test_reset_forgets_everything() -> None:
    limits = VenueLimits("starter")
    limits.charge_trading("a", "XBT/USD", 60, 0.0)
    with pytest.raises(KrakenError):
        limits.charge_trading("a", "XBT/USD", 1, 0.0)
    limits.reset()
    assert limits.levels(0.0) == {}
    assert limits.rejections() == {}
    limits.charge_trading("a", "XBT/USD", 60, 0.0)


# --- property: no scope ever admits more than threshold + decay x elapsed ---------------------

_METHODS = ["Balance", "Ledgers", "AddOrder", "CancelAll"]
_steps = st.lists(
    st.tuples(
        st.booleans(),  # True: a trading charge; False: a REST call
        st.sampled_from("abc"),
        st.sampled_from(["XBT/USD", "ETH/USD"]),
        st.integers(0, 40),
        st.sampled_from(_METHODS),
        st.floats(0.0, 3.0),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(
    tier=st.sampled_from(["starter", "intermediate", "pro"]),
    multiplier=st.integers(1, 5),
    scope=st.sampled_from(["pair", "all"]),
    cap=st.booleans(),
    steps=_steps,
)
def test_admitted_total_never_exceeds_threshold_plus_decay(
    tier: Tier,
    multiplier: int,
    scope: str,
    cap: bool,
    steps: list[tuple[bool, str, str, int, str, float]],
) -> None:
    domain = DomainSettings(
        multiplier=multiplier, scope="pair" if scope == "pair" else "all", per_account_cap=cap
    )
    limits = VenueLimits(tier, domain)
    admitted: dict[str, list[tuple[float, float]]] = defaultdict(list)
    now_s = 0.0
    for trading, who, pair, cost, method, dt_s in steps:
        now_s += dt_s
        before = limits.levels(now_s)
        try:
            if trading:
                scopes = [f"trade:{who}:{pair}"] if cap else []
                scopes.append("domain:*" if scope == "all" else f"domain:{pair}")
                charge_cost = cost
                limits.charge_trading(who, pair, cost, now_s)
            else:
                scopes = [f"rest:{who}"]
                charge_cost = rest_cost(method)
                limits.charge_rest(who, method, now_s)
        except KrakenError:
            assert limits.levels(now_s) == before
            continue
        if charge_cost > 0:
            for name in scopes:
                admitted[name].append((now_s, charge_cost))
    info = {row.scope: row for row in limits.scope_info(now_s)}
    for name, events in admitted.items():
        threshold, decay_per_s = info[name].threshold, info[name].decay_per_s
        times = [t for t, _ in events]
        totals = [0.0, *accumulate(c for _, c in events)]
        for start_s in times:
            for end_s in times:
                if end_s < start_s:
                    continue
                total = totals[bisect_right(times, end_s)] - totals[bisect_left(times, start_s)]
                assert total <= threshold + decay_per_s * (end_s - start_s) + 1e-6, name

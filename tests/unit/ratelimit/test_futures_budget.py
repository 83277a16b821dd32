"""The futures budgets as the limiter's policy: one scope per futures key and budget, charged the
method's cost and nothing else; and the conservative bucket's promise, checked on the limiter's
own decision rule: whatever the timing, no window of Kraken's length ever holds more than
Kraken's budget at the venue, while the naive bucket (threshold = budget, decay = budget /
window) lets twice the budget through."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.config import LimitsConfig
from orchestrator.exchange.kraken.common.methods import BALANCE
from orchestrator.exchange.kraken.futures import methods as fm
from orchestrator.ratelimit.bucket import ScopeCharge, ScopeState, decide
from orchestrator.ratelimit.policy import (
    FUTURES_BUDGETS,
    Charge,
    Policy,
    Scope,
    VenueRequest,
    futures_scope,
)

LIMITS = LimitsConfig()
POLICY = Policy("intermediate", LIMITS)


def test_a_futures_request_is_charged_on_its_keys_futures_budget_only() -> None:
    charges = POLICY.charges_for(VenueRequest(method=fm.TRANSFER_SUBACCOUNT), account="m",
                                 key_id="k1")  # fmt: skip
    assert charges == [Charge(Scope("futures:k1", 250.0, 25.0), 10)]
    [history] = POLICY.charges_for(VenueRequest(method=fm.ACCOUNT_LOG), account="m", key_id="k1")
    assert history == Charge(Scope("futures:history:k1", 50.0, 50.0 / 600.0), 1)
    assert POLICY.charges_for(VenueRequest(method=fm.ACCOUNTS), account="m", key_id="k2") == [
        Charge(futures_scope("k2"), 2)
    ]
    assert POLICY.trading_cost_of(VenueRequest(method=fm.TRANSFER)) == 0
    assert VenueRequest(method=fm.TRANSFER).lane == "new_risk"
    spot = POLICY.charges_for(VenueRequest(method=BALANCE), account="m", key_id="k1")
    assert [c.scope.name for c in spot] == ["rest:k1"]  # spot is untouched


def test_every_futures_method_is_priced_from_the_cost_table() -> None:
    costs = {str(m): (m.cost, m.budget, m.acting) for m in fm.METHODS.values()}
    assert costs == {
        "GET accounts": (2, "derivatives", False),
        "GET subaccounts": (2, "derivatives", False),
        "GET trading-enabled": (2, "derivatives", False),
        "PUT trading-enabled": (2, "derivatives", True),
        "POST transfer": (10, "derivatives", True),
        "POST transfer/subaccount": (10, "derivatives", True),
        "GET account-log": (1, "history", False),
    }


def most_in_a_window(arrivals: list[tuple[float, float]], window_s: float) -> float:
    """The largest total cost arriving within any closed window of `window_s`."""
    times = sorted(arrivals)
    return max(
        (sum(c for t, c in times if start <= t <= start + window_s) for start, _ in times),
        default=0.0,
    )


def admit(scope: Scope, requests: list[tuple[float, int, float]]) -> list[tuple[float, float]]:
    """(arrival time, cost) of each request as the limiter's rule grants it: asked `gap_s` after
    the previous one, sent when its slot comes, arriving up to the transit allowance later."""
    state = ScopeState()
    now_s = 0.0
    arrivals: list[tuple[float, float]] = []
    for gap_s, cost, delay in requests:
        now_s += gap_s
        decision = decide(
            now_s,
            [ScopeCharge(scope.threshold, scope.decay_per_s, cost)],
            [state],
            risk_reducing=False,
            reserve_fraction=LIMITS.risk_reserve_fraction,
            max_wait_s=math.inf,
            transit_s=LIMITS.transit_allowance_s,
        )
        assert decision.granted
        [state] = decision.scopes
        arrivals.append((now_s + decision.wait_s + delay * LIMITS.transit_allowance_s, cost))
    return arrivals


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0.0, 1.0),  # seconds since the previous request was asked for
            st.sampled_from(sorted({m.cost for m in fm.METHODS.values()} | {25, 100})),
            st.floats(0.0, 1.0),  # its delay to the venue, as a fraction of the transit allowance
        ),
        max_size=150,
    )
)
def test_no_window_ever_holds_more_than_kraken_allows(
    requests: list[tuple[float, int, float]],
) -> None:
    budget, window_s = FUTURES_BUDGETS["derivatives"]
    arrivals = admit(futures_scope("k"), requests)
    assert most_in_a_window(arrivals, window_s) <= budget + 1e-9


def test_the_naive_bucket_lets_twice_the_budget_into_one_window() -> None:
    budget, window_s = FUTURES_BUDGETS["derivatives"]
    naive = Scope("naive", budget, budget / window_s)
    burst = [(0.0, 10, 0.0)] * 100
    arrivals = admit(naive, burst)
    assert most_in_a_window(arrivals, window_s) > 1.8 * budget
    conservative = admit(futures_scope("k"), burst)
    assert most_in_a_window(conservative, window_s) <= budget

"""Cancels while Redis cannot decide: the limiter's own rule on what this process last saw."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from orchestrator.ratelimit import bucket
from orchestrator.ratelimit.policy import Charge, Scope


@dataclass(slots=True)
class Seen:
    """What this process knows of the counters: from Redis's replies, and its own spending."""

    # The freshest `tat` per scope, on Redis's clock: floors for the script, so that scopes lost
    # with a Redis restart come back no emptier than this process knew them.
    tat_floor_s: dict[str, float] = field(default_factory=dict)
    names: set[str] = field(default_factory=set)  # the scopes Redis (or the venue) told us of


class LocalBudget:
    """Cancels while Redis cannot decide: `bucket.decide` (the script's own rule, risk-reducing
    lane) on this process's view of each counter, each charge at its real cost.

    A scope starts from the level this process last saw it at (its `tat` floor, decayed since)
    or, if it never saw it, from the highest level the limiter's invariant lets new risk leave it
    at: `threshold x (1 - reserve)` plus the transit allowance. Cancels may use the reserve above
    that, and no more. Reservations are kept (a cancel waiting for its slot holds it), so
    concurrent cancels queue. Pure: the caller passes the time, on Redis's clock.

    Only this process's spending is counted: other processes cancelling on the same counters
    during the outage are not seen (their new risk is refused like ours).
    """

    def __init__(self, reserve_fraction: float, transit_s: float) -> None:
        self.reserve_fraction = reserve_fraction
        self.transit_s = transit_s
        self._states: dict[str, bucket.ScopeState] = {}

    def _state(self, scope: Scope, now_s: float, seen: Seen) -> bucket.ScopeState:
        state = self._states.get(scope.name)
        if state is None:
            state = self._states[scope.name] = bucket.ScopeState()
            if scope.name not in seen.names:  # as full as new risk may have left it, from now on
                worst = scope.threshold * (1 - self.reserve_fraction)
                state.tat_s = now_s + worst / scope.decay_per_s + self.transit_s
        return state.floored(seen.tat_floor_s.get(scope.name, 0.0))

    def decide(
        self, charges: Sequence[Charge], now_s: float, max_wait_s: float, seen: Seen
    ) -> bucket.Decision:
        """Grant (booking every scope at the send time) or refuse with the wait."""
        decision = bucket.decide(
            now_s,
            [
                bucket.ScopeCharge(
                    c.scope.threshold, c.scope.decay_per_s, c.cost, uncapped=c.uncapped
                )
                for c in charges
            ],
            [self._state(c.scope, now_s, seen) for c in charges],
            risk_reducing=True,
            reserve_fraction=self.reserve_fraction,
            max_wait_s=max_wait_s,
            transit_s=self.transit_s,
        )
        if decision.granted:
            for charge, state in zip(charges, decision.scopes, strict=True):
                self._states[charge.scope.name] = state
        return decision

    def penalize(self, scope: Scope, now_s: float, cooldown_s: float, seen: Seen) -> None:
        """The venue said this counter is full."""
        state = self._state(scope, now_s, seen)
        self._states[scope.name] = bucket.penalize(
            state, scope.threshold, scope.decay_per_s, now_s, cooldown_s
        )

    def forget(self) -> None:
        """Redis answers again: it holds the truth (floored by what was spent here)."""
        self._states.clear()

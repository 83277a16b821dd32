"""What the limiter benchmark measures with, shared by its sections: the pool it is graded
against, the simulator's meter of admitted cost, the workers' log of grants, and the pure
arithmetic of the tables (budgets, steady state, fairness, medians), tested on its own.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Mapping, Sequence
from typing import Final

from benchmarks._limiter_peers import Counter
from orchestrator.config import LimitsConfig
from orchestrator.exchange.kraken.common.errors import RateLimitKind
from orchestrator.ratelimit.permits import Permit, PermitSource
from orchestrator.ratelimit.policy import TIERS, Policy, VenueRequest
from orchestrator.simulator.limits import VenueLimits

PAIR: Final = "XBT/USD"
TIER: Final = "intermediate"
LIMITS: Final = LimitsConfig()  # domain pool per pair, 5x, per-account cap, 10% reserve
ACCOUNT_THRESHOLD: Final = TIERS[TIER].trade_threshold  # 125
ACCOUNT_DECAY_PER_S: Final = TIERS[TIER].trade_decay_per_s  # 2.34
POOL_THRESHOLD: Final = LIMITS.domain_multiplier * ACCOUNT_THRESHOLD  # 625
POOL_DECAY_PER_S: Final = LIMITS.domain_multiplier * ACCOUNT_DECAY_PER_S  # 11.7
RESERVE: Final = LIMITS.risk_reserve_fraction
POOL: Final = Counter(POOL_THRESHOLD, POOL_DECAY_PER_S)
ACCOUNT: Final = Counter(ACCOUNT_THRESHOLD, ACCOUNT_DECAY_PER_S)
STEADY_FROM: Final = 1 / 3  # steady state: the last 2/3 of the window, the burst spent before

Event = tuple[float, str, float]  # (seconds into the run, account, cost) the venue admitted


def pool_budget(duration_s: float, *, reserve: float = 0.0) -> float:
    """Cost the pool can admit in `duration_s` from empty: burst plus decay (the burst less
    the reserve kept for cancels with `reserve`)."""
    return POOL_THRESHOLD * (1 - reserve) + POOL_DECAY_PER_S * duration_s


def account_cap(duration_s: float) -> float:
    """Cost one account's own counter can admit in `duration_s` from empty."""
    return ACCOUNT_THRESHOLD + ACCOUNT_DECAY_PER_S * duration_s


def steady_state(events: Sequence[Event], duration_s: float) -> float:
    """Cost admitted per second over the last 2/3 of the run, over the pool's decay: 1.0 is
    the whole pool once its burst is spent."""
    from_s = duration_s * STEADY_FROM
    late = sum(cost for t, _, cost in events if from_s <= t <= duration_s)
    return late / (duration_s - from_s) / POOL_DECAY_PER_S


def first_full_s(events: Sequence[Event], *, limit: float) -> float | None:
    """When the pool's level (the venue's decaying counter, replayed from what it admitted)
    first reached `limit`: the burst is spent from then on. None if it never did."""
    level, last_s = 0.0, 0.0
    for t, _, cost in sorted(events):
        level = max(0.0, level - (t - last_s) * POOL_DECAY_PER_S) + cost
        last_s = t
        if level >= limit:
            return t
    return None


def share_errors(admitted: Mapping[str, float], weights: Mapping[str, float]) -> list[float]:
    """|share / weight share - 1| of every weighted strategy, largest first (0 = exact)."""
    total, weight_sum = sum(admitted.values()), sum(weights.values())
    if total <= 0 or weight_sum <= 0:
        return [math.inf] * len(weights)
    errors = [
        abs((admitted.get(name, 0.0) / total) / (weight / weight_sum) - 1.0)
        for name, weight in weights.items()
    ]
    return sorted(errors, reverse=True)


def share_error_floor(total: float, weights: Mapping[str, float], cost: float = 1.0) -> float:
    """The least worst |share / weight share - 1| any split of `total` into whole requests of
    `cost` could reach (each strategy's fair take rounded to whole requests): below it, a
    fairness figure is not the limiter's, it is counting. A lower bound, so never flattering."""
    weight_sum = sum(weights.values())
    if total <= 0 or weight_sum <= 0:
        return math.inf
    worst = 0.0
    for weight in weights.values():
        fair_requests = total / cost * weight / weight_sum
        worst = max(worst, abs(round(fair_requests) - fair_requests) / fair_requests)
    return worst


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def median_index(values: Sequence[float]) -> int:
    """The index of the median run (the lower middle for an even count): the run to draw."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    return order[(len(order) - 1) // 2]


class PoolMeter:
    """Wraps the simulator's `charge_trading` to record the cost it admitted on the pair (a
    refused charge raises and records nothing): (time, account, cost) inside the window."""

    def __init__(self, limits: VenueLimits, pair: str) -> None:
        self.pair = pair
        self.window_s = (math.inf, -math.inf)
        self.events: list[Event] = []
        original = limits.charge_trading

        def metered(account: str, pair: str, cost: float, now_s: float) -> None:
            original(account, pair, cost, now_s)
            start_s, end_s = self.window_s
            if pair == self.pair and start_s <= now_s <= end_s:
                self.events.append((now_s - start_s, account, cost))

        setattr(limits, "charge_trading", metered)  # noqa: B010 - metering, the logic is untouched


class GrantLog:
    """The client's permit source, noting when each request on the pair was let through and
    the pool cost it carries: the figure's series, returned with the worker's stats. With a peer
    the source is `Unlimited`, so the note falls right after the peer's gate admitted it."""

    def __init__(self, permits: PermitSource, policy: Policy) -> None:
        self._permits = permits
        self._policy = policy
        self.grants: dict[str, list[tuple[float, float]]] = {}  # strategy -> (wall s, cost)

    async def acquire_for(
        self,
        request: VenueRequest,
        *,
        account: str,
        key_id: str,
        strategy: str | None = None,
        deadline_s: float = 5.0,
    ) -> Permit:
        permit = await self._permits.acquire_for(
            request, account=account, key_id=key_id, strategy=strategy, deadline_s=deadline_s
        )
        if strategy is not None and request.pair == PAIR:
            cost = self._policy.trading_cost_of(request)
            self.grants.setdefault(strategy, []).append((time.time(), cost))
        return permit

    async def feedback(self, permit: Permit, kind: RateLimitKind | None) -> None:
        await self._permits.feedback(permit, kind)

    def since(self, start_s: float) -> dict[str, list[tuple[float, float]]]:
        """The grants per strategy, in seconds from `start_s`."""
        return {s: [(t - start_s, c) for t, c in g] for s, g in self.grants.items()}

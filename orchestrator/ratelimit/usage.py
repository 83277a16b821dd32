"""What each strategy took of the domain pools lately, in this process: pure bookkeeping.

The limiter records every permit it grants (its cost on each `domain:` scope and how long the
caller waited); the status screen asks for the last `window_s`: each strategy's share of what the
pools granted, its mean and worst wait, and each pool's granted cost per second against its decay
rate (1.0 = the pool's whole sustained rate). One process sees its own permits only: a desk with
several processes reads the pool's level in Redis for the whole picture (`Limiter.level`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from orchestrator.ratelimit.policy import Charge, Scope

POOL_PREFIX = "domain:"
_TRIM_EVERY_S = 1.0  # the window is trimmed in steps this long: most permits trim nothing
NO_STRATEGY = ""  # permits asked without a strategy (reconciliation, the service's own calls)


class _Grant(NamedTuple):
    """One permit (a tuple: one is recorded per permit, on the limiter's hot path)."""

    at_s: float
    strategy: str
    charges: tuple[Charge, ...]
    waited_s: float


@dataclass(frozen=True, slots=True)
class StrategyUsage:
    strategy: str
    permits: int
    pool_cost: float  # cost units on the domain pools, in the window
    share: float  # of every pool cost granted in this process in the window (0..1)
    mean_wait_s: float
    max_wait_s: float


@dataclass(frozen=True, slots=True)
class PoolUsage:
    scope: Scope
    cost_per_s: float  # granted in the window, per second
    rate_ratio: float  # cost_per_s / decay_per_s: the share of the pool's sustained rate used


@dataclass(frozen=True, slots=True)
class UsageView:
    window_s: float
    strategies: dict[str, StrategyUsage]
    pools: dict[str, PoolUsage]


class LimiterUsage:
    """A window of recent grants. `record` is O(1) (amortized); `view` walks the window."""

    def __init__(self, window_s: float = 10.0, max_grants: int = 100_000) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self.window_s = window_s
        self._grants: deque[_Grant] = deque(maxlen=max_grants)
        self.pools: dict[str, Scope] = {}  # every pool scope ever charged, by name

    def record(
        self, strategy: str | None, charges: Sequence[Charge], waited_s: float, now_s: float
    ) -> None:
        """O(1): the permit's charges are kept as they are (the pools are read from them when
        they leave the window or are viewed); the window is trimmed a second at a time."""
        grants = self._grants
        kept = charges if isinstance(charges, tuple) else tuple(charges)
        grants.append(_Grant(now_s, strategy or NO_STRATEGY, kept, waited_s))
        if grants[0].at_s < now_s - self.window_s - _TRIM_EVERY_S:
            self._prune(now_s)

    def _prune(self, now_s: float) -> None:
        horizon_s = now_s - self.window_s
        grants = self._grants
        while grants and grants[0].at_s < horizon_s:
            self._note_pools(grants.popleft())

    def _note_pools(self, grant: _Grant) -> None:
        for charge in grant.charges:
            if charge.scope.name.startswith(POOL_PREFIX):
                self.pools.setdefault(charge.scope.name, charge.scope)

    def view(self, now_s: float) -> UsageView:
        self._prune(now_s)
        permits: dict[str, int] = {}
        cost: dict[str, float] = {}
        wait_sum_s: dict[str, float] = {}
        wait_max_s: dict[str, float] = {}
        pool_cost: dict[str, float] = {}
        for grant in self._grants:
            name = grant.strategy
            permits[name] = permits.get(name, 0) + 1
            wait_sum_s[name] = wait_sum_s.get(name, 0.0) + grant.waited_s
            wait_max_s[name] = max(wait_max_s.get(name, 0.0), grant.waited_s)
            self._note_pools(grant)
            for charge in grant.charges:
                pool = charge.scope.name
                if pool.startswith(POOL_PREFIX):
                    cost[name] = cost.get(name, 0.0) + charge.cost
                    pool_cost[pool] = pool_cost.get(pool, 0.0) + charge.cost
        total = sum(pool_cost.values())
        strategies = {
            name: StrategyUsage(
                strategy=name,
                permits=n,
                pool_cost=cost.get(name, 0.0),
                share=cost.get(name, 0.0) / total if total else 0.0,
                mean_wait_s=wait_sum_s[name] / n,
                max_wait_s=wait_max_s[name],
            )
            for name, n in permits.items()
        }
        pools = {}
        for name, scope in self.pools.items():
            per_s = pool_cost.get(name, 0.0) / self.window_s
            pools[name] = PoolUsage(scope, per_s, per_s / scope.decay_per_s)
        return UsageView(self.window_s, strategies, pools)

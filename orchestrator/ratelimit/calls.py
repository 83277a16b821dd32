"""The keys and arguments of `lua/acquire.lua` for one limiter's requests (`wire.py` is the
format; this decides what each request sends).

It runs once per permit, so what repeats from request to request is formatted once and looked up
after: a charge's entry but for its floors (by scope, cost and cap), and a request's keys and
argument (by lane, deadline, strategy, pool and epoch). Formatting a float costs about as much as
a dictionary lookup of the whole string; the caches are bounded and forgotten when the weights
change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Final

from orchestrator.config import LimitsConfig
from orchestrator.ratelimit.bucket import share_phase
from orchestrator.ratelimit.epoch import EpochGuard
from orchestrator.ratelimit.permits import KIND_PREFIX
from orchestrator.ratelimit.policy import Charge, Lane
from orchestrator.ratelimit.scripts import now_arg
from orchestrator.ratelimit.wire import (
    NO_STRATEGY,
    request_arg,
    scope_entry,
    scope_entry_head,
    scope_prefix,
    settings_arg,
)
from orchestrator.store.keys import Keys

_FORMATTED_MAX: Final = 4096  # formatted arguments kept; past it they are formatted afresh

_RequestKey = tuple[str, float, str | None, str, str]


class AcquireCalls:
    def __init__(
        self,
        keys: Keys,
        limits: LimitsConfig,
        active_window_s: float,
        script_time: Callable[[], float] | None,
    ) -> None:
        """`script_time` is for tests only: the script then gets its time instead of Redis
        TIME."""
        self.keys = keys
        self.state_key = keys.limiter_state()
        self._settings = settings_arg(
            limits.risk_reserve_fraction, limits.transit_allowance_s, active_window_s
        )
        self._script_time = script_time
        self._weights: Mapping[str, float] = {}
        self._opening_weights: Mapping[str, float] = {}
        self._heads: dict[tuple[str, float, bool], tuple[str, bool]] = {}
        self._requests: dict[_RequestKey, tuple[list[str], str]] = {}

    def set_weights(
        self, weights: Mapping[str, float], opening_weights: Mapping[str, float]
    ) -> None:
        """The fair-share weights in force (capped) and each pool's configured total."""
        self._weights = dict(weights)
        self._opening_weights = dict(opening_weights)
        self._requests.clear()

    def build(
        self,
        charges: Sequence[Charge],
        lane: Lane,
        max_wait_s: float,
        strategy: str | None,
        *,
        epoch: EpochGuard,
        floors: Mapping[str, float],
    ) -> tuple[list[str], list[str]]:
        """KEYS and ARGV for one request in the epoch `epoch` holds; `floors`: the freshest tat
        this process knows of each scope."""
        entries: list[str] = []
        pool_name = ""
        lost = epoch.lost_s > 0
        for charge in charges:
            scope = charge.scope
            head, is_pool = self._head(charge)
            if is_pool and not pool_name:
                pool_name = scope.name
            # After a loss, a scope absent from Redis is full since the loss until it decays.
            missing = epoch.missing_tat(scope, epoch.now_s(), lane) if lost else 0.0
            entries.append(scope_entry(head, floors.get(scope.name, 0.0), missing))
        keys, request = self._request(lane, max_wait_s, strategy, pool_name, epoch.id)
        return keys, [now_arg(self._script_time), request, "|".join(entries)]

    def _head(self, charge: Charge) -> tuple[str, bool]:
        """A charge's entry up to its floors, and whether its scope is a domain pool (the first
        call for a scope also checks its name)."""
        scope = charge.scope
        key = scope.name, charge.cost, charge.uncapped
        known = self._heads.get(key)
        if known is None:
            self.keys.limiter_scope_field(scope.name)  # refuses a name that is no key part
            is_pool = scope.name.startswith(KIND_PREFIX["domain"])
            prefix = scope_prefix(scope.name, scope.threshold, scope.decay_per_s)
            known = scope_entry_head(prefix, float(charge.cost), is_pool, charge.uncapped), is_pool
            if len(self._heads) >= _FORMATTED_MAX:
                self._heads.clear()
            self._heads[key] = known
        return known

    def _request(
        self, lane: Lane, max_wait_s: float, strategy: str | None, pool_name: str, epoch_id: str
    ) -> tuple[list[str], str]:
        """The keys and the request argument (a fair share only for a weighted strategy on a
        domain pool)."""
        key = lane, max_wait_s, strategy, pool_name, epoch_id
        known = self._requests.get(key)
        if known is None:
            weight = self._weights.get(strategy or "", 0.0)
            fair = strategy is not None and weight > 0 and bool(pool_name)
            request = request_arg(
                risk_reducing=lane == "risk_reducing",
                max_wait_s=max_wait_s,
                epoch_id=epoch_id,
                strategy=strategy if fair and strategy is not None else NO_STRATEGY,
                weight=weight if fair else 0.0,
                opening_weight=self._opening_weights.get(pool_name, 0.0) if fair else 0.0,
                phase=share_phase(strategy) if fair and strategy is not None else 0.0,
                settings=self._settings,
            )
            keys = [self.state_key]
            if fair:
                keys.append(self.keys.limiter_active(pool_name))
            if len(self._requests) >= _FORMATTED_MAX:
                self._requests.clear()
            known = self._requests[key] = keys, request
        return known

"""The keys and arguments of `lua/acquire.lua` for one limiter's requests (`wire.py` is the
format; this decides what each request sends).

It runs once per permit, so what repeats from request to request is packed once and looked up
after: a charge's numbers but for its floors, with its field (by scope, cost and cap), and a
request's keys and numbers (by lane, deadline, strategy and pool). The caches are bounded and
forgotten when the weights change.
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
from orchestrator.ratelimit.wire import NO_EPOCH, NO_STRATEGY, request_arg, scope_head, scope_tail
from orchestrator.store.keys import Keys

_PACKED_MAX: Final = 4096  # packed arguments kept; past it they are packed afresh

_RequestKey = tuple[str, float, str | None, str]
_Request = tuple[list[str], bytes, str]  # keys, the request's numbers, the strategy argument


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
        self._reserve_fraction = limits.risk_reserve_fraction
        self._transit_s = limits.transit_allowance_s
        self._window_s = active_window_s
        self._script_time = script_time
        self._weights: Mapping[str, float] = {}
        self._opening_weights: Mapping[str, float] = {}
        self._heads: dict[tuple[str, float, bool], tuple[bytes, str, bool]] = {}
        self._requests: dict[_RequestKey, _Request] = {}

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
    ) -> tuple[list[str], list[str | bytes]]:
        """KEYS and ARGV for one request in the epoch `epoch` holds; `floors`: the freshest tat
        this process knows of each scope."""
        numbers: list[bytes] = []
        args: list[str | bytes] = []  # the scopes' fields; the arguments before them go first
        pool_name = ""
        lost = epoch.lost_s > 0
        for charge in charges:
            scope = charge.scope
            head, field, is_pool = self._head(charge)
            if is_pool and not pool_name:
                pool_name = scope.name
            # After a loss, a scope absent from Redis is full since the loss until it decays.
            missing = epoch.missing_tat(scope, epoch.now_s(), lane) if lost else 0.0
            numbers += head, scope_tail(floors.get(scope.name, 0.0), missing)
            args.append(field)
        keys, request, strategy_arg = self._request(lane, max_wait_s, strategy, pool_name)
        now = now_arg(self._script_time)
        args[:0] = now, epoch.id or NO_EPOCH, strategy_arg, request, b"".join(numbers)
        return keys, args

    def _head(self, charge: Charge) -> tuple[bytes, str, bool]:
        """A charge's numbers up to its floors, its counter's field, and whether its scope is a
        domain pool (the first call for a scope also checks its name)."""
        scope = charge.scope
        key = scope.name, charge.cost, charge.uncapped
        known = self._heads.get(key)
        if known is None:
            field = self.keys.limiter_scope_field(scope.name)  # refuses a name that is no key part
            is_pool = scope.name.startswith(KIND_PREFIX["domain"])
            head = scope_head(scope.threshold, scope.decay_per_s, float(charge.cost), is_pool,
                              charge.uncapped)  # fmt: skip
            if len(self._heads) >= _PACKED_MAX:
                self._heads.clear()
            known = self._heads[key] = head, field, is_pool
        return known

    def _request(
        self, lane: Lane, max_wait_s: float, strategy: str | None, pool_name: str
    ) -> _Request:
        """The keys, the request's numbers and the strategy argument (a fair share only for a
        weighted strategy on a domain pool)."""
        key = lane, max_wait_s, strategy, pool_name
        known = self._requests.get(key)
        if known is None:
            weight = self._weights.get(strategy or "", 0.0)
            fair = strategy is not None and weight > 0 and bool(pool_name)
            request = request_arg(
                risk_reducing=lane == "risk_reducing",
                max_wait_s=max_wait_s,
                weight=weight if fair else 0.0,
                opening_weight=self._opening_weights.get(pool_name, 0.0) if fair else 0.0,
                phase=share_phase(strategy) if fair and strategy is not None else 0.0,
                reserve_fraction=self._reserve_fraction,
                transit_s=self._transit_s,
                window_s=self._window_s,
            )
            keys = [self.state_key]
            if fair:
                keys.append(self.keys.limiter_active(pool_name))
            if len(self._requests) >= _PACKED_MAX:
                self._requests.clear()
            strategy_arg = strategy if fair and strategy is not None else NO_STRATEGY
            known = self._requests[key] = keys, request, strategy_arg
        return known

"""Kraken's rate limits as the venue enforces them: REST counter, trading counter, domain pool.

    limits = VenueLimits("pro", DomainSettings(scope="pair"))
    limits.charge_rest("key-1", "Balance", now_s)                            # KrakenError when over
    limits.charge_trading("sub-1", "XBT/USD", trading_cost("cancel", 3.0), now_s)

Facts and our Decisions are in `docs/kraken/rate-limits.md`; this module is written from them and
not from `orchestrator.ratelimit`, so that the client limiter and the venue agreeing means
something. Pure: no clock is read, every call takes `now_s` (seconds on the one shared clock).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated, Final, Literal, NoReturn

import msgspec
from msgspec import Meta

from orchestrator.simulator.errors import (
    DOMAIN_RATE_LIMIT,
    ORDERS_LIMIT,
    REST_RATE_LIMIT,
    TRADING_RATE_LIMIT,
    KrakenError,
)

Tier = Literal["starter", "intermediate", "pro"]
TradingAction = Literal["add", "amend", "edit", "cancel"]
TradingListener = Callable[[str, str, float, float], None]
"""(account, pair wsname, level after the charge, now_s): the account's own counter moved."""

# Float decay (0.33, 2.34 per s) leaves residues like 1e-15; an exact fit must not be refused.
_EPSILON: Final = 1e-9


@dataclass(frozen=True, slots=True)
class TierLimits:
    rest_max: float
    rest_decay_per_s: float
    trade_threshold: float
    trade_decay_per_s: float
    max_open_orders_per_pair: int


TIERS: Final[Mapping[Tier, TierLimits]] = MappingProxyType(
    {
        "starter": TierLimits(
            rest_max=15,
            rest_decay_per_s=0.33,
            trade_threshold=60,
            trade_decay_per_s=1.0,
            max_open_orders_per_pair=60,
        ),
        "intermediate": TierLimits(
            rest_max=20,
            rest_decay_per_s=0.5,
            trade_threshold=125,
            trade_decay_per_s=2.34,
            max_open_orders_per_pair=80,
        ),
        "pro": TierLimits(
            rest_max=20,
            rest_decay_per_s=1.0,
            trade_threshold=180,
            trade_decay_per_s=3.75,
            max_open_orders_per_pair=225,
        ),
    }
)


class DomainSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The Domain Rate Limit Decision; the client limiter must be given the same values."""

    multiplier: Annotated[int, Meta(ge=1)] = 5
    scope: Literal["pair", "all"] = "pair"
    per_account_cap: bool = True

    def __post_init__(self) -> None:
        if self.multiplier < 1:
            raise ValueError(f"domain multiplier must be >= 1, got {self.multiplier}")


class ScopeInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One counter as the admin endpoint shows it."""

    scope: str
    level: float
    threshold: float
    decay_per_s: float


class Counter:
    """Kraken's counter: each request adds its cost, the level decays linearly, never below 0.

    Time that runs backwards (a `now_s` before the last one seen) decays nothing.
    """

    __slots__ = ("_last_s", "_level", "decay_per_s", "threshold")

    def __init__(self, threshold: float, decay_per_s: float) -> None:
        if threshold <= 0 or decay_per_s < 0:
            raise ValueError(f"bad counter: threshold={threshold}, decay_per_s={decay_per_s}")
        self.threshold = threshold
        self.decay_per_s = decay_per_s
        self._level = 0.0
        self._last_s = -math.inf

    def level_at(self, now_s: float) -> float:
        if self._level == 0.0:
            return 0.0
        elapsed_s = max(0.0, now_s - self._last_s)
        return max(0.0, self._level - self.decay_per_s * elapsed_s)

    def fits(self, cost: float, now_s: float) -> bool:
        return self.level_at(now_s) + cost <= self.threshold + _EPSILON

    def wait_s(self, cost: float, now_s: float) -> float:
        """Seconds until `cost` fits; `inf` when it never will (cost over threshold, no decay)."""
        if self.fits(cost, now_s):
            return 0.0
        if cost > self.threshold + _EPSILON or self.decay_per_s == 0:
            return math.inf
        return (self.level_at(now_s) + cost - self.threshold) / self.decay_per_s

    def add(self, cost: float, now_s: float) -> None:
        self._set(self.level_at(now_s) + cost, now_s)

    def fill(self, now_s: float) -> None:
        self._set(self.threshold, now_s)

    def _set(self, level: float, now_s: float) -> None:
        self._level = level
        self._last_s = max(self._last_s, now_s)


# Age part of a trading transaction: column i holds ages in [_AGE_BOUNDS_S[i-1], _AGE_BOUNDS_S[i]).
_AGE_BOUNDS_S: Final = (5.0, 10.0, 15.0, 45.0, 90.0, 300.0)
_AGE_COSTS: Final[Mapping[TradingAction, tuple[int, ...]]] = MappingProxyType(
    {
        "add": (0, 0, 0, 0, 0, 0, 0),
        "amend": (3, 2, 1, 0, 0, 0, 0),
        "edit": (6, 5, 4, 2, 1, 0, 0),
        "cancel": (8, 6, 5, 4, 2, 1, 0),
    }
)
_FIXED_COSTS: Final[Mapping[TradingAction, int]] = MappingProxyType(
    {"add": 1, "amend": 1, "edit": 1, "cancel": 0}
)

# Charged on the trading counter, not the REST one.
ORDER_ENTRY_METHODS: Final = frozenset(
    {"AddOrder", "AddOrderBatch", "AmendOrder", "EditOrder", "CancelOrder", "CancelOrderBatch"}
)
HISTORY_METHODS: Final = frozenset({"Ledgers", "QueryLedgers", "TradesHistory", "QueryTrades"})


def fixed_trading_cost(action: TradingAction) -> int:
    """The part charged on receipt, even when the request then fails validation."""
    return _FIXED_COSTS[action]


def _age_cost(action: TradingAction, age_s: float | None) -> int:
    if age_s is None:  # the order never rested (IOC, market): no age part (Decision)
        return 0
    if age_s < 0:
        raise ValueError(f"order age must be >= 0, got {age_s}")
    return _AGE_COSTS[action][bisect_right(_AGE_BOUNDS_S, age_s)]


def trading_cost(action: TradingAction, age_s: float | None) -> int:
    """Fixed plus age part; `age_s` is seconds since the order was placed or last amended."""
    return fixed_trading_cost(action) + _age_cost(action, age_s)


def batch_add_cost(n_orders: int) -> int:
    """AddOrderBatch: n/2, rounded up (Decision)."""
    if n_orders < 0:
        raise ValueError(f"batch size must be >= 0, got {n_orders}")
    return (n_orders + 1) // 2


def batch_cancel_cost(ages_s: Sequence[float | None]) -> int:
    """CancelOrderBatch, and the orders CancelAll cancels: each order's cancel cost by its age."""
    return sum(trading_cost("cancel", age_s) for age_s in ages_s)


def rest_cost(method: str) -> int:
    """REST counter cost; CancelAll and CancelAllOrdersAfter cost 1 like any call (Decision)."""
    if method in ORDER_ENTRY_METHODS:
        return 0
    if method in HISTORY_METHODS:
        return 2
    return 1


_DEFAULT_DOMAIN: Final = DomainSettings()


class VenueLimits:
    """Every counter of one domain (a master account and its sub-accounts).

    REST counter per API key; trading counter per (account, pair) when `per_account_cap`; the
    domain pool, at multiplier x the tier's threshold and decay, per pair (scope "pair") or one
    for all pairs (scope "all"); the open-order cap per (account, pair). Scope names:
    `rest:<key>`, `trade:<account>:<pair>`, `domain:<pair>` or `domain:*`, `orders:<account>:<pair>`
    (the last appears only in `rejections()`: it has no level).
    """

    def __init__(self, tier: Tier, domain: DomainSettings = _DEFAULT_DOMAIN) -> None:
        self.tier: Final = tier
        self.limits: Final = TIERS[tier]
        self.domain: Final = domain
        self._counters: dict[str, Counter] = {}
        self._rejections: dict[str, int] = {}
        # Told after each charge of an account's own `trade:` counter (WS `ratecounter`).
        self.trading_listeners: list[TradingListener] = []

    def charge_rest(self, key_id: str, method: str, now_s: float) -> None:
        """Take the method's cost from the key's counter; refuse with nothing charged if over."""
        cost = rest_cost(method)
        if cost == 0:
            return
        scope = f"rest:{key_id}"
        counter = self._counter(scope, self.limits.rest_max, self.limits.rest_decay_per_s)
        if not counter.fits(cost, now_s):
            self._refuse(scope, REST_RATE_LIMIT)
        self._take(scope, counter, cost, now_s)

    def charge_trading(self, account: str, pair: str, cost: float, now_s: float) -> None:
        """Take `cost` from every scope that applies, or from none.

        The account's own counter is checked first, so an account over its 1x cap hears
        `EOrder:Rate limit exceeded` even when the pool is full too.
        """
        if cost < 0:
            raise ValueError(f"cost must be >= 0, got {cost}")
        if cost == 0:
            return
        checks = self._trading_scopes(account, pair)
        for scope, counter, code in checks:
            if not counter.fits(cost, now_s):
                self._refuse(scope, code)
        for scope, counter, _ in checks:
            self._take(scope, counter, cost, now_s)

    def force_charge_trading(self, account: str, pair: str, cost: float, now_s: float) -> None:
        """Take `cost` from every scope even past its threshold (CancelAll's cancel costs)."""
        if cost <= 0:
            return
        for scope, counter, _ in self._trading_scopes(account, pair):
            self._take(scope, counter, cost, now_s)

    def _trading_scopes(self, account: str, pair: str) -> list[tuple[str, Counter, str]]:
        """The counters one trading request on `pair` touches, each with its refusal code."""
        checks: list[tuple[str, Counter, str]] = []
        if self.domain.per_account_cap:
            scope = f"trade:{account}:{pair}"
            counter = self._counter(
                scope, self.limits.trade_threshold, self.limits.trade_decay_per_s
            )
            checks.append((scope, counter, TRADING_RATE_LIMIT))
        pool = self._domain_scope(pair)
        multiplier = self.domain.multiplier
        counter = self._counter(
            pool,
            multiplier * self.limits.trade_threshold,
            multiplier * self.limits.trade_decay_per_s,
        )
        checks.append((pool, counter, DOMAIN_RATE_LIMIT))
        return checks

    def check_open_orders(self, account: str, pair: str, open_now: int) -> None:
        """Refuse a new resting order when the account already has the tier's cap on the pair."""
        if open_now >= self.limits.max_open_orders_per_pair:
            self._refuse(f"orders:{account}:{pair}", ORDERS_LIMIT)

    def rejections(self) -> dict[str, int]:
        return dict(self._rejections)

    def levels(self, now_s: float) -> dict[str, float]:
        return {scope: counter.level_at(now_s) for scope, counter in self._counters.items()}

    def scope_info(self, now_s: float) -> list[ScopeInfo]:
        return [
            ScopeInfo(
                scope=scope,
                level=counter.level_at(now_s),
                threshold=counter.threshold,
                decay_per_s=counter.decay_per_s,
            )
            for scope, counter in sorted(self._counters.items())
        ]

    def reset(self) -> None:
        self._counters.clear()
        self._rejections.clear()

    def _domain_scope(self, pair: str) -> str:
        return "domain:*" if self.domain.scope == "all" else f"domain:{pair}"

    def _counter(self, scope: str, threshold: float, decay_per_s: float) -> Counter:
        """The scope's counter; a new one is kept only once it takes a cost (see `_take`)."""
        return self._counters.get(scope) or Counter(threshold, decay_per_s)

    def _take(self, scope: str, counter: Counter, cost: float, now_s: float) -> None:
        counter.add(cost, now_s)
        self._counters[scope] = counter
        if self.trading_listeners and scope.startswith("trade:"):
            account, _, pair = scope.removeprefix("trade:").rpartition(":")
            level = counter.level_at(now_s)
            for listener in self.trading_listeners:
                listener(account, pair, level, now_s)

    def _refuse(self, scope: str, code: str) -> NoReturn:
        self._rejections[scope] = self._rejections.get(scope, 0) + 1
        raise KrakenError(code, scope)

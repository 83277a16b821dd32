"""Kraken's rate-limit tables and which counters each venue request touches. Pure.

Facts and Decisions: `docs/kraken/rate-limits.md`. A request is charged on one or more *scopes*,
each a Kraken counter (threshold, linear decay per second):
- `rest:<key id>`: the REST counter of one API key (every private call except order entry);
- `trade:<account>:<pair>`: one account's trading counter for a pair (when `per_account_cap`);
- `domain:<pair>` (or `domain:*` with `domain_scope = "all"`): the Domain Rate Limit pool shared
  by the master and all its sub-accounts, `domain_multiplier` times the tier's threshold and decay;
- `futures:<key id>`, `futures:history:<key id>`: the budgets of one futures key (last section).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

import msgspec

from orchestrator.config import LimitsConfig, Tier
from orchestrator.exchange.kraken.common.methods import Lane, Method
from orchestrator.exchange.kraken.futures.methods import Budget, FuturesMethod

__all__ = ["Lane", "Policy", "Scope", "VenueRequest"]

TradingAction = Literal["add", "amend", "edit", "cancel"]


@dataclass(frozen=True, slots=True)
class TierTable:
    rest_max: float
    rest_decay_per_s: float
    trade_threshold: float
    trade_decay_per_s: float
    max_open_orders_per_pair: int


TIERS: Final[Mapping[Tier, TierTable]] = MappingProxyType(
    {
        "starter": TierTable(15, 0.33, 60, 1.0, 60),
        "intermediate": TierTable(20, 0.5, 125, 2.34, 80),
        "pro": TierTable(20, 1.0, 180, 3.75, 225),
    }
)

# Age brackets (upper bounds, seconds) and the extra cost in each; the last is ">= 300 s".
_AGE_BOUNDS_S: Final = (5.0, 10.0, 15.0, 45.0, 90.0, 300.0)
_FIXED: Final[Mapping[TradingAction, int]] = MappingProxyType(
    {"add": 1, "amend": 1, "edit": 1, "cancel": 0}
)
_BY_AGE: Final[Mapping[TradingAction, tuple[int, ...]]] = MappingProxyType(
    {
        "add": (0, 0, 0, 0, 0, 0, 0),
        "amend": (3, 2, 1, 0, 0, 0, 0),
        "edit": (6, 5, 4, 2, 1, 0, 0),
        "cancel": (8, 6, 5, 4, 2, 1, 0),
    }
)


def trading_cost(action: TradingAction, age_s: float | None) -> int:
    """Fixed part + the part by the order's age (since placed or last amended).

    `age_s=None`: the order never rested (IOC, market): no age part (Decision).
    """
    fixed = _FIXED[action]
    if age_s is None:
        return fixed
    if age_s < 0:
        raise ValueError(f"age_s must be >= 0, got {age_s}")
    bracket = next(
        (i for i, bound in enumerate(_AGE_BOUNDS_S) if age_s < bound), len(_AGE_BOUNDS_S)
    )
    return fixed + _BY_AGE[action][bracket]


def batch_add_cost(n_orders: int) -> int:
    """AddOrderBatch: n/2, rounded up (Decision)."""
    return math.ceil(n_orders / 2)


class Scope(msgspec.Struct, frozen=True):
    """One counter: its name (a Redis key suffix), threshold and decay per second."""

    name: str
    threshold: float
    decay_per_s: float


class Charge(msgspec.Struct, frozen=True):
    scope: Scope
    cost: float
    uncapped: bool = False  # the venue takes it past the threshold (CancelAll's cancel costs)


class VenueRequest(msgspec.Struct, frozen=True, kw_only=True):
    """What the limiter needs to know of one request to the venue.

    `method` is the row of Kraken's method table (WS trading uses the same rows with
    `via_ws=True`, which skips the REST counter). `pair` is the instrument's `wsname`, the one
    name every counter of a pair goes by. `order_ages_s` are, for cancels and amends, the ages of
    the orders touched since they were placed or last amended (None for orders that never
    rested); for CancelAll, the `(pair, age)` of every open order it will cancel goes in
    `cancel_all`. A futures request carries a row of the futures table (futures/methods.py)
    and nothing else: it is charged on its key's futures budget (the last section below).
    `for_risk_reducing`: a query made to settle a cancel (its reconciliation) rides the cancel's
    lane, so it is never refused as new risk (while Redis is down, say).
    """

    method: Method | FuturesMethod
    pair: str | None = None
    order_ages_s: tuple[float | None, ...] = ()
    batch_size: int = 0
    cancel_all: tuple[tuple[str, float | None], ...] = ()
    via_ws: bool = False
    for_risk_reducing: bool = False

    @property
    def lane(self) -> Lane:
        return "risk_reducing" if self.for_risk_reducing else self.method.lane


class Policy:
    """The scopes and costs of requests for one domain (tier + Decisions from config)."""

    def __init__(self, tier: Tier, limits: LimitsConfig) -> None:
        self.table = TIERS[tier]
        self.limits = limits

    def rest_scope(self, key_id: str) -> Scope:
        return Scope(f"rest:{key_id}", self.table.rest_max, self.table.rest_decay_per_s)

    def trade_scope(self, account: str, pair: str) -> Scope:
        return Scope(
            f"trade:{account}:{pair}", self.table.trade_threshold, self.table.trade_decay_per_s
        )

    def domain_scope(self, pair: str) -> Scope:
        k = self.limits.domain_multiplier
        name = "domain:*" if self.limits.domain_scope == "all" else f"domain:{pair}"
        return Scope(name, k * self.table.trade_threshold, k * self.table.trade_decay_per_s)

    def _trading(
        self, account: str, pair: str, cost: float, *, uncapped: bool = False
    ) -> list[Charge]:
        charges = [Charge(self.domain_scope(pair), cost, uncapped)]
        if self.limits.per_account_cap:
            charges.insert(0, Charge(self.trade_scope(account, pair), cost, uncapped))
        return charges

    def trading_cost_of(self, request: VenueRequest) -> float:
        """The request's cost on the trading counter of its pair."""
        if isinstance(request.method, FuturesMethod):
            return 0
        ages = request.order_ages_s
        match request.method.trading:
            case "add":
                return trading_cost("add", None)
            case "batch_add":
                return batch_add_cost(request.batch_size)
            case "amend":
                return trading_cost("amend", ages[0] if ages else 0.0)
            case "edit":
                return trading_cost("edit", ages[0] if ages else 0.0)
            case "cancel" | "batch_cancel":
                return sum(trading_cost("cancel", age) for age in (ages or (0.0,)))
            case _:
                return 0

    def charges_for(self, request: VenueRequest, *, account: str, key_id: str) -> list[Charge]:
        """Every counter the request touches, with its cost there (zero costs left out)."""
        charges: list[Charge] = []
        method = request.method
        if isinstance(method, FuturesMethod):
            return futures_charges(method, key_id=key_id)
        if not request.via_ws and method.rest_cost:
            charges.append(Charge(self.rest_scope(key_id), method.rest_cost))
        if method.trading == "cancel_all":
            per_pair: dict[str, float] = {}
            for pair, age in request.cancel_all:
                per_pair[pair] = per_pair.get(pair, 0) + trading_cost("cancel", age)
            # The venue takes a CancelAll at any level, charging past the threshold (Decision,
            # docs/kraken/rate-limits.md): it goes at once, and the counters book it in full.
            for pair, cost in sorted(per_pair.items()):
                if cost:
                    charges.extend(self._trading(account, pair, cost, uncapped=True))
        elif method.trading != "none":
            if request.pair is None:
                raise ValueError(f"{method} needs a pair")
            cost = self.trading_cost_of(request)
            if cost:
                charges.extend(self._trading(account, request.pair, cost))
        return _merge(charges)


def _merge(charges: Sequence[Charge]) -> list[Charge]:
    """One charge per scope (a script must see each key once)."""
    merged: dict[str, Charge] = {}
    for charge in charges:
        seen = merged.get(charge.scope.name)
        merged[charge.scope.name] = (
            charge
            if seen is None
            else Charge(charge.scope, seen.cost + charge.cost, seen.uncapped and charge.uncapped)
        )
    return list(merged.values())


# --- Kraken futures: the budgets of a Derivatives API key ----------------------------------------
# Kraken charges each futures key, apart from every spot counter, 500 cost units per 10 s for the
# `/derivatives` endpoints and 100 tokens per 10 minutes for `/api/history` (docs/kraken/rest.md
# section 5.4). It does not say whether a budget is a token bucket, a fixed window or a sliding
# one, so we keep to the strictest reading: no window of that length, wherever it starts, holds
# more than the budget.
#
# A leaky bucket with threshold = budget and decay = budget / window does not keep to it: empty
# at t, it grants the whole budget at once and the whole budget again as it drains over the next
# window, twice the budget inside one window. Over any interval of length L a bucket of threshold
# T and decay r grants at most T + r * L (its level starts >= 0, ends <= T and drains r * L in
# between; the limiter's reservations only ever raise `tat`, so this holds for them too). We take
# T + r * window = budget, split evenly: threshold = budget / 2, decay = budget / (2 * window), so
# 250 units at once and 25 a second for `/derivatives`, 50 tokens and one per 12 s for history.
#
# At the venue: the limiter books a request when it grants it, the venue counts it on arrival up
# to `transit_allowance_s` later, so one venue window holds what was booked over window + transit;
# every limit keeps decay x transit free, which pays for exactly that. Futures calls are new risk
# and see threshold x (1 - reserve): with the default reserve of 0.1, 225 + 250 = 475 per 10 s at
# most, so 25 units (1 s of decay) also absorb a request held up a second longer (queued on the
# key lock). Beyond that Kraken's `apiLimitExceeded` fills the scope (`feedback`, kind "futures").
FUTURES_BUDGETS: Final[Mapping[Budget, tuple[float, float]]] = MappingProxyType(
    {"derivatives": (500.0, 10.0), "history": (100.0, 600.0)}  # (units, window_s)
)


def futures_scope(key_id: str, budget: Budget = "derivatives") -> Scope:
    """`futures:<key id>` (`/derivatives`) or `futures:history:<key id>`: one futures key's
    budget, as the conservative bucket above. Both names start `futures:`, the feedback kind."""
    units, window_s = FUTURES_BUDGETS[budget]
    name = f"futures:{key_id}" if budget == "derivatives" else f"futures:history:{key_id}"
    return Scope(name, units / 2, units / (2 * window_s))


def futures_charges(method: FuturesMethod, *, key_id: str) -> list[Charge]:
    """A futures request's one charge: its cost on its budget (nothing on any spot counter)."""
    return [Charge(futures_scope(key_id, method.budget), method.cost)] if method.cost else []

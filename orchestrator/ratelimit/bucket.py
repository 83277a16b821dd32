"""The limiter's decision, pure. `lua/acquire.lua` implements exactly this, line for line.

Kraken's counter (level rises by each cost, decays linearly at `decay_per_s`, a request is refused
if it would take the level over the threshold) is held as a *theoretical arrival time*: `tat` is
the moment the counter would be empty, so `level(t) = max(0, (tat - t) * decay_per_s)`. A request
of cost c fits at time x when `max(tat, x) + c/decay - x <= limit/decay`, i.e. from
`x = tat - (limit - c)/decay` on. Booking it at x sets `tat = max(tat, x) + c/decay`.

One decision covers every scope a request touches: the earliest common time `t_send` at which all
of them fit. When `t_send` is in the future but within the caller's `max_wait_s`, the script books
every scope *at* `t_send` (a reservation) and the caller sleeps once and sends: no polling, no
thundering herd. Refusals write nothing.

Lanes: new-risk requests see `threshold * (1 - reserve_fraction)`; risk-reducing ones (cancels)
see the whole threshold, so the reserve is always there for them.

Fair shares (requests on one domain pool, when a strategy is named): each strategy has a
share counter with `weight / total_weight` of the pool's threshold and decay. Within its share a
request needs only the pool to fit. Beyond its share it may *borrow* if it fits now and leaves
untouched the unused share of every other strategy active in the last `active_window_s`;
otherwise it is refused with the time its own share has room again (never booked then: one
counter cannot hold a future booking without holding the time before it too). So under
contention each strategy is paced at its share of the pool's rate, and a runaway can use idle
capacity but never what others are due.
Risk-reducing requests (cancels) are charged to the share too, so that the share counts all a
strategy costs the pool, but they are never held back by it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

INFINITE_WAIT_S = math.inf


@dataclass(frozen=True, slots=True)
class ScopeCharge:
    """One scope of a request: its counter's threshold and decay, the cost here, whether it
    is the domain pool (fair shares apply there), and whether the venue takes it past the
    threshold (`uncapped`: CancelAll's cancel costs, Decision): then it goes now, booked in full."""

    threshold: float
    decay_per_s: float
    cost: float
    is_pool: bool = False
    uncapped: bool = False


@dataclass(slots=True)
class ScopeState:
    tat_s: float = 0.0  # when the counter would be empty
    cool_until_s: float = 0.0  # a venue rate-limit error: nothing before this

    def floored(self, tat_floor_s: float) -> ScopeState:
        """The state no lower than a caller's last known `tat` (state lost with Redis)."""
        return ScopeState(max(self.tat_s, tat_floor_s), self.cool_until_s)

    def level(self, decay_per_s: float, now_s: float) -> float:
        return max(0.0, (self.tat_s - now_s) * decay_per_s)


@dataclass(slots=True)
class ShareState:
    tat_s: float = 0.0
    weight: float = 1.0
    seen_s: float = -math.inf  # last admission: "active" strategies keep their share reserved

    def level(self, decay_per_s: float, now_s: float) -> float:
        return max(0.0, (self.tat_s - now_s) * decay_per_s)


@dataclass(frozen=True, slots=True)
class FairShare:
    strategy: str
    weight: float
    total_weight: float
    active_window_s: float


@dataclass(slots=True)
class Decision:
    granted: bool
    wait_s: float  # granted: sleep this long, then send; refused: when it would fit
    binding: int  # index of the scope that decided the wait (-1: none)
    scopes: list[ScopeState] = field(default_factory=list)  # states after the decision
    shares: dict[str, ShareState] = field(default_factory=dict)


def _earliest_fit_s(
    tat_s: float, limit: float, cost: float, decay_per_s: float, now_s: float
) -> float:
    if cost > limit:
        return INFINITE_WAIT_S
    return max(now_s, tat_s - (limit - cost) / decay_per_s)


def decide(
    now_s: float,
    charges: Sequence[ScopeCharge],
    states: Sequence[ScopeState],
    *,
    risk_reducing: bool,
    reserve_fraction: float,
    max_wait_s: float,
    fair: FairShare | None = None,
    shares: Mapping[str, ShareState] | None = None,
    transit_s: float = 0.0,
) -> Decision:
    """Grant (maybe with a wait) or refuse; on a grant, the returned states are the new ones.

    `transit_s`: the venue counts a request when it arrives, a little after we book it; every
    limit keeps `decay_per_s * transit_s` of room so that delay can never tip a counter over.
    """
    headroom = 1.0 if risk_reducing else 1.0 - reserve_fraction
    send_s = now_s
    binding = -1
    for i, (charge, state) in enumerate(zip(charges, states, strict=True)):
        if charge.uncapped:
            continue  # never refused at the venue: it fits now, whatever the level
        limit = charge.threshold * headroom - charge.decay_per_s * transit_s
        fit_s = _earliest_fit_s(state.tat_s, limit, charge.cost, charge.decay_per_s, now_s)
        fit_s = max(fit_s, state.cool_until_s)
        if fit_s > send_s:
            send_s, binding = fit_s, i
    wait_s = send_s - now_s
    new_shares: dict[str, ShareState] = {}
    pool = next((i for i, c in enumerate(charges) if c.is_pool), -1)
    if fair is not None and pool >= 0 and fair.total_weight > 0:
        known = shares or {}
        before = known.get(fair.strategy)
        mine_tat_s = before.tat_s if before is not None else 0.0
        charge, state = charges[pool], states[pool]
        portion = fair.weight / fair.total_weight
        share_decay = charge.decay_per_s * portion
        share_limit = charge.threshold * headroom * portion
        share_fit_s = _earliest_fit_s(mine_tat_s, share_limit, charge.cost, share_decay, now_s)
        # Cancels are charged to the share (fair accounting) but never held back by it.
        if share_fit_s > send_s and not risk_reducing:
            # Borrowing: only now, and only from capacity no active strategy is due.
            reserved = 0.0
            for name in sorted(known):
                other = known[name]
                if name == fair.strategy or now_s - other.seen_s > fair.active_window_s:
                    continue
                other_portion = other.weight / fair.total_weight
                other_limit = charge.threshold * headroom * other_portion
                used = other.level(charge.decay_per_s * other_portion, now_s)
                reserved += max(0.0, other_limit - used)
            pool_limit = charge.threshold * headroom - reserved
            pool_fit_s = _earliest_fit_s(
                state.tat_s, pool_limit, charge.cost, charge.decay_per_s, now_s
            )
            if wait_s > 0 or pool_fit_s > now_s:
                # No idle capacity to borrow now. Not booked: a booking at the share's time
                # would hold the pool's counter at that future moment for everyone. The caller
                # waits until its own share has room (or idle capacity appears) and asks again.
                hint_s = min(share_fit_s, max(pool_fit_s, send_s)) - now_s
                return Decision(granted=False, wait_s=hint_s, binding=pool)
        new_shares[fair.strategy] = ShareState(
            tat_s=max(mine_tat_s, send_s) + charge.cost / share_decay,
            weight=fair.weight,
            seen_s=now_s,
        )
    if wait_s > max_wait_s:
        return Decision(granted=False, wait_s=wait_s, binding=binding)
    booked = [
        ScopeState(max(state.tat_s, send_s) + charge.cost / charge.decay_per_s, state.cool_until_s)
        for charge, state in zip(charges, states, strict=True)
    ]
    return Decision(granted=True, wait_s=wait_s, binding=binding, scopes=booked, shares=new_shares)


def penalize(
    state: ScopeState, threshold: float, decay_per_s: float, now_s: float, cooldown_s: float
) -> ScopeState:
    """After a venue rate-limit error: assume the counter is full and wait `cooldown_s` at least."""
    return ScopeState(
        tat_s=max(state.tat_s, now_s + threshold / decay_per_s),
        cool_until_s=max(state.cool_until_s, now_s + cooldown_s),
    )

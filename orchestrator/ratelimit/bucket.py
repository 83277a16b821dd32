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

Fair shares (requests on one domain pool, when a strategy is named): weighted fair queueing on
the pool's own timeline, in O(1) per request. Each pool keeps the summed weight `W` of the
strategies active on it (a sorted set by "active until", so expiry is a bounded range read, never
a walk of every strategy). A strategy of weight w gets the portion p = w / W: a share counter with
decay `p x decay` and limit `max(b x limit, cost)` (a single request always fits an empty share),
where b = w / max(W, the weight configured on the pool): the burst goes by the strategies that
will trade the pool, so the first to ask (processes never start at once) does not take the
others' part of it before they have asked.
- Within its share a request only needs the scopes to fit.
- Beyond it the request is *booked*, never refused: at its share's next room, or at once where
  capacity is idle, i.e. where the pool's level stays within its limit minus the other active
  strategies' share limits (at least its own cost). Borrowing is booked only now, or where the
  share's room lies past the pool's `tat`: then the borrow slot (never past `tat`) replaces a
  booking that would hold the pool idle until the share's time. The caller sleeps once. Under
  contention each strategy is paced at its portion of the decay; together the portions are the
  whole decay, so the pool is used in full.
- The share is charged from when the request *asked*, not from when the pool lets it go: a
  request the pool holds back keeps its place on the share's timeline (virtual time), so waits
  the pool hands out in arrival order never cost a strategy its rate, and a strategy that was
  slow to ask during the burst still gets the part of it that is its own.
- A share that is new starts a fraction of one request spent, fixed by the strategy's name
  (`share_phase`): strategies that start together would otherwise all find room again at the
  same instant, every interval, and send in lockstep (the pool's level swinging by a request per
  strategy, a venue hit by N orders at once). Spread by name, their sends spread over the
  interval; it costs each under one request, once.
- When `W` changes, a share keeps the level it holds in cost units (its `tat` is rescaled to
  the new portion's decay), so a newcomer's share is not eaten by an old one's past.
- After a borrow (or a cancel) the share counter is capped at full: using idle capacity is never
  punished later (the virtual-time rule of start-time fair queueing, `max(V, F)`).
- Risk-reducing requests (cancels) are charged to the share, so that the share counts all a
  strategy costs the pool, but they are never held back by it.
Idle strategies leave the active set after `active_window_s` past their last booked send, so
their portion goes to the active ones at once.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

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


EXPIRE_PER_CALL = 16  # strategies taken out of the active set per decision, at most
# A strategy's entry in the active set moves only when it moves on by this much: the sorted set
# is written once a second per strategy, not per permit (an entry may end up to this early).
ACTIVE_REFRESH_S = 1.0


@dataclass(slots=True)
class ShareState:
    tat_s: float = 0.0
    weight: float = 1.0
    active_until_s: float | None = None  # None: not in the pool's active set
    decay_per_s: float = 0.0  # the share's decay when last booked (the portion moves with W)


@dataclass(slots=True)
class PoolShares:
    """One pool's fair-share state: the summed weight of its active set (`~W`) and each
    strategy's share counter. Invariant: `total_weight` is the sum of the members' weights."""

    total_weight: float = 0.0
    members: dict[str, ShareState] = field(default_factory=dict)

    def copy(self) -> PoolShares:
        return PoolShares(
            self.total_weight,
            {
                n: ShareState(m.tat_s, m.weight, m.active_until_s, m.decay_per_s)
                for n, m in self.members.items()
            },
        )


@dataclass(frozen=True, slots=True)
class FairShare:
    strategy: str
    weight: float
    active_window_s: float
    # The summed weight of the strategies configured on the pool (0: unknown): the pool's burst
    # is split by it, so the strategy that happens to ask first does not take the others' part.
    opening_weight: float = 0.0

    @property
    def phase(self) -> float:
        return share_phase(self.strategy)


@lru_cache(maxsize=4096)
def share_phase(strategy: str) -> float:
    """The fraction of one request, in [0, 1), a new share of this strategy starts spent: the
    name's 32-bit BLAKE2b digest (a spread, not a secret), so every process (and the script,
    which is given it) spreads the same strategies the same way."""
    digest = hashlib.blake2b(strategy.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") / 2**32


@dataclass(slots=True)
class Decision:
    granted: bool
    wait_s: float  # granted: sleep this long, then send; refused: when it would fit
    binding: int  # index of the scope that decided the wait (-1: none)
    scopes: list[ScopeState] = field(default_factory=list)  # states after the decision
    shares: PoolShares | None = None  # the pool's share state after a grant (fair requests)


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
    shares: PoolShares | None = None,
    transit_s: float = 0.0,
) -> Decision:
    """Grant (maybe with a wait) or refuse; on a grant, the returned states are the new ones.

    `transit_s`: the venue counts a request when it arrives, a little after we book it; every
    limit keeps `decay_per_s * transit_s` of room so that delay can never tip a counter over.
    Refused only when the wait is past `max_wait_s` (or can never fit).
    """
    headroom = 1.0 if risk_reducing else 1.0 - reserve_fraction
    send_s = now_s
    binding = -1
    fits_s = [now_s] * len(charges)
    for i, (charge, state) in enumerate(zip(charges, states, strict=True)):
        if charge.uncapped:
            continue  # never refused at the venue: it fits now, whatever the level
        limit = charge.threshold * headroom - charge.decay_per_s * transit_s
        fit_s = _earliest_fit_s(state.tat_s, limit, charge.cost, charge.decay_per_s, now_s)
        fits_s[i] = fit_s = max(fit_s, state.cool_until_s)
        if fit_s > send_s:
            send_s, binding = fit_s, i
    pool = next((i for i, c in enumerate(charges) if c.is_pool), -1)
    new_shares: PoolShares | None = None
    if fair is not None and pool >= 0:
        send_s, new_shares = _fair_send(
            now_s, send_s, charges[pool], states[pool], fair=fair,
            shares=shares or PoolShares(), headroom=headroom, transit_s=transit_s,
            risk_reducing=risk_reducing,
        )  # fmt: skip
        if send_s > max(fits_s):
            binding = pool  # the share decided the wait
    wait_s = send_s - now_s
    if wait_s > max_wait_s:
        return Decision(granted=False, wait_s=wait_s, binding=binding)
    booked = [
        ScopeState(max(state.tat_s, send_s) + charge.cost / charge.decay_per_s, state.cool_until_s)
        for charge, state in zip(charges, states, strict=True)
    ]
    return Decision(granted=True, wait_s=wait_s, binding=binding, scopes=booked, shares=new_shares)


def _fair_send(
    now_s: float,
    send_s: float,
    charge: ScopeCharge,
    state: ScopeState,
    *,
    fair: FairShare,
    shares: PoolShares,
    headroom: float,
    transit_s: float,
    risk_reducing: bool,
) -> tuple[float, PoolShares]:
    """The send time with the strategy's share of the pool applied, and the pool's share state
    after booking it (see the module docstring)."""
    new_shares = shares.copy()
    gone = _expire(new_shares, fair.strategy, now_s)
    mine = new_shares.members.get(fair.strategy)
    total = new_shares.total_weight + fair.weight - (mine.weight if mine else 0.0)
    total = max(total, fair.weight)  # float drift can never make a share exceed the pool
    portion = fair.weight / total
    share_decay = charge.decay_per_s * portion
    mine_tat_s = 0.0
    if mine is not None and mine.tat_s > now_s:
        # The level it holds, in cost units, at the share's new decay.
        mine_tat_s = now_s + (mine.tat_s - now_s) * mine.decay_per_s / share_decay
    # The burst by the weights configured on the pool (when more than are active yet); the
    # rate by the active ones. Borrowing, too, leaves every configured share its burst.
    burst_portion = fair.weight / max(total, fair.opening_weight)
    share_limit = max(charge.threshold * headroom * burst_portion, charge.cost)
    share_fit_s = _earliest_fit_s(mine_tat_s, share_limit, charge.cost, share_decay, now_s)
    if share_fit_s > send_s and not risk_reducing:
        # Beyond its share: idle capacity is what leaves every other active share whole.
        pool_limit = charge.threshold * headroom - charge.decay_per_s * transit_s
        others = charge.threshold * headroom * (1.0 - burst_portion)
        borrow_limit = max(pool_limit - others, charge.cost)
        borrow_fit_s = _earliest_fit_s(
            state.tat_s, borrow_limit, charge.cost, charge.decay_per_s, now_s
        )
        fit_s = share_fit_s
        if borrow_fit_s <= send_s or share_fit_s > state.tat_s:
            # Borrow when it fits now, or when the share's time lies past the pool's own
            # timeline (booking there would hold the pool idle until then for everyone).
            fit_s = min(share_fit_s, borrow_fit_s)
        send_s = max(send_s, fit_s)
    booked_tat_s = min(
        max(mine_tat_s, now_s) + charge.cost / share_decay,  # from the ask: virtual time
        send_s + share_limit / share_decay,  # at most full: a borrow is not a debt
    )
    if mine is None:  # a new share: spread from the others by its name
        booked_tat_s += fair.phase * charge.cost / share_decay
    for name in gone:
        del new_shares.members[name]
    new_shares.total_weight = total
    until_s = send_s + fair.active_window_s
    last_until_s = mine.active_until_s if mine is not None else None
    if last_until_s is not None and until_s - last_until_s < ACTIVE_REFRESH_S:
        until_s = last_until_s  # written once a second, not per permit
    new_shares.members[fair.strategy] = ShareState(booked_tat_s, fair.weight, until_s, share_decay)
    return send_s, new_shares


def _expire(shares: PoolShares, strategy: str, now_s: float) -> list[str]:
    """Take out of the total the strategies whose activity ended before `now_s`, at most
    `EXPIRE_PER_CALL`, earliest first (ties by name): the script's bounded range read. The
    caller itself stays (it is about to be active again); the members go on a grant."""
    ended = sorted(
        (m.active_until_s, name)
        for name, m in shares.members.items()
        if m.active_until_s is not None and m.active_until_s < now_s
    )[:EXPIRE_PER_CALL]
    gone = [name for _, name in ended if name != strategy]
    for name in gone:
        shares.total_weight -= shares.members[name].weight
    return gone


def penalize(
    state: ScopeState, threshold: float, decay_per_s: float, now_s: float, cooldown_s: float
) -> ScopeState:
    """After a venue rate-limit error: assume the counter is full and wait `cooldown_s` at least."""
    return ScopeState(
        tat_s=max(state.tat_s, now_s + threshold / decay_per_s),
        cool_until_s=max(state.cool_until_s, now_s + cooldown_s),
    )

"""A seeded synthetic market per pair: the liquidity the simulator shows besides its users' orders.

The mid follows a geometric random walk; around it sit a best bid and a best ask a few ticks
apart, then a ladder of at least `levels` levels per side, gaps of 1..`max_gap_ticks` ticks,
quantities around `typical_qty` growing with the distance from the mid. Each `step` moves the
mid, pulls the quotes it ran through, re-quotes the top, churns some depth, and reports only the
levels whose synthetic qty changed, in scaled integers (`checksum.Level`), for the venue to merge
into its `AggregatedBook`.

    market = SyntheticMarket(spec, seed=1)
    changes = market.initial_levels()          # [("bid", 600000, 51234567), ...]
    changes = market.step(dt_s=0.5)            # qty 0: no more synthetic liquidity there

Same spec and seed, same path: all randomness comes from one `random.Random(seed)`, so a demo
or a failing test replays exactly. Time is the caller's `dt_s`; nothing here reads a clock.
"""

from __future__ import annotations

import math
import random
from decimal import Decimal
from typing import Final

import msgspec

from orchestrator.simulator.book_feed import Side
from orchestrator.simulator.checksum import to_scaled

LevelChange = tuple[Side, int, int]
"""(side, price_int, qty_int): the synthetic qty now at that price; 0 removes it."""

_SIDES: Final[tuple[Side, Side]] = ("bid", "ask")
_QTY_SIGMA: Final = 0.5
"""Log-normal spread of a level's qty around its expected size."""


class PairSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One pair's precision and the character of its synthetic market."""

    symbol: str
    price_decimals: int
    qty_decimals: int
    start_price: Decimal
    typical_qty: Decimal
    tick: int = 1
    """Price grid step, in price_int units."""
    levels: int = 30
    """Synthetic levels kept per side, at least; the ladder may hold up to twice as many."""
    volatility_per_sqrt_s: float = 0.0001
    """Standard deviation of the mid's log-return over one second (0.0001: ~56% a year)."""
    max_spread_ticks: int = 4
    max_gap_ticks: int = 3
    """Largest distance between neighbouring levels among the first `levels`."""
    requote_levels: int = 5
    """Levels near the top whose qty is re-drawn, each at `requote_per_s`."""
    requote_per_s: float = 1.0
    churn_per_s: float = 0.2
    """Rate at which each deeper level is pulled (and some depth added elsewhere)."""

    def __post_init__(self) -> None:
        for name in ("tick", "levels", "max_spread_ticks", "max_gap_ticks"):
            if getattr(self, name) < 1:
                raise ValueError(f"{self.symbol}: {name} must be >= 1")
        if min(self.volatility_per_sqrt_s, self.requote_per_s, self.churn_per_s) < 0:
            raise ValueError(f"{self.symbol}: volatility and rates must be >= 0")
        if self.start_price_int % self.tick:
            raise ValueError(f"{self.symbol}: start_price is not on the tick grid")
        if self.start_price_int <= self.floor_price_int:
            raise ValueError(
                f"{self.symbol}: start_price must exceed {self.floor_price_int} ticks, "
                "so that a full bid ladder fits above zero"
            )
        if self.typical_qty_int <= 0:
            raise ValueError(f"{self.symbol}: typical_qty must be > 0")

    @property
    def start_price_int(self) -> int:
        return to_scaled(self.start_price, self.price_decimals)

    @property
    def typical_qty_int(self) -> int:
        return to_scaled(self.typical_qty, self.qty_decimals)

    @property
    def floor_price_int(self) -> int:
        """Lowest mid the walk may reach: below it the bid ladder would cross zero."""
        return (self.levels * self.max_gap_ticks + self.max_spread_ticks + 2) * self.tick


def _probability(rate_per_s: float, dt_s: float) -> float:
    """Chance that a Poisson event of `rate_per_s` happens within `dt_s`."""
    return 1.0 - math.exp(-rate_per_s * dt_s)


class SyntheticMarket:
    """The synthetic liquidity of one pair, evolving step by step from a seed."""

    def __init__(self, spec: PairSpec, seed: int) -> None:
        self.spec: Final = spec
        self._rng = random.Random(seed)  # noqa: S311 - a replayable simulation, not a secret
        self._mid_ticks = float(spec.start_price_int)  # off-grid on purpose; quotes are on it
        self._spread_ticks = self._rng.randint(1, spec.max_spread_ticks)
        self._book: dict[Side, dict[int, int]] = {"bid": {}, "ask": {}}
        self._best: dict[Side, int] = dict(zip(_SIDES, self._quote_bounds(), strict=True))
        for side in _SIDES:
            self._book[side][self._best[side]] = self._draw_qty(self._best[side])
            self._fill_ladder(side)

    @property
    def mid_price_int(self) -> int:
        """Midpoint of the synthetic best bid and ask (rounded down), in price_int."""
        return (self._best["bid"] + self._best["ask"]) // 2

    @property
    def best_bid_int(self) -> int:
        return self._best["bid"]

    @property
    def best_ask_int(self) -> int:
        return self._best["ask"]

    def initial_levels(self) -> list[LevelChange]:
        """The whole synthetic book as changes from empty, best-first per side.

        After steps it is the current book: what a venue rebuilding its book needs.
        """
        return [
            (side, price, self._book[side][price])
            for side in _SIDES
            for price in self._ranked(side)
        ]

    def step(self, dt_s: float) -> list[LevelChange]:
        """Advance `dt_s` seconds; the levels whose synthetic qty changed, removals as qty 0."""
        if dt_s < 0:
            raise ValueError(f"dt_s must be >= 0, got {dt_s}")
        before = {side: dict(levels) for side, levels in self._book.items()}
        self._walk(dt_s)
        if self._rng.random() < _probability(self.spec.requote_per_s, dt_s):
            self._spread_ticks = self._rng.randint(1, self.spec.max_spread_ticks)
        self._best = dict(zip(_SIDES, self._quote_bounds(), strict=True))
        for side in _SIDES:
            self._evolve(side, dt_s)
        return [change for side in _SIDES for change in self._diff(side, before[side])]

    # --- internals -------------------------------------------------------------------------

    def _away(self, side: Side) -> int:
        """+1 when worse prices are higher (asks), -1 when lower (bids)."""
        return -1 if side == "bid" else 1

    def _ranked(self, side: Side) -> list[int]:
        away = self._away(side)
        return sorted(self._book[side], key=lambda price: price * away)

    def _walk(self, dt_s: float) -> None:
        """Geometric Brownian step, held above the floor so the bid ladder stays positive."""
        sigma = self.spec.volatility_per_sqrt_s
        log_return = sigma * math.sqrt(dt_s) * self._rng.gauss(0.0, 1.0) - 0.5 * sigma**2 * dt_s
        self._mid_ticks = max(self._mid_ticks * math.exp(log_return), self.spec.floor_price_int)

    def _quote_bounds(self) -> tuple[int, int]:
        """Best bid and best ask on the grid, `_spread_ticks` apart, straddling the mid."""
        tick = self.spec.tick
        half_spread = self._spread_ticks * tick / 2
        best_bid = math.floor((self._mid_ticks - half_spread) / tick) * tick
        return best_bid, best_bid + self._spread_ticks * tick

    def _draw_qty(self, price: int) -> int:
        """Around `typical_qty`, about twice that at the far end of the ladder."""
        spec = self.spec
        distance_ticks = abs(price - self._mid_ticks) / spec.tick
        ladder_span_ticks = spec.levels * (spec.max_gap_ticks + 1) / 2
        expected = spec.typical_qty_int * (1.0 + distance_ticks / ladder_span_ticks)
        return max(1, round(expected * self._rng.lognormvariate(0.0, _QTY_SIGMA)))

    def _evolve(self, side: Side, dt_s: float) -> None:
        spec, levels, away = self.spec, self._book[side], self._away(side)
        best = self._best[side]
        for price in [p for p in levels if (p - best) * away < 0]:
            del levels[price]  # the mid ran through these quotes
        requote_p = _probability(spec.requote_per_s, dt_s)
        churn_p = _probability(spec.churn_per_s, dt_s)
        pulled = 0
        for rank, price in enumerate(self._ranked(side)):
            if rank < spec.requote_levels:
                if self._rng.random() < requote_p:
                    levels[price] = self._draw_qty(price)
            elif self._rng.random() < churn_p:
                del levels[price]
                pulled += 1
        if best not in levels:
            levels[best] = self._draw_qty(best)
        reach_ticks = (spec.levels - 1) * spec.max_gap_ticks
        for _ in range(pulled):  # new depth elsewhere, inside the ladder's reach
            price = best + away * self._rng.randint(1, reach_ticks) * spec.tick
            if price not in levels:
                levels[price] = self._draw_qty(price)
        self._fill_ladder(side)
        for price in self._ranked(side)[2 * spec.levels :]:
            del levels[price]

    def _fill_ladder(self, side: Side) -> None:
        """Add levels until the first `levels` ones, from the best, are at most a max gap apart.

        Needs the best quote in place and nothing better than it.
        """
        spec, levels, away = self.spec, self._book[side], self._away(side)
        max_gap = spec.max_gap_ticks * spec.tick
        ranked = self._ranked(side)
        previous, index = ranked[0], 1
        for _ in range(spec.levels - 1):
            following = ranked[index] if index < len(ranked) else None
            if following is not None and (following - previous) * away <= max_gap:
                previous, index = following, index + 1
                continue
            previous += away * self._rng.randint(1, spec.max_gap_ticks) * spec.tick
            levels[previous] = self._draw_qty(previous)

    def _diff(self, side: Side, before: dict[int, int]) -> list[LevelChange]:
        after = self._book[side]
        removed: list[LevelChange] = [(side, p, 0) for p in sorted(before) if p not in after]
        changed: list[LevelChange] = [
            (side, p, q) for p, q in sorted(after.items()) if before.get(p) != q
        ]
        return removed + changed

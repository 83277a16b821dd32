"""The synthetic market: seeded, never crossed, on the grid, deep enough, and reporting only changes."""

from __future__ import annotations

import itertools
import statistics
from decimal import Decimal

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.simulator.book_feed import AggregatedBook, DepthView
from orchestrator.simulator.market import LevelChange, PairSpec, SyntheticMarket

XBT = PairSpec(
    symbol="XBT/USD",
    price_decimals=1,
    qty_decimals=8,
    start_price=Decimal("60000.0"),
    typical_qty=Decimal("0.25"),
)
# A coarse grid (tick 5 = 0.0005) and a low price near the floor, to stress the edges.
DOGE = PairSpec(
    symbol="XDG/USD",
    price_decimals=4,
    qty_decimals=2,
    tick=5,
    start_price=Decimal("0.0600"),
    typical_qty=Decimal("1500"),
    levels=10,
    max_gap_ticks=2,
    volatility_per_sqrt_s=0.01,
)


def replica_of(market: SyntheticMarket) -> dict[str, dict[int, int]]:
    book: dict[str, dict[int, int]] = {"bid": {}, "ask": {}}
    for side, price, qty in market.initial_levels():
        assert price not in book[side]
        book[side][price] = qty
    return book


def apply(book: dict[str, dict[int, int]], changes: list[LevelChange]) -> None:
    """Apply changes, asserting each one is a real change of the replica."""
    seen: set[tuple[str, int]] = set()
    for side, price, qty in changes:
        assert (side, price) not in seen, "one change per level per step"
        seen.add((side, price))
        assert book[side].get(price, 0) != qty, f"{side} {price} reported without a change"
        if qty:
            book[side][price] = qty
        else:
            del book[side][price]


def check_invariants(market: SyntheticMarket, book: dict[str, dict[int, int]]) -> None:
    spec = market.spec
    bids, asks = book["bid"], book["ask"]
    assert max(bids) == market.best_bid_int < market.best_ask_int == min(asks)
    assert 1 <= (market.best_ask_int - market.best_bid_int) // spec.tick <= spec.max_spread_ticks
    assert market.best_bid_int <= market.mid_price_int < market.best_ask_int
    for levels in (bids, asks):
        assert spec.levels <= len(levels) <= 2 * spec.levels
        assert all(price > 0 and price % spec.tick == 0 for price in levels)
        assert all(qty > 0 for qty in levels.values())
    # The first `levels` levels of each side are a dense ladder: no gap over max_gap_ticks.
    for ladder in (sorted(bids, reverse=True)[: spec.levels], sorted(asks)[: spec.levels]):
        gaps = [abs(b - a) // spec.tick for a, b in itertools.pairwise(ladder)]
        assert max(gaps) <= spec.max_gap_ticks


def run(spec: PairSpec, seed: int, steps: int, dt_s: float) -> list[list[LevelChange]]:
    market = SyntheticMarket(spec, seed)
    return [market.initial_levels()] + [market.step(dt_s) for _ in range(steps)]


def test_same_seed_same_path_other_seed_other_path() -> None:
    assert run(XBT, 7, 50, 0.25) == run(XBT, 7, 50, 0.25)
    assert run(XBT, 7, 50, 0.25) != run(XBT, 8, 50, 0.25)


@pytest.mark.parametrize("spec", [XBT, DOGE], ids=["XBT", "DOGE"])
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), dt_s=st.sampled_from([0.01, 0.1, 0.5, 2.0, 30.0]))
def test_invariants_hold_along_any_path(spec: PairSpec, seed: int, dt_s: float) -> None:
    market = SyntheticMarket(spec, seed)
    book = replica_of(market)
    check_invariants(market, book)
    for _ in range(60):
        apply(book, market.step(dt_s))
        check_invariants(market, book)
    assert book == replica_of(market)  # the reported changes add up to the market's book


def test_the_mid_random_walk_scales_with_volatility_and_time() -> None:
    def moves_ticks(spec: PairSpec, dt_s: float) -> list[int]:
        market = SyntheticMarket(spec, seed=3)
        before, moves = market.mid_price_int, []
        for _ in range(400):
            market.step(dt_s)
            moves.append(market.mid_price_int - before)
            before = market.mid_price_int
        return moves

    # sigma 0.0001/sqrt(s) of 600000 ticks is 60 ticks per sqrt(second).
    spread = statistics.pstdev(moves_ticks(XBT, 1.0))
    assert 45 < spread < 75
    assert statistics.pstdev(moves_ticks(XBT, 0.25)) == pytest.approx(spread / 2, rel=0.25)
    calm = msgspec.structs.replace(XBT, volatility_per_sqrt_s=0.0)
    assert all(abs(move) <= calm.max_spread_ticks for move in moves_ticks(calm, 1.0))


def test_quantities_sit_around_typical_and_grow_with_distance() -> None:
    """Measured on fresh books, where every qty was drawn against the current mid."""
    near: list[int] = []
    far: list[int] = []
    for seed in range(20):
        book = replica_of(SyntheticMarket(XBT, seed))
        for ladder in (sorted(book["bid"].items(), reverse=True), sorted(book["ask"].items())):
            near.extend(qty for _, qty in ladder[:5])
            far.extend(qty for _, qty in ladder[XBT.levels - 5 : XBT.levels])
    typical = XBT.typical_qty_int
    assert 0.8 * typical < statistics.median(near) < 1.4 * typical
    assert statistics.median(far) > 1.4 * statistics.median(near)


def test_zero_time_changes_nothing_and_negative_time_is_refused() -> None:
    market = SyntheticMarket(XBT, seed=5)
    assert market.step(0.0) == []
    with pytest.raises(ValueError):
        market.step(-1.0)


def test_feeds_an_aggregated_book_and_a_depth_view() -> None:
    market = SyntheticMarket(XBT, seed=2)
    book = AggregatedBook(XBT.price_decimals, XBT.qty_decimals, symbol=XBT.symbol)
    for side, price, qty in market.initial_levels():
        book.set_level(side, price, qty)
    view = DepthView(book, 25)
    assert len(view.snapshot().bids) == 25
    updates = 0
    for _ in range(20):
        for side, price, qty in market.step(0.5):
            book.set_level(side, price, qty)
        updates += view.update("2024-01-01T00:00:00.000000Z") is not None
        assert book.top("bid", 1)[0][0] == market.best_bid_int
    assert updates == 20


@pytest.mark.parametrize(
    "change",
    [
        {"tick": 0},
        {"levels": 0},
        {"max_spread_ticks": 0},
        {"max_gap_ticks": 0},
        {"volatility_per_sqrt_s": -0.1},
        {"churn_per_s": -1.0},
        {"start_price": Decimal("60000.05")},  # finer than the pair's precision
        {"tick": 5, "start_price": Decimal("60000.3")},  # off the tick grid
        {"start_price": Decimal("9.0")},  # too low for a 30-level bid ladder above zero
        {"typical_qty": Decimal("0")},
    ],
)
def test_pair_spec_refuses_a_market_that_cannot_hold_its_invariants(
    change: dict[str, object],
) -> None:
    with pytest.raises(ValueError):
        msgspec.structs.replace(XBT, **change)

"""One pair's order book: price-time priority over integer prices and volumes. Pure.

The book only decides *who trades with whom, at what price and how much*; it moves no money.
The engine settles the fills it returns. Every change of a level's total volume is reported to
`on_level(side, price, total)` so the public L2 feed can follow the book.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable, Iterator
from typing import Literal

import msgspec

from orchestrator.simulator.orders import Order, Side

BookSide = Literal["bid", "ask"]
LevelListener = Callable[[BookSide, int, int], None]


class Fill(msgspec.Struct, frozen=True):
    maker: Order
    taker: Order
    price: int
    volume: int


class MatchResult(msgspec.Struct):
    fills: list[Fill]
    evicted: list[Order]  # resting orders of the taker's own account removed by `cancel-oldest`
    stopped_by_stp: bool  # `cancel-newest`: the taker must not go on


def book_side(side: Side) -> BookSide:
    return "bid" if side == "buy" else "ask"


class _Side:
    """Levels of one side: price -> FIFO queue of orders, with prices kept sorted ascending."""

    __slots__ = ("is_bid", "prices", "queues", "totals")

    def __init__(self, is_bid: bool) -> None:
        self.is_bid = is_bid
        self.prices: list[int] = []
        self.queues: dict[int, deque[Order]] = {}
        self.totals: dict[int, int] = {}

    def best(self) -> int | None:
        if not self.prices:
            return None
        return self.prices[-1] if self.is_bid else self.prices[0]

    def best_first(self) -> Iterator[int]:
        return reversed(self.prices) if self.is_bid else iter(self.prices)

    def add(self, order: Order, price: int) -> None:
        queue = self.queues.get(price)
        if queue is None:
            queue = self.queues[price] = deque()
            bisect.insort(self.prices, price)
            self.totals[price] = 0
        queue.append(order)
        self.totals[price] += order.remaining

    def drop_level_if_empty(self, price: int) -> None:
        if not self.queues[price]:
            del self.queues[price]
            del self.totals[price]
            del self.prices[bisect.bisect_left(self.prices, price)]


class OrderBook:
    def __init__(self, on_level: LevelListener | None = None) -> None:
        self.bids = _Side(is_bid=True)
        self.asks = _Side(is_bid=False)
        self._on_level = on_level

    def _side(self, side: Side) -> _Side:
        return self.bids if side == "buy" else self.asks

    def _notify(self, levels: _Side, price: int) -> None:
        if self._on_level is not None:
            self._on_level("bid" if levels.is_bid else "ask", price, levels.totals.get(price, 0))

    def best_bid(self) -> int | None:
        return self.bids.best()

    def best_ask(self) -> int | None:
        return self.asks.best()

    def mid(self) -> int | None:
        bid, ask = self.best_bid(), self.best_ask()
        if bid is None or ask is None:
            return bid if ask is None else ask
        return (bid + ask) // 2

    def crosses(self, side: Side, price: int | None) -> bool:
        """Would an order at `price` (None: market) trade on arrival?"""
        opposite = self.asks if side == "buy" else self.bids
        best = opposite.best()
        if best is None:
            return False
        if price is None:
            return True
        return best <= price if side == "buy" else best >= price

    def rest(self, order: Order) -> None:
        """Queue a limit order at its price, behind everything already there."""
        assert order.price is not None  # noqa: S101 - only limit orders rest
        levels = self._side(order.side)
        levels.add(order, order.price)
        self._notify(levels, order.price)

    def remove(self, order: Order) -> None:
        """Take a resting order out of the book (cancel, expiry, fully filled)."""
        assert order.price is not None  # noqa: S101
        levels = self._side(order.side)
        queue = levels.queues.get(order.price)
        if queue is None or order not in queue:
            return
        queue.remove(order)
        levels.totals[order.price] -= order.remaining
        levels.drop_level_if_empty(order.price)
        self._notify(levels, order.price)

    def reduce(self, order: Order, new_remaining: int) -> None:
        """Shrink a resting order in place, keeping its queue position (Kraken's amend down)."""
        assert order.price is not None  # noqa: S101
        levels = self._side(order.side)
        levels.totals[order.price] += new_remaining - order.remaining
        self._notify(levels, order.price)

    def walk(self, side: Side, volume: int, limit: int | None) -> list[tuple[int, int]]:
        """(price, volume) an incoming order would take, without taking it."""
        out: list[tuple[int, int]] = []
        opposite = self.asks if side == "buy" else self.bids
        left = volume
        for price in opposite.best_first():
            if left <= 0 or (
                limit is not None and (price > limit if side == "buy" else price < limit)
            ):
                break
            take = min(left, opposite.totals[price])
            out.append((price, take))
            left -= take
        return out

    def match(self, taker: Order, limit: int | None) -> MatchResult:
        """Trade `taker` against the opposite side while prices cross.

        The book updates `executed` of both sides; the engine settles the money of each fill.
        Makers that fill completely leave the book here. Self-trade prevention: `cancel-newest`
        stops the taker, `cancel-oldest` evicts the resting order and goes on, `cancel-both`
        does both.
        """
        opposite = self.asks if taker.side == "buy" else self.bids
        result = MatchResult(fills=[], evicted=[], stopped_by_stp=False)
        fills = result.fills
        left = taker.remaining
        while left > 0:
            price = opposite.best()
            if price is None or (
                limit is not None and (price > limit if taker.side == "buy" else price < limit)
            ):
                break
            queue = opposite.queues[price]
            maker = queue[0]
            if maker.account == taker.account:
                if taker.stptype in ("cancel-oldest", "cancel-both"):
                    self._evict(opposite, price, maker)
                    result.evicted.append(maker)
                if taker.stptype in ("cancel-newest", "cancel-both"):
                    result.stopped_by_stp = True
                    break
                continue
            take = min(left, maker.remaining)
            fills.append(Fill(maker, taker, price, take))
            left -= take
            opposite.totals[price] -= take
            if take == maker.remaining:
                queue.popleft()
                opposite.drop_level_if_empty(price)
            maker.executed += take  # the engine settles money; the book owns quantities
            self._notify(opposite, price)
        taker.executed += taker.remaining - left
        return result

    def _evict(self, levels: _Side, price: int, order: Order) -> None:
        queue = levels.queues[price]
        queue.remove(order)
        levels.totals[price] -= order.remaining
        levels.drop_level_if_empty(price)
        self._notify(levels, price)

    def levels(self, side: BookSide, depth: int) -> list[tuple[int, int]]:
        """Best-first (price, total volume) of one side."""
        levels = self.bids if side == "bid" else self.asks
        out: list[tuple[int, int]] = []
        for price in levels.best_first():
            if len(out) >= depth:
                break
            out.append((price, levels.totals[price]))
        return out

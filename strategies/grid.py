"""A grid: a ladder of resting post-only orders around a center, each fill traded back one step.

Level k (1..`levels`) buys at center x (1 - k x step) and sells at center x (1 + k x step),
`size` each (prices on the tick: buys rounded down, sells up); the center is the `center` param
or the mid of the first whole book. When an order fills, its place in the grid is taken by the
opposite order one step back toward the center: a buy filled at p becomes a sell at
p x (1 + step), a sell filled at p a buy at p / (1 + step) (so a round trip comes back to the
very price it started from, and the grid does not drift), for the quantity that filled. An
order that ended partly filled is traded back for what filled and its remainder given up (a fill
below the pair's ordermin cannot be traded back: the remainder is offered again instead).

Bounded: the grid holds 2 x `levels` places and every fill swaps one for one, so it never has
more open orders than that (also checked before each place). `max_inventory` bounds the
position if every open order of a side filled: a buy is placed only while position + open buys
+ its size stays within it (a sell likewise below), the nearest levels first; the others wait.
A place that would cross the book waits too (post-only would be cancelled). An order refused
(by our risk checks or the venue) or cancelled by the venue is offered again after
`retry_after_s`. Orders are known by cl_ord_id; open orders found at start (adopted after a
restart) are kept as places of the grid.

    [[strategies]]
    name = "grid-xbt"
    module = "grid"
    account = "mm-xbt"
    pairs = ["XBT/USD"]
    params = { size = "0.001", levels = 5, step_bps = 10 }
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Final

import msgspec

from orchestrator.exchange.instruments import Instrument
from orchestrator.strategy import BookView, OrderUpdate, Side, Strategy, StrategyParams

_BPS: Final = Decimal("0.0001")
_RETRY: Final = "grid.retry"


class Params(StrategyParams, frozen=True):
    size: Decimal  # base units per order
    levels: Annotated[int, msgspec.Meta(ge=1)] = 3  # per side
    step_bps: Decimal = Decimal(10)  # between levels, of the center
    center: Decimal | None = None  # quote units; the mid of the first book when not given
    max_inventory: Decimal = Decimal(1)  # base units: |position + open orders of a side|
    retry_after_s: Annotated[float, msgspec.Meta(ge=0)] = 1.0  # after a refused order

    def __post_init__(self) -> None:
        for name in ("size", "step_bps", "max_inventory"):
            value = getattr(self, name)
            if not (value.is_finite() and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value}")
        if self.center is not None and not (self.center.is_finite() and self.center > 0):
            raise ValueError(f"center must be a positive price, got {self.center}")
        if self.levels * self.step_bps >= 10_000:
            raise ValueError(f"step_bps {self.step_bps} x levels {self.levels} reaches 100%: "
                             "the lowest buy would be at or below 0")  # fmt: skip


def ladder(center: Decimal, levels: int, step_bps: Decimal, instrument: Instrument) -> list[
    tuple[Side, Decimal]
]:  # fmt: skip
    """(side, price) of every level, nearest the center first, buys and sells alternating."""
    step = step_bps * _BPS
    prices: list[tuple[Side, Decimal]] = []
    for k in range(1, levels + 1):
        prices.append(("buy", instrument.round_price(center * (1 - k * step))))
        prices.append(("sell", instrument.round_price(center * (1 + k * step), up=True)))
    return prices


def trade_back(side: Side, price: Decimal, step_bps: Decimal, instrument: Instrument) -> Decimal:
    """The price of the order that trades back a fill of `side` at `price`, one step inward."""
    step = step_bps * _BPS
    if side == "buy":
        return instrument.round_price(price * (1 + step), up=True)
    return instrument.round_price(price / (1 + step))


@dataclass(slots=True)
class Place:
    """One place of the grid: the order that should rest there, and its live order if any."""

    side: Side
    price: Decimal
    qty: Decimal
    cl_ord_id: str | None = None
    quiet_until_s: float = 0.0  # refused: not offered again before


class Grid(Strategy[Params]):
    Params = Params

    def on_start(self) -> None:
        self.pair = self.ctx.pairs[0]
        self.center: Decimal | None = None
        self.places: list[Place] = []
        self.by_order: dict[str, Place] = {}
        for order in self.ctx.open_orders(self.pair):  # adopted after a restart
            if order.price is not None:
                place = Place(order.side, order.price, order.remaining, order.cl_ord_id)
                self.places.append(place)
                self.by_order[order.cl_ord_id] = place

    @property
    def max_open(self) -> int:
        return 2 * self.ctx.params.levels

    def on_book(self, book: BookView) -> None:
        if book.pair != self.pair:
            return
        if self.center is None:
            params = self.ctx.params
            self.center = params.center if params.center is not None else book.mid
            if self.center is None:
                return
            instrument = self.ctx.instrument(self.pair)
            if not self.places:
                prices = ladder(self.center, params.levels, params.step_bps, instrument)
                self.places = [Place(side, price, params.size) for side, price in prices]
            self.ctx.log.info("grid.started", center=self.center, levels=params.levels,
                              step_bps=params.step_bps)  # fmt: skip
        self._offer(book)

    def on_timer(self, name: str) -> None:
        if name == _RETRY:
            book = self.ctx.book(self.pair)
            if book is not None:
                self._offer(book)

    def on_order(self, order: OrderUpdate) -> None:
        place = self.by_order.get(order.cl_ord_id)
        if place is None or order.is_open:
            return
        del self.by_order[order.cl_ord_id]
        place.cl_ord_id = None
        params = self.ctx.params
        instrument = self.ctx.instrument(self.pair)
        if order.filled >= instrument.ordermin:  # swap the place for the trade back
            place.side, place.price = (
                _other(place.side),
                trade_back(place.side, order.price or place.price, params.step_bps, instrument),
            )
            place.qty = order.filled
            self.ctx.log.info("grid.filled", side=order.side, price=order.price,
                              qty=order.filled, then=place.side, at=place.price)  # fmt: skip
        else:  # refused, or ended by the venue: offered again later
            place.qty -= order.filled
            place.quiet_until_s = self.ctx.now_s() + params.retry_after_s
            self.ctx.log.info("grid.order_ended", status=order.status, reason=order.reason,
                              side=place.side, price=place.price)  # fmt: skip
            if place.qty < instrument.ordermin:
                self.places.remove(place)
        book = self.ctx.book(self.pair)
        if book is not None:
            self._offer(book)

    def _offer(self, book: BookView) -> None:
        """Place every waiting place that may go now, nearest the center first."""
        params, now_s = self.ctx.params, self.ctx.now_s()
        bid, ask = book.best_bid, book.best_ask
        position = self.ctx.position(self.pair).qty
        resting = [p for p in self.places if p.cl_ord_id is not None]
        open_buy = sum((p.qty for p in resting if p.side == "buy"), Decimal(0))
        open_sell = sum((p.qty for p in resting if p.side == "sell"), Decimal(0))
        waiting = sorted((p for p in self.places if p.cl_ord_id is None),
                         key=lambda p: abs(p.price - (self.center or p.price)))  # fmt: skip
        next_retry_s: float | None = None
        for place in waiting:
            if len(self.by_order) >= self.max_open:
                break
            if now_s < place.quiet_until_s:
                if next_retry_s is None or place.quiet_until_s < next_retry_s:
                    next_retry_s = place.quiet_until_s
                continue
            if place.side == "buy":
                crosses = ask is not None and place.price >= ask[0]
                if crosses or position + open_buy + place.qty > params.max_inventory:
                    continue
                open_buy += place.qty
            else:
                crosses = bid is not None and place.price <= bid[0]
                if crosses or position - open_sell - place.qty < -params.max_inventory:
                    continue
                open_sell += place.qty
            place.cl_ord_id = self.ctx.place(self.pair, place.side, place.qty, place.price,
                                             post_only=True)  # fmt: skip
            self.by_order[place.cl_ord_id] = place
        if next_retry_s is not None:
            self.ctx.set_timer(_RETRY, max(0.0, next_retry_s - now_s))


def _other(side: Side) -> Side:
    return "sell" if side == "buy" else "buy"

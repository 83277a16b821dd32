"""A two-sided market maker: one bid and one ask around the mid of each pair it trades.

Quotes sit `spread_bps` away from the mid, shifted against the inventory (long: both quotes move
down, so the ask fills sooner and the bid later) by up to `skew_bps` at `max_inventory`. When the
mid moves so that a quote is more than `requote_bps` away from where it should be, the quote is
amended in place (queue priority and no new order); a side whose inventory reached
`max_inventory` is not quoted.

    [[strategies]]
    name = "mm-xbt"
    module = "strategies.market_maker"
    account = "mm-xbt"
    pairs = ["XBT/USD"]
    params = { size = "0.01", spread_bps = 8 }
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import msgspec

from orchestrator.strategy import BookView, OrderUpdate, Side, Strategy, StrategyParams

_BPS = Decimal("0.0001")


class Params(StrategyParams, frozen=True):
    size: Decimal  # base units per quote
    spread_bps: Decimal = Decimal(10)  # each quote this far from the (skewed) mid
    requote_bps: Decimal = Decimal(3)  # amend once a quote is this far from its target
    max_inventory: Decimal = Decimal(1)  # base units: a side stops quoting past it
    skew_bps: Decimal = Decimal(5)  # how far the quotes lean at max_inventory
    retry_after_s: Annotated[float, msgspec.Meta(ge=0)] = 1.0  # after a refused quote or amend

    def __post_init__(self) -> None:
        for name in ("size", "spread_bps", "requote_bps", "max_inventory"):
            value = getattr(self, name)
            if not (value.is_finite() and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value}")
        if not (self.skew_bps.is_finite() and self.skew_bps >= 0):
            raise ValueError(f"skew_bps must be >= 0, got {self.skew_bps}")


class MarketMaker(Strategy[Params]):
    Params = Params

    def on_start(self) -> None:
        self.quotes: dict[tuple[str, Side], str] = {}  # (pair, side) -> cl_ord_id
        self.quiet_until_s: dict[tuple[str, Side], float] = {}  # a side refused: wait
        for order in self.ctx.open_orders():  # adopted after a restart: keep quoting with them
            self.quotes.setdefault((order.pair, order.side), order.cl_ord_id)

    def on_book(self, book: BookView) -> None:
        mid = book.mid
        if mid is None:
            return
        params = self.ctx.params
        inventory = self.ctx.position(book.pair).qty
        lean = max(Decimal(-1), min(Decimal(1), inventory / params.max_inventory))
        center = mid * (1 - lean * params.skew_bps * _BPS)
        half = center * params.spread_bps * _BPS
        instrument = self.ctx.instrument(book.pair)
        targets: dict[Side, Decimal] = {
            "buy": instrument.round_price(center - half),
            "sell": instrument.round_price(center + half, up=True),
        }
        for side, price in targets.items():
            full = inventory >= params.max_inventory if side == "buy" else (
                inventory <= -params.max_inventory
            )  # fmt: skip
            self._quote(book.pair, side, price, mid, stop=full)

    def _quote(self, pair: str, side: Side, price: Decimal, mid: Decimal, *, stop: bool) -> None:
        cl_ord_id = self.quotes.get((pair, side))
        order = self.ctx.order(cl_ord_id) if cl_ord_id is not None else None
        if order is None or not order.is_open:
            if not stop and self.ctx.now_s() >= self.quiet_until_s.get((pair, side), 0.0):
                self.quotes[(pair, side)] = self.ctx.place(pair, side, self.ctx.params.size, price,
                                                           post_only=True)  # fmt: skip
            return
        if stop:
            self.ctx.cancel(order.cl_ord_id)
        elif (
            order.status != "pending_new"
            and order.price is not None
            and (abs(order.price - price) > mid * self.ctx.params.requote_bps * _BPS)
            and self.ctx.now_s() >= self.quiet_until_s.get((pair, side), 0.0)
        ):
            self.ctx.amend(order.cl_ord_id, price=price)

    def on_order(self, order: OrderUpdate) -> None:
        if order.is_open and order.reason is not None:  # an amend (or cancel) was refused
            retry_s = self.ctx.now_s() + self.ctx.params.retry_after_s
            self.quiet_until_s[(order.pair, order.side)] = retry_s
            return
        if not order.is_open and self.quotes.get((order.pair, order.side)) == order.cl_ord_id:
            del self.quotes[(order.pair, order.side)]
            if order.status == "rejected":
                retry_s = self.ctx.now_s() + self.ctx.params.retry_after_s
                self.quiet_until_s[(order.pair, order.side)] = retry_s
                self.ctx.log.info("mm.quote_rejected", pair=order.pair, side=order.side,
                                  reason=order.reason)  # fmt: skip

"""The tick-to-order benchmark's strategy: one buy order that joins the best bid and follows it.

The first whole book places it; every later book whose best bid moved amends it to the new
best bid, so each tick the venue sends becomes exactly one `amend_order`, priced with that
tick's best bid (how the venue tells which tick an order answers).
"""

from __future__ import annotations

from decimal import Decimal

from orchestrator.strategy import BookView, OrderUpdate, Strategy, StrategyParams


class Params(StrategyParams, frozen=True):
    size: Decimal  # base units of the order


class BestBidFollower(Strategy[Params]):
    def on_start(self) -> None:
        self.order_id: str | None = None

    def on_book(self, book: BookView) -> None:
        best = book.best_bid
        if best is None:
            return
        price = best[0]
        if self.order_id is None:
            self.order_id = self.ctx.place(
                book.pair, "buy", self.ctx.params.size, price, post_only=True
            )
            return
        order = self.ctx.order(self.order_id)
        if order is not None and order.is_open and order.price != price:
            self.ctx.amend(self.order_id, price=price)

    def on_order(self, order: OrderUpdate) -> None:
        if order.cl_ord_id == self.order_id and not order.is_open:
            self.ctx.log.warning("tick.order_closed", status=order.status, reason=order.reason)
            self.order_id = None  # placed again on the next book

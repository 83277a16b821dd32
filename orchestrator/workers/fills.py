"""What each order's fills told the strategy, to find what they did not.

Executions the venue sent while the private socket was down are not sent again: the reconnect's
snapshot (or REST) moves an order's filled quantity with no trade frame. The difference between
what the venue executed and what the fills told is then one fill, told once, so the strategy's
position stays what the venue executed.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import msgspec

from orchestrator.exchange.instruments import Instrument
from orchestrator.strategy import Fill
from orchestrator.workers.order_states import TrackedOrder
from orchestrator.workers.positions import fee_in_quote


@dataclass(slots=True)
class Told:
    """What the strategy was told of one order's fills, to find what it was not."""

    qty: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)  # quote units


def missed_fill(order: TrackedOrder, told: Told, *, now_s: float) -> Fill | None:
    """The fill of what the venue executed that no execution told (the socket was down): the
    quantity, cost and fees since, as one fill with the average price; None when nothing is
    missing."""
    missed = order.filled - told.qty
    if missed <= 0:
        return None
    return Fill(cl_ord_id=order.cl_ord_id, pair=order.instrument.wsname, side=order.side,
                price=(order.cum_cost - told.cost) / missed, qty=missed,
                fee=max(Decimal(0), order.fees - told.fees), fee_asset=order.instrument.quote,
                liquidity="maker" if order.rested_s is not None else "taker",
                exec_id=f"reconciled:{order.txid}:{order.filled}", time_s=now_s)  # fmt: skip


class FillTally:
    """Per order, the quantity, cost and fees its fills told so far."""

    def __init__(self) -> None:
        self._told: dict[str, Told] = {}

    def unseen(self, fill: Fill, order: TrackedOrder) -> Fill | None:
        """`fill`, or what of it was not told already: a trade frame arriving after REST ran
        ahead of the socket (a `reconciled:` fill told its quantity) is not counted again."""
        told = self._told.get(fill.cl_ord_id)
        if told is None or told.qty + fill.qty <= order.filled:
            return fill
        left = order.filled - told.qty
        if left <= 0:
            return None
        return msgspec.structs.replace(fill, qty=left, fee=fill.fee * left / fill.qty)

    def record(self, fill: Fill, instrument: Instrument) -> None:
        told = self._told.setdefault(fill.cl_ord_id, Told())
        told.qty += fill.qty
        told.cost += fill.qty * fill.price
        told.fees += fee_in_quote(fill.fee, fill.fee_asset, fill.price, instrument) or 0

    def missed(self, order: TrackedOrder, *, now_s: float) -> Fill | None:
        return missed_fill(order, self._told.get(order.cl_ord_id, Told()), now_s=now_s)

    def forget(self, cl_ord_id: str) -> None:
        self._told.pop(cl_ord_id, None)

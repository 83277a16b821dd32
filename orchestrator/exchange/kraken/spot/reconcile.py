"""The spot lookups `act_once` (common/reconcile.py) needs: an order by its `cl_ord_id`."""

from __future__ import annotations

from orchestrator.exchange.kraken.common.methods import CLOSED_ORDERS, OPEN_ORDERS
from orchestrator.exchange.kraken.spot.rest import KrakenRest
from orchestrator.exchange.kraken.spot.schemas import ClosedOrders, KrakenOrder, OpenOrders


async def find_order(rest: KrakenRest, cl_ord_id: str) -> tuple[str, KrakenOrder] | None:
    """The order with this `cl_ord_id` (txid and state), open or closed, or None."""
    params = {"cl_ord_id": cl_ord_id}
    opened = await rest.call_as(OpenOrders, OPEN_ORDERS, params)
    for txid, order in opened.open.items():
        return txid, order
    closed = await rest.call_as(ClosedOrders, CLOSED_ORDERS, params)
    for txid, order in closed.closed.items():
        return txid, order
    return None

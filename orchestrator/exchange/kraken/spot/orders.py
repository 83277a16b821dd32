"""Kraken order payloads in the protocol's types: order states and the AddOrder parameters."""

from __future__ import annotations

from typing import Any

from orchestrator.exchange.instruments import Instruments
from orchestrator.exchange.kraken.spot import schemas as s
from orchestrator.exchange.protocol import OrderSpec, OrderState


def order_state(txid: str, order: s.KrakenOrder, instruments: Instruments) -> OrderState:
    """Kraken's order as the protocol's `OrderState`, its pair by the registry's `wsname`."""
    pair = order.descr.pair
    limit = order.descr.price if order.descr.ordertype == "limit" else None
    return OrderState(
        txid=txid,
        cl_ord_id=order.cl_ord_id,
        pair=instruments.get(pair).wsname if pair in instruments else pair,
        side="buy" if order.descr.type == "buy" else "sell",
        order_type=order.descr.ordertype,
        status=order.status,  # type: ignore[arg-type]  # Kraken's five statuses
        volume=order.vol,
        executed=order.vol_exec,
        price=limit,
        avg_price=order.price,
        cost=order.cost,
        fee=order.fee,
        opened_s=order.opentm,
        closed_s=order.closetm,
        reason=order.reason,
    )


def add_order_params(spec: OrderSpec) -> dict[str, Any]:
    """AddOrder's form for `spec`; numbers checked against the instrument first."""
    instrument = spec.instrument
    params: dict[str, Any] = {
        "pair": instrument.altname,
        "type": spec.side,
        "ordertype": spec.order_type,
        "volume": instrument.qty_text(spec.volume),
        "cl_ord_id": spec.cl_ord_id,
        "timeinforce": spec.time_in_force,
    }
    if spec.price is not None:
        params["price"] = instrument.price_text(spec.price)
    if spec.post_only:
        params["oflags"] = "post"
    if spec.expire_s is not None:
        params["expiretm"] = f"{spec.expire_s:.3f}"
    return params

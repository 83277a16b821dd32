"""The params of WebSocket v2 order requests, one truth for every sender of them (live order
entry, and the replay harness's in-process venue).

Numbers leave as exact JSON numbers (`msgspec.Raw` of `Instrument.qty_text` / `price_text`, which
refuse what Kraken would refuse): v2 takes numbers, and a float on the way would round them.
Token and `deadline` are the sender's to add.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Final

import msgspec

from orchestrator.exchange.kraken.spot.trading import rfc3339
from orchestrator.exchange.protocol import OrderRef, OrderSpec

_TIME_IN_FORCE: Final = {"GTC": "gtc", "IOC": "ioc", "GTD": "gtd"}


def _number(text: str) -> msgspec.Raw:
    """A JSON number written exactly as `text`."""
    return msgspec.Raw(text.encode())


def add_order_params(spec: OrderSpec) -> dict[str, Any]:
    """`add_order`'s params for `spec`; numbers checked first."""
    instrument = spec.instrument
    params: dict[str, Any] = {
        "order_type": spec.order_type,
        "side": spec.side,
        "symbol": instrument.symbol,
        "order_qty": _number(instrument.qty_text(spec.volume)),
        "cl_ord_id": spec.cl_ord_id,
        "time_in_force": _TIME_IN_FORCE[spec.time_in_force],
    }
    if spec.price is not None:
        params["limit_price"] = _number(instrument.price_text(spec.price))
    if spec.post_only:
        params["post_only"] = True
    if spec.expire_s is not None:
        params["expire_time"] = rfc3339(spec.expire_s)
    return params


MAX_BATCH: Final = 15


def batch_add_params(specs: Sequence[OrderSpec]) -> dict[str, Any]:
    """`batch_add`'s params: 2 to 15 orders of one pair (the symbol said once)."""
    if not 2 <= len(specs) <= MAX_BATCH:
        raise ValueError(f"a batch holds 2 to {MAX_BATCH} orders, not {len(specs)}")
    symbol = specs[0].instrument.symbol
    if any(spec.instrument.symbol != symbol for spec in specs):
        raise ValueError("a batch's orders are all of one pair")
    orders = []
    for spec in specs:
        order = add_order_params(spec)
        del order["symbol"]
        orders.append(order)
    return {"symbol": symbol, "orders": orders}


def amend_order_params(
    ref: OrderRef, *, volume: Decimal | None, price: Decimal | None
) -> dict[str, Any]:
    """`amend_order`'s params: the order by its id, the new volume and/or limit price."""
    if volume is None and price is None:
        raise ValueError("an amend changes the volume, the price or both")
    params: dict[str, Any] = {"order_id": ref.txid}
    if volume is not None:
        params["order_qty"] = _number(ref.instrument.qty_text(volume))
    if price is not None:
        params["limit_price"] = _number(ref.instrument.price_text(price))
    return params

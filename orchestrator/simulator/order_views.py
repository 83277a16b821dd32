"""Kraken's renderings of an order: the Order object of OpenOrders, ClosedOrders and QueryOrders,
AddOrder's `descr.order` line, and the amend history of OrderAmends.
"""

from __future__ import annotations

from decimal import Decimal

from orchestrator.simulator.orders import Order, fmt


def order_info(order: Order, with_trades: bool = False) -> dict[str, object]:
    """The Order object of OpenOrders / ClosedOrders / QueryOrders."""
    pair = order.pair
    vol = Decimal(order.volume).scaleb(-pair.lot_decimals)
    executed = Decimal(order.executed).scaleb(-pair.lot_decimals)
    price = Decimal(order.price).scaleb(-pair.pair_decimals) if order.price is not None else None
    avg = order.cost / executed if executed else Decimal(0)
    shown_price = fmt(price, pair.pair_decimals) if price is not None else ""
    at = f" @ limit {shown_price}" if price is not None else " @ market"
    oflags = ["fciq"] + (["post"] if order.post_only else [])
    misc = [
        m
        for m, on in (("amended", order.amended), ("partial", 0 < order.executed < order.volume))
        if on
    ]
    info: dict[str, object] = {
        "refid": None,
        "userref": order.userref,
        "cl_ord_id": order.cl_ord_id,
        "status": order.status,
        "opentm": order.opened_s,
        "starttm": 0,
        "expiretm": order.expire_s or 0,
        "descr": {
            "pair": pair.altname,
            "type": order.side,
            "ordertype": order.ordertype,
            "price": shown_price or "0",
            "price2": "0",
            "leverage": "none",
            "order": f"{order.side} {fmt(vol, pair.lot_decimals)} {pair.altname}{at}",
            "close": "",
        },
        "vol": fmt(vol, pair.lot_decimals),
        "vol_exec": fmt(executed, pair.lot_decimals),
        "cost": fmt(order.cost, pair.cost_decimals),
        "fee": fmt(order.fee, pair.cost_decimals),
        "price": fmt(avg, pair.pair_decimals),
        "stopprice": "0.00000",
        "limitprice": "0.00000",
        "misc": ",".join(misc),
        "oflags": ",".join(oflags),
        "timeinforce": order.timeinforce,
    }
    if order.closed_s is not None:
        info["closetm"] = order.closed_s
        info["reason"] = order.reason
    if with_trades:
        info["trades"] = list(order.trades)
    return info


def describe(order: Order) -> str:
    """Kraken's `descr.order` line of an AddOrder result."""
    info = order_info(order)
    descr = info["descr"]
    assert isinstance(descr, dict)  # noqa: S101 - built just above
    return str(descr["order"])


def amends_info(order: Order) -> dict[str, object]:
    """OrderAmends' result: the history (entry first, ascending time) and its length.

    Optional fields appear only when they say something: `post_only` when true, `reason` when
    set; iceberg `display_qty` and trigger prices are not modelled.
    """
    pair = order.pair

    def qty(units: int) -> str:
        return fmt(Decimal(units).scaleb(-pair.lot_decimals), pair.lot_decimals)

    amends: list[dict[str, object]] = []
    for record in order.amends:
        item: dict[str, object] = {
            "amend_id": record.amend_id,
            "amend_type": record.amend_type,
            "order_qty": qty(record.order_qty),
            "remaining_qty": qty(record.remaining_qty),
        }
        if record.limit_price is not None:
            price = Decimal(record.limit_price).scaleb(-pair.pair_decimals)
            item["limit_price"] = fmt(price, pair.pair_decimals)
        if record.post_only:
            item["post_only"] = True
        if record.reason is not None:
            item["reason"] = record.reason
        item["timestamp"] = record.timestamp_ns
        amends.append(item)
    return {"amends": amends, "count": len(amends)}

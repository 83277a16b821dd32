"""What the engine tells private subscribers, in WS v2's `executions` and `balances` shapes.

The engine builds these once per change; each private WS connection of the account forwards them.
Values are Decimals, encoded as JSON numbers by the WS layer (Kraken's v2 sends numbers).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from orchestrator.simulator.accounts import LedgerEntry
from orchestrator.simulator.catalog import Catalog
from orchestrator.simulator.orders import Order

ExecutionListener = Callable[[str, dict[str, Any]], None]  # (account, executions data element)
LedgerListener = Callable[[str, dict[str, Any]], None]  # (account, balances update element)


def rfc3339(ts_s: float) -> str:
    """Kraken's WS timestamps: RFC3339 with microseconds and Z."""
    return datetime.fromtimestamp(ts_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _status(order: Order) -> str:
    if order.status == "open" or (order.status == "pending" and order.executed):
        # an incoming order trading before it rests or closes is filling, not pending
        if order.executed and order.executed >= order.volume:
            return "filled"
        return "partially_filled" if order.executed else "new"
    if order.status == "closed":
        return "filled"
    return {"pending": "pending_new", "canceled": "canceled", "expired": "expired"}[order.status]


def _avg_price(cost: Decimal, qty: Decimal, decimals: int) -> Decimal:
    """Average fill price at the pair's price precision (cost / qty has 28 digits otherwise)."""
    return (cost / qty).quantize(Decimal(1).scaleb(-decimals)) if qty else Decimal(0)


def execution(order: Order, exec_type: str, now_s: float, **extra: Any) -> dict[str, Any]:
    """One `executions` element for `order` after a change of kind `exec_type`."""
    pair = order.pair
    qty = Decimal(order.volume).scaleb(-pair.lot_decimals)
    cum_qty = Decimal(order.executed).scaleb(-pair.lot_decimals)
    event: dict[str, Any] = {
        "order_id": order.txid,
        "exec_type": exec_type,
        "timestamp": rfc3339(now_s),
        "order_status": _status(order),
        "symbol": pair.symbol,
        "side": order.side,
        "order_type": order.ordertype,
        "order_qty": qty,
        "time_in_force": order.timeinforce.lower(),
        "post_only": order.post_only,
        "cum_qty": cum_qty,
        "cum_cost": order.cost,
        "avg_price": _avg_price(order.cost, cum_qty, pair.pair_decimals),
        "fee_usd_equiv": order.fee,
    }
    if order.price is not None:
        event["limit_price"] = Decimal(order.price).scaleb(-pair.pair_decimals)
    if order.cl_ord_id is not None:
        event["cl_ord_id"] = order.cl_ord_id
    if order.userref is not None:
        event["order_userref"] = order.userref
    if order.reason is not None and exec_type in ("canceled", "expired"):
        event["reason"] = order.reason
    event.update(extra)
    return event


def ledger_update(entry: LedgerEntry, catalog: Catalog) -> dict[str, Any]:
    """One `balances` update element: a ledger entry with the resulting balance."""
    asset = catalog.assets.get(entry.asset)
    return {
        "ledger_id": entry.id,
        "ref_id": entry.refid,
        "timestamp": rfc3339(entry.time),
        "type": entry.type,
        "subtype": entry.subtype,
        "category": entry.type,
        "asset": asset.ws_name if asset is not None else entry.asset,
        "asset_class": entry.aclass,
        "amount": entry.amount,
        "fee": entry.fee,
        "balance": entry.balance,
        "wallet_type": "spot",
        "wallet_id": "main",
    }

"""Spot private REST queries (`/0/private/<Method>`): balances, orders, amends, ledgers.

They change nothing, and they are what a client reconciles an ambiguous outcome with:
OpenOrders/ClosedOrders filtered by `cl_ord_id` or `userref` (AddOrder, CancelOrder, CancelAll),
QueryOrders and OrderAmends (AmendOrder), Ledgers with `type=transfer` (AccountTransfer; the
entry's `refid` is the transfer id). WithdrawStatus, for Withdraw, is with the funding methods.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final

from orchestrator.simulator.accounts import Account, LedgerEntry
from orchestrator.simulator.auth import ApiKey
from orchestrator.simulator.errors import KrakenError
from orchestrator.simulator.order_views import amends_info, order_info
from orchestrator.simulator.orders import Order, fmt, invalid, parse_decimal
from orchestrator.simulator.params import Params
from orchestrator.simulator.venue import Venue

_PAGE: Final = 50
_MAX_QUERY_ORDERS: Final = 50
_MAX_QUERY_LEDGERS: Final = 20
INVALID_ORDER: Final = "EOrder:Invalid order"


def account_of(venue: Venue, key: ApiKey) -> Account:
    return venue.domain.accounts[key.account]


def balance(venue: Venue, key: ApiKey, params: Params) -> dict[str, str]:
    account = account_of(venue, key)
    out: dict[str, str] = {}
    for asset, amount in sorted(account.balances.items()):
        decimals = venue.catalog.assets[asset].decimals
        net = amount - account.pending_out.get(asset, Decimal(0))
        out[asset] = fmt(net, decimals)
    return out


def balance_ex(venue: Venue, key: ApiKey, params: Params) -> dict[str, dict[str, str]]:
    account = account_of(venue, key)
    out: dict[str, dict[str, str]] = {}
    for asset, amount in sorted(account.balances.items()):
        decimals = venue.catalog.assets[asset].decimals
        out[asset] = {
            "balance": fmt(amount - account.pending_out.get(asset, Decimal(0)), decimals),
            "hold_trade": fmt(account.held(asset), decimals),
        }
    return out


def _filtered(orders: list[Order], params: Params) -> list[Order]:
    userref = params.integer("userref")
    cl_ord_id = params.text("cl_ord_id")
    return [
        o
        for o in orders
        if (userref is None or o.userref == userref)
        and (cl_ord_id is None or o.cl_ord_id == cl_ord_id)
    ]


def open_orders(venue: Venue, key: ApiKey, params: Params) -> dict[str, Any]:
    orders = _filtered(list(venue.engine.open_orders(key.account).values()), params)
    trades = params.flag("trades")
    return {"open": {o.txid: order_info(o, trades) for o in orders}}


def closed_orders(venue: Venue, key: ApiKey, params: Params) -> dict[str, Any]:
    start, end = params.text("start"), params.text("end")
    ofs = params.integer("ofs") or 0
    closed = [o for o in venue.engine.orders.values() if o.account == key.account and not o.is_open]
    closed = _filtered(closed, params)
    closed.sort(key=lambda o: o.closed_s or 0.0, reverse=True)
    if start is not None:
        closed = [o for o in closed if (o.closed_s or 0) > float(parse_decimal(start, "start"))]
    if end is not None:
        closed = [o for o in closed if (o.closed_s or 0) <= float(parse_decimal(end, "end"))]
    page = closed[ofs : ofs + _PAGE]
    trades = params.flag("trades")
    return {"closed": {o.txid: order_info(o, trades) for o in page}, "count": len(closed)}


def query_orders(venue: Venue, key: ApiKey, params: Params) -> dict[str, Any]:
    txids = params.csv("txid")
    if not txids or len(txids) > _MAX_QUERY_ORDERS:
        raise invalid("txid")
    out: dict[str, Any] = {}
    for txid in txids:
        order = venue.engine.orders.get(txid)
        if order is None or order.account != key.account:
            raise KrakenError(INVALID_ORDER)
        out[txid] = order_info(order, params.flag("trades"))
    return out


def order_amends(venue: Venue, key: ApiKey, params: Params) -> dict[str, object]:
    """OrderAmends: the order's entry, then each amend, oldest first.

    Needs "Query open orders" for an open order, "Query closed orders" for a closed one (the
    permission check let either through). An unknown `order_id` is `EOrder:Invalid order`, as
    in QueryOrders (UNCONFIRMED: Kraken documents no error for it).
    """
    order = venue.engine.orders.get(params.text("order_id") or "")
    if params.text("order_id") is None:
        raise invalid("order_id")
    if order is None or order.account != key.account:
        raise KrakenError(INVALID_ORDER)
    venue.spot_auth.require(key, "query_open" if order.is_open else "query_closed")
    return amends_info(order)


def _ledger_json(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "refid": entry.refid,
        "time": entry.time,
        "type": entry.type,
        "subtype": entry.subtype,
        "aclass": entry.aclass,
        "asset": entry.asset,
        "amount": str(entry.amount),
        "fee": str(entry.fee),
        "balance": str(entry.balance),
    }


def ledgers(venue: Venue, key: ApiKey, params: Params) -> dict[str, Any]:
    account = account_of(venue, key)
    assets = (
        {venue.catalog.asset(a).id for a in params.csv("asset")} if params.text("asset") else None
    )
    type_ = params.text("type") or "all"
    entries = [
        e
        for e in reversed(account.ledger)
        if (assets is None or e.asset in assets) and type_ in ("all", e.type)
    ]
    start, end = params.text("start"), params.text("end")
    if start is not None:
        entries = [e for e in entries if e.time > float(parse_decimal(start, "start"))]
    if end is not None:
        entries = [e for e in entries if e.time <= float(parse_decimal(end, "end"))]
    ofs = params.integer("ofs") or 0
    page = entries[ofs : ofs + _PAGE]
    return {"ledger": {e.id: _ledger_json(e) for e in page}, "count": len(entries)}


def query_ledgers(venue: Venue, key: ApiKey, params: Params) -> dict[str, Any]:
    ids = params.csv("id")
    if not ids or len(ids) > _MAX_QUERY_LEDGERS:
        raise invalid("id")
    out: dict[str, Any] = {}
    for ledger_id in ids:
        found = venue.domain.ledger_index.get(ledger_id)
        if found is None or found[0] != key.account:
            raise invalid("id")
        out[ledger_id] = _ledger_json(found[1])
    return out

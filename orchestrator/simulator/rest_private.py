"""Spot private REST methods (`/0/private/<Method>`): parameters in, Kraken's `result` out.

Each handler gets the venue, the authenticated key and the parsed parameters, after the HTTP
layer has checked signature, nonce, permission and the key's REST counter. Order entry charges
the trading counters inside the engine, shared with WS as on Kraken.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from orchestrator.simulator import limits as rl
from orchestrator.simulator.accounts import Account, LedgerEntry
from orchestrator.simulator.auth import ApiKey, Permission
from orchestrator.simulator.errors import KrakenError
from orchestrator.simulator.orders import (
    Order,
    OrderRequest,
    describe,
    fmt,
    invalid,
    order_info,
    parse_decimal,
)
from orchestrator.simulator.params import Params
from orchestrator.simulator.venue import Venue

Handler = Callable[[Venue, ApiKey, Params], Any]
_PAGE: Final = 50
_MAX_QUERY_ORDERS: Final = 50
_MAX_QUERY_LEDGERS: Final = 20
_MAX_DEAD_MAN_S: Final = 86400
_OFLAGS: Final = frozenset({"post", "fcib", "fciq", "nompp"})


@dataclass(frozen=True, slots=True)
class Endpoint:
    handler: Handler
    permissions: tuple[Permission, ...]  # any one of them suffices
    trading: bool = False  # acts on orders: subject to the lost-reply fault


def _account(venue: Venue, key: ApiKey) -> Account:
    return venue.domain.accounts[key.account]


def _rfc3339_s(ts_s: float) -> str:
    return datetime.fromtimestamp(ts_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _expire_s(text: str | None, now_s: float) -> float | None:
    """`expiretm`: 0 (none), a unix time, or `+<n>` seconds from now."""
    if text is None or text in ("", "0"):
        return None
    if text.startswith("+"):
        return now_s + float(parse_decimal(text[1:], "expiretm"))
    return float(parse_decimal(text, "expiretm"))


def _check_deadline(venue: Venue, params: Params) -> None:
    deadline = params.text("deadline")
    if deadline is None:
        return
    try:
        when_s = datetime.fromisoformat(deadline.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise invalid("deadline") from None
    if when_s < venue.clock.time():
        raise KrakenError("EService:Deadline elapsed")


def _check_status(venue: Venue) -> None:
    status = venue.settings.status
    if status == "maintenance":
        raise KrakenError("EService:Unavailable")
    if status == "cancel_only":
        raise KrakenError("EService:Market in cancel_only mode")


def order_request(values: Params, pair: str | None, now_s: float) -> OrderRequest:
    """An AddOrder (or batch entry) from Kraken's REST parameters."""
    oflags: set[str] = set(values.csv("oflags"))
    if oflags - _OFLAGS:
        raise invalid("oflags")
    userref = values.integer("userref")
    return OrderRequest(
        pair=pair or values.need("pair"),
        side=values.need("type"),
        ordertype=values.need("ordertype"),
        volume=values.need("volume"),
        price=values.text("price"),
        cl_ord_id=values.text("cl_ord_id"),
        userref=userref,
        post_only="post" in oflags,
        reduce_only=values.flag("reduce_only"),
        timeinforce=(values.text("timeinforce") or "GTC").upper(),
        expire_s=_expire_s(values.text("expiretm"), now_s),
        stptype=values.text("stptype") or "cancel-newest",
        validate=values.flag("validate"),
    )


# --- account data -------------------------------------------------------------------------------
def balance(venue: Venue, key: ApiKey, params: Params) -> dict[str, str]:
    account = _account(venue, key)
    out: dict[str, str] = {}
    for asset, amount in sorted(account.balances.items()):
        decimals = venue.catalog.assets[asset].decimals
        net = amount - account.pending_out.get(asset, Decimal(0))
        out[asset] = fmt(net, decimals)
    return out


def balance_ex(venue: Venue, key: ApiKey, params: Params) -> dict[str, dict[str, str]]:
    account = _account(venue, key)
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
            raise KrakenError("EOrder:Invalid order")
        out[txid] = order_info(order, params.flag("trades"))
    return out


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
    account = _account(venue, key)
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


# --- trading ------------------------------------------------------------------------------------
def add_order(venue: Venue, key: ApiKey, params: Params) -> dict[str, Any]:
    _check_status(venue)
    _check_deadline(venue, params)
    result = venue.engine.add_order(key.account, order_request(params, None, venue.clock.time()))
    descr = {"order": describe(result.order)}
    if result.validated_only:
        return {"descr": descr}
    return {"descr": descr, "txid": [result.order.txid]}


def add_order_batch(venue: Venue, key: ApiKey, params: Params) -> dict[str, Any]:
    """Whole batch validated first; then each order placed, failing alone on funds."""
    _check_status(venue)
    _check_deadline(venue, params)
    entries = params.array("orders")
    if (
        entries is None
        or not 2 <= len(entries) <= 15
        or not all(isinstance(e, dict) for e in entries)
    ):
        raise invalid("orders")
    pair = venue.catalog.pair(params.need("pair"))
    venue.limits.charge_trading(
        key.account, pair.wsname, rl.batch_add_cost(len(entries)), venue.clock.time()
    )
    now_s = venue.clock.time()
    requests = [order_request(Params(e), pair.key, now_s) for e in entries]
    venue.engine.validate_batch(key.account, requests)
    out: list[dict[str, Any]] = []
    for request in requests:
        try:
            placed = venue.engine.add_order(key.account, request, charge=False)
        except KrakenError as exc:
            out.append({"error": exc.code})
            continue
        out.append({"txid": placed.order.txid, "descr": {"order": describe(placed.order)}})
    return {"orders": out}


def _target_orders(venue: Venue, key: ApiKey, params: Params) -> list[Order]:
    """CancelOrder's target: `txid` (a txid, or an integer userref) or `cl_ord_id`."""
    cl_ord_id = params.text("cl_ord_id")
    txid = params.text("txid")
    if cl_ord_id is not None:
        return venue.engine.find_orders(key.account, cl_ord_id=cl_ord_id)
    if txid is None:
        raise invalid("txid")
    if txid.lstrip("-").isdigit():
        return venue.engine.find_orders(key.account, userref=int(txid))
    return venue.engine.find_orders(key.account, txid=txid)


def cancel_order(venue: Venue, key: ApiKey, params: Params) -> dict[str, Any]:
    return {
        "count": venue.engine.cancel(key.account, _target_orders(venue, key, params)),
        "pending": False,
    }


def cancel_order_batch(venue: Venue, key: ApiKey, params: Params) -> dict[str, Any]:
    ids: list[tuple[str, str]] = []
    for item in params.array("orders") or []:
        if not isinstance(item, dict) or not isinstance(item.get("txid"), str):
            raise invalid("orders")
        ids.append(("txid", item["txid"]))
    for item in params.array("cl_ord_ids") or []:
        if not isinstance(item, dict) or not isinstance(item.get("cl_ord_id"), str):
            raise invalid("cl_ord_ids")
        ids.append(("cl_ord_id", item["cl_ord_id"]))
    if not ids or len(set(ids)) > _MAX_QUERY_ORDERS:
        raise invalid("orders")
    found: dict[str, Order] = {}
    for kind, value in set(ids):
        opened = venue.engine.open_orders(key.account).values()
        for order in opened:
            if (order.txid if kind == "txid" else order.cl_ord_id) == value:
                found[order.txid] = order
    return {"count": venue.engine.cancel(key.account, list(found.values()))}


def cancel_all(venue: Venue, key: ApiKey, params: Params) -> dict[str, Any]:
    return {"count": venue.engine.cancel_all(key.account), "pending": False}


def cancel_all_orders_after(venue: Venue, key: ApiKey, params: Params) -> dict[str, Any]:
    timeout = params.integer("timeout")
    if timeout is None or not 0 <= timeout < _MAX_DEAD_MAN_S:
        raise invalid("timeout")
    trigger_s = venue.engine.set_dead_man(key.account, timeout)
    return {
        "currentTime": _rfc3339_s(venue.clock.time()),
        "triggerTime": _rfc3339_s(trigger_s) if trigger_s else "0",
    }


def amend_order(venue: Venue, key: ApiKey, params: Params) -> dict[str, Any]:
    _check_status(venue)
    _check_deadline(venue, params)
    txid, cl_ord_id = params.text("txid"), params.text("cl_ord_id")
    if (txid is None) == (cl_ord_id is None):
        raise invalid("txid or cl_ord_id")
    [order] = venue.engine.find_orders(key.account, txid=txid, cl_ord_id=cl_ord_id)[:1]
    amend_id = venue.engine.amend(
        key.account,
        order,
        order_qty=params.text("order_qty"),
        limit_price=params.text("limit_price"),
        post_only=params.flag("post_only"),
    )
    return {"amend_id": amend_id}


def edit_order(venue: Venue, key: ApiKey, params: Params) -> dict[str, Any]:
    _check_status(venue)
    _check_deadline(venue, params)
    original = _target_orders(venue, key, params)[0]
    pair = venue.catalog.pair(params.need("pair"))
    if pair is not original.pair:
        raise invalid("pair")
    values = dict(params.values)
    values.setdefault("type", original.side)
    values.setdefault("ordertype", original.ordertype)
    values.setdefault(
        "volume", fmt(Decimal(original.volume).scaleb(-pair.lot_decimals), pair.lot_decimals)
    )
    if original.price is not None:
        values.setdefault(
            "price", fmt(Decimal(original.price).scaleb(-pair.pair_decimals), pair.pair_decimals)
        )
    values.pop("cl_ord_id", None)
    request = order_request(Params(values), pair.key, venue.clock.time())
    old, new = venue.engine.edit(key.account, original, request)
    return {
        "descr": {"order": describe(new)},
        "txid": new.txid,
        "originaltxid": old.txid,
        "volume": fmt(Decimal(new.volume).scaleb(-pair.lot_decimals), pair.lot_decimals),
        "price": fmt(Decimal(new.price or 0).scaleb(-pair.pair_decimals), pair.pair_decimals),
        "price2": "0",
        "orders_cancelled": 1,
        "newuserref": new.userref,
        "olduserref": old.userref,
        "status": "Ok",
    }


def get_websockets_token(venue: Venue, key: ApiKey, params: Params) -> dict[str, Any]:
    token = venue.issue_ws_token(key)
    return {"token": token.token, "expires": int(venue.settings.ws_token_ttl_s)}


# --- funding ------------------------------------------------------------------------------------
def create_subaccount(venue: Venue, key: ApiKey, params: Params) -> bool:
    venue.funding.create_subaccount(
        _account(venue, key), params.text("username"), params.text("email")
    )
    return True


def account_transfer(venue: Venue, key: ApiKey, params: Params) -> dict[str, Any]:
    transfer = venue.funding.account_transfer(
        _account(venue, key),
        params.text("asset"),
        params.text("amount"),
        params.text("from"),
        params.text("to"),
    )
    return {"transfer_id": transfer.transfer_id, "status": transfer.status}


def withdraw(venue: Venue, key: ApiKey, params: Params) -> dict[str, Any]:
    withdrawal = venue.funding.withdraw(
        _account(venue, key),
        params.text("asset"),
        params.text("key"),
        params.text("amount"),
        params.text("max_fee"),
    )
    out: dict[str, Any] = {"refid": withdrawal.refid}
    if withdrawal.approval_request_id is not None:
        out["approval_request_id"] = withdrawal.approval_request_id
    return out


def withdraw_status(venue: Venue, key: ApiKey, params: Params) -> list[dict[str, Any]]:
    return venue.funding.withdraw_status(_account(venue, key), params.text("asset"))


ENDPOINTS: Final[dict[str, Endpoint]] = {
    "Balance": Endpoint(balance, ("query_funds",)),
    "BalanceEx": Endpoint(balance_ex, ("query_funds",)),
    "OpenOrders": Endpoint(open_orders, ("query_open",)),
    "ClosedOrders": Endpoint(closed_orders, ("query_closed",)),
    "QueryOrders": Endpoint(query_orders, ("query_open", "query_closed")),
    "Ledgers": Endpoint(ledgers, ("query_ledger",)),
    "QueryLedgers": Endpoint(query_ledgers, ("query_ledger",)),
    "AddOrder": Endpoint(add_order, ("trade",), trading=True),
    "AddOrderBatch": Endpoint(add_order_batch, ("trade",), trading=True),
    "AmendOrder": Endpoint(amend_order, ("trade",), trading=True),
    "EditOrder": Endpoint(edit_order, ("trade",), trading=True),
    "CancelOrder": Endpoint(cancel_order, ("cancel",), trading=True),
    "CancelOrderBatch": Endpoint(cancel_order_batch, ("cancel",), trading=True),
    "CancelAll": Endpoint(cancel_all, ("cancel",), trading=True),
    "CancelAllOrdersAfter": Endpoint(cancel_all_orders_after, ("cancel",), trading=True),
    "GetWebSocketsToken": Endpoint(get_websockets_token, ("websocket",)),
    "CreateSubaccount": Endpoint(create_subaccount, ("withdraw",)),
    "AccountTransfer": Endpoint(account_transfer, ("withdraw",), trading=True),
    "Withdraw": Endpoint(withdraw, ("withdraw",), trading=True),
    "WithdrawStatus": Endpoint(withdraw_status, ("withdraw", "query_ledger")),
}
# AddOrderBatch needs "Cancel & close" too (docs/kraken/rest.md 2.3); checked in the HTTP layer.
EXTRA_PERMISSIONS: Final[dict[str, tuple[Permission, ...]]] = {"AddOrderBatch": ("cancel",)}

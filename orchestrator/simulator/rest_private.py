"""Spot private REST methods (`/0/private/<Method>`): parameters in, Kraken's `result` out.

The acting ones live here (trading, funding); the queries a client reconciles with are in
`rest_queries`; `ENDPOINTS` lists both.

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
from orchestrator.simulator import rest_queries as rq
from orchestrator.simulator.auth import ApiKey, Permission
from orchestrator.simulator.errors import KrakenError
from orchestrator.simulator.order_views import describe
from orchestrator.simulator.orders import (
    Order,
    OrderRequest,
    check_deadline,
    fmt,
    invalid,
    parse_decimal,
)
from orchestrator.simulator.params import Params
from orchestrator.simulator.venue import Venue

Handler = Callable[[Venue, ApiKey, Params], Any]
_MAX_CANCEL_BATCH: Final = 50
_DEADLINE_MIN_AHEAD_S: Final = 2.0  # REST: deadline now + 2 s .. now + 60 s
_MAX_DEAD_MAN_S: Final = 86400
_OFLAGS: Final = frozenset({"post", "fcib", "fciq", "nompp"})


@dataclass(frozen=True, slots=True)
class Endpoint:
    handler: Handler
    permissions: tuple[Permission, ...]  # any one of them suffices
    acting: bool = False  # changes state (orders, funds): what unfiltered reply faults strike


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
    check_deadline(
        params.text("deadline"),
        venue.clock.time(),
        min_ahead_s=_DEADLINE_MIN_AHEAD_S,
        engine_delay_s=venue.settings.faults.engine_delay_s,
    )


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
    if not ids or len(set(ids)) > _MAX_CANCEL_BATCH:
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
        rq.account_of(venue, key), params.text("username"), params.text("email")
    )
    return True


def account_transfer(venue: Venue, key: ApiKey, params: Params) -> dict[str, Any]:
    transfer = venue.funding.account_transfer(
        rq.account_of(venue, key),
        params.text("asset"),
        params.text("amount"),
        params.text("from"),
        params.text("to"),
    )
    return {"transfer_id": transfer.transfer_id, "status": transfer.status}


def withdraw(venue: Venue, key: ApiKey, params: Params) -> dict[str, Any]:
    withdrawal = venue.funding.withdraw(
        rq.account_of(venue, key),
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
    return venue.funding.withdraw_status(rq.account_of(venue, key), params.text("asset"))


ENDPOINTS: Final[dict[str, Endpoint]] = {
    "Balance": Endpoint(rq.balance, ("query_funds",)),
    "BalanceEx": Endpoint(rq.balance_ex, ("query_funds",)),
    "OpenOrders": Endpoint(rq.open_orders, ("query_open",)),
    "ClosedOrders": Endpoint(rq.closed_orders, ("query_closed",)),
    "QueryOrders": Endpoint(rq.query_orders, ("query_open", "query_closed")),
    "OrderAmends": Endpoint(rq.order_amends, ("query_open", "query_closed")),
    "Ledgers": Endpoint(rq.ledgers, ("query_ledger",)),
    "QueryLedgers": Endpoint(rq.query_ledgers, ("query_ledger",)),
    "AddOrder": Endpoint(add_order, ("trade",), acting=True),
    "AddOrderBatch": Endpoint(add_order_batch, ("trade",), acting=True),
    "AmendOrder": Endpoint(amend_order, ("trade",), acting=True),
    "EditOrder": Endpoint(edit_order, ("trade",), acting=True),
    "CancelOrder": Endpoint(cancel_order, ("cancel",), acting=True),
    "CancelOrderBatch": Endpoint(cancel_order_batch, ("cancel",), acting=True),
    "CancelAll": Endpoint(cancel_all, ("cancel",), acting=True),
    "CancelAllOrdersAfter": Endpoint(cancel_all_orders_after, ("cancel",), acting=True),
    "GetWebSocketsToken": Endpoint(get_websockets_token, ("websocket",)),
    "CreateSubaccount": Endpoint(create_subaccount, ("withdraw",), acting=True),
    "AccountTransfer": Endpoint(account_transfer, ("withdraw",), acting=True),
    "Withdraw": Endpoint(withdraw, ("withdraw",), acting=True),
    "WithdrawStatus": Endpoint(withdraw_status, ("withdraw", "query_ledger")),
}
# AddOrderBatch needs "Cancel & close" too (docs/kraken/rest.md 2.3); checked in the HTTP layer.
EXTRA_PERMISSIONS: Final[dict[str, tuple[Permission, ...]]] = {"AddOrderBatch": ("cancel",)}

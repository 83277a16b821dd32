"""Private side of the WS v2 server: `executions` and `balances`, and trading over the socket
(`docs/kraken/websocket.md` sections 5 and 6).

Every private request carries `params.token` (from REST GetWebSocketsToken); the token names the
account and its key's permissions. Trading methods call the same engine as REST, so they share
Kraken's trading counters, validation and error strings. Choices where Kraken is silent or vague:
- `cancel_order` answers once per cancelled order, and once per identifier that matched nothing;
- `batch_add` puts `{"error": ...}` in the slot of an order that failed after validation, as REST;
- order features the engine does not model (triggers, iceberg, margin, ...) are refused as
  `EGeneral:Invalid arguments:<field>` rather than silently dropped;
- `executions` and `balances` each count `sequence` from 1 per connection;
- `ratecounter: true` on `executions`: the ack carries `maxratecount` (the tier's threshold), and
  after each charge of the account's own per-pair trading counter the stream carries an update
  with one element `{"symbol", "ratecount", "timestamp"}` (the level after the charge). Kraken
  documents the flag and the ack field, not the stream field: see docs/kraken/websocket.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

import msgspec

from orchestrator.simulator import limits as rl
from orchestrator.simulator.auth import Permission
from orchestrator.simulator.errors import SERVICE_UNAVAILABLE, KrakenError
from orchestrator.simulator.events import execution, rfc3339
from orchestrator.simulator.orders import (
    Order,
    OrderRequest,
    check_deadline,
    invalid,
    rfc3339_s,
)
from orchestrator.simulator.params import Params
from orchestrator.simulator.reply_faults import choose
from orchestrator.simulator.venue import Venue
from orchestrator.simulator.ws_session import (
    ALREADY_SUBSCRIBED,
    SUBSCRIPTION_NOT_FOUND,
    Connection,
    PrivateSub,
    Recent,
    Request,
    encode,
    plain,
)

CHANNELS: Final = frozenset({"executions", "balances"})
RECENT_FILLS: Final = 50
_OPEN_CLOSE: Final = frozenset({"new", "filled", "canceled", "expired"})
_STP_TYPES: Final = {
    "cancel_newest": "cancel-newest",
    "cancel_oldest": "cancel-oldest",
    "cancel_both": "cancel-both",
}
_UNMODELLED: Final = (
    "triggers", "conditional", "display_qty", "cash_order_qty", "effective_time", "margin",
)  # fmt: skip
_MAX_DEAD_MAN_S: Final = 86400
_MAX_BATCH_CANCEL: Final = 50
_DEADLINE_MIN_AHEAD_S: Final = 0.5  # WS: deadline now + 500 ms .. now + 60 s
_CHANNEL_PERMISSION: Final[dict[str, Permission]] = {
    "executions": "query_open",
    "balances": "query_funds",
}


# --- channels ----------------------------------------------------------------------------------
def subscribe(conn: Connection, req: Request, channel: str, fills: Recent) -> None:
    venue = conn.venue
    params = req.params
    account = venue.check_ws_token(params.text("token"), _CHANNEL_PERMISSION[channel]).account
    if (conn.executions if channel == "executions" else conn.balances) is not None:
        raise KrakenError(ALREADY_SUBSCRIBED)
    if channel == "balances":
        snapshot = params.flag("snapshot", default=True)
        conn.balances = sub = PrivateSub(account)
        conn.ok(req, {"channel": channel, "snapshot": snapshot})
        if snapshot:
            data = balances_snapshot(venue, account)
            message = {"channel": channel, "type": "snapshot", "data": data}
            conn.send_now(encode(message | {"sequence": sub.next_sequence()}))
        return
    snap_orders = params.flag("snap_orders", default=True)
    snap_trades = params.flag("snap_trades", default=False)
    conn.executions = sub = PrivateSub(account, params.flag("order_status", default=True),
                                       params.flag("ratecounter"))  # fmt: skip
    ack = {"channel": channel, "snap_orders": snap_orders, "snap_trades": snap_trades,
           "order_status": sub.order_status}  # fmt: skip
    if sub.ratecounter:
        ack["maxratecount"] = round(venue.limits.limits.trade_threshold)
    conn.ok(req, ack)
    data = fills.get(account) if snap_trades else []
    if snap_orders:
        orders = venue.engine.open_orders(account).values()
        data += [plain(execution(o, "new", o.changed_s)) for o in orders]
    message = {"channel": channel, "type": "snapshot", "data": data}
    conn.send_now(encode(message | {"sequence": sub.next_sequence()}))


def unsubscribe(conn: Connection, req: Request, channel: str) -> None:
    conn.venue.check_ws_token(req.params.text("token"), _CHANNEL_PERMISSION[channel])
    if channel == "executions" and conn.executions is not None:
        conn.executions = None
    elif channel == "balances" and conn.balances is not None:
        conn.balances = None
    else:
        raise KrakenError(SUBSCRIPTION_NOT_FOUND)
    conn.ok(req, {"channel": channel})


def balances_snapshot(venue: Venue, account: str) -> list[dict[str, Any]]:
    holder = venue.domain.accounts[account]
    out: list[dict[str, Any]] = []
    for asset_id, amount in sorted(holder.balances.items()):
        spec = venue.catalog.assets.get(asset_id)
        balance = plain(amount - holder.pending_out.get(asset_id, Decimal(0)))
        out.append(
            {"asset": spec.ws_name if spec else asset_id, "asset_class": "currency",
             "balance": balance, "wallets": [{"type": "spot", "id": "main", "balance": balance}]}
        )  # fmt: skip
    return out


def forward_execution(conns: Iterable[Connection], account: str, event: dict[str, Any]) -> None:
    """One engine event (already `plain`) to every `executions` subscriber of `account`."""
    data: msgspec.Raw | None = None
    for conn in conns:
        sub = conn.executions
        if sub is None or sub.account != account:
            continue
        if not sub.order_status and event.get("exec_type") not in _OPEN_CLOSE:
            continue
        data = data or msgspec.Raw(encode([event]))
        message = {"channel": "executions", "type": "update", "data": data}
        conn.send(encode(message | {"sequence": sub.next_sequence()}))


def forward_ratecount(
    conns: Iterable[Connection], account: str, symbol: str, level: float, now_s: float
) -> None:
    """The account's trading counter on `symbol` after a charge, to its `ratecounter` subs."""
    data: msgspec.Raw | None = None
    for conn in conns:
        sub = conn.executions
        if sub is None or sub.account != account or not sub.ratecounter:
            continue
        element = {"symbol": symbol, "ratecount": round(level, 4), "timestamp": rfc3339(now_s)}
        data = data or msgspec.Raw(encode([element]))
        message = {"channel": "executions", "type": "update", "data": data}
        conn.send(encode(message | {"sequence": sub.next_sequence()}))


def forward_ledger(conns: Iterable[Connection], account: str, entry: dict[str, Any]) -> None:
    data: msgspec.Raw | None = None
    for conn in conns:
        sub = conn.balances
        if sub is None or sub.account != account:
            continue
        data = data or msgspec.Raw(encode([plain(entry)]))
        message = {"channel": "balances", "type": "update", "data": data}
        conn.send(encode(message | {"sequence": sub.next_sequence()}))


# --- trading -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Several:
    """Several replies to one request (`cancel_order`): results, or refusals."""

    items: list[dict[str, Any] | KrakenError] = field(default_factory=list)


Handler = Callable[[Venue, str, Params], Any]


@dataclass(frozen=True, slots=True)
class Method:
    handler: Handler
    permissions: tuple[Permission, ...]  # the token's key needs every one


def trade(conn: Connection, req: Request) -> None:
    assert req.method is not None  # noqa: S101 - dispatched by name
    method = TRADING[req.method]
    venue = conn.venue
    token = venue.check_ws_token(req.params.text("token"), method.permissions[0])
    for permission in method.permissions[1:]:
        venue.spot_auth.require(venue.keys[token.key], permission)
    result = method.handler(venue, token.account, req.params)
    fault = choose(venue.settings.faults, venue.rng, req.method, acting=True)
    if fault is not None:  # the venue acted; what the client hears of it is the fault's
        venue.count(f"fault:{fault}_reply")
        if fault == "reset":
            conn.reset()
            return
    with conn.replies_faulted(fault):
        if not isinstance(result, Several):
            conn.ok(req, result)
            return
        for item in result.items:
            if isinstance(item, KrakenError):
                conn.fail(req, item.code)
            else:
                conn.ok(req, item)


def _rfc3339_s(ts_s: float) -> str:
    return datetime.fromtimestamp(ts_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_entry(venue: Venue, params: Params) -> None:
    """What refuses order entry before any order is looked at: status and `deadline`."""
    status = venue.settings.status
    if status == "maintenance":
        raise KrakenError(SERVICE_UNAVAILABLE)
    if status == "cancel_only":
        raise KrakenError("EService:Market in cancel_only mode")
    check_deadline(
        params.text("deadline"),
        venue.clock.time(),
        min_ahead_s=_DEADLINE_MIN_AHEAD_S,
        engine_delay_s=venue.settings.faults.engine_delay_s,
    )


def order_request(params: Params, symbol: str | None, *, validate: bool) -> OrderRequest:
    """An `add_order` (or `batch_add` entry) in the engine's terms."""
    for name in _UNMODELLED:
        if params.raw(name) not in (None, False):
            raise invalid(name)
    stp_type = _STP_TYPES.get(params.text("stp_type") or "cancel_newest")
    if stp_type is None:
        raise invalid("stp_type")
    expire_time = params.text("expire_time")
    return OrderRequest(
        pair=symbol or params.need("symbol"),
        side=params.need("side"),
        ordertype=params.need("order_type"),
        volume=params.need("order_qty"),
        price=params.text("limit_price"),
        cl_ord_id=params.text("cl_ord_id"),
        userref=params.integer("order_userref"),
        post_only=params.flag("post_only"),
        reduce_only=params.flag("reduce_only"),
        timeinforce=(params.text("time_in_force") or "gtc").upper(),
        expire_s=None if expire_time is None else rfc3339_s(expire_time, "expire_time"),
        stptype=stp_type,
        validate=validate,
    )


def _ref(order: Order, with_id: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"order_id": order.txid} if with_id else {}
    if order.cl_ord_id is not None:
        out["cl_ord_id"] = order.cl_ord_id
    if order.userref is not None:
        out["order_userref"] = order.userref
    return out


def add_order(venue: Venue, account: str, params: Params) -> dict[str, Any]:
    _check_entry(venue, params)
    request = order_request(params, None, validate=params.flag("validate"))
    placed = venue.engine.add_order(account, request)
    return _ref(placed.order, with_id=not placed.validated_only)


def batch_add(venue: Venue, account: str, params: Params) -> list[dict[str, Any]]:
    """Validated whole first (one bad order refuses all); then each placed, failing alone."""
    _check_entry(venue, params)
    entries = params.array("orders")
    if entries is None or not 2 <= len(entries) <= 15:
        raise invalid("orders")
    if not all(isinstance(e, dict) for e in entries):
        raise invalid("orders")
    pair = venue.catalog.pair(params.need("symbol"))
    venue.limits.charge_trading(
        account, pair.wsname, rl.batch_add_cost(len(entries)), venue.clock.time()
    )
    validate = params.flag("validate")
    requests = [order_request(Params(e), pair.key, validate=validate) for e in entries]
    venue.engine.validate_batch(account, requests)
    if validate:
        return [
            {k: v for k, v in (("cl_ord_id", r.cl_ord_id), ("order_userref", r.userref))
             if v is not None}
            for r in requests
        ]  # fmt: skip
    out: list[dict[str, Any]] = []
    for request in requests:
        try:
            placed = venue.engine.add_order(account, request, charge=False)
        except KrakenError as exc:
            out.append({"error": exc.code})
            continue
        out.append(_ref(placed.order))
    return out


def amend_order(venue: Venue, account: str, params: Params) -> dict[str, Any]:
    _check_entry(venue, params)
    for name in ("display_qty", "trigger_price"):
        if params.raw(name) is not None:
            raise invalid(name)
    order_id, cl_ord_id = params.text("order_id"), params.text("cl_ord_id")
    if (order_id is None) == (cl_ord_id is None):
        raise invalid("order_id or cl_ord_id")
    order = venue.engine.find_orders(account, txid=order_id, cl_ord_id=cl_ord_id)[0]
    amend_id = venue.engine.amend(
        account,
        order,
        order_qty=params.text("order_qty"),
        limit_price=params.text("limit_price"),
        post_only=params.flag("post_only"),
    )
    return {"amend_id": amend_id} | _ref(order)


def _strings(params: Params, name: str) -> list[str]:
    values = params.array(name) or []
    if not all(isinstance(v, str) for v in values):
        raise invalid(name)
    return values


def cancel_order(venue: Venue, account: str, params: Params) -> Several:
    userrefs = params.array("order_userref") or []
    if not all(isinstance(u, int) and not isinstance(u, bool) for u in userrefs):
        raise invalid("order_userref")
    targets: list[dict[str, Any]] = [{"txid": t} for t in _strings(params, "order_id")]
    targets += [{"cl_ord_id": c} for c in _strings(params, "cl_ord_id")]
    targets += [{"userref": u} for u in userrefs]
    if not targets:
        raise invalid("order_id")
    replies = Several()
    for target in targets:
        try:
            orders = venue.engine.find_orders(account, **target)
        except KrakenError as exc:
            replies.items.append(exc)
            continue
        for order in orders:
            try:
                venue.engine.cancel(account, [order])
            except KrakenError as exc:
                replies.items.append(exc)
                continue
            replies.items.append(_ref(order))
    return replies


def batch_cancel(venue: Venue, account: str, params: Params) -> dict[str, Any]:
    """`orders` holds order ids or userrefs (as strings); unknown ones are skipped, as in REST."""
    idents, cl_ord_ids = _strings(params, "orders"), set(_strings(params, "cl_ord_id"))
    if (not idents and not cl_ord_ids) or len(idents) + len(cl_ord_ids) > _MAX_BATCH_CANCEL:
        raise invalid("orders")
    wanted = set(idents)
    found = [
        o
        for o in venue.engine.open_orders(account).values()
        if o.txid in wanted
        or (o.userref is not None and str(o.userref) in wanted)
        or o.cl_ord_id in cl_ord_ids
    ]
    return {"count": venue.engine.cancel(account, found)}


def cancel_all(venue: Venue, account: str, params: Params) -> dict[str, Any]:
    return {"count": venue.engine.cancel_all(account)}


def cancel_all_orders_after(venue: Venue, account: str, params: Params) -> dict[str, Any]:
    timeout = params.integer("timeout")
    if timeout is None or not 0 <= timeout < _MAX_DEAD_MAN_S:
        raise invalid("timeout")
    trigger_s = venue.engine.set_dead_man(account, timeout)
    return {
        "currentTime": _rfc3339_s(venue.clock.time()),
        "triggerTime": _rfc3339_s(trigger_s) if trigger_s else "0",
    }


TRADING: Final[dict[str, Method]] = {
    "add_order": Method(add_order, ("trade",)),
    "batch_add": Method(batch_add, ("trade", "cancel")),
    "amend_order": Method(amend_order, ("trade",)),
    "cancel_order": Method(cancel_order, ("cancel",)),
    "batch_cancel": Method(batch_cancel, ("cancel",)),
    "cancel_all": Method(cancel_all, ("cancel",)),
    "cancel_all_orders_after": Method(cancel_all_orders_after, ("cancel",)),
}

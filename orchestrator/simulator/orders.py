"""Orders in the simulator: the request both REST and WS parse into, validation by Kraken's
rules, the order's state, and its rendering as Kraken's Order object.

Prices are integers in units of 10**-pair_decimals and volumes in units of 10**-lot_decimals, so
that matching never rounds; Decimals appear only at the edges (requests, balances, rendering).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Final, Literal

import msgspec

from orchestrator.simulator.catalog import PairSpec
from orchestrator.simulator.errors import (
    COST_MINIMUM,
    INVALID_ARGUMENTS,
    INVALID_PRICE,
    ORDER_MINIMUM,
    REDUCE_ONLY_NO_POSITION,
    TICK_SIZE,
    KrakenError,
)

Side = Literal["buy", "sell"]
OrderType = Literal["market", "limit"]
TimeInForce = Literal["GTC", "IOC", "GTD"]
StpType = Literal["cancel-newest", "cancel-oldest", "cancel-both"]
OrderStatus = Literal["pending", "open", "closed", "canceled", "expired"]

_UUID = re.compile(
    r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
)
_FREE_CL_ORD_ID = re.compile(r"^[\x21-\x7e]{1,18}$")
_MAX_VOLUME: Final = Decimal("1e12")
_INT32_MAX: Final = 2**31 - 1


class OrderRequest(msgspec.Struct, kw_only=True):
    """An AddOrder as REST or WS sends it, before validation (strings as on the wire)."""

    pair: str
    side: str
    ordertype: str
    volume: str
    price: str | None = None
    cl_ord_id: str | None = None
    userref: int | None = None
    post_only: bool = False
    reduce_only: bool = False
    timeinforce: str = "GTC"
    expire_s: float | None = None
    stptype: str = "cancel-newest"
    validate: bool = False


def invalid(field: str) -> KrakenError:
    return KrakenError(f"{INVALID_ARGUMENTS}:{field}")


def parse_decimal(text: str | None, field: str) -> Decimal:
    if text is None or len(text) > 40:
        raise invalid(field)
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise invalid(field) from None
    if not value.is_finite():
        raise invalid(field)
    return value


def scale(value: Decimal, decimals: int, field: str, too_fine: str | None = None) -> int:
    """`value` in units of 10**-decimals; more decimals than allowed is an error."""
    scaled = value.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise KrakenError(too_fine) if too_fine else invalid(field)
    return int(scaled)


def check_cl_ord_id(cl_ord_id: str) -> None:
    if not (_UUID.match(cl_ord_id) or _FREE_CL_ORD_ID.match(cl_ord_id)):
        raise invalid("cl_ord_id")


class ValidOrder(msgspec.Struct, frozen=True, kw_only=True):
    """A request that passed every static check."""

    pair: PairSpec
    side: Side
    ordertype: OrderType
    volume: int
    price: int | None
    cl_ord_id: str | None
    userref: int | None
    post_only: bool
    timeinforce: TimeInForce
    expire_s: float | None
    stptype: StpType


def _check_flags(req: OrderRequest) -> None:
    if req.side not in ("buy", "sell"):
        raise invalid("type")
    if req.ordertype not in ("market", "limit"):
        raise invalid("ordertype")
    if req.timeinforce not in ("GTC", "IOC", "GTD"):
        raise invalid("timeinforce")
    if req.stptype not in ("cancel-newest", "cancel-oldest", "cancel-both"):
        raise invalid("stptype")
    if req.cl_ord_id is not None and req.userref is not None:
        raise invalid("cl_ord_id and userref are mutually exclusive")
    if req.cl_ord_id is not None:
        check_cl_ord_id(req.cl_ord_id)
    if req.userref is not None and not -_INT32_MAX - 1 <= req.userref <= _INT32_MAX:
        raise invalid("userref")
    if req.timeinforce == "GTD" and req.expire_s is None:
        raise invalid("expiretm")
    if req.reduce_only:
        raise KrakenError(REDUCE_ONLY_NO_POSITION)  # spot accounts hold no margin positions
    if req.ordertype == "market" and req.post_only:
        raise invalid("oflags")  # post-only is for limit orders only


def validate(req: OrderRequest, pair: PairSpec, mid_price: int | None) -> ValidOrder:
    """Kraken's static checks, in Kraken's spirit: arguments first, then minimums."""
    _check_flags(req)
    volume_dec = parse_decimal(req.volume, "volume")
    if volume_dec <= 0 or volume_dec > _MAX_VOLUME:
        raise invalid("volume")
    volume = scale(volume_dec, pair.lot_decimals, "volume")
    price: int | None = None
    if req.ordertype == "limit":
        price_dec = parse_decimal(req.price, "price")
        if price_dec <= 0:
            raise KrakenError(INVALID_PRICE)
        price = scale(price_dec, pair.pair_decimals, "price", too_fine=TICK_SIZE)
        if price % pair.tick_int:
            raise KrakenError(TICK_SIZE)
    if volume_dec < pair.ordermin:
        raise KrakenError(ORDER_MINIMUM)
    reference = price if price is not None else mid_price
    if reference is not None:
        cost = volume_dec * Decimal(reference).scaleb(-pair.pair_decimals)
        if cost < pair.costmin:
            raise KrakenError(COST_MINIMUM)
    return ValidOrder(
        pair=pair,
        side=req.side,  # type: ignore[arg-type]  # checked above
        ordertype=req.ordertype,  # type: ignore[arg-type]
        volume=volume,
        price=price,
        cl_ord_id=req.cl_ord_id,
        userref=req.userref,
        post_only=req.post_only,
        timeinforce=req.timeinforce,  # type: ignore[arg-type]
        expire_s=req.expire_s,
        stptype=req.stptype,  # type: ignore[arg-type]
    )


class Order:
    """A live or finished order. Mutable: the engine updates it as it rests, fills and closes."""

    __slots__ = (
        "account",
        "amended",
        "changed_s",
        "cl_ord_id",
        "closed_s",
        "cost",
        "executed",
        "expire_s",
        "fee",
        "hold_asset",
        "hold_left",
        "opened_s",
        "ordertype",
        "pair",
        "post_only",
        "price",
        "reason",
        "rested",
        "side",
        "status",
        "stptype",
        "timeinforce",
        "trades",
        "txid",
        "userref",
        "volume",
    )

    def __init__(self, txid: str, account: str, valid: ValidOrder, now_s: float) -> None:
        self.txid = txid
        self.account = account
        self.pair = valid.pair
        self.side: Side = valid.side
        self.ordertype: OrderType = valid.ordertype
        self.price = valid.price
        self.volume = valid.volume
        self.executed = 0
        self.cost = Decimal(0)
        self.fee = Decimal(0)
        self.status: OrderStatus = "pending"
        self.opened_s = now_s
        self.changed_s = now_s  # placed or last amended: the age that cancel/amend costs use
        self.closed_s: float | None = None
        self.cl_ord_id = valid.cl_ord_id
        self.userref = valid.userref
        self.post_only = valid.post_only
        self.timeinforce: TimeInForce = valid.timeinforce
        self.expire_s = valid.expire_s
        self.stptype: StpType = valid.stptype
        self.reason: str | None = None
        self.rested = False
        self.amended = False
        self.trades: list[str] = []
        self.hold_asset = ""
        self.hold_left = Decimal(0)

    @property
    def remaining(self) -> int:
        return self.volume - self.executed

    @property
    def is_open(self) -> bool:
        return self.status in ("pending", "open")

    def age_s(self, now_s: float) -> float | None:
        """Seconds since placed or amended; None if it never rested (no cancel cost then)."""
        return now_s - self.changed_s if self.rested else None


def fmt(value: Decimal | int, decimals: int) -> str:
    """Kraken's fixed-decimal string rendering."""
    return f"{Decimal(value):.{decimals}f}"


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

"""Orders in the simulator: the request both REST and WS parse into, validation by Kraken's
rules, and the order's state with its amend history (`order_views` renders them for Kraken).

Prices are integers in units of 10**-pair_decimals and volumes in units of 10**-lot_decimals, so
that matching never rounds; Decimals appear only at the edges (requests, balances, rendering).
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Final, Literal

import msgspec

from orchestrator.simulator.catalog import PairSpec
from orchestrator.simulator.errors import (
    COST_MINIMUM,
    DEADLINE_ELAPSED,
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
AmendType = Literal["original", "user", "restated"]

_UUID = re.compile(
    r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
)
_FREE_CL_ORD_ID = re.compile(r"^[\x21-\x7e]{1,18}$")
_MAX_VOLUME: Final = Decimal("1e12")
_INT32_MAX: Final = 2**31 - 1
MAX_DEADLINE_AHEAD_S: Final = 60.0


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


def rfc3339_s(text: str, field: str) -> float:
    """An RFC 3339 time with its offset (`2024-07-21T09:53:59.050Z`) as a unix time."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise invalid(field) from None
    if when.tzinfo is None:
        raise invalid(field)
    return when.timestamp()


def check_deadline(
    text: str | None, now_s: float, *, min_ahead_s: float, engine_delay_s: float
) -> None:
    """Kraken's `deadline` on order entry and amends.

    On receipt it must lie `min_ahead_s` (REST 2 s, WS 0.5 s) to 60 s ahead, else
    `EGeneral:Invalid arguments:deadline` (our choice: Kraken documents the range, not the
    error). The engine sees the request `engine_delay_s` later (the fault of that name); a
    deadline passed by then is `EService:Deadline elapsed` and nothing is executed.
    """
    if text is None:
        return
    ahead_s = rfc3339_s(text, "deadline") - now_s
    if not min_ahead_s <= ahead_s <= MAX_DEADLINE_AHEAD_S:
        raise invalid("deadline")
    if ahead_s < engine_delay_s:
        raise KrakenError(DEADLINE_ELAPSED)


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


class AmendRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of an order's amend history (OrderAmends): its terms once entered or amended."""

    amend_id: str
    amend_type: AmendType
    order_qty: int  # units of 10**-lot_decimals, like Order.volume
    remaining_qty: int
    limit_price: int | None  # units of 10**-pair_decimals
    post_only: bool
    reason: str | None
    timestamp_ns: int


class Order:
    """A live or finished order. Mutable: the engine updates it as it rests, fills and closes."""

    __slots__ = (
        "account",
        "amended",
        "amends",
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
        self.amends: list[AmendRecord] = []  # entry first, then every amend, oldest first
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


def record_amend(
    order: Order,
    amend_id: str,
    amend_type: AmendType,
    now_s: float,
    *,
    post_only: bool = False,
    reason: str | None = None,
) -> str:
    """Append the order's current terms to its amend history; returns `amend_id`."""
    record = AmendRecord(
        amend_id=amend_id,
        amend_type=amend_type,
        order_qty=order.volume,
        remaining_qty=order.remaining,
        limit_price=order.price,
        post_only=post_only,
        reason=reason,
        timestamp_ns=round(now_s * 1_000_000) * 1000,
    )
    order.amends.append(record)
    return amend_id


def parse_volume(text: str, pair: PairSpec) -> int:
    """An amended `order_qty`, by AddOrder's rules, in units of 10**-lot_decimals."""
    req = OrderRequest(pair=pair.key, side="buy", ordertype="market", volume=text)
    return validate(req, pair, None).volume


def parse_price(text: str, pair: PairSpec) -> int:
    """An amended `limit_price`, by AddOrder's rules, in units of 10**-pair_decimals."""
    req = OrderRequest(
        pair=pair.key, side="buy", ordertype="limit", volume=str(pair.ordermin), price=text
    )
    price = validate(req, pair, None).price
    assert price is not None  # noqa: S101 - limit orders carry a price
    return price

"""Pre-trade risk: pure checks of one intent against a strategy's limits and what it holds.

The worker builds a `RiskState` from its live state and asks `check_place` / `check_amend`
before anything is journalled or sent. A refusal is a short reason that starts with the check's
name and names the numbers (`price_band: price 110 is 10.00% from mid 100, band 5%`); the
worker reports it to the strategy (`on_order` rejected) and sends nothing. `None` means go.

The intent comes from strategy code, so its numbers are hostile until checked: NaN, infinities,
negatives, zero, `Decimal("1e400")` and non-Decimals are refused with a reason, never raised
(the instrument's own `price_text` / `qty_text` rules decide decimals, tick and ordermin, so
what passes here is what the venue client will accept). Arithmetic runs in a fixed decimal
context, whatever the caller's thread set.

Market orders have no limit price: they need a mid, and their `price`, when the caller gives
one, is an estimate of what they may cost (the worker passes the band's edge); without one the
mid stands in. The estimate prices the cost, notional and balance checks; it is neither banded
nor held to the tick (it is not sent).
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, get_args

from orchestrator.config import RiskConfig
from orchestrator.errors import InvalidRequest
from orchestrator.exchange.instruments import Instrument
from orchestrator.strategy import OrderType, Side, TimeInForce, TradingState

_SIDES: Final = frozenset(get_args(Side))
_ORDER_TYPES: Final = frozenset(get_args(OrderType))
_TIMES_IN_FORCE: Final = frozenset(get_args(TimeInForce))
# 28 digits bound every accepted price and volume (quantizing a longer one is refused), so the
# products below stay exact enough and never overflow.
_CONTEXT: Final = decimal.Context(
    prec=28, traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow]
)
_ZERO: Final = Decimal(0)
_DAY_S: Final = 86_400
_FIXED: Final = ("instrument", "side", "order_type", "time_in_force", "post_only")  # by amends


@dataclass(frozen=True, slots=True)
class PlaceIntent:
    """An order as the strategy asked for it (or as an amend would leave it)."""

    instrument: Instrument
    side: Side
    order_type: OrderType
    volume: Decimal
    price: Decimal | None  # the limit price; for a market order None or an estimate (not sent)
    time_in_force: TimeInForce = "GTC"
    post_only: bool = False


@dataclass(frozen=True, slots=True)
class RiskState:
    """What the checks read; the worker builds it from its live state for each intent."""

    trading_state: TradingState
    paused: bool  # the strategy is paused (daily loss breached, or an operator paused it)
    book_whole: bool  # the pair's book is whole (a stale book refuses orders)
    mid: Decimal | None
    open_orders: int  # the strategy's open + pending orders (all pairs)
    position: Decimal  # base units in this pair, > 0 long
    open_buy: Decimal  # remaining volume of open + pending buys on this pair
    open_sell: Decimal
    available: Mapping[str, Decimal]  # per asset: total minus what open and pending orders hold
    # Today's (UTC) PnL, realized + unrealized, net of fees; None when no `max_daily_loss` is
    # set (nothing reads it then, and it costs a mark of every pair to compute).
    daily_pnl: Decimal | None
    pause_reason: str = "daily loss limit"


def check_place(limits: RiskConfig, intent: PlaceIntent, state: RiskState) -> str | None:
    """The reason to refuse a new order, or None to let it go."""
    return _guarded(limits, intent, state, amending=False)


def check_amend(
    limits: RiskConfig, intent_after_amend: PlaceIntent, state: RiskState, *, was: PlaceIntent
) -> str | None:
    """The reason to refuse amending the order `was` into `intent_after_amend`, or None.

    `state` is built as for a new order, *without* the order being amended: its count, its open
    volume and its hold are not in it, so the amended order is checked in its place, as if new.
    An amend adds no order, so max_open_orders does not apply; everything else does, on the
    new price and volume. `was` says what may not change (pair, side, type, flags)."""
    after = intent_after_amend
    if was.order_type != "limit":
        return f"amend: a {was.order_type} order cannot be amended"
    if (after.instrument != was.instrument or after.side != was.side
            or after.order_type != was.order_type or after.time_in_force != was.time_in_force
            or after.post_only != was.post_only):  # fmt: skip
        changed = [name for name in _FIXED if getattr(after, name) != getattr(was, name)]
        return f"amend: only price and volume change, not {', '.join(changed)}"
    return _guarded(limits, after, state, amending=True)


def order_hold(intent: PlaceIntent, estimated_price: Decimal | None = None) -> tuple[str, Decimal]:
    """(asset, amount) an order holds while open: a buy its cost in the quote (a market buy at
    `estimated_price`, the mid), a sell its volume in the base. Fees are not included."""
    if intent.side == "sell":
        return intent.instrument.base, intent.volume
    price = intent.price if intent.price is not None else estimated_price
    if price is None:
        raise ValueError("the hold of a market buy needs an estimated price")
    return intent.instrument.quote, intent.volume * price


class DailyLoss:
    """The loss of one UTC day, from the day's first PnL reading; resets at 00:00 UTC.

    Once breached it stays breached for the rest of the day: the strategy is paused and its
    orders cancelled, and a mid that swings back must not resume it (it would flap). A reading
    that is not a finite number counts as breached: the loss cannot be told."""

    def __init__(self, limit: Decimal | None) -> None:
        self.limit = limit
        self._day: int | None = None
        self._day_start_pnl: Decimal | None = None
        self._breached = False

    def today_pnl(self, pnl_total: Decimal, now_s: float) -> Decimal:
        """PnL since the day's first reading (what `RiskState.daily_pnl` carries)."""
        self._roll(pnl_total, now_s)
        if not pnl_total.is_finite():
            return pnl_total  # unknown: the daily_loss check refuses on it
        if self._day_start_pnl is None:
            return _ZERO
        return pnl_total - self._day_start_pnl

    def breached(self, pnl_total: Decimal, now_s: float) -> bool:
        self._roll(pnl_total, now_s)
        if self.limit is None:
            return False
        start = self._day_start_pnl
        unknown = not pnl_total.is_finite()
        if unknown or (start is not None and start - pnl_total > self.limit):
            self._breached = True
        return self._breached

    def _roll(self, pnl_total: Decimal, now_s: float) -> None:
        day = math.floor(now_s / _DAY_S) if math.isfinite(now_s) else self._day
        if day != self._day:
            self._day = day
            self._day_start_pnl = None
            self._breached = False
        if self._day_start_pnl is None and pnl_total.is_finite():
            self._day_start_pnl = pnl_total


def _guarded(
    limits: RiskConfig, intent: PlaceIntent, state: RiskState, *, amending: bool
) -> str | None:
    """The checks, with a net: a number nobody foresaw is a refusal, never an exception."""
    try:
        with decimal.localcontext(_CONTEXT):
            return _check(limits, intent, state, amending=amending)
    except (ArithmeticError, TypeError, ValueError) as exc:
        return f"numbers: the intent or the state holds an unusable number ({exc!r})"


def _check(
    limits: RiskConfig, intent: PlaceIntent, state: RiskState, *, amending: bool
) -> str | None:
    pair = intent.instrument.wsname
    if state.trading_state == "HALTED":
        return "trading_state: HALTED, only cancels are allowed"
    if state.paused:
        return f"paused: the strategy is paused ({state.pause_reason}); only cancels are allowed"
    reason = _daily_loss(limits, state) or _shape(intent) or _numbers(intent)
    if reason:
        return reason
    if not state.book_whole:
        return f"book: the {pair} book is not whole"
    mid = state.mid
    if mid is not None and not (isinstance(mid, Decimal) and mid.is_finite() and mid > 0):
        return f"mid: the {pair} mid {mid} is not a positive price"
    if intent.order_type == "market" and mid is None:
        return f"mid: a market order on {pair} needs a mid, and the book has none"
    price = intent.price if intent.price is not None else mid
    if price is None:  # unreachable: a limit order has a price (_shape), a market one the mid
        return "price: no price and no mid"
    limit_price = intent.price if intent.order_type == "limit" else None
    return (
        _instrument(intent, price)
        or _reducing(intent, state)
        or _price_band(limits, intent.instrument, limit_price, mid)
        or _notional(limits, intent, price)
        or (None if amending else _open_orders(limits, state))
        or _position(limits, intent, state)
        or _balance(intent, state, price)
    )


def _daily_loss(limits: RiskConfig, state: RiskState) -> str | None:
    if limits.max_daily_loss is None:
        return None
    if state.daily_pnl is None:  # the worker computes it whenever the limit is set
        return "daily_loss: today's PnL is not known"
    if not state.daily_pnl.is_finite():
        return f"daily_loss: today's PnL {state.daily_pnl} is not a number"
    loss = -state.daily_pnl
    if loss > limits.max_daily_loss:
        return f"daily_loss: lost {_n(loss)} today, limit {_n(limits.max_daily_loss)}"
    return None


def _shape(intent: PlaceIntent) -> str | None:
    if intent.side not in _SIDES:
        return f"side: {intent.side!r} is not one of buy, sell"
    if intent.order_type not in _ORDER_TYPES:
        return f"order_type: {intent.order_type!r} is not one of limit, market"
    if intent.time_in_force not in _TIMES_IN_FORCE:
        return f"time_in_force: {intent.time_in_force!r} is not one of GTC, IOC"
    if intent.order_type == "limit" and intent.price is None:
        return "price: a limit order needs a price"
    if intent.order_type == "market" and intent.post_only:
        return "post_only: a market order cannot be post-only"
    return None


def _numbers(intent: PlaceIntent) -> str | None:
    values: tuple[tuple[str, object], ...] = (("volume", intent.volume), ("price", intent.price))
    for what, value in values:
        if value is None:
            continue
        if not isinstance(value, Decimal):
            return f"{what}: {value!r} is a {type(value).__name__}, not a Decimal"
        if not (value.is_finite() and value > 0):
            return f"{what}: {value} is not a positive finite number"
    return None


def _instrument(intent: PlaceIntent, price: Decimal) -> str | None:
    instrument = intent.instrument
    try:
        instrument.qty_text(intent.volume)
        if intent.order_type == "limit" and intent.price is not None:
            instrument.price_text(intent.price)
    except InvalidRequest as exc:
        return f"instrument: {exc}"
    cost = intent.volume * price
    if cost < instrument.costmin:
        return (f"costmin: {instrument.wsname} cost {_n(cost)} ({_n(intent.volume)} x "
                f"{_n(price)}) is below costmin {_n(instrument.costmin)}")  # fmt: skip
    return None


def _reducing(intent: PlaceIntent, state: RiskState) -> str | None:
    """REDUCING: only an order that shrinks the position, without crossing zero, counting the
    open orders of the same side as if they filled first."""
    if state.trading_state != "REDUCING":
        return None
    position = state.position
    if intent.side == "buy":
        open_same = state.open_buy
        after = position + open_same + intent.volume
        reduces = position < 0 and after <= 0
    else:
        open_same = state.open_sell
        after = position - open_same - intent.volume
        reduces = position > 0 and after >= 0
    if reduces:
        return None
    return (f"trading_state: REDUCING allows only orders that shrink the position; position "
            f"{_n(position)} with open {intent.side}s {_n(open_same)} and this "
            f"{_n(intent.volume)} would be {_n(after)}")  # fmt: skip


def _price_band(
    limits: RiskConfig, instrument: Instrument, price: Decimal | None, mid: Decimal | None
) -> str | None:
    if price is None:  # a market order: no limit price to band
        return None
    pair = instrument.wsname
    band_pct = Decimal(repr(limits.price_band_pct))
    if mid is None:
        return f"price_band: no mid on {pair} to check price {_n(price)} against"
    off_pct = abs(price - mid) / mid * 100
    if off_pct > band_pct:
        return (f"price_band: price {_n(price)} is {off_pct:.2f}% from mid {_n(mid)}, "
                f"band {_n(band_pct)}%")  # fmt: skip
    return None


def _notional(limits: RiskConfig, intent: PlaceIntent, price: Decimal) -> str | None:
    limit = limits.max_order_notional
    notional = intent.volume * price
    if limit is not None and notional > limit:
        return (f"max_order_notional: {_n(intent.volume)} x {_n(price)} = {_n(notional)} "
                f"{intent.instrument.quote} above {_n(limit)}")  # fmt: skip
    return None


def _open_orders(limits: RiskConfig, state: RiskState) -> str | None:
    if state.open_orders >= limits.max_open_orders:
        return (f"max_open_orders: {state.open_orders} open or pending, limit "
                f"{limits.max_open_orders}")  # fmt: skip
    return None


def _position(limits: RiskConfig, intent: PlaceIntent, state: RiskState) -> str | None:
    """The position if this order and the open ones of its side all filled; refused when that
    is past the limit and farther from zero than without this order (an order that brings a
    position already past the limit back toward it is allowed)."""
    instrument = intent.instrument
    limit = limits.max_position.get(instrument.wsname, limits.max_position.get(instrument.symbol))
    if limit is None:
        return None
    if intent.side == "buy":
        open_same = state.open_buy
        before = state.position + open_same
        after = before + intent.volume
    else:
        open_same = state.open_sell
        before = state.position - open_same
        after = before - intent.volume
    if abs(after) > limit and abs(after) > abs(before):
        return (f"max_position: {instrument.wsname} position {_n(state.position)} with open "
                f"{intent.side}s {_n(open_same)} and this {_n(intent.volume)} would be "
                f"{_n(after)}, limit {_n(limit)}")  # fmt: skip
    return None


def _balance(intent: PlaceIntent, state: RiskState, price: Decimal) -> str | None:
    asset, needed = order_hold(intent, price)
    available = state.available.get(asset, _ZERO)
    if needed > available:
        return (f"balance: {intent.side} {_n(intent.volume)} {intent.instrument.wsname} needs "
                f"{_n(needed)} {asset}, {_n(available)} available")  # fmt: skip
    return None


def _n(value: Decimal) -> str:
    """A number for a reason: plain digits (no exponent) when it is of a sane size."""
    if value.is_finite() and -30 < value.adjusted() < 30:
        return format(value.normalize(), "f")
    return str(value)

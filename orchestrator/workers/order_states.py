"""The state of one order of a strategy, from everything the venue tells about it (pure, no I/O).

Three sources feed a `TrackedOrder` and none of them arrives in a promised order: the private
`executions` channel (`apply_execution`), the replies of our own requests (`on_placed`,
`on_amended`, the refusals) and REST reconciliation (`on_reconciled`). The rules that make any
arrival order come out the same:

- status only moves forward, pending_new -> new -> partially_filled, and a final status
  (filled, canceled, expired, rejected) is absorbing: a late `new` after `canceled` changes
  nothing. Executions are the venue's truth: they may come before the place reply, which then
  adds nothing the order does not know;
- the filled quantity is the venue's `cum_qty`, which never goes backwards: an older frame
  after a newer trade is ignored for it, and its cost is the `cum_cost` of the same frame;
- a trade is a fill once, by its `exec_id`; a trade that arrives after the order closed (a fill
  racing our cancel) still counts, and the final status stays what the venue said;
- volume and price change only by an amend (ours, or the engine's `restated`) or with the frame
  that closes the order; an order amended down to what already filled is filled.

Every function returns `Applied`: whether the strategy must hear of it (`on_order`) and the new
fills (`on_fill`, positions). Amounts are the venue's; `cum_cost` and `fees` in quote units.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final, Literal

from orchestrator.exchange.instruments import Instrument
from orchestrator.exchange.kraken.ws.schemas import Execution, Fee
from orchestrator.exchange.protocol import OrderRef, OrderSpec, OrderState
from orchestrator.strategy import (
    TERMINAL_STATUSES,
    Fill,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
    TimeInForce,
)
from orchestrator.workers.positions import fee_in_quote

ZERO: Final = Decimal(0)

# Forward order of the open statuses; every final status ranks above them.
_RANK: Final[dict[OrderStatus, int]] = {"pending_new": 0, "new": 1, "partially_filled": 2}
_BY_RANK: Final[dict[int, OrderStatus]] = {rank: status for status, rank in _RANK.items()}
_VENUE_STATUSES: Final[dict[str, OrderStatus]] = {
    "pending_new": "pending_new",
    "new": "new",
    "partially_filled": "partially_filled",
    "filled": "filled",
    "canceled": "canceled",
    "expired": "expired",
}
_CLOSING_EXEC_TYPES: Final = frozenset({"filled", "canceled", "expired"})
_ENDED: Final = frozenset({"canceled", "expired"})  # the final statuses that carry a reason
_AMENDING_EXEC_TYPES: Final = frozenset({"amended", "restated"})
# `iceberg_refill` and `status` carry a status and amounts, nothing else we act on.
_KNOWN_EXEC_TYPES: Final = frozenset(
    {"pending_new", "new", "trade", "status", "iceberg_refill"}
    | _CLOSING_EXEC_TYPES
    | _AMENDING_EXEC_TYPES
)
_REST_STATUSES: Final[dict[str, OrderStatus]] = {
    "pending": "pending_new",
    "open": "new",
    "closed": "filled",
    "canceled": "canceled",
    "expired": "expired",
}


@dataclass(slots=True)
class TrackedOrder:
    """One order as we know it, keyed by our `cl_ord_id` (journalled before it was sent)."""

    cl_ord_id: str
    instrument: Instrument
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    post_only: bool
    volume: Decimal
    price: Decimal | None
    status: OrderStatus = "pending_new"
    txid: str | None = None
    filled: Decimal = ZERO
    cum_cost: Decimal = ZERO  # quote units of what filled
    fees: Decimal = ZERO  # quote units: the larger of the trades' sum and the venue's total
    rested_s: float | None = None  # when it last rested (placed or amended): prices cancels
    cancel_requested: bool = False
    reason: str | None = None
    seen_exec_ids: set[str] = field(default_factory=set)
    trade_fees: Decimal = ZERO  # quote units, summed over the trades seen (by exec_id)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def is_open(self) -> bool:
        return not self.is_terminal

    @property
    def remaining(self) -> Decimal:
        return max(ZERO, self.volume - self.filled)

    @property
    def rests(self) -> bool:
        """Whether it can rest on the book (and so has an age that prices its cancel)."""
        return self.order_type == "limit" and self.time_in_force != "IOC"

    def update(self) -> OrderUpdate:
        """The public snapshot the strategy sees (`on_order`, `open_orders`)."""
        return OrderUpdate(
            cl_ord_id=self.cl_ord_id,
            pair=self.instrument.wsname,
            side=self.side,
            order_type=self.order_type,
            status=self.status,
            volume=self.volume,
            filled=self.filled,
            price=self.price,
            avg_price=self.cum_cost / self.filled if self.filled else None,
            txid=self.txid,
            reason=self.reason,
        )

    def spec(self) -> OrderSpec:
        """The order as the venue is asked to place it."""
        return OrderSpec(instrument=self.instrument, side=self.side, order_type=self.order_type,
                         volume=self.volume, cl_ord_id=self.cl_ord_id, price=self.price,
                         post_only=self.post_only, time_in_force=self.time_in_force)  # fmt: skip

    def ref(self) -> OrderRef:
        """What amending or cancelling it needs; only once the venue has named it."""
        if self.txid is None:
            raise ValueError(f"order {self.cl_ord_id} has no txid yet")
        return OrderRef(
            txid=self.txid,
            cl_ord_id=self.cl_ord_id,
            instrument=self.instrument,
            rested_s=self.rested_s,
        )


@dataclass(frozen=True, slots=True)
class Applied:
    """What one input changed."""

    changed: bool  # status/volume/price/filled changed (or an intent was refused): on_order
    fills: tuple[Fill, ...] = ()  # new trades (deduplicated by exec_id), in order


NOTHING: Final = Applied(changed=False)

_Snapshot = tuple[OrderStatus, Decimal, Decimal | None, Decimal]


def _snapshot(order: TrackedOrder) -> _Snapshot:
    return order.status, order.volume, order.price, order.filled


def _applied(order: TrackedOrder, before: _Snapshot, fills: tuple[Fill, ...] = ()) -> Applied:
    return Applied(changed=_snapshot(order) != before, fills=fills)


def execution_time_s(ex: Execution) -> float:
    """The frame's RFC 3339 timestamp as Unix seconds (UTC when it names no zone)."""
    when = datetime.fromisoformat(ex.timestamp)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _restamp(order: TrackedOrder, rested_s: float | None) -> None:
    """It rested (again) at `rested_s`: keep the later stamp, since a younger age can only
    overstate what a cancel costs, never understate it."""
    if rested_s is not None and order.rests:
        order.rested_s = rested_s if order.rested_s is None else max(order.rested_s, rested_s)


def _advance(order: TrackedOrder, target: OrderStatus | None) -> None:
    """Move the status forward to `target` (never back); a final status is absorbing."""
    if order.is_terminal:
        return
    if target is not None and target in TERMINAL_STATUSES:
        order.status = target
        return
    rank = _RANK[order.status]
    if target is not None:
        rank = max(rank, _RANK[target])
    if order.filled > 0:
        rank = max(rank, _RANK["partially_filled"])
    order.status = _BY_RANK[rank]


def _resize(order: TrackedOrder, volume: Decimal | None, price: Decimal | None) -> None:
    """An amend's new volume and price; amended down to what filled, the order is filled."""
    if price is not None:
        order.price = price
    if volume is not None:
        order.volume = volume
        if volume <= order.filled and order.filled > 0:
            order.volume = order.filled
            _advance(order, "filled")


def _cumulative(order: TrackedOrder, ex: Execution) -> None:
    """The venue's running totals; a frame older than what we hold moves nothing."""
    if ex.cum_qty is None or ex.cum_qty < order.filled:
        return
    if ex.cum_qty > order.filled:
        order.filled = ex.cum_qty
        if ex.cum_cost is not None:
            order.cum_cost = ex.cum_cost
        elif ex.avg_price is not None:
            order.cum_cost = ex.avg_price * ex.cum_qty
    elif ex.cum_cost is not None and ex.cum_cost > order.cum_cost:
        order.cum_cost = ex.cum_cost  # the same quantity, its cost now known


def _fee(order: TrackedOrder, fees: list[Fee], price: Decimal) -> tuple[Decimal, str]:
    """A trade's fee and its asset as the venue names them; several entries in one asset are
    summed, entries in several assets reported in the quote."""
    quote_name = order.instrument.symbol.partition("/")[2]
    if not fees:
        return ZERO, quote_name
    assets = {f.asset for f in fees}
    if len(assets) == 1:
        return sum((f.qty for f in fees), ZERO), fees[0].asset
    in_quote = (fee_in_quote(f.qty, f.asset, price, order.instrument) for f in fees)
    return sum((q for q in in_quote if q is not None), ZERO), quote_name


def _trade(order: TrackedOrder, ex: Execution, *, now_s: float) -> tuple[Fill, ...]:
    """The fill a `trade` frame reports, unless its `exec_id` was seen (or it lacks one)."""
    if ex.exec_id is None or ex.last_qty is None or ex.last_price is None:
        return ()
    if ex.exec_id in order.seen_exec_ids:
        return ()
    order.seen_exec_ids.add(ex.exec_id)
    if ex.cum_qty is None:  # no running total on the frame: the trade itself is the news
        order.filled += ex.last_qty
        order.cum_cost += ex.cost if ex.cost is not None else ex.last_qty * ex.last_price
    fee, fee_asset = _fee(order, ex.fees, ex.last_price)
    quote_fee = fee_in_quote(fee, fee_asset, ex.last_price, order.instrument)
    if quote_fee is not None:
        order.trade_fees += quote_fee
        order.fees = max(order.fees, order.trade_fees)
    try:
        time_s = execution_time_s(ex)
    except ValueError:  # an unreadable stamp must not lose a fill: our clock then
        time_s = now_s
    liquidity: Literal["maker", "taker"] = "maker" if ex.liquidity_ind == "m" else "taker"
    return (
        Fill(
            cl_ord_id=order.cl_ord_id,
            pair=order.instrument.wsname,
            side=order.side,
            price=ex.last_price,
            qty=ex.last_qty,
            fee=fee,
            fee_asset=fee_asset,
            liquidity=liquidity,
            exec_id=ex.exec_id,
            time_s=time_s,
        ),
    )


def _target_status(ex: Execution) -> OrderStatus | None:
    """The status a frame says: its exec type when that closes the order, else its
    `order_status`, else what `pending_new` / `new` mean."""
    if ex.exec_type in _CLOSING_EXEC_TYPES:
        return _VENUE_STATUSES[ex.exec_type]
    if ex.order_status is not None and ex.order_status in _VENUE_STATUSES:
        return _VENUE_STATUSES[ex.order_status]
    return _VENUE_STATUSES.get(ex.exec_type)


def apply_execution(order: TrackedOrder, ex: Execution, *, now_s: float) -> Applied:
    """One `executions` frame of this order; `now_s` (our clock at receipt) stamps rests."""
    if ex.exec_type not in _KNOWN_EXEC_TYPES:
        return NOTHING
    before = _snapshot(order)
    was_open = order.is_open
    if order.txid is None:
        order.txid = ex.order_id
    fills = _trade(order, ex, now_s=now_s) if ex.exec_type == "trade" else ()
    _cumulative(order, ex)
    target = _target_status(ex)
    if was_open and ex.exec_type in _AMENDING_EXEC_TYPES:
        _resize(order, ex.order_qty, ex.limit_price)
    elif was_open and target in TERMINAL_STATUSES:  # what it closed with (an amend to filled)
        order.volume = ex.order_qty if ex.order_qty is not None else order.volume
        order.price = ex.limit_price if ex.limit_price is not None else order.price
    if was_open and ex.exec_type == "amended":
        _restamp(order, now_s)
    if was_open and target in _ENDED and ex.reason is not None:
        order.reason = ex.reason
    was_pending = order.status == "pending_new"
    _advance(order, target)
    if was_pending and order.is_open and order.status != "pending_new":
        _restamp(order, now_s)  # acknowledged on the book
    order.volume = max(order.volume, order.filled)  # a trade that outran the amend raising it
    return _applied(order, before, fills)


def on_placed(order: TrackedOrder, ref: OrderRef) -> Applied:
    """The place reply: the venue's id and when it rested. The status stays what executions
    said (the reply means accepted, not resting)."""
    before = _snapshot(order)
    if order.txid is None:
        order.txid = ref.txid
    _restamp(order, ref.rested_s)
    return _applied(order, before)


def on_place_failed(order: TrackedOrder, reason: str) -> Applied:
    """The venue refused the order: rejected, nothing open. An order the executions channel
    already reported exists, whatever the reply said: left as it is."""
    if order.txid is not None or order.is_terminal:
        return NOTHING
    before = _snapshot(order)
    order.status = "rejected"
    order.reason = reason
    return _applied(order, before)


def on_amended(
    order: TrackedOrder, *, price: Decimal | None, volume: Decimal | None, rested_s: float
) -> Applied:
    """The amend reply: the new price and volume, rested anew at `rested_s`."""
    if order.is_terminal:
        return NOTHING
    before = _snapshot(order)
    _resize(order, volume, price)
    _restamp(order, rested_s)
    return _applied(order, before)


def on_amend_refused(order: TrackedOrder, reason: str) -> Applied:
    """The order is unchanged; the strategy hears why its amend was refused."""
    if order.is_terminal:
        return NOTHING
    order.reason = reason
    return Applied(changed=True)


def on_cancel_refused(order: TrackedOrder, reason: str) -> Applied:
    """The cancel did not happen (already filled, say): it may be asked again; the strategy
    hears why while the order is open (a closed one has its own news)."""
    order.cancel_requested = False
    if order.is_terminal:
        return NOTHING
    order.reason = reason
    return Applied(changed=True)


def on_cancelled(order: TrackedOrder, reason: str) -> Applied:
    """The venue says our cancel closed it: canceled, with what filled before kept (a trade
    racing the cancel still counts when its frame arrives)."""
    if order.is_terminal:
        return NOTHING
    before = _snapshot(order)
    order.status = "canceled"
    order.reason = reason
    return _applied(order, before)


def on_reconciled(order: TrackedOrder, state: OrderState) -> Applied:
    """REST's account of the order. Its fills are not invented (REST names no exec ids):
    filled, cost and fees move up to the venue's totals, and `fills` is empty."""
    before = _snapshot(order)
    was_open = order.is_open
    if order.txid is None:
        order.txid = state.txid
    if state.executed > order.filled:
        order.filled = state.executed
        order.cum_cost = state.cost
    elif state.executed == order.filled and state.cost > order.cum_cost:
        order.cum_cost = state.cost
    order.fees = max(order.fees, state.fee)
    target = _REST_STATUSES.get(state.status)
    if was_open:
        if target == "new" and order.rested_s is None:
            _restamp(order, state.opened_s)  # the venue's own time: the age is not overstated
        order.price = state.price if state.price is not None else order.price
        _resize(order, state.volume, None)
        if target in _ENDED and state.reason is not None:
            order.reason = state.reason
    _advance(order, target)
    order.volume = max(order.volume, order.filled)
    return _applied(order, before)

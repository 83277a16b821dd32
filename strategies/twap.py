"""Time-weighted execution of one parent order: `quantity` bought (or sold) over `duration_s`.

The parent is cut into `slices` (or one every `slice_interval_s`), started by a repeating timer
from the first whole book, so slice k of n starts at k x interval and the last one ends before
`duration_s`. Each slice asks for what is left divided by the slices left, so a slice that fell
short is made up by the later ones. A slice is first a limit order at the near touch (the best
bid for a buy: it waits for a seller, paying no spread); whatever has not filled after
`fallback_after_s` is cancelled and, once the cancel is confirmed, taken with a limit IOC.

Why a limit IOC and not a market order for the fallback: its price is bounded,
`max_slippage_bps` through the far touch (the best ask for a buy) at the time of the fallback,
so a thin or moving book cannot fill it arbitrarily far away, and the worker's price band
checks it as any limit. What it cannot fill within the bound is left to the next slice (the
last slice's is reported as `shortfall`).

Never overfills: a slice asks for at most the parent less what its orders filled and what is
still open (counted at its whole volume until its final state is heard), and the IOC of a slice
is sent only after the passive order has ended, so the two never overlap. Volumes are at the
pair's volume decimals and at least its minimum (`ordermin`, and `costmin` at the price): a
slice that would leave less than the minimum takes it along.

Short of funds for the rest of the parent (quote for a buy, base for a sell, at the price being
sent), it asks the rebalancer for more (`request_rebalance`) and goes on with what it has.

Reports (`twap.fill` on each fill, `twap.completed` at the end; also the attributes `filled`,
`progress`, `slippage_bps`, `done`): the arrival mid is the mid of the first whole book;
slippage is the average fill price against it, in bps, signed so that positive is worse (paid
more on a buy, received less on a sell); fees are not in it. Progress lives in memory: a
restarted TWAP starts its parent again, so stop it with `cancel_on_stop` (the default).

    [[strategies]]
    name = "twap-eth"
    module = "twap"
    account = "twap-eth"
    pairs = ["ETH/USD"]
    params = { side = "buy", quantity = "1.5", duration_s = 600, slices = 20 }
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Annotated, Final

import msgspec

from orchestrator.exchange.instruments import Instrument
from orchestrator.strategy import BookView, Fill, OrderUpdate, Side, Strategy, StrategyParams

_BPS: Final = Decimal("0.0001")
_ZERO: Final = Decimal(0)
_SLICE: Final = "twap.slice"
_FALLBACK: Final = "twap.fallback"


class Params(StrategyParams, frozen=True):
    side: Side
    quantity: Decimal  # base units of the parent order
    duration_s: Annotated[float, msgspec.Meta(gt=0)]
    slices: Annotated[int, msgspec.Meta(ge=1)] | None = None  # or slice_interval_s
    slice_interval_s: Annotated[float, msgspec.Meta(gt=0)] | None = None
    fallback_after_s: Annotated[float, msgspec.Meta(ge=0)] = 5.0  # passive, then IOC
    max_slippage_bps: Decimal = Decimal(10)  # the IOC's limit, through the far touch

    def __post_init__(self) -> None:
        if not (self.quantity.is_finite() and self.quantity > 0):
            raise ValueError(f"quantity must be a positive number, got {self.quantity}")
        if not math.isfinite(self.duration_s):
            raise ValueError(f"duration_s must be a finite number, got {self.duration_s}")
        if (self.slices is None) == (self.slice_interval_s is None):
            raise ValueError("slices or slice_interval_s: give exactly one of them")
        if self.slice_interval_s is not None and self.slice_interval_s > self.duration_s:
            raise ValueError(f"slice_interval_s {self.slice_interval_s} is longer than "
                             f"duration_s {self.duration_s}")  # fmt: skip
        if self.fallback_after_s >= self.interval_s:
            raise ValueError(f"fallback_after_s {self.fallback_after_s} must be shorter than "
                             f"the slice interval {self.interval_s:g} s")  # fmt: skip
        if not (self.max_slippage_bps.is_finite() and self.max_slippage_bps >= 0):
            raise ValueError(f"max_slippage_bps must be >= 0, got {self.max_slippage_bps}")

    @property
    def slice_count(self) -> int:
        if self.slices is not None:
            return self.slices
        assert self.slice_interval_s is not None  # noqa: S101 - one of the two (__post_init__)
        return max(1, math.floor(self.duration_s / self.slice_interval_s + 1e-9))

    @property
    def interval_s(self) -> float:
        if self.slice_interval_s is not None:
            return self.slice_interval_s
        return self.duration_s / self.slice_count


def min_qty(instrument: Instrument, price: Decimal) -> Decimal:
    """The smallest volume the venue takes at `price`: ordermin, and costmin's worth."""
    quantum = Decimal(1).scaleb(-instrument.qty_decimals)
    for_cost = (instrument.costmin / price).quantize(quantum, rounding=ROUND_CEILING)
    return max(instrument.ordermin, for_cost)


def slice_qty(free: Decimal, slices_left: int, minimum: Decimal, instrument: Instrument) -> Decimal:
    """What one slice asks for: an equal share of `free` over the slices left, at the pair's
    decimals and at least `minimum`, taking along a remainder the next slices could not send;
    0 when even `minimum` is more than is free."""
    if free < minimum or slices_left < 1:
        return _ZERO
    qty = max(instrument.round_qty(free / slices_left), minimum)
    if free - qty < minimum:
        qty = free
    return qty


@dataclass(slots=True)
class _Child:
    cl_ord_id: str
    volume: Decimal
    ioc: bool


class Twap(Strategy[Params]):
    Params = Params

    def on_start(self) -> None:
        self.pair = self.ctx.pairs[0]
        instrument = self.ctx.instrument(self.pair)
        self.parent = instrument.round_qty(self.ctx.params.quantity)
        if self.parent != self.ctx.params.quantity:
            self.ctx.log.warning("twap.quantity_rounded", asked=self.ctx.params.quantity,
                                 parent=self.parent)  # fmt: skip
        self.arrival_mid: Decimal | None = None
        self.started_s: float | None = None
        self.slices_begun = 0
        self.child: _Child | None = None  # the one open order of the current slice
        self.slice_left = _ZERO  # what the current slice still wants when it falls back
        self.final_filled: dict[str, Decimal] = {}  # ended children: what each filled
        self.filled = _ZERO  # from the fills heard
        self.notional = _ZERO  # sum of price x qty of those fills
        self.done = False

    @property
    def progress(self) -> Decimal:
        return self.filled / self.parent if self.parent else _ZERO

    @property
    def avg_price(self) -> Decimal | None:
        return self.notional / self.filled if self.filled else None

    @property
    def slippage_bps(self) -> Decimal | None:
        avg, arrival = self.avg_price, self.arrival_mid
        if avg is None or arrival is None:
            return None
        worse = avg - arrival if self.ctx.params.side == "buy" else arrival - avg
        return worse / arrival / _BPS

    @property
    def free(self) -> Decimal:
        """The parent less what ended children filled and what the open one may still fill."""
        open_volume = self.child.volume if self.child is not None else _ZERO
        return self.parent - sum(self.final_filled.values(), _ZERO) - open_volume

    # --- callbacks -----------------------------------------------------------------------------
    def on_book(self, book: BookView) -> None:
        if self.arrival_mid is not None or book.pair != self.pair or book.mid is None:
            return
        self.arrival_mid, self.started_s = book.mid, self.ctx.now_s()
        params = self.ctx.params
        self.ctx.log.info("twap.started", side=params.side, parent=self.parent,
                          slices=params.slice_count, interval_s=params.interval_s,
                          arrival_mid=self.arrival_mid)  # fmt: skip
        if params.slice_count > 1:
            self.ctx.set_timer(_SLICE, params.interval_s, repeat=True)
        self._begin_slice()

    def on_timer(self, name: str) -> None:
        if self.done:
            return
        if name == _SLICE:
            self._begin_slice()
        elif name == _FALLBACK:
            self._fall_back()

    def on_fill(self, fill: Fill) -> None:
        if fill.cl_ord_id not in self.final_filled and (
            self.child is None or fill.cl_ord_id != self.child.cl_ord_id
        ):
            return
        self.filled += fill.qty
        self.notional += fill.price * fill.qty
        self.ctx.log.info("twap.fill", price=fill.price, qty=fill.qty, filled=self.filled,
                          progress=self.progress, slippage_bps=self.slippage_bps,
                          liquidity=fill.liquidity)  # fmt: skip

    def on_order(self, order: OrderUpdate) -> None:
        if order.cl_ord_id in self.final_filled:  # a late fill of an ended child
            self.final_filled[order.cl_ord_id] = order.filled
            return
        child = self.child
        if child is None or order.cl_ord_id != child.cl_ord_id or order.is_open:
            return
        self.child = None
        self.final_filled[order.cl_ord_id] = order.filled
        self.ctx.cancel_timer(_FALLBACK)
        if order.status == "rejected":
            self.ctx.log.warning("twap.child_rejected", reason=order.reason, ioc=child.ioc)
        self.slice_left -= order.filled
        if not child.ioc and order.status != "rejected" and self.slice_left > 0:
            self._take(self.slice_left)
        self._finish_if_over()

    def on_stop(self) -> None:
        if not self.done:
            self.ctx.log.info("twap.stopped", filled=self.filled, progress=self.progress,
                              slippage_bps=self.slippage_bps)  # fmt: skip

    # --- slices --------------------------------------------------------------------------------
    def _begin_slice(self) -> None:
        params = self.ctx.params
        if self.slices_begun >= params.slice_count:
            return
        index = self.slices_begun
        self.slices_begun += 1
        if self.slices_begun == params.slice_count:
            self.ctx.cancel_timer(_SLICE)
        if self.child is not None:  # the last slice's order still works: its share carries on
            self.ctx.log.info("twap.slice_skipped", slice=index, reason="an order is open")
            return
        book = self.ctx.book(self.pair)
        touch = None if book is None else (book.best_bid if params.side == "buy" else book.best_ask)
        if touch is None:
            self.ctx.log.info("twap.slice_skipped", slice=index, reason="no book")
            self._finish_if_over()
            return
        instrument = self.ctx.instrument(self.pair)
        qty = slice_qty(self.free, params.slice_count - index, min_qty(instrument, touch[0]),
                        instrument)  # fmt: skip
        if qty == 0:  # less than the venue's minimum is free: no later slice can send it
            self._finish_if_over(force=True)
            return
        self.slice_left = qty
        self._send(qty, touch[0], ioc=False)
        self.ctx.set_timer(_FALLBACK, params.fallback_after_s)

    def _fall_back(self) -> None:
        child = self.child
        if child is not None and not child.ioc:
            self.ctx.cancel(child.cl_ord_id)  # its end (on_order) sends the IOC

    def _take(self, wanted: Decimal) -> None:
        """The IOC of the current slice, through the far touch by at most max_slippage_bps."""
        params = self.ctx.params
        book = self.ctx.book(self.pair)
        touch = None if book is None else (book.best_ask if params.side == "buy" else book.best_bid)
        if touch is None:
            self.ctx.log.info("twap.ioc_skipped", reason="no book", left=wanted)
            return
        instrument = self.ctx.instrument(self.pair)
        if params.side == "buy":
            price = instrument.round_price(touch[0] * (1 + params.max_slippage_bps * _BPS))
        else:
            price = instrument.round_price(touch[0] * (1 - params.max_slippage_bps * _BPS),
                                           up=True)  # fmt: skip
        qty = min(wanted, self.free)
        if qty < min_qty(instrument, price):  # too little to send: the next slice takes it
            return
        self._send(qty, price, ioc=True)

    def _send(self, qty: Decimal, price: Decimal, *, ioc: bool) -> None:
        self._ask_for_funds(price)
        cl_ord_id = self.ctx.place(self.pair, self.ctx.params.side, qty, price,
                                   time_in_force="IOC" if ioc else "GTC")  # fmt: skip
        self.child = _Child(cl_ord_id, qty, ioc)

    def _ask_for_funds(self, price: Decimal) -> None:
        """Short of what the rest of the parent will spend: ask the rebalancer for more (it
        tops the account up to its target; the risk checks refuse what the funds cannot pay)."""
        instrument = self.ctx.instrument(self.pair)
        buying = self.ctx.params.side == "buy"
        asset = instrument.quote if buying else instrument.base
        needed = self.free * price if buying else self.free
        have = self.ctx.balances().get(asset, _ZERO)
        if have < needed:
            self.ctx.request_rebalance(asset, f"twap needs {needed:f} {asset} for the rest of "
                                              f"its parent, has {have:f}")  # fmt: skip

    def _finish_if_over(self, *, force: bool = False) -> None:
        if self.done or self.child is not None:
            return
        filled = self.parent - self.free
        over = force or self.slices_begun >= self.ctx.params.slice_count
        if filled < self.parent and not over:
            return
        self.done = True
        self.ctx.cancel_timer(_SLICE)
        self.ctx.cancel_timer(_FALLBACK)
        started_s = self.started_s if self.started_s is not None else self.ctx.now_s()
        self.ctx.log.info("twap.completed", filled=self.filled, progress=self.progress,
                          slippage_bps=self.slippage_bps, avg_price=self.avg_price,
                          shortfall=self.parent - filled,
                          elapsed_s=self.ctx.now_s() - started_s)  # fmt: skip

"""A strategy's intents checked before anything is sent: their shape first, then the risk limits.

Strategies are plain Python: a float volume, a pair the strategy does not trade, a price on a
market order all arrive here. Each gets a refusal reason naming what is wrong (reported to the
strategy as `on_order` with status `rejected`), never an exception into the callback and never a
request to the venue. Well-formed intents are checked by `risk.py` against the strategy's limits
and the live state the worker holds (book, balances net of holds, position, open orders).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from orchestrator.workers import risk
from orchestrator.workers.order_states import TrackedOrder
from orchestrator.workers.risk import PlaceIntent, RiskState

if TYPE_CHECKING:
    from orchestrator.workers.worker import StrategyWorker

_SIDES: Final = ("buy", "sell")
_TYPES: Final = ("limit", "market")
_TIFS: Final = ("GTC", "IOC")


def _decimal(value: Any, what: str) -> tuple[Decimal | None, str | None]:
    """Decimals (and ints) pass; floats are refused: they cannot say 0.1 exactly."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        return None, f"shape: {what} must be a Decimal, got {type(value).__name__} {value!r}"
    number = Decimal(value)
    if not number.is_finite():
        return None, f"shape: {what} must be a finite number, got {value!r}"
    return number, None


class IntentChecker:
    def __init__(self, worker: StrategyWorker) -> None:
        self._worker = worker
        self._band = Decimal(str(worker.config.risk.price_band_pct)) / 100
        self._estimates: dict[str, Decimal] = {}  # market orders: the price they hold at

    def forget(self, cl_ord_id: str) -> None:
        self._estimates.pop(cl_ord_id, None)

    def place(
        self, cl_ord_id: str, pair: Any, side: Any, volume: Any, price: Any, *,
        order_type: Any, time_in_force: Any, post_only: Any,
    ) -> tuple[TrackedOrder | None, str | None]:  # fmt: skip
        """The order to send and None, or what to report and the refusal reason (the order is
        None when the intent cannot even name an order: an unknown pair)."""
        worker = self._worker
        if pair not in worker.pairs:
            return None, f"shape: {pair!r} is not one of the strategy's pairs {list(worker.pairs)}"
        problem = (
            f"shape: side must be one of {_SIDES}, got {side!r}" if side not in _SIDES
            else f"shape: order_type must be one of {_TYPES}, got {order_type!r}"
            if order_type not in _TYPES
            else f"shape: time_in_force must be one of {_TIFS}, got {time_in_force!r}"
            if time_in_force not in _TIFS
            else f"shape: post_only must be a bool, got {post_only!r}"
            if not isinstance(post_only, bool) else None
        )  # fmt: skip
        qty, bad_qty = _decimal(volume, "volume")
        limit: Decimal | None = None
        bad_price = None
        if price is not None:
            limit, bad_price = _decimal(price, "price")
        if problem is None and order_type == "limit" and price is None:
            problem = "shape: a limit order needs a price"
        if problem is None and order_type == "market" and price is not None:
            problem = "shape: a market order takes no price"
        order = TrackedOrder(
            cl_ord_id=cl_ord_id, instrument=worker.market_instrument(pair),
            side=side if side in _SIDES else "buy",
            order_type=order_type if order_type in _TYPES else "limit",
            time_in_force=time_in_force if time_in_force in _TIFS else "GTC",
            post_only=post_only is True, volume=qty if qty is not None else Decimal(0),
            price=limit,
        )  # fmt: skip
        reason = problem or bad_qty or bad_price
        if reason is None:
            reason = risk.check_place(worker.config.risk, self.intent_of(order), self._state(order))
        return order, reason

    def amend(self, order: TrackedOrder, *, price: Any, volume: Any) -> str | None:
        if price is None and volume is None:
            return "shape: an amend changes the price, the volume or both"
        new_price: Decimal | None = order.price
        new_volume: Decimal | None = order.volume
        if price is not None:
            new_price, bad = _decimal(price, "price")
            if bad:
                return bad
            if order.order_type != "limit":
                return "shape: only a limit order's price can be amended"
        if volume is not None:
            new_volume, bad = _decimal(volume, "volume")
            if bad:
                return bad
            assert new_volume is not None  # noqa: S101 - _decimal returned no problem
            if new_volume <= order.filled:
                return f"shape: volume {new_volume} is not above the filled {order.filled}"
        # What the order may still add to the position and hold: its unfilled part.
        was = self.intent_of(order, remaining=True)
        after = PlaceIntent(instrument=order.instrument, side=order.side,
                            order_type=order.order_type,
                            volume=(new_volume or order.volume) - order.filled,
                            price=new_price, time_in_force=order.time_in_force,
                            post_only=order.post_only)  # fmt: skip
        return risk.check_amend(self._worker.config.risk, after, self._state(order), was=was)

    def intent_of(self, order: TrackedOrder, *, remaining: bool = False) -> PlaceIntent:
        volume = order.remaining if remaining else order.volume
        price = order.price
        if price is None:  # a market order holds what it may cost at the band's edge
            mid = self._worker.mark(order.instrument.wsname)
            if mid is not None:
                price = mid * (1 + self._band)
                self._estimates[order.cl_ord_id] = price
            else:  # the book went stale since: the price it was accepted at
                price = self._estimates.get(order.cl_ord_id)
        return PlaceIntent(
            instrument=order.instrument,
            side=order.side,
            order_type=order.order_type,
            volume=volume,
            price=price,
            time_in_force=order.time_in_force,
            post_only=order.post_only,
        )

    def hold_of(self, order: TrackedOrder) -> tuple[str, Decimal] | None:
        """(asset, amount) an open order holds (`risk.order_hold` of what it has left), or None
        for a market buy never priced (adopted with no book): nothing to hold it by."""
        return self._hold(order, order.remaining)

    def _hold(self, order: TrackedOrder, remaining: Decimal) -> tuple[str, Decimal] | None:
        if order.price is not None:  # a limit order: its own price, no estimate to refresh
            if order.side == "sell":
                return order.instrument.base, remaining
            return order.instrument.quote, remaining * order.price
        intent = self.intent_of(order, remaining=True)  # refreshes the market order's estimate
        if intent.price is None and intent.side == "buy":
            return None
        return risk.order_hold(intent)

    def _state(self, order: TrackedOrder) -> RiskState:
        """The live state `order` is checked against, without `order` itself: one pass over
        the open orders (count, this pair's open volume per side, holds per asset)."""
        worker = self._worker
        pair = order.instrument.wsname
        book = worker.market.book(pair)
        count = 0
        open_buy = open_sell = Decimal(0)
        held: dict[str, Decimal] = {}
        for other in worker.manager.open_orders():
            if other.cl_ord_id == order.cl_ord_id:
                continue
            count += 1
            remaining = other.remaining
            if other.instrument.wsname == pair:
                if other.side == "buy":
                    open_buy += remaining
                elif other.side == "sell":
                    open_sell += remaining
            hold = self._hold(other, remaining)
            if hold is not None:
                asset, amount = hold
                held[asset] = held.get(asset, Decimal(0)) + amount
        return RiskState(
            trading_state=worker.trading_state.state,
            paused=worker.state == "paused",
            pause_reason=worker.pause_reason,
            book_whole=book is not None,
            mid=None if book is None else book.mid,
            open_orders=count,
            position=worker.positions.position(pair, None).qty,
            open_buy=open_buy,
            open_sell=open_sell,
            available=worker.balances.available(held),
            daily_pnl=None if worker.config.risk.max_daily_loss is None else worker.daily_pnl(),
        )

"""The `Context` a strategy gets: reads of its own live state, intents handed to its worker.

Nothing its methods return reaches beyond the strategy's own sub-account: no credentials, no
venue client, no other account, no treasury (Python in one process cannot hide the private
attributes from code that goes looking: docs/strategies.md says what that means). Intents are
synchronous and return at once; the worker checks them (risk, trading state) and executes them
after the callback returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Generic

from orchestrator.exchange.instruments import Instrument
from orchestrator.logs import EventLogger, get_logger
from orchestrator.strategy import (
    BookView,
    OrderType,
    OrderUpdate,
    P,
    Position,
    Side,
    TimeInForce,
    TradingState,
)

if TYPE_CHECKING:
    from orchestrator.workers.worker import StrategyWorker


class WorkerContext(Generic[P]):
    """`orchestrator.strategy.Context` of one strategy, backed by its worker."""

    __slots__ = ("_log", "_params", "_worker")

    def __init__(self, worker: StrategyWorker, params: P) -> None:
        self._worker = worker
        self._params = params
        self._log = get_logger(f"strategy.{worker.name}")

    # --- reads ---------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._worker.name

    @property
    def params(self) -> P:
        return self._params

    def replace_params(self, params: P) -> None:
        """The worker's `set_params`: whole, between two callbacks."""
        self._params = params

    @property
    def pairs(self) -> Sequence[str]:
        return self._worker.pairs

    @property
    def log(self) -> EventLogger:
        return self._log

    @property
    def trading_state(self) -> TradingState:
        return self._worker.trading_state.state

    def now_s(self) -> float:
        return self._worker.clock.time()

    def book(self, pair: str) -> BookView | None:
        return self._worker.market.book(pair) if pair in self._worker.pairs else None

    def instrument(self, pair: str) -> Instrument:
        return self._worker.market_instrument(pair)

    def balances(self) -> Mapping[str, Decimal]:
        return self._worker.available()

    def open_orders(self, pair: str | None = None) -> list[OrderUpdate]:
        return [o.update() for o in self._worker.manager.open_orders()
                if pair is None or o.instrument.wsname == pair]  # fmt: skip

    def order(self, cl_ord_id: str) -> OrderUpdate | None:
        order = self._worker.manager.orders.get(cl_ord_id)
        return None if order is None else order.update()

    def position(self, pair: str) -> Position:
        return self._worker.positions.position(pair, self._worker.mark(pair))

    def pnl(self) -> Decimal:
        return self._worker.pnl()

    # --- intents -------------------------------------------------------------------------------
    def place(
        self,
        pair: str,
        side: Side,
        volume: Decimal,
        price: Decimal | None = None,
        *,
        order_type: OrderType = "limit",
        time_in_force: TimeInForce = "GTC",
        post_only: bool = False,
    ) -> str:
        return self._worker.intend_place(
            pair,
            side,
            volume,
            price,
            order_type=order_type,
            time_in_force=time_in_force,
            post_only=post_only,
        )

    def amend(
        self, cl_ord_id: str, *, price: Decimal | None = None, volume: Decimal | None = None
    ) -> None:
        self._worker.intend_amend(cl_ord_id, price=price, volume=volume)

    def cancel(self, cl_ord_id: str) -> None:
        self._worker.intend_cancel(cl_ord_id)

    def cancel_all(self, pair: str | None = None) -> None:
        for order in self._worker.manager.open_orders():
            if pair is None or order.instrument.wsname == pair:
                self._worker.intend_cancel(order.cl_ord_id)

    def set_timer(self, name: str, delay_s: float, *, repeat: bool = False) -> None:
        self._worker.timers.set(name, delay_s, repeat=repeat)

    def cancel_timer(self, name: str) -> None:
        self._worker.timers.cancel(name)

    def request_rebalance(self, asset: str, reason: str) -> None:
        self._worker.request_rebalance(asset, reason)

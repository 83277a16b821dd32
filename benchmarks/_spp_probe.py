"""Tick-to-order stamps for `strategies_per_process`, taken inside the running service.

Tick-to-order: from the moment the market-data hub has a book change of a pair (the frame read
off the public socket, decoded, applied and checksummed: the hub then tells that pair's
listeners) to the moment order entry hands the `add_order`, `batch_add` or `amend_order` frame
that answers it to the strategy's private socket (after its limiter permit, just before the
write). In between: the worker's turn on the loop, the strategy's `on_book`, the risk checks,
the order manager, the permit (a Redis round trip, and a wait when the pools are full).

Which book an order answers: the strategy (strategies.market_maker, unchanged) places and amends
only from `on_book`, so each intent is stamped with the arrival of the book being handled; an
amend that replaces one still waiting for its permit takes the newer stamp (the frame sent is
the newer intent). Nothing in the product changes: the probe is a hub listener (the public
`MarketHub.subscribe`), and it wraps four methods on each unit's own objects
(`strategy.on_book`, `worker.intend_place`, `worker.intend_amend`, the private socket's
`request`): a dictionary write or two per call.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Final

from orchestrator.runtime.unit import StrategyUnit
from orchestrator.strategy import BookView, Ticker, Trade

ORDER_METHODS: Final = frozenset({"add_order", "batch_add", "amend_order"})


class TickProbe:
    """Stamps book arrivals, intents and order frames; keeps (sent_s, latency_s) samples on
    `time.perf_counter`."""

    def __init__(self) -> None:
        self.arrived_s: dict[str, float] = {}  # pair -> its latest whole book change
        self._handling_s: float | None = None  # the arrival of the book `on_book` handles now
        self._intents: dict[str, float] = {}  # cl_ord_id -> the arrival its latest intent answers
        self.samples: list[tuple[float, float]] = []
        self.frames: Counter[str] = Counter()  # strategy -> order frames sent over its socket

    # --- a MarketListener of the hub -----------------------------------------------------------
    def on_book_changed(self, pair: str) -> None:
        self.arrived_s[pair] = time.perf_counter()

    def on_book_stale(self, pair: str, reason: str) -> None:
        self.arrived_s.pop(pair, None)

    def on_trade(self, trade: Trade) -> None:
        return None

    def on_ticker(self, ticker: Ticker) -> None:
        return None

    # --- a unit's stamps -----------------------------------------------------------------------
    def attach(self, unit: StrategyUnit) -> None:
        """Wrap `unit`'s callbacks and its socket's `request` (before the unit runs)."""
        worker = unit.worker
        strategy = worker.strategy
        on_book: Callable[[BookView], None] = strategy.on_book
        intend_place: Callable[..., str] = worker.intend_place
        intend_amend: Callable[..., None] = worker.intend_amend
        request = unit.ws.request

        def timed_on_book(book: BookView) -> None:
            self._handling_s = self.arrived_s.get(book.pair)
            try:
                on_book(book)
            finally:
                self._handling_s = None

        def timed_place(*args: Any, **kwargs: Any) -> str:
            cl_ord_id = intend_place(*args, **kwargs)
            if self._handling_s is not None:
                self._intents[cl_ord_id] = self._handling_s
            return cl_ord_id

        def timed_amend(cl_ord_id: str, **kwargs: Any) -> None:
            intend_amend(cl_ord_id, **kwargs)
            if self._handling_s is not None:
                self._intents[cl_ord_id] = self._handling_s

        async def timed_request(method: str, params: dict[str, Any]) -> dict[str, Any]:
            if method in ORDER_METHODS:
                self._sent(unit, method, params)
            return await request(method, params)

        strategy.on_book = timed_on_book  # type: ignore[method-assign]
        worker.intend_place = timed_place  # type: ignore[method-assign]
        worker.intend_amend = timed_amend  # type: ignore[method-assign]
        unit.ws.request = timed_request  # type: ignore[method-assign]

    def _sent(self, unit: StrategyUnit, method: str, params: dict[str, Any]) -> None:
        sent_s = time.perf_counter()
        self.frames[unit.name] += 1
        if method == "batch_add":
            cl_ord_ids = [order["cl_ord_id"] for order in params["orders"]]
        elif method == "add_order":
            cl_ord_ids = [params["cl_ord_id"]]
        else:  # an amend names the order by its txid
            txid = params.get("order_id")
            cl_ord_ids = [o.cl_ord_id for o in unit.worker.manager.orders.values()
                          if o.txid is not None and o.txid == txid][:1]  # fmt: skip
        for cl_ord_id in cl_ord_ids:
            tick_s = self._intents.pop(cl_ord_id, None)
            if tick_s is not None:
                self.samples.append((sent_s, sent_s - tick_s))

    def latencies_s(self, start_s: float, end_s: float) -> list[float]:
        """Tick-to-order of the frames sent in `[start_s, end_s)` (perf_counter seconds)."""
        return [latency for sent_s, latency in self.samples if start_s <= sent_s < end_s]

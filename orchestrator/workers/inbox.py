"""A worker's inbox: what happened since its strategy last ran, bounded whatever its pace.

Books and tickers are conflated per pair (a slow strategy sees the latest book, never a backlog);
public trades are kept in a bounded window (the oldest dropped and counted); what happened to the
strategy's own orders (updates, fills) and balances is never dropped: it is bounded by the
strategy's own activity. Producers are synchronous and O(1); the worker awaits `wait()`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Final

from orchestrator.feeds.conflation import LatestByPair
from orchestrator.strategy import BalanceUpdate, Fill, OrderUpdate, Ticker, Trade

TRADES_KEPT: Final = 1_000


@dataclass(slots=True)
class Batch:
    """Everything to deliver, in the order the worker delivers it."""

    orders: list[OrderUpdate | Fill] = field(default_factory=list)
    balance: BalanceUpdate | None = None
    books: list[str] = field(default_factory=list)
    tickers: list[Ticker] = field(default_factory=list)
    trades: list[Trade] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.orders or self.balance or self.books or self.tickers or self.trades)


class Inbox:
    def __init__(self, *, trades_kept: int = TRADES_KEPT) -> None:
        self._orders: list[OrderUpdate | Fill] = []
        self._balance: BalanceUpdate | None = None
        self._books = LatestByPair()  # one mark per pair, first marked first delivered
        self._tickers: dict[str, Ticker] = {}
        self._trades: deque[Trade] = deque(maxlen=trades_kept)
        self.trades_dropped = 0
        self._wake = asyncio.Event()

    def order(self, event: OrderUpdate | Fill) -> None:
        self._orders.append(event)
        self._wake.set()

    def balance(self, update: BalanceUpdate) -> None:
        self._balance = update  # the newest totals replace older ones
        self._wake.set()

    def book(self, pair: str) -> None:
        self._books.mark(pair)
        self._wake.set()

    def forget_book(self, pair: str) -> None:
        """The book went stale: a change marked before must not be delivered."""
        self._books.discard(pair)

    def marked_books(self) -> list[str]:
        """The pairs whose book changed since the last `take` (never one twice)."""
        return self._books.marked()

    def ticker(self, ticker: Ticker) -> None:
        self._tickers[ticker.pair] = ticker
        self._wake.set()

    def trade(self, trade: Trade) -> None:
        if len(self._trades) == self._trades.maxlen:
            self.trades_dropped += 1
        self._trades.append(trade)
        self._wake.set()

    def has_news(self) -> bool:
        """Whether anything arrived (or a poke) since the last `take`: `wait()` returns at once."""
        return self._wake.is_set()

    def poke(self) -> None:
        """Wake the worker with nothing new (a timer, a stop)."""
        self._wake.set()

    def take(self) -> Batch:
        batch = Batch(self._orders, self._balance, self._books.drain(),
                      list(self._tickers.values()), list(self._trades))  # fmt: skip
        self._orders = []
        self._balance = None
        self._tickers.clear()
        self._trades.clear()
        self._wake.clear()
        return batch

    async def wait(self) -> None:
        await self._wake.wait()

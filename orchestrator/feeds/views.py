"""What a strategy reads of a book: a read-only view over the hub's live `L2Book`, no copy.

A view holds the book itself, not a snapshot of it: every read is of the book as it is now, so a
strategy reads it inside its callback and keeps numbers, never the view, for later. The view
offers reads only; the book's `apply_*` and `mark_stale` stay the hub's.
"""

from __future__ import annotations

from decimal import Decimal

from orchestrator.exchange.instruments import Instrument
from orchestrator.exchange.kraken.ws.book import L2Book

Level = tuple[Decimal, Decimal]  # (price, qty)
_TWO = Decimal(2)


class LiveBook:
    """`orchestrator.strategy.BookView` over one live `L2Book` (exact Decimals, best first)."""

    __slots__ = ("_book", "_pair")

    def __init__(self, instrument: Instrument, book: L2Book) -> None:
        if book.symbol != instrument.symbol:
            raise ValueError(f"book {book.symbol} is not the book of {instrument.symbol}")
        self._book = book
        self._pair = instrument.wsname

    @property
    def pair(self) -> str:
        """The pair as strategies name it: the instrument's wsname (`XBT/USD`)."""
        return self._pair

    @property
    def symbol(self) -> str:
        """The WebSocket v2 symbol of the book (`BTC/USD`)."""
        return self._book.symbol

    @property
    def stale(self) -> bool:
        """Whether the book does not mirror the venue now (its reads are then not to trade on)."""
        return self._book.stale

    def bids(self, n: int | None = None) -> list[Level]:
        return self._book.bids(n)

    def asks(self, n: int | None = None) -> list[Level]:
        return self._book.asks(n)

    @property
    def best_bid(self) -> Level | None:
        return self._book.best_bid()

    @property
    def best_ask(self) -> Level | None:
        return self._book.best_ask()

    @property
    def mid(self) -> Decimal | None:
        bid, ask = self._book.best_bid(), self._book.best_ask()
        if bid is None or ask is None:
            return None
        return (bid[0] + ask[0]) / _TWO

    @property
    def spread(self) -> Decimal | None:
        bid, ask = self._book.best_bid(), self._book.best_ask()
        if bid is None or ask is None:
            return None
        return ask[0] - bid[0]

    def __repr__(self) -> str:
        return f"LiveBook({self._pair}, stale={self._book.stale})"

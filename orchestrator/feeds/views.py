"""What a strategy reads of a book: a read-only view over the hub's live `L2Book`, no copy.

A view holds the book itself, not a snapshot of it: every read is of the book as it is now, so a
strategy reads it inside its callback and keeps numbers, never the view, for later. The view
offers reads only; the book's `apply_*` and `mark_stale` stay the hub's.

The top of the book is read many times per change (the strategy's `best_bid`, the risk checks'
`mid`, every worker of the pair), and a Decimal is costly to make. So the view keeps its last
best levels and mid as Decimals, each with the exact scaled integers it was made from (the
book's own `scaled_*` reads): a read whose integers are the same returns the kept value, any
other makes a new one. Nothing can be stale: the key is the book's current top itself, read
through on every call.
"""

from __future__ import annotations

from decimal import Decimal

from orchestrator.exchange.instruments import Instrument
from orchestrator.exchange.kraken.ws.book import L2Book

Level = tuple[Decimal, Decimal]  # (price, qty)
_ScaledLevel = tuple[int, int]  # (price, qty) in units of the book's precision


def _decimal(scaled: int, decimals: int) -> Decimal:
    """`scaled * 10**-decimals`, exact (from text, as the book's own reads make them)."""
    return Decimal(f"{scaled}e-{decimals}")


class LiveBook:
    """`orchestrator.strategy.BookView` over one live `L2Book` (exact Decimals, best first)."""

    __slots__ = ("_ask", "_ask_key", "_bid", "_bid_key", "_book", "_mid", "_mid_key",
                 "_pair", "_price_decimals", "_qty_decimals")  # fmt: skip

    def __init__(self, instrument: Instrument, book: L2Book) -> None:
        if book.symbol != instrument.symbol:
            raise ValueError(f"book {book.symbol} is not the book of {instrument.symbol}")
        self._book = book
        self._pair = instrument.wsname
        self._price_decimals = book.precision.price_decimals
        self._qty_decimals = book.precision.qty_decimals
        self._bid_key: _ScaledLevel | None = None  # what `_bid` was made from
        self._bid: Level | None = None
        self._ask_key: _ScaledLevel | None = None
        self._ask: Level | None = None
        self._mid_key: tuple[int, int] | None = None  # (bid price, ask price), scaled
        self._mid: Decimal | None = None

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
        top = self._book.scaled_bids(1)
        if not top:
            return None
        if top[0] != self._bid_key:
            self._bid_key = top[0]
            self._bid = self._level(top[0])
        return self._bid

    @property
    def best_ask(self) -> Level | None:
        top = self._book.scaled_asks(1)
        if not top:
            return None
        if top[0] != self._ask_key:
            self._ask_key = top[0]
            self._ask = self._level(top[0])
        return self._ask

    @property
    def mid(self) -> Decimal | None:
        """(best bid + best ask) / 2, exact: what `Decimal` division gives when it need not
        round (the exponent of the prices, one more digit when the sum is odd)."""
        bids, asks = self._book.scaled_bids(1), self._book.scaled_asks(1)
        if not bids or not asks:
            return None
        key = (bids[0][0], asks[0][0])
        if key != self._mid_key:
            total = key[0] + key[1]
            if total % 2:
                self._mid = _decimal(total * 5, self._price_decimals + 1)
            else:
                self._mid = _decimal(total // 2, self._price_decimals)
            self._mid_key = key
        return self._mid

    @property
    def spread(self) -> Decimal | None:
        bid, ask = self.best_bid, self.best_ask
        if bid is None or ask is None:
            return None
        return ask[0] - bid[0]

    def _level(self, scaled: _ScaledLevel) -> Level:
        return _decimal(scaled[0], self._price_decimals), _decimal(scaled[1], self._qty_decimals)

    def __repr__(self) -> str:
        return f"LiveBook({self._pair}, stale={self._book.stale})"

"""The venue's L2 book of one pair and the WS v2 `book` payloads one subscriber receives.

The book holds every price level in scaled integers (`checksum.Level`). A subscriber sees a
window of the best `depth` levels per side; `DepthView` remembers the window it last sent and
turns the book's current state into Kraken's diff (`docs/kraken/websocket.md` 3.1):

- a level new to the window, or whose qty changed, is sent with its qty;
- a level gone from the book altogether is sent with qty 0;
- a level merely pushed below the window by a better one is not sent: the client truncates.

A client that applies the update and truncates to `depth` holds exactly the new window, and the
payload's checksum is over its top 10.

    book = AggregatedBook(1, 8, symbol="XBT/USD")
    view = DepthView(book, depth=10)
    send(view.snapshot())
    book.set_level("bid", 452835, 10_000_000)
    if (payload := view.update(timestamp="2023-10-06T17:35:55.440295Z")) is not None:
        send(payload)

Prices and quantities are JSON numbers at the pair's exact precision (`0.10000000`), held as
pre-rendered `msgspec.Raw`, so any msgspec encoder writes them verbatim: a Decimal would come out
as a JSON string under a default encoder, and as `7E-8` under `decimal_format="number"`.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from typing import Final, Literal

import msgspec

from orchestrator.simulator.checksum import Level, book_checksum, render_scaled

Side = Literal["bid", "ask"]

BOOK_DEPTHS: Final = frozenset({10, 25, 100, 500, 1000})
"""The depths Kraken accepts on a `book` subscription."""

_TIMESTAMP: Final = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$", re.ASCII)


class BookLevel(msgspec.Struct, frozen=True):
    """One level on the wire: JSON number text at the pair's precision, written verbatim.

    `Decimal(bytes(level.qty).decode())` reads one back. A deleted level's qty is `0.00000000`.
    """

    price: msgspec.Raw
    qty: msgspec.Raw


class BookPayload(msgspec.Struct, frozen=True, kw_only=True):
    """The `data` element of a `book` message; `timestamp` is omitted when unset (snapshots)."""

    symbol: str
    bids: list[BookLevel]
    asks: list[BookLevel]
    checksum: int
    timestamp: str | msgspec.UnsetType = msgspec.UNSET


class BookSide:
    """One side of a book: price_int -> qty_int, iterated best-first.

    Prices sit in a sorted list of keys (negated for bids, so ascending keys are best-first for
    both sides); an insert or delete is a bisect plus a memmove, and the top `depth` is a slice.
    """

    def __init__(self, side: Side) -> None:
        self.side: Final = side
        self._sign = -1 if side == "bid" else 1
        self._qty_by_price: dict[int, int] = {}
        self._keys: list[int] = []

    def set(self, price: int, qty: int) -> None:
        """Set the qty at `price`; 0 deletes the level (deleting an absent level is a no-op)."""
        key = self._sign * price
        if qty == 0:
            if self._qty_by_price.pop(price, None) is not None:
                del self._keys[bisect.bisect_left(self._keys, key)]
            return
        if price not in self._qty_by_price:
            bisect.insort(self._keys, key)
        self._qty_by_price[price] = qty

    def get(self, price: int) -> int:
        """Qty at `price`, 0 when there is no level."""
        return self._qty_by_price.get(price, 0)

    def __contains__(self, price: object) -> bool:
        return price in self._qty_by_price

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[Level]:
        qty_by_price, sign = self._qty_by_price, self._sign
        for key in self._keys:
            yield sign * key, qty_by_price[sign * key]

    def top(self, depth: int) -> list[Level]:
        """The best `depth` levels, best-first."""
        qty_by_price, sign = self._qty_by_price, self._sign
        return [(sign * key, qty_by_price[sign * key]) for key in self._keys[:depth]]

    def best(self) -> Level | None:
        """The best level, or None on an empty side."""
        if not self._keys:
            return None
        price = self._sign * self._keys[0]
        return price, self._qty_by_price[price]


class AggregatedBook:
    """The venue's full L2 book of one pair: total qty per price, in scaled integers.

    It does not refuse a crossed book: matching is the engine's job, and the engine is the only
    writer. It refuses what can never be valid on the wire: a price <= 0 or a negative qty.
    """

    def __init__(self, price_decimals: int, qty_decimals: int, *, symbol: str) -> None:
        self.symbol: Final = symbol
        self.price_decimals: Final = price_decimals
        self.qty_decimals: Final = qty_decimals
        self.bids: Final = BookSide("bid")
        self.asks: Final = BookSide("ask")

    def side(self, side: Side) -> BookSide:
        return self.bids if side == "bid" else self.asks

    def set_level(self, side: Side, price: int, qty: int) -> None:
        """Set the total qty at a price; qty 0 deletes the level."""
        if price <= 0:
            raise ValueError(f"price must be > 0, got {price}")
        if qty < 0:
            raise ValueError(f"qty must be >= 0, got {qty}")
        self.side(side).set(price, qty)

    def top(self, side: Side, depth: int) -> list[Level]:
        """The best `depth` levels of a side, best-first."""
        return self.side(side).top(depth)

    def render(self, levels: list[Level]) -> list[BookLevel]:
        """Levels as wire numbers at this pair's precision."""
        price_decimals, qty_decimals = self.price_decimals, self.qty_decimals
        return [
            BookLevel(
                msgspec.Raw(render_scaled(p, price_decimals).encode()),
                msgspec.Raw(render_scaled(q, qty_decimals).encode()),
            )
            for p, q in levels
        ]


def _diff_side(old: list[Level], new: list[Level], side: BookSide) -> list[Level]:
    """Deletes first, then inserts and changes best-first; see the module docstring."""
    if old == new:
        return []
    old_qty = dict(old)
    in_window = {price for price, _ in new}
    deletes = [(p, 0) for p, _ in old if p not in in_window and p not in side]
    return deletes + [(p, q) for p, q in new if old_qty.get(p) != q]


class DepthView:
    """One subscriber's window of `depth` levels per side, and the diffs that keep it in sync.

    It starts with an empty window, so an `update` before any `snapshot` carries the whole
    window: what a `snapshot: false` subscriber, which starts from an empty book, needs.
    """

    def __init__(self, book: AggregatedBook, depth: int) -> None:
        if depth not in BOOK_DEPTHS:
            raise ValueError(f"depth must be one of {sorted(BOOK_DEPTHS)}, got {depth}")
        self.book: Final = book
        self.depth: Final = depth
        self._bids: list[Level] = []
        self._asks: list[Level] = []

    def snapshot(self, timestamp: str | None = None) -> BookPayload:
        """The whole window, which becomes the base of the next `update`."""
        self._bids = self.book.top("bid", self.depth)
        self._asks = self.book.top("ask", self.depth)
        return self._payload(self._bids, self._asks, timestamp)

    def update(self, timestamp: str | None = None) -> BookPayload | None:
        """The changes since the last snapshot or update; None when the window is unchanged.

        A change deeper than the window is invisible to this subscriber, hence None.
        """
        bids = self.book.top("bid", self.depth)
        asks = self.book.top("ask", self.depth)
        bid_changes = _diff_side(self._bids, bids, self.book.bids)
        ask_changes = _diff_side(self._asks, asks, self.book.asks)
        self._bids, self._asks = bids, asks
        if not bid_changes and not ask_changes:
            return None
        return self._payload(bid_changes, ask_changes, timestamp)

    def _payload(self, bids: list[Level], asks: list[Level], timestamp: str | None) -> BookPayload:
        if timestamp is not None and not _TIMESTAMP.match(timestamp):
            raise ValueError(f"timestamp must be RFC3339 UTC with microseconds, got {timestamp!r}")
        return BookPayload(
            symbol=self.book.symbol,
            bids=self.book.render(bids),
            asks=self.book.render(asks),
            checksum=book_checksum(self._asks, self._bids),
            timestamp=msgspec.UNSET if timestamp is None else timestamp,
        )

"""Kraken WS v2 frames for tests, built as the venue sends them."""

from __future__ import annotations

import msgspec

from orchestrator.exchange.kraken.ws.book import L2Book, PairPrecision, wire_level

_encode = msgspec.json.Encoder().encode
_ANY_PRECISION = PairPrecision(price_decimals=8, qty_decimals=8)


def book_snapshot(
    symbol: str,
    bids: list[tuple[str, str]],
    asks: list[tuple[str, str]],
    precision: PairPrecision = _ANY_PRECISION,
) -> bytes:
    """A `book` snapshot frame with Kraken's checksum, computed by a scratch book.

    Numbers go on the wire as given (JSON numbers, their text kept), so write them at the
    precision of the book that will read them.
    """
    scratch = L2Book(symbol, 10, precision)
    scratch.apply_snapshot([wire_level(*level) for level in bids],
                           [wire_level(*level) for level in asks], 0)  # fmt: skip
    entry = {
        "symbol": symbol,
        "bids": [_level(price, qty) for price, qty in bids],
        "asks": [_level(price, qty) for price, qty in asks],
        "checksum": scratch.checksum(),
    }
    return _encode({"channel": "book", "type": "snapshot", "data": [entry]})


def _level(price: str, qty: str) -> dict[str, msgspec.Raw]:
    return {"price": msgspec.Raw(price.encode()), "qty": msgspec.Raw(qty.encode())}

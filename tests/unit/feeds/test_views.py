"""LiveBook: a strategy's read-only view of one live book, reading through to it (no copy)."""

from __future__ import annotations

import decimal
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.exchange.instruments import Instrument
from orchestrator.exchange.kraken.ws.book import L2Book, PairPrecision, wire_level
from orchestrator.feeds.views import LiveBook
from orchestrator.strategy import BookView

XBT_USD = Instrument(rest_name="XXBTZUSD", altname="XBTUSD", wsname="XBT/USD", symbol="BTC/USD",
                     base="XXBT", quote="ZUSD", price_decimals=1, qty_decimals=8,
                     tick_size=Decimal("0.1"), ordermin=Decimal("0.0001"),
                     costmin=Decimal("0.5"))  # fmt: skip
BTC = PairPrecision(price_decimals=1, qty_decimals=8)


def whole_book() -> L2Book:
    book = L2Book("BTC/USD", 10, BTC)
    bids = [wire_level("50000.0", "1.5"), wire_level("49999.5", "2")]
    asks = [wire_level("50001.0", "0.25"), wire_level("50002.5", "3.12345678")]
    book.apply_snapshot(bids, asks, 0)
    assert book.apply_snapshot(bids, asks, book.checksum())  # verified: whole
    return book


def test_reads_are_the_books_exact_levels_best_first() -> None:
    view = LiveBook(XBT_USD, whole_book())
    assert (view.pair, view.symbol, view.stale) == ("XBT/USD", "BTC/USD", False)
    assert view.bids() == [(Decimal("50000.0"), Decimal("1.5")), (Decimal("49999.5"), Decimal(2))]
    assert view.asks(1) == [(Decimal("50001.0"), Decimal("0.25"))]
    assert view.asks()[1] == (Decimal("50002.5"), Decimal("3.12345678"))
    assert view.best_bid == (Decimal("50000.0"), Decimal("1.5"))
    assert view.best_ask == (Decimal("50001.0"), Decimal("0.25"))
    assert view.mid == Decimal("50000.5")
    assert view.spread == Decimal("1.0")


def test_a_view_reads_through_to_the_live_book() -> None:
    book = whole_book()
    view = LiveBook(XBT_USD, book)
    book.apply_update([wire_level("50000.5", "0.1")], [wire_level("50001.0", "0")], 0)
    # No copy: the same view shows the change (and that the book is stale after a bad checksum).
    assert view.best_bid == (Decimal("50000.5"), Decimal("0.1"))
    assert view.best_ask == (Decimal("50002.5"), Decimal("3.12345678"))
    assert view.mid == Decimal("50001.5")
    assert view.stale is True


def test_an_empty_side_has_no_mid_nor_spread() -> None:
    book = L2Book("BTC/USD", 10, BTC)
    book.apply_snapshot([wire_level("50000.0", "1")], [], 0)
    view = LiveBook(XBT_USD, book)
    assert view.best_ask is None
    assert (view.mid, view.spread) == (None, None)
    assert view.best_bid == (Decimal("50000.0"), Decimal(1))


def test_the_view_offers_no_way_to_change_the_book() -> None:
    view = LiveBook(XBT_USD, whole_book())
    public = {name for name in dir(view) if not name.startswith("_")}
    assert public == {"pair", "symbol", "stale", "bids", "asks", "best_bid", "best_ask", "mid",
                      "spread"}  # fmt: skip
    with pytest.raises(AttributeError):
        view.stale = True  # type: ignore[misc]
    with pytest.raises(AttributeError):
        view.book = L2Book("BTC/USD", 10, BTC)  # type: ignore[attr-defined]
    returned = view.bids()
    returned.clear()  # a list of the caller's own, not the book's
    assert len(view.bids()) == 2


def test_it_is_a_strategy_book_view() -> None:
    view: BookView = LiveBook(XBT_USD, whole_book())  # checked by mypy against the protocol
    assert view.pair == "XBT/USD"


def test_a_view_of_another_pairs_book_is_refused() -> None:
    with pytest.raises(ValueError, match="ETH/USD"):
        LiveBook(XBT_USD, L2Book("ETH/USD", 10, BTC))


def book_reads(book: L2Book) -> tuple[object, object, object, object]:
    """The top as the book itself reads it, and mid and spread computed from it (the view's
    reads before it kept them)."""
    bids, asks = book.bids(1), book.asks(1)
    bid, ask = (bids[0] if bids else None), (asks[0] if asks else None)
    if bid is None or ask is None:
        return bid, ask, None, None
    return bid, ask, (bid[0] + ask[0]) / Decimal(2), ask[0] - bid[0]


def test_the_kept_top_reads_follow_every_change_of_the_book() -> None:
    book = whole_book()
    view = LiveBook(XBT_USD, book)
    changes = [
        ([], []),  # nothing: the same values again
        ([wire_level("50000.0", "0.7")], []),  # the best bid's quantity only: the mid stays
        ([wire_level("50000.5", "1")], []),  # a better bid: the sum is odd, one more digit
        ([], [wire_level("50001.0", "0")]),  # the best ask deleted: the next one is best
        ([wire_level("50000.5", "0"), wire_level("50000.0", "0"), wire_level("49999.5", "0")],
         []),  # every bid deleted: no best bid, no mid
        ([wire_level("49000.0", "2")], [wire_level("50001.0", "0.5")]),  # both sides again
    ]  # fmt: skip
    for bids, asks in changes:
        book.apply_update(bids, asks, 0)  # a wrong checksum: stale, but the levels apply
        expected = book_reads(book)
        read = (view.best_bid, view.best_ask, view.mid, view.spread)
        assert read == expected
        assert [str(x) for x in read] == [str(x) for x in expected]  # exponents too
        assert read == (view.best_bid, view.best_ask, view.mid, view.spread)  # read again


def plain(scaled: int, decimals: int) -> str:
    """The wire text of `scaled * 10**-decimals` with exactly `decimals` decimals."""
    if not decimals:
        return str(scaled)
    whole, fraction = divmod(scaled, 10**decimals)
    return f"{whole}.{fraction:0{decimals}d}"


@given(
    decimals=st.integers(0, 18),
    bid=st.integers(1, 10**20),
    ask=st.integers(1, 10**20),
)
def test_the_mid_is_the_exact_half_sum_as_decimal_division_gives_it(
    decimals: int, bid: int, ask: int
) -> None:
    book = L2Book("BTC/USD", 10, PairPrecision(price_decimals=decimals, qty_decimals=8))
    book.apply_snapshot([wire_level(plain(bid, decimals), "1")],
                        [wire_level(plain(ask, decimals), "1")], 0)  # fmt: skip
    view = LiveBook(XBT_USD, book)
    best_bid, best_ask = book.bids(1)[0][0], book.asks(1)[0][0]
    with decimal.localcontext(prec=100):  # wide enough never to round
        exact = (best_bid + best_ask) / Decimal(2)
    mid = view.mid
    assert mid is not None
    assert (mid, str(mid)) == (exact, str(exact))
    if len(exact.as_tuple().digits) <= decimal.DefaultContext.prec:
        with decimal.localcontext(decimal.DefaultContext):  # what the view computed before
            default = (best_bid + best_ask) / Decimal(2)
        assert str(mid) == str(default)

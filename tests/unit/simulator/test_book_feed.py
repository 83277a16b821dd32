"""The venue's book and the `book` payloads: Kraken's vectors, the diff rule, a reference client."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.simulator.book_feed import (
    AggregatedBook,
    BookPayload,
    BookSide,
    DepthView,
    Side,
)
from orchestrator.simulator.checksum import checksum_decimal, to_scaled
from tests.unit.simulator.test_checksum import (
    A_ASKS,
    A_BIDS,
    A_CHECKSUM,
    B_ASKS,
    B_BIDS,
    B_CHECKSUM,
    B_UPDATES,
    DecimalLevels,
)

TIMESTAMP = "2023-10-06T17:35:55.440295Z"


def book_of(bids: DecimalLevels, asks: DecimalLevels, symbol: str = "BTC/USD") -> AggregatedBook:
    book = AggregatedBook(1, 8, symbol=symbol)
    sides: tuple[tuple[Side, DecimalLevels], ...] = (("bid", bids), ("ask", asks))
    for side, levels in sides:
        for price, qty in levels:
            book.set_level(side, to_scaled(price, 1), to_scaled(qty, 8))
    return book


def wire(payload: BookPayload) -> dict[str, Any]:
    """The payload as a client sees it: our JSON bytes, parsed with Decimals as Kraken advises."""
    data: dict[str, Any] = json.loads(msgspec.json.encode(payload), parse_float=Decimal)
    return data


def pairs(levels: list[dict[str, Decimal]]) -> DecimalLevels:
    return [(level["price"], level["qty"]) for level in levels]


class ReferenceClient:
    """A Kraken client done by the book: dict per side, apply in order, sort, truncate, CRC."""

    def __init__(self, depth: int, price_decimals: int = 1, qty_decimals: int = 8) -> None:
        self.depth = depth
        self.decimals = (price_decimals, qty_decimals)
        self.sides: dict[str, dict[Decimal, Decimal]] = {"bids": {}, "asks": {}}

    def apply(self, data: dict[str, Any]) -> None:
        for name, levels in self.sides.items():
            for price, qty in pairs(data[name]):
                if qty == 0:
                    levels.pop(price, None)
                else:
                    levels[price] = qty
            best_first = sorted(levels.items(), reverse=name == "bids")
            self.sides[name] = dict(best_first[: self.depth])

    def window(self, name: str) -> list[tuple[int, int]]:
        price_decimals, qty_decimals = self.decimals
        return [
            (to_scaled(p, price_decimals), to_scaled(q, qty_decimals))
            for p, q in self.sides[name].items()
        ]

    def checksum(self) -> int:
        asks, bids = (list(self.sides[name].items()) for name in ("asks", "bids"))
        return checksum_decimal(asks, bids, *self.decimals)


# --- the book ----------------------------------------------------------------------------------


def test_book_side_iterates_best_first_and_deletes_with_zero() -> None:
    bids, asks = BookSide("bid"), BookSide("ask")
    for price in (5, 9, 1, 7):
        bids.set(price, price * 10)
        asks.set(price, price * 10)
    bids.set(9, 3)  # replace, not a second level
    assert list(bids) == [(9, 3), (7, 70), (5, 50), (1, 10)]
    assert asks.top(2) == [(1, 10), (5, 50)]
    bids.set(7, 0)
    bids.set(8, 0)  # deleting an absent level is a no-op
    assert bids.top(10) == [(9, 3), (5, 50), (1, 10)]
    assert (len(bids), bids.best(), bids.get(7), 5 in bids, 7 in bids) == (
        3,
        (9, 3),
        0,
        True,
        False,
    )
    assert BookSide("ask").best() is None


def test_aggregated_book_refuses_what_cannot_be_on_the_wire() -> None:
    book = AggregatedBook(1, 8, symbol="BTC/USD")
    with pytest.raises(ValueError):
        book.set_level("bid", 0, 1)
    with pytest.raises(ValueError):
        book.set_level("ask", 10, -1)
    book.set_level("ask", 10, 1)
    assert book.top("ask", 10) == [(10, 1)]
    assert book.top("bid", 10) == []


@pytest.mark.parametrize("depth", [0, 5, 50, 2000])
def test_depth_view_accepts_only_krakens_depths(depth: int) -> None:
    with pytest.raises(ValueError):
        DepthView(AggregatedBook(1, 8, symbol="BTC/USD"), depth)


# --- snapshots and Kraken's vectors ------------------------------------------------------------


def test_snapshot_of_vector_a_has_krakens_checksum_and_exact_numbers() -> None:
    payload = DepthView(book_of(A_BIDS, A_ASKS), 10).snapshot()
    assert payload.checksum == A_CHECKSUM
    text = msgspec.json.encode(payload).decode()
    assert text.startswith('{"symbol":"BTC/USD","bids":[{"price":45283.5,"qty":0.10000000},')
    assert '{"price":45285.2,"qty":0.00100000}' in text
    assert "timestamp" not in text
    data = wire(payload)
    assert (pairs(data["bids"]), pairs(data["asks"])) == (A_BIDS, A_ASKS)
    assert list(data) == ["symbol", "bids", "asks", "checksum"]


def test_payload_encodes_with_any_encoder_and_decodes_back_byte_for_byte() -> None:
    payload = DepthView(book_of(A_BIDS, A_ASKS), 10).snapshot(TIMESTAMP)
    text = msgspec.json.encode(payload)
    assert msgspec.json.Encoder(decimal_format="string").encode(payload) == text
    assert msgspec.json.encode(msgspec.json.decode(text, type=BookPayload)) == text
    assert Decimal(bytes(payload.bids[0].qty).decode()) == Decimal("0.1")


def test_snapshot_carries_a_timestamp_when_given_and_refuses_a_malformed_one() -> None:
    view = DepthView(book_of(A_BIDS, A_ASKS), 10)
    assert wire(view.snapshot(TIMESTAMP))["timestamp"] == TIMESTAMP
    for bad in (
        "2023-10-06T17:35:55Z",
        "2023-10-06 17:35:55.440295Z",
        "2023-10-06T17:35:55.440+00",
    ):
        with pytest.raises(ValueError):
            view.snapshot(bad)


def test_vector_b_replayed_through_the_venue_gives_krakens_checksums() -> None:
    """Kraken's own diffs differ in form (U1 carries a refill that falls off), not in result."""
    book = book_of(B_BIDS, B_ASKS)
    book.set_level("ask", 294333, 80_000_000)  # 29433.3, the 11th ask: outside the window
    view = DepthView(book, 10)
    client = ReferenceClient(10)
    snapshot = view.snapshot()
    assert snapshot.checksum == B_CHECKSUM
    client.apply(wire(snapshot))
    sent: list[DecimalLevels] = []
    for side, changes, expected in B_UPDATES:
        for price, qty in changes:
            book.set_level(side, to_scaled(price, 1), to_scaled(qty, 8))
        payload = view.update(TIMESTAMP)
        assert payload is not None
        assert payload.checksum == expected
        data = wire(payload)
        client.apply(data)
        assert client.checksum() == expected
        sent.append(pairs(data["asks" if side == "ask" else "bids"]))
    # U1: the delete and the better insert; the refill 29433.3 would only be truncated away.
    assert sent[0] == [(Decimal("29431.1"), Decimal("0.0")), (Decimal("29430.6"), Decimal("0.001"))]
    # U3: 29421.5 is pushed below the window, still in the book: not sent.
    assert sent[2] == [(Decimal("29423.0"), Decimal("2.54902601"))]


# --- updates -----------------------------------------------------------------------------------


def test_update_is_none_when_the_window_did_not_change() -> None:
    book = book_of(A_BIDS, A_ASKS)
    book.set_level("bid", 452000, 5)  # deeper than the 10th bid
    view = DepthView(book, 10)
    view.snapshot()
    assert view.update(TIMESTAMP) is None
    book.set_level("bid", 452001, 5)  # outside the window: this subscriber cannot see it
    book.set_level("bid", 452000, 0)
    assert view.update(TIMESTAMP) is None
    book.set_level("bid", 452835, to_scaled("0.10000000", 8))  # same qty as before
    assert view.update(TIMESTAMP) is None


def test_deleting_inside_the_window_sends_zero_and_the_refill() -> None:
    book = book_of(A_BIDS, A_ASKS)
    book.set_level("ask", 453000, 7)  # 45300.0, the 11th ask
    view = DepthView(book, 10)
    view.snapshot()
    book.set_level("ask", 452864, 0)
    payload = view.update(TIMESTAMP)
    assert payload is not None
    text = msgspec.json.encode(payload).decode()
    assert '"asks":[{"price":45286.4,"qty":0.00000000},{"price":45300.0,"qty":0.00000007}]' in text
    assert '"bids":[]' in text
    assert text.endswith(f',"timestamp":"{TIMESTAMP}"}}')


def test_update_before_any_snapshot_carries_the_whole_window() -> None:
    view = DepthView(book_of(A_BIDS, A_ASKS), 10)
    client = ReferenceClient(10)
    payload = view.update(TIMESTAMP)
    assert payload is not None
    client.apply(wire(payload))
    assert client.checksum() == payload.checksum == A_CHECKSUM


def test_two_depths_on_one_book_diff_independently() -> None:
    book = book_of(A_BIDS, A_ASKS)
    shallow, deep = DepthView(book, 10), DepthView(book, 25)
    shallow.snapshot()
    deep.snapshot()
    book.set_level("bid", 452000, 5)  # 11th bid: inside 25, outside 10
    assert shallow.update(TIMESTAMP) is None
    payload = deep.update(TIMESTAMP)
    assert payload is not None
    assert payload.checksum == A_CHECKSUM  # the top 10 did not move
    assert pairs(wire(payload)["bids"]) == [(Decimal("45200.0"), Decimal("0.00000005"))]


# --- property: a reference client stays identical to the venue's window -------------------

_SET_LEVEL = st.tuples(
    st.sampled_from(["bid", "ask"]),
    st.integers(0, 59),  # ticks away from the touch: enough to overflow depth 25
    st.sampled_from([0, 0, 1, 7, 100_000_000, 123_456_789]),  # deletes are frequent
)


@settings(max_examples=150, deadline=None)
@given(
    batches=st.lists(st.lists(_SET_LEVEL, min_size=1, max_size=8), min_size=1, max_size=40),
    initial=st.lists(_SET_LEVEL, max_size=80),
)
def test_reference_client_tracks_the_window_at_depths_10_and_25(
    batches: list[list[tuple[Side, int, int]]], initial: list[tuple[Side, int, int]]
) -> None:
    book = AggregatedBook(1, 8, symbol="XBT/USD")

    def set_level(side: Side, offset: int, qty: int) -> None:
        price = 300_000 - offset if side == "bid" else 300_001 + offset
        book.set_level(side, price, qty)

    for change in initial:
        set_level(*change)
    views = {depth: DepthView(book, depth) for depth in (10, 25)}
    clients = {depth: ReferenceClient(depth) for depth in views}
    for depth, view in views.items():
        clients[depth].apply(wire(view.snapshot()))
    for batch in batches:
        for change in batch:
            set_level(*change)
        for depth, view in views.items():
            client = clients[depth]
            payload = view.update(TIMESTAMP)
            if payload is not None:
                client.apply(wire(payload))
                assert client.checksum() == payload.checksum
            assert client.window("bids") == book.top("bid", depth)
            assert client.window("asks") == book.top("ask", depth)

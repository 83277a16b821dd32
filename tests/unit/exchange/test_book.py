"""The client L2 book against Kraken's vectors (docs/kraken/websocket.md 3.3, 3.4) and an
independent Decimal book.

The reference below shares nothing with the code under test: it parses numbers with `Decimal`,
keeps a dict per side, sorts and truncates after each message, and renders the checksum with
`quantize`, exactly as docs/kraken/websocket.md 3.2 words the algorithm.
"""

from __future__ import annotations

import decimal
import json
import logging
import zlib
from collections.abc import Sequence
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.exchange.kraken.ws import book as book_module
from orchestrator.exchange.kraken.ws.book import (
    BookEvent,
    L2Book,
    MalformedBookData,
    PairPrecision,
    parse_scaled,
    wire_level,
)
from orchestrator.exchange.kraken.ws.book_store import BookStore

BTC = PairPrecision(price_decimals=1, qty_decimals=8)
Levels = Sequence[tuple[str, str]]  # (price text, qty text) exactly as on the wire


# -- an independent reference -----------------------------------------------------------------


class RefBook:
    """Kraken's book as docs/kraken/websocket.md 3.2 describes it, in Decimal, for clarity over
    speed."""

    def __init__(self, depth: int, precision: PairPrecision = BTC) -> None:
        self.depth = depth
        self.precision = precision
        self.sides: dict[str, dict[Decimal, Decimal]] = {"asks": {}, "bids": {}}

    def apply(self, asks: Levels, bids: Levels, *, snapshot: bool = False) -> None:
        for name, levels in (("asks", asks), ("bids", bids)):
            side = {} if snapshot else self.sides[name]
            for price_text, qty_text in levels:
                price, qty = Decimal(price_text), Decimal(qty_text)
                if qty == 0:
                    side.pop(price, None)
                else:
                    side[price] = qty
            kept = sorted(side, reverse=name == "bids")[: self.depth]
            self.sides[name] = {price: side[price] for price in kept}

    def top(self, name: str) -> list[tuple[Decimal, Decimal]]:
        side = self.sides[name]
        return [(price, side[price]) for price in sorted(side, reverse=name == "bids")]

    def checksum(self) -> int:
        def render(value: Decimal, decimals: int) -> str:
            with decimal.localcontext() as context:
                context.prec = 80
                fixed = value.quantize(Decimal(1).scaleb(-decimals))
            return format(fixed, "f").replace(".", "").lstrip("0")

        text = "".join(
            render(price, self.precision.price_decimals) + render(qty, self.precision.qty_decimals)
            for price, qty in self.top("asks")[:10] + self.top("bids")[:10]
        )
        return zlib.crc32(text.encode())


def levels(text: str) -> list[tuple[str, str]]:
    """`"45283.5 0.10000000 | 45283.4 1.54582015"` as wire texts."""
    return [(price, qty) for price, qty in (chunk.split() for chunk in text.split("|") if chunk)]


def entry(
    symbol: str, checksum: int, *, bids: Levels = (), asks: Levels = (), extra: str = ""
) -> str:
    def side(lv: Levels) -> str:
        return ",".join(f'{{"price":{p},"qty":{q}}}' for p, q in lv)

    return (
        f'{{"symbol":"{symbol}","bids":[{side(bids)}],"asks":[{side(asks)}],'
        f'"checksum":{checksum}{extra}}}'
    )


def frame(kind: str, *entries: str, extra: str = "") -> bytes:
    return f'{{"channel":"book","type":"{kind}","data":[{",".join(entries)}]{extra}}}'.encode()


def store_with(*symbols: str, depth: int = 10, precision: PairPrecision = BTC) -> BookStore:
    store = BookStore()
    for symbol in symbols:
        store.add_book(symbol, depth, precision)
    return store


def book_of(store: BookStore, symbol: str) -> L2Book:
    book = store.book(symbol)
    assert book is not None
    return book


def assert_same(book: L2Book, ref: RefBook) -> None:
    assert book.asks() == ref.top("asks")
    assert book.bids() == ref.top("bids")
    assert book.checksum() == ref.checksum()


# -- vectors ----------------------------------------------------------------------------------

A_BIDS = levels(
    "45283.5 0.10000000 | 45283.4 1.54582015 | 45282.1 0.10000000 | 45281.0 0.10000000 |"
    "45280.3 1.54592586 | 45279.0 0.07990000 | 45277.6 0.03310103 | 45277.5 0.30000000 |"
    "45277.3 1.54602737 | 45276.6 0.15445238"
)
A_ASKS = levels(
    "45285.2 0.00100000 | 45286.4 1.54571953 | 45286.6 1.54571109 | 45289.6 1.54560911 |"
    "45290.2 0.15890660 | 45291.8 1.54553491 | 45294.7 0.04454749 | 45296.1 0.35380000 |"
    "45297.5 0.09945542 | 45299.5 0.18772827"
)
A_CHECKSUM = 3310070434
A_FLOAT_CHECKSUM = 1604409348  # docs/kraken/websocket.md 3.3: `repr(float)` output

B_BIDS = levels(
    "29430.2 0.18967538 | 29429.6 0.00011621 | 29427.4 0.001 | 29426.7 4.0 |"
    "29425.7 0.67945399 | 29423.5 0.67950478 | 29422.1 0.16314267 | 29421.8 0.06797895 |"
    "29421.7 0.23401846 | 29421.5 0.28639276"
)
B_ASKS = levels(
    "29430.3 8.25215653 | 29430.4 2.55637606 | 29430.5 0.2997598 | 29430.9 2.56473216 |"
    "29431.0 0.00011662 | 29431.1 0.001 | 29432.3 0.0241 | 29432.4 0.02210682 |"
    "29432.5 3.39761477 | 29433.1 0.01021497"
)
B_CHECKSUM = 2785033588
B_UPDATES: list[tuple[list[tuple[str, str]], list[tuple[str, str]], int]] = [
    ([], levels("29431.1 0.0 | 29433.3 0.8 | 29430.6 0.001"), 3547452596),
    ([], levels("29430.3 8.25182177"), 3111681483),
    (levels("29423.0 2.54902601"), [], 434883881),
    (levels("29424.2 0.8"), [], 2141748964),
    (levels("29421.9 0.0275"), [], 2966524335),
]
B_BAD: tuple[list[tuple[str, str]], list[tuple[str, str]], int] = (
    levels("29430.3 1.69289565"),
    [],
    2438868880,
)


def test_vector_a_snapshot() -> None:
    store = store_with("BTC/USD")
    events = store.on_message(
        frame("snapshot", entry("BTC/USD", A_CHECKSUM, bids=A_BIDS, asks=A_ASKS))
    )
    assert events == (BookEvent("BTC/USD", "snapshot", True),)
    book = book_of(store, "BTC/USD")
    assert not book.stale
    assert book.checksum() == A_CHECKSUM
    assert book.best_bid() == (Decimal("45283.5"), Decimal("0.1"))
    assert book.best_ask() == (Decimal("45285.2"), Decimal("0.001"))
    assert book.bids() == [(Decimal(p), Decimal(q)) for p, q in A_BIDS]
    assert book.asks(3) == [(Decimal(p), Decimal(q)) for p, q in A_ASKS[:3]]
    assert book.scaled_asks(1) == [(452852, 100000)]
    assert book.checksum_text().startswith(b"452852100000452864154571953")


def test_vector_a_float_rendering_checksum_is_refused() -> None:
    store = store_with("BTC/USD")
    events = store.on_message(
        frame("snapshot", entry("BTC/USD", A_FLOAT_CHECKSUM, bids=A_BIDS, asks=A_ASKS))
    )
    assert events == (
        BookEvent("BTC/USD", "snapshot", False),
        BookEvent("BTC/USD", "resync_needed", False, reason="checksum"),
    )
    assert book_of(store, "BTC/USD").stale
    assert store.mismatches == 1


def test_vector_b_replay_then_bad_message_isolates_one_book() -> None:
    store = store_with("BTC/USD", "XBT/EUR")
    other = book_of(store, "XBT/EUR")
    store.on_message(frame("snapshot", entry("XBT/EUR", A_CHECKSUM, bids=A_BIDS, asks=A_ASKS)))
    events = store.on_message(
        frame("snapshot", entry("BTC/USD", B_CHECKSUM, bids=B_BIDS, asks=B_ASKS))
    )
    assert events == (BookEvent("BTC/USD", "snapshot", True),)
    ref = RefBook(10)
    ref.apply(B_ASKS, B_BIDS, snapshot=True)
    for bids, asks, checksum in B_UPDATES:
        events = store.on_message(frame("update", entry("BTC/USD", checksum, bids=bids, asks=asks)))
        assert events == (BookEvent("BTC/USD", "update", True),)
        ref.apply(asks, bids)
        assert ref.checksum() == checksum
        assert_same(book_of(store, "BTC/USD"), ref)
    # U1 left 11 asks before truncation: the refill 29433.3 is the one that must go.
    assert Decimal("29433.3") not in [price for price, _ in book_of(store, "BTC/USD").asks()]

    bids, asks, checksum = B_BAD
    events = store.on_message(frame("update", entry("BTC/USD", checksum, bids=bids, asks=asks)))
    assert events == (
        BookEvent("BTC/USD", "update", False),
        BookEvent("BTC/USD", "resync_needed", False, reason="checksum"),
    )
    assert book_of(store, "BTC/USD").stale
    assert store.stale_symbols == ["BTC/USD"]
    assert store.mismatches == 1
    # The other book is untouched and still live.
    assert not other.stale
    assert other.checksum() == A_CHECKSUM
    assert other.bids() == [(Decimal(p), Decimal(q)) for p, q in A_BIDS]

    # Updates for the stale book are ignored until a snapshot: no events, no second resync.
    bids, asks, checksum = B_UPDATES[0]
    assert store.on_message(frame("update", entry("BTC/USD", checksum, bids=bids, asks=asks))) == ()
    assert store.ignored_stale == 1
    events = store.on_message(
        frame("snapshot", entry("BTC/USD", B_CHECKSUM, bids=B_BIDS, asks=B_ASKS))
    )
    assert events == (BookEvent("BTC/USD", "snapshot", True),)
    assert not book_of(store, "BTC/USD").stale


def test_updates_before_the_first_snapshot_are_ignored() -> None:
    store = store_with("BTC/USD")
    assert store.on_message(frame("update", entry("BTC/USD", 0))) == ()
    assert store.ignored_stale == 1
    assert store.stale_symbols == ["BTC/USD"]


# -- edge cases, each against the reference ---------------------------------------------------


def replay(
    messages: Sequence[tuple[str, Levels, Levels]],
    *,
    depth: int = 10,
    precision: PairPrecision = BTC,
) -> tuple[BookStore, RefBook]:
    """Feed (kind, bids, asks) messages with the reference's checksums; all must verify."""
    store = store_with("PAIR", depth=depth, precision=precision)
    ref = RefBook(depth, precision)
    for kind, bids, asks in messages:
        ref.apply(asks, bids, snapshot=kind == "snapshot")
        events = store.on_message(frame(kind, entry("PAIR", ref.checksum(), bids=bids, asks=asks)))
        assert events == (BookEvent("PAIR", kind, True),), (kind, bids, asks)  # type: ignore[arg-type]
        assert_same(book_of(store, "PAIR"), ref)
    return store, ref


def test_insert_before_delete_on_one_side_keeps_the_level_a_truncation_would_lose() -> None:
    # Full at depth 10; a better ask inserted first makes 11, then a delete makes 10 again.
    # Truncating after each level would drop 45299.5 for good; Kraken truncates per message.
    store, _ = replay(
        [
            ("snapshot", A_BIDS, A_ASKS),
            ("update", [], levels("45284.0 0.5 | 45290.2 0")),
        ]
    )
    assert (Decimal("45299.5"), Decimal("0.18772827")) in book_of(store, "PAIR").asks()
    assert len(book_of(store, "PAIR").asks()) == 10


def test_quantities_beyond_float_precision() -> None:
    # 17 significant digits: a float detour changes the last digits (docs/kraken/websocket.md 3.1).
    meme = PairPrecision(price_decimals=8, qty_decimals=8)
    big = "348545018.76397250"
    assert f"{float(big):.8f}" != big  # the case is real: floats corrupt it
    store, _ = replay(
        [
            (
                "snapshot",
                levels(f"0.00001234 {big} | 0.00001233 1.00000001"),
                levels("0.00001240 999999999.99999999"),
            ),
            (
                "update",
                levels("0.00001234 1234567890123.12345678"),
                levels("0.00001241 88888888888.88888888"),
            ),
        ],
        precision=meme,
    )
    book = book_of(store, "PAIR")
    assert book.best_bid() == (Decimal("0.00001234"), Decimal("1234567890123.12345678"))
    assert book.bids(2)[1] == (Decimal("0.00001233"), Decimal("1.00000001"))


def test_integer_and_exponent_numbers() -> None:
    store, _ = replay(
        [
            (
                "snapshot",
                levels("29430 4 | 2942.99E1 1e-05 | 29429.8 2.5E-3"),
                levels("29431 1E+1 | 2943.15e1 0.1"),
            ),
            ("update", levels("29430.0 40000000e-8 | 294298e-1 0e0"), levels("29431 0.000000010")),
        ]
    )
    book = book_of(store, "PAIR")
    assert book.bids() == [
        (Decimal("29430"), Decimal("0.4")),
        (Decimal("29429.9"), Decimal("0.00001")),
    ]
    assert book.asks() == [
        (Decimal("29431"), Decimal("1E-8")),
        (Decimal("29431.5"), Decimal("0.1")),
    ]


def test_checksum_zero_is_a_checksum_not_a_missing_one() -> None:
    # An empty book checksums to crc32(b"") == 0.
    store, _ = replay([("snapshot", [], [])])
    assert book_of(store, "PAIR").checksum() == 0
    # A real book whose CRC32 is 0: vector A with the last bid's qty chosen for it.
    bids = [*A_BIDS[:-1], ("45276.6", "10114.70100002")]
    ref = RefBook(10)
    ref.apply(A_ASKS, bids, snapshot=True)
    assert ref.checksum() == 0
    replay([("snapshot", bids, A_ASKS)])
    # And 0 against a book whose checksum is not 0 is a mismatch, not "no checksum".
    store = store_with("PAIR")
    events = store.on_message(frame("snapshot", entry("PAIR", 0, bids=A_BIDS, asks=A_ASKS)))
    assert events[0] == BookEvent("PAIR", "snapshot", False)


def test_several_updates_to_one_price_in_one_message() -> None:
    store, _ = replay(
        [
            ("snapshot", B_BIDS, B_ASKS),
            ("update", levels("29430.2 1.0 | 29430.2 2.0 | 29430.2 0 | 29430.2 3.5"), []),
            ("update", [], levels("29431.5 0.1 | 29431.5 0.0 | 29430.3 0 | 29430.3 9.9")),
            (
                "update",
                levels("29429.6 0 | 29429.6 0"),
                levels("29430.7 0.0"),
            ),  # delete of a level not held
        ]
    )
    assert book_of(store, "PAIR").best_bid() == (Decimal("29430.2"), Decimal("3.5"))


def test_data_with_several_entries_is_applied_in_order() -> None:
    store = store_with("BTC/USD", "XBT/EUR")
    ref_btc, ref_eur = RefBook(10), RefBook(10)
    ref_btc.apply(B_ASKS, B_BIDS, snapshot=True)
    ref_eur.apply(A_ASKS, A_BIDS, snapshot=True)
    events = store.on_message(
        frame(
            "snapshot",
            entry("BTC/USD", ref_btc.checksum(), bids=B_BIDS, asks=B_ASKS),
            entry("XBT/EUR", ref_eur.checksum(), bids=A_BIDS, asks=A_ASKS),
        )
    )
    assert [(e.symbol, e.ok) for e in events] == [("BTC/USD", True), ("XBT/EUR", True)]
    # The same symbol twice: the second entry's checksum is of the book after the first.
    first, second = levels("29430.2 7.0"), levels("29430.2 0 | 29430.1 1.5")
    ref_btc.apply([], first)
    checksum_1 = ref_btc.checksum()
    ref_btc.apply([], second)
    checksum_2 = ref_btc.checksum()
    ref_eur.apply(levels("45285.2 0"), [])
    events = store.on_message(
        frame(
            "update",
            entry("BTC/USD", checksum_1, bids=first),
            entry("XBT/EUR", ref_eur.checksum(), asks=levels("45285.2 0")),
            entry("BTC/USD", checksum_2, bids=second),
        )
    )
    assert [(e.symbol, e.kind, e.ok) for e in events] == [
        ("BTC/USD", "update", True),
        ("XBT/EUR", "update", True),
        ("BTC/USD", "update", True),
    ]
    assert_same(book_of(store, "BTC/USD"), ref_btc)
    assert_same(book_of(store, "XBT/EUR"), ref_eur)


def test_depth_below_ten_and_deletes_that_refill() -> None:
    replay(
        [
            ("snapshot", A_BIDS, A_ASKS),
            ("update", levels("45283.5 0 | 45270.0 1"), levels("45285.2 0 | 45280.0 2")),
        ],
        depth=3,
    )
    replay(
        [
            ("snapshot", A_BIDS[:4], A_ASKS[:4]),
            ("update", levels("45283.5 0 | 45283.4 0"), levels("45285.2 0 | 45300.0 1")),
            ("update", levels("45290.0 1 | 45100.0 1"), []),
        ],
        depth=25,
    )


# -- the property: random streams keep us equal to the reference ------------------------------

PRICE_DECIMALS, QTY_DECIMALS = 1, 8


def number_text(scaled: int, decimals: int, style: int) -> str:
    """One value written the ways a JSON encoder might: fixed, shortest, exponent, padded."""
    fixed = str(scaled).rjust(decimals + 1, "0")
    fixed = f"{fixed[:-decimals]}.{fixed[-decimals:]}" if decimals else fixed
    if style == 0:
        return fixed
    if style == 1:  # shortest, Kraken-like: 0.001, 4.0, 12
        short = fixed.rstrip("0").rstrip(".") if "." in fixed else fixed
        return short or "0"
    if style == 2:  # mantissa and exponent
        return f"{scaled}e-{decimals}" if scaled else "0e0"
    return fixed + "00"  # zeros past the precision: exact, so accepted


level_strategy = st.tuples(
    st.integers(1, 40),  # price index on a small grid: collisions are the point
    st.one_of(
        st.just(0),
        st.integers(1, 10**9),
        st.integers(10**15, 10**19),  # > 15 significant digits
    ),
    st.integers(0, 3),
    st.integers(0, 3),
)


def wire(raw: list[tuple[int, int, int, int]]) -> list[tuple[str, str]]:
    return [
        (number_text(290_000 + p, PRICE_DECIMALS, ps), number_text(q, QTY_DECIMALS, qs))
        for p, q, ps, qs in raw
    ]


@settings(max_examples=150, deadline=None)
@given(
    depth=st.sampled_from([1, 3, 10, 25]),
    snapshot=st.tuples(
        st.lists(level_strategy, max_size=30), st.lists(level_strategy, max_size=30)
    ),
    updates=st.lists(
        st.tuples(
            st.lists(level_strategy, max_size=5),
            st.lists(level_strategy, max_size=5),
            st.integers(1, 3),
        ),
        max_size=25,
    ),
)
def test_random_streams_match_the_reference(
    depth: int,
    snapshot: tuple[list[tuple[int, int, int, int]], list[tuple[int, int, int, int]]],
    updates: list[tuple[list[tuple[int, int, int, int]], list[tuple[int, int, int, int]], int]],
) -> None:
    store = store_with("PAIR", depth=depth)
    book = book_of(store, "PAIR")
    ref = RefBook(depth)
    bids, asks = wire(snapshot[0]), wire(snapshot[1])
    ref.apply(asks, bids, snapshot=True)
    assert store.on_message(frame("snapshot", entry("PAIR", ref.checksum(), bids=bids, asks=asks)))[
        0
    ].ok
    assert_same(book, ref)
    pending: list[str] = []
    for raw_bids, raw_asks, group in updates:
        bids, asks = wire(raw_bids), wire(raw_asks)
        ref.apply(asks, bids)
        pending.append(entry("PAIR", ref.checksum(), bids=bids, asks=asks))
        if len(pending) >= group:  # sometimes several entries in one frame
            events = store.on_message(frame("update", *pending))
            assert [e.ok for e in events] == [True] * len(pending)
            pending.clear()
            assert_same(book, ref)
    if pending:
        assert all(e.ok for e in store.on_message(frame("update", *pending)))
    assert_same(book, ref)
    assert store.mismatches == store.malformed == 0
    # Any other checksum is caught.
    events = store.on_message(frame("update", entry("PAIR", (ref.checksum() + 1) % 2**32)))
    assert events[-1] == BookEvent("PAIR", "resync_needed", False, reason="checksum")


# -- venue additions and malformed input ------------------------------------------------------


def test_unknown_fields_are_tolerated() -> None:
    store = store_with("BTC/USD")
    ref = RefBook(10)
    ref.apply(A_ASKS, A_BIDS, snapshot=True)
    level_extra = ',"orders":3,"flags":{"hidden":[1,2]}'
    bids = ",".join(f'{{"price":{p},"qty":{q}{level_extra}}}' for p, q in A_BIDS)
    asks = ",".join(f'{{"flags":null,"price":{p},"qty":{q}}}' for p, q in A_ASKS)
    raw = (
        '{"channel":"book","type":"snapshot","seq":17,"data":[{"timestamp":"2023-10-06T17:35:55Z",'
        f'"symbol":"BTC/USD","new_field":{{"a":[1,"b"]}},"bids":[{bids}],"asks":[{asks}],'
        f'"checksum":{ref.checksum()}}}],"extra":true}}'
    ).encode()
    assert store.on_message(raw) == (BookEvent("BTC/USD", "snapshot", True),)
    assert store.on_message(raw.decode()) == (BookEvent("BTC/USD", "snapshot", True),)
    assert_same(book_of(store, "BTC/USD"), ref)
    assert store.malformed == 0


@pytest.mark.parametrize(
    "raw",
    [
        b'{"channel":"heartbeat"}',
        b'{"channel":"status","type":"update","data":[{"system":"online","api_version":"v2"}]}',
        b'{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":1.0}]}',
        b'{"method":"subscribe","result":{"channel":"book","symbol":"BTC/USD"},"success":true}',
        b'{"method":"pong","req_id":1}',
        b'{"channel":"trade","type":"update","data":[]}',
    ],
)
def test_other_channels_are_ignored(raw: bytes) -> None:
    store = store_with("BTC/USD")
    assert store.on_message(raw) == ()
    assert (store.malformed, store.mismatches) == (0, 0)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b'{"channel":"book"',
        b"[1, 2, 3]",
        b'"book"',
        b'{"channel":"book","type":"update"}',
        b'{"channel":"book","type":"update","data":{"symbol":"BTC/USD"}}',
        b'{"channel":"book","type":"update","data":"BTC/USD"}',
        b'{"channel":"book","type":"update","data":null}',
        b"\xff\xfe",
    ],
)
def test_malformed_frames_are_counted_and_never_raise(
    raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    store = store_with("BTC/USD")
    store.on_message(frame("snapshot", entry("BTC/USD", A_CHECKSUM, bids=A_BIDS, asks=A_ASKS)))
    with caplog.at_level(logging.WARNING):
        assert store.on_message(raw) == ()
    assert store.malformed == 1
    assert any(record.getMessage() == "book.malformed_frame" for record in caplog.records)
    assert not book_of(store, "BTC/USD").stale


BAD_ENTRIES = {
    "checksum as a string": entry("BTC/USD", 0).replace('"checksum":0', '"checksum":"123"'),
    "checksum above u32": entry("BTC/USD", 2**32),
    "negative checksum": entry("BTC/USD", -1),
    "bids not a list": '{"symbol":"BTC/USD","bids":{"price":1,"qty":1},"asks":[],"checksum":1}',
    "level without qty": '{"symbol":"BTC/USD","bids":[{"price":29430.1}],"asks":[],"checksum":1}',
    "no checksum": '{"symbol":"BTC/USD","bids":[],"asks":[]}',
    "price as a string": entry("BTC/USD", 1, bids=[('"29430.1"', "1.0")]),
    "qty null": entry("BTC/USD", 1, bids=[("29430.1", "null")]),
    "qty true": entry("BTC/USD", 1, asks=[("29430.1", "true")]),
    "negative qty": entry("BTC/USD", 1, bids=[("29430.1", "-1.5")]),
    "negative zero qty": entry("BTC/USD", 1, bids=[("29430.1", "-0.0")]),
    "negative price": entry("BTC/USD", 1, asks=[("-29430.1", "1.5")]),
    "zero price": entry("BTC/USD", 1, asks=[("0.0", "1.5")]),
    "price finer than the precision": entry("BTC/USD", 1, bids=[("29430.25", "1.5")]),
    "qty finer than the precision": entry("BTC/USD", 1, asks=[("29430.1", "0.123456789")]),
    "qty finer, as an exponent": entry("BTC/USD", 1, asks=[("29430.1", "1e-9")]),
    "absurd exponent": entry("BTC/USD", 1, asks=[("29430.1", "1e999999999")]),
}


@pytest.mark.parametrize("bad", BAD_ENTRIES.values(), ids=BAD_ENTRIES.keys())
@pytest.mark.parametrize("kind", ["update", "snapshot"])
def test_malformed_entry_stales_only_its_book(bad: str, kind: str) -> None:
    store = store_with("BTC/USD", "XBT/EUR", "ETH/USD")
    store.on_message(
        frame(
            "snapshot",
            entry("BTC/USD", A_CHECKSUM, bids=A_BIDS, asks=A_ASKS),
            entry("XBT/EUR", B_CHECKSUM, bids=B_BIDS, asks=B_ASKS),
            entry("ETH/USD", A_CHECKSUM, bids=A_BIDS, asks=A_ASKS),
        )
    )
    # Good entries around the bad one are still applied, in order.
    ref = RefBook(10)
    ref.apply(B_ASKS, B_BIDS, snapshot=True)
    ref.apply([], levels("29430.2 0"))
    good_eur = entry("XBT/EUR", ref.checksum(), bids=levels("29430.2 0"))
    ref_eth = RefBook(10)
    ref_eth.apply(A_ASKS, A_BIDS, snapshot=True)
    if kind == "snapshot":
        ref_eth.apply(A_ASKS[:2], A_BIDS[:2], snapshot=True)
        good_eth = entry("ETH/USD", ref_eth.checksum(), bids=A_BIDS[:2], asks=A_ASKS[:2])
    else:
        ref_eth.apply(levels("45285.2 0"), [])
        good_eth = entry("ETH/USD", ref_eth.checksum(), asks=levels("45285.2 0"))
    if kind == "snapshot":
        ref.apply(B_ASKS, B_BIDS, snapshot=True)
        good_eur = entry("XBT/EUR", ref.checksum(), bids=B_BIDS, asks=B_ASKS)
    events = store.on_message(frame(kind, good_eur, bad, good_eth))
    assert BookEvent("BTC/USD", "resync_needed", False, reason="malformed") in events
    assert BookEvent("XBT/EUR", kind, True) in events  # type: ignore[arg-type]
    assert BookEvent("ETH/USD", kind, True) in events  # type: ignore[arg-type]
    assert store.malformed == 1
    assert store.stale_symbols == ["BTC/USD"]
    assert_same(book_of(store, "XBT/EUR"), ref)
    assert_same(book_of(store, "ETH/USD"), ref_eth)


def test_unknown_type_stales_the_named_books() -> None:
    store = store_with("BTC/USD", "XBT/EUR")
    store.on_message(frame("snapshot", entry("BTC/USD", A_CHECKSUM, bids=A_BIDS, asks=A_ASKS)))
    store.on_message(frame("snapshot", entry("XBT/EUR", B_CHECKSUM, bids=B_BIDS, asks=B_ASKS)))
    events = store.on_message(frame("delta", entry("BTC/USD", 1)))
    assert events == (BookEvent("BTC/USD", "resync_needed", False, reason="malformed"),)
    assert store.stale_symbols == ["BTC/USD"]


def test_unknown_symbols_are_counted() -> None:
    store = store_with("BTC/USD")
    assert store.on_message(frame("snapshot", entry("DOGE/USD", 0))) == ()
    assert store.unknown_symbol == 1
    store.remove_book("BTC/USD")
    assert store.on_message(frame("update", entry("BTC/USD", 0))) == ()
    assert store.unknown_symbol == 2
    assert store.symbols == []


def test_qty_with_trailing_zeros_past_the_precision_is_exact_so_accepted() -> None:
    replay([("snapshot", levels("29430.10 1.0000000000"), levels("29431.100000 0.100000000"))])


# -- the pieces -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "decimals", "scaled"),
    [
        (b"123", 2, 12300),
        (b"123.45", 2, 12345),
        (b"0.001", 8, 100000),
        (b"4.0", 8, 400000000),
        (b"1.5e-7", 8, 15),
        (b"1E+3", 1, 10000),
        (b"2.5E-3", 8, 250000),
        (b"0", 8, 0),
        (b"0.0", 8, 0),
        (b"0e-999", 8, 0),
        (b"0.100000000", 8, 10000000),
        (b"348545018.76397250", 8, 34854501876397250),
        (b"12345678901234567890.12345678", 8, 1234567890123456789012345678),
    ],
)
def test_parse_scaled(text: bytes, decimals: int, scaled: int) -> None:
    assert parse_scaled(text, decimals) == scaled


@pytest.mark.parametrize(
    "text",
    [b"-1", b"-0", b"1.234", b"1e-3", b"abc", b"", b"1_000", b" 1", b"1.", b"NaN", b"1e1234567"],
)
def test_parse_scaled_refuses(text: bytes) -> None:
    with pytest.raises(MalformedBookData):
        parse_scaled(text, 2)


def test_wire_level_and_direct_book_use() -> None:
    book = L2Book("BTC/USD", 10, BTC)
    assert book.stale
    ok = book.apply_snapshot(
        [wire_level("29430.2", Decimal("0.5"))], [wire_level(29431, "1E-8")], checksum=0
    )
    assert not ok
    assert book.stale
    assert book.checksum_mismatches == 1
    assert book.checksum_text() == b"2943101" + b"29430250000000"
    assert book.checksum() == zlib.crc32(b"294310129430250000000")
    with pytest.raises(MalformedBookData):
        wire_level("NaN", "1")
    with pytest.raises(MalformedBookData):
        book.apply_update([wire_level("29430.2", "-1")], [], 0)
    assert book.stale


@pytest.mark.parametrize(
    ("depth", "precision"),
    [
        (0, BTC),
        (10, PairPrecision(price_decimals=-1, qty_decimals=8)),
        (10, PairPrecision(price_decimals=1, qty_decimals=99)),
    ],
)
def test_book_refuses_bad_parameters(depth: int, precision: PairPrecision) -> None:
    with pytest.raises(ValueError, match="must be"):
        L2Book("BTC/USD", depth, precision)


def test_reference_matches_kraken_vectors() -> None:
    """The reference is only evidence if it reproduces the recorded checksums itself."""
    ref = RefBook(10)
    ref.apply(A_ASKS, A_BIDS, snapshot=True)
    assert ref.checksum() == A_CHECKSUM
    ref.apply(B_ASKS, B_BIDS, snapshot=True)
    assert ref.checksum() == B_CHECKSUM
    assert json.loads(frame("update", entry("X", 1)))["data"][0]["checksum"] == 1


def test_single_malformed_update_for_a_live_book() -> None:
    store = store_with("BTC/USD")
    store.on_message(frame("snapshot", entry("BTC/USD", A_CHECKSUM, bids=A_BIDS, asks=A_ASKS)))
    events = store.on_message(frame("update", entry("BTC/USD", 1, bids=[("45283.5", "-2")])))
    assert events == (BookEvent("BTC/USD", "resync_needed", False, reason="malformed"),)
    # Already stale: a second malformed update asks nothing more; a malformed snapshot does.
    bad_update = entry("BTC/USD", 1).replace('"checksum":1', '"checksum":"x"')
    assert store.on_message(frame("update", bad_update)) == ()
    assert store.on_message(frame("snapshot", bad_update)) == (
        BookEvent("BTC/USD", "resync_needed", False, reason="malformed"),
    )
    assert store.malformed == 3


def test_entries_that_are_not_objects_are_counted() -> None:
    store = store_with("BTC/USD")
    assert store.on_message(b'{"channel":"book","type":"update","data":[5,"x",{"symbol":7}]}') == ()
    assert store.malformed == 3


def test_price_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(book_module, "_PRICE_CACHE_SIZE", 3)
    store, _ = replay(
        [
            ("snapshot", A_BIDS, A_ASKS),
            ("update", levels("45283.5 0 | 45270.0 1"), levels("45285.2 0 | 45280.0 2")),
            ("update", levels("45283.4 2 | 45200.0 1"), levels("45286.4 2")),
        ]
    )
    assert book_of(store, "PAIR").scaled_bids(1) == [(452834, 200000000)]


@pytest.mark.parametrize("text", [b"1" * 41, b"1e39", b"0.000000001" + b"0" * 40 + b"1"])
def test_parse_scaled_refuses_absurd_sizes(text: bytes) -> None:
    with pytest.raises(MalformedBookData):
        parse_scaled(text, 8)

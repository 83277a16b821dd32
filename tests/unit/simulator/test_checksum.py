"""The book checksum against Kraken's two recorded vectors (`docs/kraken/websocket.md` 3.3, 3.4)."""

from __future__ import annotations

import zlib
from decimal import Decimal
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.simulator.checksum import (
    book_checksum,
    checksum_decimal,
    checksum_text,
    from_scaled,
    render_scaled,
    to_scaled,
)

DecimalLevels = list[tuple[Decimal, Decimal]]


def levels(text: str) -> DecimalLevels:
    """`"45283.5 0.10000000 | 45283.4 1.54582015"` as Decimals, exactly as written."""
    pairs = (chunk.split() for chunk in text.split("|"))
    return [(Decimal(price), Decimal(qty)) for price, qty in pairs]


def scaled(
    side: DecimalLevels, price_decimals: int = 1, qty_decimals: int = 8
) -> list[tuple[int, int]]:
    return [(to_scaled(p, price_decimals), to_scaled(q, qty_decimals)) for p, q in side]


# Vector A: Kraken's documentation example, BTC/USD, price precision 1, qty precision 8.
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
A_ASKS_TEXT = (
    "45285210000045286415457195345286615457110945289615456091145290215890660452918154553491"
    "452947445474945296135380000452975994554245299518772827"
)
A_BIDS_TEXT = (
    "45283510000000452834154582015452821100000004528101000000045280315459258645279079900004"
    "5277633101034527753000000045277315460273745276615445238"
)

# Vector B: python-kraken-sdk's recorded BTC/USD depth-10 fixture; wire numbers lost their
# trailing zeros (`0.001`, `4.0`), which is why precision must be re-applied.
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
B_TEXT = (
    "2943038252156532943042556376062943052997598029430925647321629431011662294311100000294323"
    "241000029432422106822943253397614772943311021497294302189675382942961162129427410000029426"
    "740000000029425767945399294235679504782942211631426729421867978952942172340184629421528639276"
)
# (side, levels, checksum after applying the message) for the fixture's first five updates.
B_UPDATES: list[tuple[Literal["bid", "ask"], DecimalLevels, int]] = [
    ("ask", levels("29431.1 0.0 | 29433.3 0.8 | 29430.6 0.001"), 3547452596),
    ("ask", levels("29430.3 8.25182177"), 3111681483),
    ("bid", levels("29423.0 2.54902601"), 434883881),
    ("bid", levels("29424.2 0.8"), 2141748964),
    ("bid", levels("29421.9 0.0275"), 2966524335),
]


def test_vector_a_text_and_checksum_from_scaled_integers() -> None:
    asks, bids = scaled(A_ASKS), scaled(A_BIDS)
    assert checksum_text(asks, []) == A_ASKS_TEXT
    assert checksum_text([], bids) == A_BIDS_TEXT
    assert book_checksum(asks, bids) == A_CHECKSUM
    assert A_CHECKSUM > 2**31  # the unsigned compare matters


def test_vector_a_reference_implementation_from_decimals() -> None:
    assert checksum_decimal(A_ASKS, A_BIDS, 1, 8) == A_CHECKSUM


def test_vector_a_float_rendering_is_the_known_wrong_answer() -> None:
    """The classic pitfall, kept as a negative control: repr drops the trailing zeros."""
    text = "".join(
        repr(float(p)).replace(".", "").lstrip("0") + repr(float(q)).replace(".", "").lstrip("0")
        for side in (A_ASKS, A_BIDS)
        for p, q in side
    )
    assert zlib.crc32(text.encode()) == 1604409348 != A_CHECKSUM


def test_vector_b_snapshot_rerenders_the_lost_trailing_zeros() -> None:
    asks, bids = scaled(B_ASKS), scaled(B_BIDS)
    assert checksum_text(asks, bids) == B_TEXT
    assert book_checksum(asks, bids) == B_CHECKSUM
    assert checksum_decimal(B_ASKS, B_BIDS, 1, 8) == B_CHECKSUM


def test_vector_b_updates_replay_with_truncation_to_depth() -> None:
    book = {"bid": dict(scaled(B_BIDS)), "ask": dict(scaled(B_ASKS))}
    for side, changes, expected in B_UPDATES:
        for price, qty in scaled(changes):
            if qty:
                book[side][price] = qty
            else:
                del book[side][price]
        book["ask"] = dict(sorted(book["ask"].items())[:10])
        book["bid"] = dict(sorted(book["bid"].items(), reverse=True)[:10])
        assert book_checksum(list(book["ask"].items()), list(book["bid"].items())) == expected


def test_only_the_top_ten_levels_count_and_short_books_use_what_exists() -> None:
    asks, bids = scaled(A_ASKS), scaled(A_BIDS)
    deeper = [(452996, 1), (452997, 2)]
    assert book_checksum(asks + deeper, bids) == A_CHECKSUM
    assert book_checksum(asks[:3], []) == zlib.crc32(A_ASKS_TEXT[:42].encode())
    assert book_checksum([], []) == 0


@given(
    price=st.integers(1, 10**15),
    qty=st.integers(1, 10**15),
    price_decimals=st.integers(0, 10),
    qty_decimals=st.integers(0, 12),
)
def test_fragment_of_a_scaled_integer_is_krakens_fixed_precision_rendering(
    price: int, qty: int, price_decimals: int, qty_decimals: int
) -> None:
    price_d, qty_d = from_scaled(price, price_decimals), from_scaled(qty, qty_decimals)
    kraken = (f"{price_d:.{price_decimals}f}" + "|" + f"{qty_d:.{qty_decimals}f}").replace(".", "")
    price_text, qty_text = kraken.split("|")
    assert checksum_text([(price, qty)], []) == price_text.lstrip("0") + qty_text.lstrip("0")
    assert book_checksum([(price, qty)], [(price, qty)]) == checksum_decimal(
        [(price_d, qty_d)], [(price_d, qty_d)], price_decimals, qty_decimals
    )


def test_zero_renders_as_nothing_like_kraken_strips_it() -> None:
    assert checksum_text([(0, 0)], []) == ""
    assert checksum_decimal([(Decimal("0.0"), Decimal(0))], [], 1, 8) == zlib.crc32(b"")


@pytest.mark.parametrize(
    ("value", "decimals", "expected"),
    [
        (Decimal("45283.5"), 1, 452835),
        ("0.10000000", 8, 10_000_000),
        ("0.100000000", 8, 10_000_000),  # trailing zeros beyond the precision are harmless
        ("0.1", 8, 10_000_000),
        (0.1, 8, 10_000_000),  # a float is read by its repr, not its binary expansion
        (4, 8, 400_000_000),
        ("-1.5", 1, -15),
        ("1E+3", 0, 1000),
        ("0", 8, 0),
        ("348545018.76397250", 8, 34854501876397250),  # where float rendering breaks
        (Decimal("123456789012345678901234567890.12"), 2, 12345678901234567890123456789012),
    ],
)
def test_to_scaled_is_exact(value: Decimal | str | float, decimals: int, expected: int) -> None:
    assert to_scaled(value, decimals) == expected


@pytest.mark.parametrize(
    ("value", "decimals"),
    [("0.123456789", 8), ("45283.55", 1), (0.1 + 0.2, 8), ("1.5", 0), ("nan", 2), ("inf", 2)],
)
def test_to_scaled_refuses_what_would_need_rounding(value: str | float, decimals: int) -> None:
    with pytest.raises(ValueError):
        to_scaled(value, decimals)


def test_to_scaled_refuses_garbage_bools_and_negative_decimals() -> None:
    with pytest.raises(ValueError):
        to_scaled("12abc", 2)
    with pytest.raises(TypeError):
        to_scaled(True, 2)
    with pytest.raises(ValueError):
        to_scaled("1", -1)
    with pytest.raises(ValueError):
        from_scaled(1, -1)


def test_from_scaled_keeps_exactly_the_pairs_decimals() -> None:
    assert str(from_scaled(10_000_000, 8)) == "0.10000000"
    assert str(from_scaled(452835, 1)) == "45283.5"
    assert str(from_scaled(-15, 1)) == "-1.5"
    assert str(from_scaled(7, 0)) == "7"
    big = 12345678901234567890123456789012345
    assert to_scaled(from_scaled(big, 8), 8) == big  # no context precision rounding


@given(value=st.integers(-(10**30), 10**30), decimals=st.integers(0, 18))
def test_scaled_round_trip(value: int, decimals: int) -> None:
    number = from_scaled(value, decimals)
    assert number.as_tuple().exponent == -decimals
    assert to_scaled(number, decimals) == value
    assert to_scaled(str(number), decimals) == value


@pytest.mark.parametrize(
    ("value", "decimals", "text"),
    [
        (0, 8, "0.00000000"),
        (7, 8, "0.00000007"),
        (10_000_000, 8, "0.10000000"),
        (452835, 1, "45283.5"),
        (-15, 1, "-1.5"),
        (-7, 3, "-0.007"),
        (7, 0, "7"),
        (0, 0, "0"),
    ],
)
def test_render_scaled_is_fixed_point_never_exponent(value: int, decimals: int, text: str) -> None:
    assert render_scaled(value, decimals) == text


@given(value=st.integers(-(10**30), 10**30), decimals=st.integers(0, 18))
def test_render_scaled_matches_decimal_fixed_point_formatting(value: int, decimals: int) -> None:
    assert render_scaled(value, decimals) == f"{from_scaled(value, decimals):f}"
    assert to_scaled(render_scaled(value, decimals), decimals) == value

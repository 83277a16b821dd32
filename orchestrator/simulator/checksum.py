"""Kraken WS v2 `book` checksum, and the scaled integers that make it cheap.

Kraken renders each of the top 10 levels at the pair's fixed precision (`45283.5`, `0.10000000`),
deletes the dot, strips leading zeros and CRC32s asks-then-bids (`docs/kraken/websocket.md`
3.2). A price held as `price_int = price * 10**price_decimals` renders to exactly that text with
`str`, so the venue keeps its book in scaled integers and never formats a Decimal on the hot
path.
`checksum_decimal` is the literal recipe, kept as the reference the fast path is tested against.

    book_checksum(asks=[(452852, 100000)], bids=[(452835, 10000000)])   # unsigned 32-bit
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Final, cast

CHECKSUM_LEVELS: Final = 10
"""Levels per side in the checksum, whatever the subscribed depth."""

Level = tuple[int, int]
"""(price_int, qty_int): price in ticks of 10**-price_decimals, qty in 10**-qty_decimals units."""


def _digits(value: int) -> str:
    # Kraken strips every leading zero, so a zero renders as nothing, not as "0".
    return str(value) if value else ""


def checksum_text(asks: Sequence[Level], bids: Sequence[Level]) -> str:
    """The string Kraken CRCs: fragments of the best 10 asks, then of the best 10 bids.

    Public so that a mismatch can be diagnosed by comparing texts instead of two opaque CRCs.
    Levels must be best-first and non-negative; callers hold them that way already.
    """
    parts = [_digits(p) + _digits(q) for p, q in asks[:CHECKSUM_LEVELS]]
    parts.extend(_digits(p) + _digits(q) for p, q in bids[:CHECKSUM_LEVELS])
    return "".join(parts)


def book_checksum(asks: Sequence[Level], bids: Sequence[Level]) -> int:
    """CRC32 of the top 10 of each side, asks ascending and bids descending, as an unsigned int."""
    return zlib.crc32(checksum_text(asks, bids).encode("ascii")) & 0xFFFFFFFF


def _kraken_fragment(value: Decimal, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    if Decimal(text) != value:
        raise ValueError(f"{value} has more than {decimals} decimals")
    return text.replace(".", "").lstrip("0")


def checksum_decimal(
    asks: Sequence[tuple[Decimal, Decimal]],
    bids: Sequence[tuple[Decimal, Decimal]],
    price_decimals: int,
    qty_decimals: int,
) -> int:
    """Kraken's recipe word for word, from Decimals as a client parses them off the wire.

    Independent of the scaled-integer path on purpose: the tests compare the two, so agreement is
    evidence. Refuses a value that would need rounding to the pair's precision.
    """
    text = "".join(
        _kraken_fragment(price, price_decimals) + _kraken_fragment(qty, qty_decimals)
        for side in (asks, bids)
        for price, qty in side[:CHECKSUM_LEVELS]
    )
    return zlib.crc32(text.encode("ascii")) & 0xFFFFFFFF


def _as_decimal(value: Decimal | str | int | float) -> Decimal:
    if isinstance(value, bool):
        raise TypeError("a bool is not a price or a quantity")
    if isinstance(value, float):
        # repr is the shortest text that round-trips: what the writer of 0.1 meant, not the
        # binary expansion 0.1000000000000000055... that Decimal(0.1) would give.
        value = repr(value)
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return number


def to_scaled(value: Decimal | str | int | float, decimals: int) -> int:
    """`value * 10**decimals` exactly; a value that would need rounding is a ValueError.

    Trailing zeros beyond `decimals` are fine (`"0.100000000"` at 8), digits are not: a price
    off the pair's grid must be refused, never silently moved. Floats are read by their repr.
    """
    if decimals < 0:
        raise ValueError(f"decimals must be >= 0, got {decimals}")
    sign, digit_tuple, exponent = _as_decimal(value).as_tuple()
    exponent = cast(int, exponent)  # an int for every finite number, the only kind let through
    coefficient = int("".join(map(str, digit_tuple)) or "0")
    shift = exponent + decimals
    if shift >= 0:
        scaled: int = coefficient * 10**shift
    else:
        divisor: int = 10**-shift
        scaled, remainder = divmod(coefficient, divisor)
        if remainder:
            raise ValueError(f"{value} has more than {decimals} decimals")
    return -scaled if sign else scaled


def render_scaled(value: int, decimals: int) -> str:
    """A scaled integer as fixed-point text with exactly `decimals` places (`0.10000000`).

    What the venue writes on the wire: string work on the integer, no Decimal, no exponent form
    (Decimal's own text for 0.00000007 is `7E-8`).
    """
    if decimals < 0:
        raise ValueError(f"decimals must be >= 0, got {decimals}")
    digits = str(abs(value)).rjust(decimals + 1, "0")
    sign = "-" if value < 0 else ""
    if not decimals:
        return sign + digits
    return f"{sign}{digits[:-decimals]}.{digits[-decimals:]}"


def from_scaled(value: int, decimals: int) -> Decimal:
    """The Decimal of a scaled integer, with exactly `decimals` places (`0.10000000`, not `0.1`).

    Built from the digit tuple rather than by division, so no context precision can round it.
    """
    if decimals < 0:
        raise ValueError(f"decimals must be >= 0, got {decimals}")
    digit_tuple = tuple(int(c) for c in str(abs(value)))
    return Decimal((1 if value < 0 else 0, digit_tuple, -decimals))

"""Client-side L2 books for Kraken Spot WebSocket v2 `book`, checked against Kraken's CRC32.

Pure state, no I/O: the WebSocket client hands raw frames to `BookStore.on_message` and acts on
the `BookEvent`s it returns (a `resync_needed` event asks it to re-subscribe that symbol only);
when its connection drops, `BookStore.mark_all_stale` makes every book stale at once.

Exactness. v2 sends prices and quantities as JSON numbers carrying the engine's full precision,
and the checksum renders them at the pair's precision; a float detour loses trailing zeros and,
past ~6.7e7 at 8 decimals, digits (docs/kraken/websocket.md 3.1). So numbers are decoded as
`msgspec.Raw`, their wire text, and read exactly as scaled integers,
`price_int = price * 10**price_decimals`. A
level's checksum fragment is then `str(price_int) + str(qty_int)` (render at precision, drop
the '.', strip leading zeros), and that fragment is what a side stores: it is all the checksum
needs, and the quantity can be read back from it. A value finer than the precision, a sign, or
anything not a number is refused (the book goes stale), never rounded.

Order of work per message, as Kraken computes it: apply every level of a side in array order
(several updates to one price included), truncate to the subscribed depth (Kraken never deletes
levels pushed out of range), then CRC32 the top 10 asks ascending + top 10 bids descending,
compared unsigned. A side's rendered top 10 (and the asks' CRC of it) is kept and rebuilt as
soon as a change lands in it, so depth 100 costs about what depth 10 does, and an update that
touches only the bids CRCs only their 10 levels, from the asks' kept CRC.
"""

from __future__ import annotations

import re
import zlib
from bisect import bisect_left
from decimal import Decimal
from typing import Annotated, Final, Literal

import msgspec

from orchestrator.logs import get_logger

log = get_logger(__name__)
_crc32: Final = zlib.crc32

CHECKSUM_LEVELS: Final = 10  # Kraken checksums the top 10 of each side, whatever the depth
MAX_DECIMALS: Final = 18
_MAX_DIGITS: Final = 40  # refuses "1e999999999" before it costs memory; no real value is near
_MAX_EXPONENT_CHARS: Final = 6  # "e+12345": int() of a 5000-digit exponent would raise
_PRICE_CACHE_SIZE: Final = 65_536  # wire text -> scaled price; prices repeat, quantities less
_LOGGED_FRAME_BYTES: Final = 200
_JSON_NUMBER = re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")

EventKind = Literal["snapshot", "update", "resync_needed", "stale"]
"""`stale`: the book's connection dropped (silent, closed, failed); a snapshot follows the
resubscription on the next connection. Every book of that connection gets one at once."""
U32 = Annotated[int, msgspec.Meta(ge=0, le=0xFFFFFFFF)]


class MalformedBookData(ValueError):
    """A level the book cannot apply exactly (bad number, negative, finer than the precision)."""


class PairPrecision(msgspec.Struct, frozen=True, kw_only=True):
    """Decimals of a pair: WS `instrument` price/qty_precision, REST pair/lot_decimals."""

    price_decimals: int
    qty_decimals: int


class WireLevel(msgspec.Struct, frozen=True, gc=False):
    """One `{"price": .., "qty": ..}` as decoded: the numbers' wire text, not floats."""

    price: msgspec.Raw
    qty: msgspec.Raw


class BookEvent(msgspec.Struct, frozen=True, gc=False):
    """What one `data` entry did, or the connection (`stale`). `ok` is the checksum verdict;
    `reason` says why a resync, or why the book went stale."""

    symbol: str
    kind: EventKind
    ok: bool = True
    reason: str = ""


def wire_level(price: str | int | Decimal, qty: str | int | Decimal) -> WireLevel:
    """A `WireLevel` from text or Decimal, as if decoded from a frame (tests, replays)."""
    return WireLevel(msgspec.Raw(_number_text(price)), msgspec.Raw(_number_text(qty)))


def _number_text(value: str | int | Decimal) -> bytes:
    text = str(value).encode()
    if not _JSON_NUMBER.fullmatch(text):
        raise MalformedBookData(f"not a JSON number: {value!r}")
    return text


def parse_scaled(text: bytes, decimals: int) -> int:
    """The exact integer `value * 10**decimals` of a JSON number's text, else MalformedBookData.

    Accepts `123`, `123.45`, `1.5e-7`, `1E+3`; refuses a sign, non-numbers, and values with
    non-zero digits past `decimals` (`0.123` at 2 decimals). Trailing zeros past it are fine.
    """
    if not _JSON_NUMBER.fullmatch(text) or text[:1] == b"-":
        raise MalformedBookData(f"not a non-negative JSON number: {text[:40]!r}")
    mantissa, _, exponent_text = text.lower().partition(b"e")
    whole, _, fraction = mantissa.partition(b".")
    digits = (whole + fraction).lstrip(b"0")
    if not digits:
        return 0
    if len(digits) > _MAX_DIGITS:
        raise MalformedBookData(f"too many digits: {text[:40]!r}")
    if len(exponent_text) > _MAX_EXPONENT_CHARS:
        raise MalformedBookData(f"exponent out of range: {text[:40]!r}")
    shift = decimals - len(fraction) + int(exponent_text or b"0")
    if shift >= 0:
        if shift + len(digits) > _MAX_DIGITS:
            raise MalformedBookData(f"too large: {text[:40]!r}")
        return int(digits + b"0" * shift)
    kept = digits[:shift]
    if digits[shift:].strip(b"0"):
        raise MalformedBookData(f"more decimals than {decimals}: {text[:40]!r}")
    return int(kept) if kept else 0


def _to_decimal(scaled: int, decimals: int) -> Decimal:
    return Decimal(f"{scaled}e-{decimals}")  # from text: exact, no context rounding


class _Side:
    """One side of a book: sorted keys and, in step with them, the levels' checksum fragments.

    Keys ascend best-first: the price for asks, minus it for bids, so the top of either side is
    a slice. A level is held as its checksum fragment, `str(price_int) + str(qty_int)` in ASCII:
    that is all the checksum needs, equal quantities give equal fragments, and the quantity is
    the tail after the price's digits. Parallel lists beat a dict here: every change needs the
    level's rank anyway (is it in the top 10?), and truncation is two slice deletions.
    """

    __slots__ = ("crc", "frags", "keys", "prices", "sign", "text")

    def __init__(self, sign: int) -> None:
        self.sign = sign
        self.keys: list[int] = []
        self.frags: list[bytes] = []
        self.prices: dict[bytes, tuple[int, bytes]] = {}  # wire text -> (key, price digits)
        self.text = b""  # the rendered top 10, rebuilt whenever a change lands in it
        self.crc = 0  # CRC32 of `text`, kept for the asks only (they come first)

    def clear(self) -> None:
        self.keys.clear()
        self.frags.clear()
        self.text = b""
        self.crc = 0

    def render(self) -> bytes:
        return b"".join(self.frags[:CHECKSUM_LEVELS])

    def levels(self, n: int | None) -> list[tuple[int, int]]:
        sign = self.sign
        out = []
        for key, frag in zip(self.keys[:n], self.frags[:n], strict=True):
            price = key * sign
            out.append((price, int(frag[len(str(price)) :])))
        return out


class L2Book:
    """One pair's book at one depth. `stale` until a snapshot verifies, and after any mismatch.

    `apply_*` return the checksum verdict and raise `MalformedBookData` (leaving the book stale)
    on a level they cannot apply exactly. A stale book still applies what it is given; `BookStore`
    is what ignores updates for stale books until the next snapshot.
    """

    __slots__ = (
        "_asks",
        "_bids",
        "_crc",
        "_price_decimals",
        "_price_padding",
        "_qty_decimals",
        "_qty_padding",
        "checksum_mismatches",
        "depth",
        "precision",
        "stale",
        "symbol",
    )

    def __init__(self, symbol: str, depth: int, precision: PairPrecision) -> None:
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        for name, decimals in (
            ("price_decimals", precision.price_decimals),
            ("qty_decimals", precision.qty_decimals),
        ):
            if not 0 <= decimals <= MAX_DECIMALS:
                raise ValueError(f"{name} must be in 0..{MAX_DECIMALS}, got {decimals}")
        self.symbol = symbol
        self.depth = depth
        self.precision = precision
        self.stale = True
        self.checksum_mismatches = 0
        self._price_decimals = precision.price_decimals
        self._qty_decimals = precision.qty_decimals
        # decimals on the wire -> zeros that render the qty at full precision (the fast path)
        self._price_padding = {
            n: b"0" * (precision.price_decimals - n) for n in range(precision.price_decimals + 1)
        }
        self._qty_padding = {
            n: b"0" * (precision.qty_decimals - n) for n in range(precision.qty_decimals + 1)
        }
        self._asks = _Side(1)
        self._bids = _Side(-1)
        self._crc = 0  # of the current top 10s, kept in step with the sides' `text`

    # -- applying --------------------------------------------------------------------------

    def apply_snapshot(self, bids: list[WireLevel], asks: list[WireLevel], checksum: int) -> bool:
        """Replace the book; True (and not stale) when Kraken's checksum matches."""
        self.stale = True
        self._asks.clear()
        self._bids.clear()
        self._apply_side(self._asks, asks)
        self._apply_side(self._bids, bids)
        self._crc = _crc32(self._bids.text, self._asks.crc)
        if self._crc == checksum:
            self.stale = False
            return True
        self.checksum_mismatches += 1
        return False

    def apply_update(self, bids: list[WireLevel], asks: list[WireLevel], checksum: int) -> bool:
        """Apply every level in order, truncate to depth, verify; a mismatch makes it stale."""
        try:
            changed = self._apply_side(self._asks, asks) if asks else False
            if bids and self._apply_side(self._bids, bids):
                changed = True
        except MalformedBookData:
            self.stale = True
            raise
        if changed:
            crc = self._crc = _crc32(self._bids.text, self._asks.crc)
        else:
            crc = self._crc
        if crc == checksum:
            return True
        self.stale = True
        self.checksum_mismatches += 1
        return False

    def mark_stale(self) -> None:
        self.stale = True

    def _price(self, text: bytes, side: _Side) -> tuple[int, bytes]:
        """Parse a price's wire text once; later sightings hit `side.prices`."""
        whole, _, fraction = text.partition(b".")
        digits = whole + fraction + self._price_padding.get(len(fraction), b"x")
        price = int(digits) if digits.isdigit() else parse_scaled(text, self._price_decimals)
        if price <= 0:
            raise MalformedBookData(f"price must be > 0: {text[:40]!r}")
        if len(side.prices) >= _PRICE_CACHE_SIZE:
            side.prices.clear()
        entry = side.prices[text] = (price * side.sign, b"%d" % price)
        return entry

    def _qty_digits(self, text: bytes) -> bytes:
        """The slow path of a quantity: exponents, excess decimals, and refusals."""
        qty = parse_scaled(text, self._qty_decimals)
        return b"%d" % qty if qty else b""

    def _apply_side(self, side: _Side, levels: list[WireLevel]) -> bool:  # noqa: PLR0912
        # The hot path, locals only; True when the top 10 changed (its text is rebuilt here).
        # A quantity's wire text becomes its checksum digits by dropping the '.', padding to
        # the precision and stripping leading zeros; anything that is not then plain digits
        # (sign, exponent, quotes, excess decimals) goes the slow exact way of `parse_scaled`.
        # An empty result is a zero: delete the level. `empty + raw` is the Raw's bytes, a
        # third cheaper than `bytes(raw)`.
        keys = side.keys
        frags = side.frags
        price_cache = side.prices
        padding = self._qty_padding
        empty = b""
        first_changed = CHECKSUM_LEVELS  # lowest rank changed; the top 10 is dirty below it
        for level in levels:
            text = empty + level.price
            try:
                key, price_digits = price_cache[text]
            except KeyError:
                key, price_digits = self._price(text, side)
            text = empty + level.qty
            whole, _, fraction = text.partition(b".")
            try:
                digits = (whole + fraction + padding[len(fraction)]).lstrip(b"0")
            except KeyError:
                digits = self._qty_digits(text)
            else:
                if not digits.isdigit() and (digits or text[:1] == b"-"):
                    digits = self._qty_digits(text)
            i = bisect_left(keys, key)
            if digits:
                frag = price_digits + digits
                if i == len(keys) or keys[i] != key:
                    keys.insert(i, key)
                    frags.insert(i, frag)
                elif frags[i] != frag:
                    frags[i] = frag
                else:
                    continue
            elif i < len(keys) and keys[i] == key:
                del keys[i]
                del frags[i]
            else:
                continue  # a delete of a level we do not hold
            if i < first_changed:  # noqa: PLR1730 - a compare is cheaper than calling min()
                first_changed = i
        depth = self.depth
        if len(keys) > depth:
            del keys[depth:]
            del frags[depth:]
            first_changed = min(first_changed, depth)
        if first_changed < CHECKSUM_LEVELS:
            top = frags if depth <= CHECKSUM_LEVELS else frags[:CHECKSUM_LEVELS]
            text = side.text = b"".join(top)
            if side.sign == 1:
                side.crc = _crc32(text)
            return True
        return False

    # -- reading ---------------------------------------------------------------------------

    def checksum(self) -> int:
        """Kraken's CRC32 (unsigned) of the current top 10 asks then top 10 bids."""
        return self._crc

    def checksum_text(self) -> bytes:
        """The string Kraken's CRC32 is taken of (for diagnosing a mismatch)."""
        return self._asks.render() + self._bids.render()

    def bids(self, n: int | None = None) -> list[tuple[Decimal, Decimal]]:
        """Best `n` bids (all when None), highest price first, as exact Decimals."""
        return self._decimals(self._bids.levels(n))

    def asks(self, n: int | None = None) -> list[tuple[Decimal, Decimal]]:
        """Best `n` asks (all when None), lowest price first, as exact Decimals."""
        return self._decimals(self._asks.levels(n))

    def scaled_bids(self, n: int | None = None) -> list[tuple[int, int]]:
        """Best bids as integers in units of 10**-price_decimals and 10**-qty_decimals."""
        return self._bids.levels(n)

    def scaled_asks(self, n: int | None = None) -> list[tuple[int, int]]:
        """Best asks as integers in units of 10**-price_decimals and 10**-qty_decimals."""
        return self._asks.levels(n)

    def best_bid(self) -> tuple[Decimal, Decimal] | None:
        levels = self.bids(1)
        return levels[0] if levels else None

    def best_ask(self) -> tuple[Decimal, Decimal] | None:
        levels = self.asks(1)
        return levels[0] if levels else None

    def _decimals(self, levels: list[tuple[int, int]]) -> list[tuple[Decimal, Decimal]]:
        price_decimals = self._price_decimals
        qty_decimals = self._qty_decimals
        return [
            (_to_decimal(price, price_decimals), _to_decimal(qty, qty_decimals))
            for price, qty in levels
        ]

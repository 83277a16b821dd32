"""One strategy's positions and PnL, from its own fills alone (pure, no I/O).

Average-cost accounting, per pair, in the quote currency. A position is kept as its signed
quantity and its signed cost basis (what the open quantity cost, `avg_price x qty`), not as an
average: adding moves the basis by `price x qty` exactly, reducing takes the closed share of the
basis out and realizes `(price - avg) x qty` (by side), and a fill that crosses through zero
closes the whole position (the whole basis: exact) and opens the rest at the fill price. Keeping
the basis rather than the average means a division's rounding (the closed share of the basis,
at the basis's last digit) only moves value between realized and unrealized, never creates it:
`realized - basis` moves by exactly each fill's cash flow, so

    realized + unrealized - fees == sum of cash flows - fees + qty x mark

holds to the last digit, and a round trip at one price realizes exactly 0 (PnL: `-fees`).

Fees are counted in the quote currency: a fee charged in the base asset is valued at its fill's
price (Kraken charges spot fees in the quote by default, in the base with `fcib`). A fee in an
asset that is neither cannot be valued from the fill; it is kept apart (`unpriced_fees`), never
mixed into PnL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, localcontext

from orchestrator.exchange.instruments import Instrument
from orchestrator.strategy import Fill, Position

ZERO = Decimal(0)
# Digits of the arithmetic here: products and sums of venue amounts stay exact far past any
# realistic size (the default 28 would round a long history of sub-cent amounts).
_PRECISION = 60


def _asset_names(instrument: Instrument) -> tuple[frozenset[str], frozenset[str]]:
    """Every name the venue gives the base and the quote asset: balances' codes (`XXBT`,
    `ZUSD`), the wsname's (`XBT`, `USD`) and the WebSocket v2 symbol's (`BTC`, `USD`), which
    is how the `executions` channel names fee assets."""
    ws_base, _, ws_quote = instrument.wsname.partition("/")
    v2_base, _, v2_quote = instrument.symbol.partition("/")
    base = frozenset({instrument.base, ws_base, v2_base})
    quote = frozenset({instrument.quote, ws_quote, v2_quote})
    return base, quote


def fee_in_quote(
    fee: Decimal, fee_asset: str, price: Decimal, instrument: Instrument
) -> Decimal | None:
    """A fee in quote units: as is in the quote asset, at `price` in the base asset; None when
    it is charged in another asset (no price for it here)."""
    base, quote = _asset_names(instrument)
    if fee_asset in quote:
        return fee
    if fee_asset in base:
        return fee * price
    return None


@dataclass(slots=True)
class _PairBook:
    qty: Decimal = ZERO  # base units, > 0 long
    basis: Decimal = ZERO  # signed cost of the open quantity, quote units (avg x qty)
    realized: Decimal = ZERO
    fees: Decimal = ZERO  # quote units

    def trade(self, signed_qty: Decimal, price: Decimal) -> None:
        """Apply one fill of `signed_qty` (> 0 bought) at `price`."""
        with localcontext(prec=_PRECISION):
            if self.qty == 0 or (self.qty > 0) == (signed_qty > 0):
                self.qty += signed_qty
                self.basis += price * signed_qty
                return
            held = abs(self.qty)
            closed = min(abs(signed_qty), held)
            direction = 1 if self.qty > 0 else -1
            # The closed share of the basis, at the basis's own last digit so that what is
            # left stays exact; all of it when everything closes (a flat book keeps no residue).
            removed = self.basis
            if closed != held:
                removed = (self.basis * closed / held).quantize(self.basis)
            self.realized += price * closed * direction - removed
            self.basis -= removed
            self.qty += signed_qty
            if self.qty != 0 and closed == held:  # crossed through zero: the rest opens here
                self.basis = price * self.qty

    def position(self, pair: str, mark: Decimal | None) -> Position:
        return Position(
            pair=pair,
            qty=self.qty,
            avg_price=self.basis / self.qty if self.qty else None,
            realized_pnl=self.realized,
            unrealized_pnl=self.unrealized(mark),
            fees=self.fees,
        )

    def unrealized(self, mark: Decimal | None) -> Decimal:
        if mark is None or self.qty == 0:
            return ZERO
        with localcontext(prec=_PRECISION):
            return mark * self.qty - self.basis


class PositionBook:
    """One strategy's positions, from its own fills (each fill given once: the order state
    machine deduplicates trades by `exec_id` before they get here)."""

    def __init__(self) -> None:
        self._books: dict[str, _PairBook] = {}
        self._unpriced_fees: dict[str, Decimal] = {}

    def on_fill(self, fill: Fill, instrument: Instrument) -> None:
        """Book one fill of `instrument`; its fee in quote units (a base fee at the fill's
        price)."""
        book = self._books.setdefault(fill.pair, _PairBook())
        book.trade(fill.qty if fill.side == "buy" else -fill.qty, fill.price)
        with localcontext(prec=_PRECISION):
            fee = fee_in_quote(fill.fee, fill.fee_asset, fill.price, instrument)
            if fee is None:
                unpriced = self._unpriced_fees.get(fill.fee_asset, ZERO)
                self._unpriced_fees[fill.fee_asset] = unpriced + fill.fee
            else:
                book.fees += fee

    def position(self, pair: str, mark: Decimal | None) -> Position:
        """The position in `pair`, its unrealized PnL at `mark` (0 when flat or no mark)."""
        return self._books.get(pair, _PairBook()).position(pair, mark)

    def pnl(self, marks: Mapping[str, Decimal]) -> Decimal:
        """Realized + unrealized - fees over every pair, in quote units; a pair without a mark
        counts no unrealized PnL."""
        with localcontext(prec=_PRECISION):
            return sum(
                (
                    b.realized + b.unrealized(marks.get(pair)) - b.fees
                    for pair, b in self._books.items()
                ),
                ZERO,
            )

    def pairs(self) -> list[str]:
        """The pairs this strategy has traded, sorted."""
        return sorted(self._books)

    def unpriced_fees(self) -> dict[str, Decimal]:
        """Fees charged in an asset that is neither a pair's base nor its quote, per asset
        (not in PnL)."""
        return dict(self._unpriced_fees)

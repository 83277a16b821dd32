"""One registry of instruments: every name a pair goes by, and its precisions, from one source.

Kraken names a pair four ways: `XXBTZUSD` (the key of AssetPairs), `XBTUSD` (its altname),
`XBT/USD` (its wsname) and `BTC/USD` (the WebSocket v2 symbol). Callers hold an `Instrument` and
never map names: the REST client sends `altname`, WebSocket v2 frames and books use `symbol`,
and the limiter's counters are named by `wsname`, so REST and WebSocket requests of a pair
charge the same counters.

Prices and quantities leave through `price_text` / `qty_text`, which refuse what Kraken would
refuse (not finite, more decimals than the pair allows, off the tick, below `ordermin`), so a bad
number is an `InvalidRequest` here, before any budget is spent.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation

import msgspec

from orchestrator.errors import InvalidRequest


class Instrument(msgspec.Struct, frozen=True, kw_only=True):
    rest_name: str  # the key of AssetPairs (`XXBTZUSD`)
    altname: str  # what REST requests send (`XBTUSD`)
    wsname: str  # AssetPairs' wsname (`XBT/USD`): the limiter's name of the pair
    symbol: str  # WebSocket v2 symbol (`BTC/USD`): frames and books
    base: str  # asset codes as balances name them (`XXBT`, `ZUSD`)
    quote: str
    price_decimals: int
    qty_decimals: int
    tick_size: Decimal
    ordermin: Decimal  # smallest order volume, in base units
    costmin: Decimal  # smallest order cost, in quote units

    def price_text(self, price: Decimal) -> str:
        """The wire text of a limit price; refuses prices Kraken would refuse."""
        self._check(price, "price", self.price_decimals)
        if price <= 0 or price % self.tick_size != 0:
            raise InvalidRequest(f"{self.wsname}: price {price} is not a positive multiple "
                                 f"of the tick {self.tick_size}")  # fmt: skip
        return format(price, "f")

    def round_price(self, price: Decimal, *, up: bool = False) -> Decimal:
        """`price` on the pair's tick, rounded down (or up): what a quote can be sent at."""
        ticks = (price / self.tick_size).to_integral_value(ROUND_CEILING if up else ROUND_FLOOR)
        return (ticks * self.tick_size).quantize(Decimal(1).scaleb(-self.price_decimals))

    def round_qty(self, qty: Decimal) -> Decimal:
        """`qty` at the pair's volume decimals, rounded down (never more than meant)."""
        return qty.quantize(Decimal(1).scaleb(-self.qty_decimals), rounding=ROUND_FLOOR)

    def qty_text(self, qty: Decimal) -> str:
        """The wire text of an order volume; refuses volumes Kraken would refuse."""
        self._check(qty, "volume", self.qty_decimals)
        if qty < self.ordermin:
            raise InvalidRequest(f"{self.wsname}: volume {qty} is below ordermin {self.ordermin}")
        return format(qty, "f")

    def _check(self, value: Decimal, what: str, decimals: int) -> None:
        if not value.is_finite():
            raise InvalidRequest(f"{self.wsname}: {what} {value} is not a finite number")
        try:
            exact = value == value.quantize(Decimal(1).scaleb(-decimals))
        except InvalidOperation:  # more digits than the context holds: no venue takes that
            raise InvalidRequest(f"{self.wsname}: {what} {value} is out of range") from None
        if not exact:
            raise InvalidRequest(f"{self.wsname}: {what} {value} has more than {decimals} "
                                 "decimals")  # fmt: skip


class Instruments:
    """Every instrument of the venue, found by any of its names."""

    def __init__(self, instruments: Iterable[Instrument]) -> None:
        self._by_name: dict[str, Instrument] = {}
        self._all: list[Instrument] = []
        for instrument in instruments:
            self._all.append(instrument)
            names = (instrument.rest_name, instrument.altname, instrument.wsname, instrument.symbol)
            for name in names:
                self._by_name[name] = instrument

    def get(self, name: str) -> Instrument:
        """The instrument called `name` (any of its four names)."""
        try:
            return self._by_name[name]
        except KeyError:
            raise InvalidRequest(f"unknown pair {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Instrument]:
        return iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

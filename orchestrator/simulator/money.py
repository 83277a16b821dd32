"""The simulated venue's money arithmetic: order values, fees and holds, exact and pure."""

from __future__ import annotations

from decimal import ROUND_UP, Decimal
from typing import Final

from orchestrator.simulator.catalog import Catalog, PairSpec

_HUNDRED: Final = Decimal(100)


def fee_rate(pair: PairSpec, *, maker: bool) -> Decimal:
    return (pair.maker_fee_pct if maker else pair.taker_fee_pct) / _HUNDRED


def order_value(pair: PairSpec, price: int, volume: int) -> Decimal:
    """Quote value of `volume` (lot units) at `price` (price units)."""
    return Decimal(price * volume).scaleb(-(pair.pair_decimals + pair.lot_decimals))


def quote_quantum(catalog: Catalog, pair: PairSpec) -> Decimal:
    return Decimal(1).scaleb(-catalog.assets[pair.quote].decimals)


def fee_on(catalog: Catalog, pair: PairSpec, value: Decimal, *, maker: bool) -> Decimal:
    """The fee on a fill of `value`, rounded up to the quote asset's decimals."""
    return (value * fee_rate(pair, maker=maker)).quantize(
        quote_quantum(catalog, pair), rounding=ROUND_UP
    )


def buy_hold(catalog: Catalog, pair: PairSpec, value: Decimal) -> Decimal:
    """What a buy of `value` holds: the value plus the taker fee, rounded up."""
    return (value * (1 + fee_rate(pair, maker=False))).quantize(
        quote_quantum(catalog, pair), rounding=ROUND_UP
    )

"""The instrument registry: every name finds the same instrument, and numbers Kraken would refuse
are refused here, before any budget is spent."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from orchestrator.errors import InvalidRequest
from orchestrator.exchange.instruments import Instruments
from orchestrator.exchange.kraken.spot.instruments import instrument, v2_symbol
from orchestrator.exchange.kraken.spot.schemas import AssetPair

XBT_USD = instrument("XXBTZUSD", AssetPair(altname="XBTUSD", wsname="XBT/USD", base="XXBT",
                                           quote="ZUSD", pair_decimals=1, lot_decimals=8,
                                           ordermin=Decimal("0.0001"), costmin=Decimal("0.5"),
                                           tick_size=Decimal("0.1")))  # fmt: skip


def test_every_name_finds_the_instrument() -> None:
    registry = Instruments([XBT_USD])
    for name in ("XXBTZUSD", "XBTUSD", "XBT/USD", "BTC/USD"):
        assert registry.get(name) is XBT_USD
    assert "NOPE" not in registry
    with pytest.raises(InvalidRequest, match="unknown pair 'NOPE'"):
        registry.get("NOPE")


def test_v2_symbols_use_common_asset_codes() -> None:
    assert v2_symbol("XBT/USD") == "BTC/USD"
    assert v2_symbol("ETH/XBT") == "ETH/BTC"
    assert v2_symbol("XDG/EUR") == "DOGE/EUR"
    assert v2_symbol("SOL/USD") == "SOL/USD"


def test_tick_defaults_to_one_unit_of_the_last_decimal() -> None:
    pair = AssetPair(altname="SOLUSD", wsname="SOL/USD", base="SOL", quote="ZUSD",
                     pair_decimals=2, lot_decimals=8)  # fmt: skip
    assert instrument("SOLUSD", pair).tick_size == Decimal("0.01")


def test_good_numbers_leave_as_plain_text() -> None:
    assert XBT_USD.price_text(Decimal("50000.1")) == "50000.1"
    assert XBT_USD.price_text(Decimal("5E+4")) == "50000"  # never exponent notation on the wire
    assert XBT_USD.qty_text(Decimal("0.00010000")) == "0.00010000"


@pytest.mark.parametrize(
    ("price", "reason"),
    [
        (Decimal("NaN"), "not a finite number"),
        (Decimal("Infinity"), "not a finite number"),
        (Decimal("-1"), "positive multiple of the tick"),
        (Decimal(0), "positive multiple of the tick"),
        (Decimal("50000.05"), "more than 1 decimals"),
        (Decimal("1E+100"), "out of range"),
    ],
)
def test_hostile_prices_are_refused(price: Decimal, reason: str) -> None:
    with pytest.raises(InvalidRequest, match=reason):
        XBT_USD.price_text(price)


def test_off_tick_price_is_refused() -> None:
    coarse = msgspec.structs.replace(XBT_USD, tick_size=Decimal("0.5"))
    with pytest.raises(InvalidRequest, match=r"multiple of the tick 0\.5"):
        coarse.price_text(Decimal("50000.1"))


@pytest.mark.parametrize(
    ("qty", "reason"),
    [
        (Decimal("sNaN"), "not a finite number"),
        (Decimal("0.00001"), "below ordermin"),
        (Decimal("0.000100001"), "more than 8 decimals"),
    ],
)
def test_hostile_volumes_are_refused(qty: Decimal, reason: str) -> None:
    with pytest.raises(InvalidRequest, match=reason):
        XBT_USD.qty_text(qty)

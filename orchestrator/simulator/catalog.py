"""The simulator's assets and pairs, with Kraken's names, precisions and minimums.

Kraken names one pair four ways: its key (`XXBTZUSD`), altname (`XBTUSD`), REST wsname (`XBT/USD`)
and WS v2 symbol (`BTC/USD`). Requests may use any of them; `Catalog.pair` resolves all four.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

import msgspec

from orchestrator.simulator.errors import UNKNOWN_ASSET, UNKNOWN_ASSET_PAIR, KrakenError


class AssetSpec(msgspec.Struct, frozen=True, kw_only=True):
    id: str  # Kraken's asset id, the key of Balance results: "XXBT", "ZUSD"
    altname: str  # "XBT", "USD"
    ws_name: str  # WS v2 name: "BTC", "USD"
    decimals: int  # precision of balances and ledger amounts
    display_decimals: int
    usd_price: Decimal  # reference price for futures collateral and fee valuation


class PairSpec(msgspec.Struct, frozen=True, kw_only=True):
    key: str  # "XXBTZUSD"
    altname: str  # "XBTUSD"
    wsname: str  # "XBT/USD" (REST AssetPairs)
    symbol: str  # "BTC/USD" (WS v2)
    base: str  # asset id
    quote: str  # asset id
    pair_decimals: int  # price decimals
    lot_decimals: int  # volume decimals
    cost_decimals: int
    ordermin: Decimal
    costmin: Decimal
    tick_size: Decimal
    taker_fee_pct: Decimal = Decimal("0.26")
    maker_fee_pct: Decimal = Decimal("0.16")
    start_price: Decimal
    typical_qty: Decimal

    @property
    def tick_int(self) -> int:
        """The tick size in price units (10**-pair_decimals)."""
        return int(self.tick_size.scaleb(self.pair_decimals))


def _asset(id_: str, altname: str, ws: str, *, decimals: int, display: int, usd: str) -> AssetSpec:
    return AssetSpec(
        id=id_,
        altname=altname,
        ws_name=ws,
        decimals=decimals,
        display_decimals=display,
        usd_price=Decimal(usd),
    )


DEFAULT_ASSETS: tuple[AssetSpec, ...] = (
    _asset("XXBT", "XBT", "BTC", decimals=10, display=5, usd="60000"),
    _asset("XETH", "ETH", "ETH", decimals=10, display=5, usd="3000"),
    _asset("SOL", "SOL", "SOL", decimals=10, display=5, usd="150"),
    _asset("ZUSD", "USD", "USD", decimals=4, display=2, usd="1"),
    _asset("ZEUR", "EUR", "EUR", decimals=4, display=2, usd="1.1"),
)

DEFAULT_PAIRS: tuple[PairSpec, ...] = (
    PairSpec(
        key="XXBTZUSD", altname="XBTUSD", wsname="XBT/USD", symbol="BTC/USD",
        base="XXBT", quote="ZUSD", pair_decimals=1, lot_decimals=8, cost_decimals=5,
        ordermin=Decimal("0.0001"), costmin=Decimal("0.5"), tick_size=Decimal("0.1"),
        start_price=Decimal("60000.0"), typical_qty=Decimal("0.25"),
    ),
    PairSpec(
        key="XETHZUSD", altname="ETHUSD", wsname="ETH/USD", symbol="ETH/USD",
        base="XETH", quote="ZUSD", pair_decimals=2, lot_decimals=8, cost_decimals=5,
        ordermin=Decimal("0.002"), costmin=Decimal("0.5"), tick_size=Decimal("0.01"),
        start_price=Decimal("3000.00"), typical_qty=Decimal("3"),
    ),
    PairSpec(
        key="SOLUSD", altname="SOLUSD", wsname="SOL/USD", symbol="SOL/USD",
        base="SOL", quote="ZUSD", pair_decimals=2, lot_decimals=8, cost_decimals=5,
        ordermin=Decimal("0.02"), costmin=Decimal("0.5"), tick_size=Decimal("0.01"),
        start_price=Decimal("150.00"), typical_qty=Decimal("40"),
    ),
    PairSpec(
        key="XETHXXBT", altname="ETHXBT", wsname="ETH/XBT", symbol="ETH/BTC",
        base="XETH", quote="XXBT", pair_decimals=5, lot_decimals=8, cost_decimals=10,
        ordermin=Decimal("0.01"), costmin=Decimal("0.00002"), tick_size=Decimal("0.00001"),
        start_price=Decimal("0.05000"), typical_qty=Decimal("3"),
    ),
)  # fmt: skip


class Catalog:
    """Assets and pairs by every name Kraken accepts."""

    def __init__(
        self,
        assets: Iterable[AssetSpec] = DEFAULT_ASSETS,
        pairs: Iterable[PairSpec] = DEFAULT_PAIRS,
    ) -> None:
        self.assets: dict[str, AssetSpec] = {a.id: a for a in assets}
        self.pairs: dict[str, PairSpec] = {p.key: p for p in pairs}
        self._asset_names: dict[str, AssetSpec] = {}
        for asset in self.assets.values():
            for name in (asset.id, asset.altname, asset.ws_name):
                self._asset_names[name.upper()] = asset
        self._pair_names: dict[str, PairSpec] = {}
        for pair in self.pairs.values():
            for name in (pair.key, pair.altname, pair.wsname, pair.symbol):
                self._pair_names[name.upper()] = pair

    def pair(self, name: str) -> PairSpec:
        found = self._pair_names.get(name.upper())
        if found is None:
            raise KrakenError(UNKNOWN_ASSET_PAIR, name[:40])
        return found

    def asset(self, name: str) -> AssetSpec:
        found = self._asset_names.get(name.upper())
        if found is None:
            raise KrakenError(UNKNOWN_ASSET, name[:40])
        return found

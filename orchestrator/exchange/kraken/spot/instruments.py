"""The instrument registry built from Kraken's public AssetPairs, once per process.

AssetPairs gives every name but the WebSocket v2 symbol. v2 names assets by their common codes
where Kraken's own differ (`XBT` is `BTC`, `XDG` is `DOGE`: docs/kraken/websocket.md), so the
symbol is the wsname with those codes replaced (Decision: Kraken publishes no other mapping; the
v2 `instrument` channel lists the symbols if a desk wants them checked).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from orchestrator.exchange.instruments import Instrument, Instruments
from orchestrator.exchange.kraken.spot.rest import KrakenPublic
from orchestrator.exchange.kraken.spot.schemas import AssetPair

V2_ASSET_CODES: Final = {"XBT": "BTC", "XDG": "DOGE"}


def v2_symbol(wsname: str) -> str:
    """`XBT/USD` -> `BTC/USD`."""
    return "/".join(V2_ASSET_CODES.get(code, code) for code in wsname.split("/"))


def instrument(rest_name: str, pair: AssetPair) -> Instrument:
    tick = pair.tick_size if pair.tick_size else Decimal(1).scaleb(-pair.pair_decimals)
    return Instrument(rest_name=rest_name, altname=pair.altname, wsname=pair.wsname,
                      symbol=v2_symbol(pair.wsname),
                      base=pair.base, quote=pair.quote, price_decimals=pair.pair_decimals,
                      qty_decimals=pair.lot_decimals, tick_size=tick, ordermin=pair.ordermin,
                      costmin=pair.costmin)  # fmt: skip


async def load_instruments(public: KrakenPublic) -> Instruments:
    pairs = await public.call_as(dict[str, AssetPair], "AssetPairs")
    return Instruments(instrument(name, pair) for name, pair in pairs.items())

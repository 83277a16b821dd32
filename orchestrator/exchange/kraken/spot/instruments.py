"""The instrument registry built from Kraken's public AssetPairs, once per process."""

from __future__ import annotations

from decimal import Decimal

from orchestrator.exchange.instruments import Instrument, Instruments
from orchestrator.exchange.kraken.spot.rest import KrakenPublic
from orchestrator.exchange.kraken.spot.schemas import AssetPair


def instrument(rest_name: str, pair: AssetPair) -> Instrument:
    tick = pair.tick_size if pair.tick_size else Decimal(1).scaleb(-pair.pair_decimals)
    return Instrument(rest_name=rest_name, altname=pair.altname, ws_name=pair.wsname,
                      base=pair.base, quote=pair.quote, price_decimals=pair.pair_decimals,
                      qty_decimals=pair.lot_decimals, tick_size=tick, ordermin=pair.ordermin,
                      costmin=pair.costmin)  # fmt: skip


async def load_instruments(public: KrakenPublic) -> Instruments:
    pairs = await public.call_as(dict[str, AssetPair], "AssetPairs")
    return Instruments(instrument(name, pair) for name, pair in pairs.items())

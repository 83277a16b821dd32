"""Spot public REST methods (`/0/public/<Method>`): market data and reference data."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import format_datetime
from typing import Any, Final

from orchestrator.simulator.catalog import PairSpec
from orchestrator.simulator.orders import fmt, invalid
from orchestrator.simulator.params import Params
from orchestrator.simulator.venue import Venue

PublicHandler = Callable[[Venue, Params], Any]
_MAX_DEPTH: Final = 500


def time_(venue: Venue, params: Params) -> dict[str, Any]:
    now = datetime.fromtimestamp(venue.clock.time(), UTC)
    return {"unixtime": int(now.timestamp()), "rfc1123": format_datetime(now, usegmt=True)}


def system_status(venue: Venue, params: Params) -> dict[str, Any]:
    now = datetime.fromtimestamp(venue.clock.time(), UTC)
    return {"status": venue.settings.status, "timestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ")}


def assets(venue: Venue, params: Params) -> dict[str, Any]:
    wanted = {venue.catalog.asset(a).id for a in params.csv("asset")} or set(venue.catalog.assets)
    return {
        asset.id: {
            "aclass": "currency",
            "altname": asset.altname,
            "decimals": asset.decimals,
            "display_decimals": asset.display_decimals,
            "collateral_value": 1.0 if asset.altname in ("USD", "EUR") else 0.9,
            "status": "enabled",
        }
        for asset in venue.catalog.assets.values()
        if asset.id in wanted
    }


def _pairs(venue: Venue, params: Params) -> list[PairSpec]:
    names = params.csv("pair")
    if not names:
        return list(venue.catalog.pairs.values())
    return [venue.catalog.pair(name) for name in names]


def asset_pairs(venue: Venue, params: Params) -> dict[str, Any]:
    info = params.text("info") or "info"
    if info not in ("info", "leverage", "fees", "margin"):
        raise invalid("info")
    return {
        pair.key: {
            "altname": pair.altname,
            "wsname": pair.wsname,
            "aclass_base": "currency",
            "base": pair.base,
            "aclass_quote": "currency",
            "quote": pair.quote,
            "lot": "unit",
            "cost_decimals": pair.cost_decimals,
            "pair_decimals": pair.pair_decimals,
            "lot_decimals": pair.lot_decimals,
            "lot_multiplier": 1,
            "leverage_buy": [],
            "leverage_sell": [],
            "fees": [[0, float(pair.taker_fee_pct)]],
            "fees_maker": [[0, float(pair.maker_fee_pct)]],
            "fee_volume_currency": "ZUSD",
            "margin_call": 80,
            "margin_stop": 40,
            "ordermin": str(pair.ordermin),
            "costmin": str(pair.costmin),
            "tick_size": str(pair.tick_size),
            "status": "online",
        }
        for pair in _pairs(venue, params)
    }


def _price(pair: PairSpec, price: int) -> str:
    return fmt(Decimal(price).scaleb(-pair.pair_decimals), pair.pair_decimals)


def _qty(pair: PairSpec, qty: int) -> str:
    return fmt(Decimal(qty).scaleb(-pair.lot_decimals), pair.lot_decimals)


def ticker(venue: Venue, params: Params) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in _pairs(venue, params):
        book = venue.engine.books[pair.key]
        stats = venue.engine.stats(pair.key)
        bids, asks = book.levels("bid", 1), book.levels("ask", 1)
        bid = bids[0] if bids else (0, 0)
        ask = asks[0] if asks else (0, 0)
        last = stats.last_price or book.mid() or 0
        volume = _qty(pair, stats.volume)
        vwap = _price(pair, stats.vwap_int) if stats.volume else _price(pair, last)
        out[pair.key] = {
            "a": [_price(pair, ask[0]), str(ask[1] // 10**pair.lot_decimals), _qty(pair, ask[1])],
            "b": [_price(pair, bid[0]), str(bid[1] // 10**pair.lot_decimals), _qty(pair, bid[1])],
            "c": [_price(pair, last), _qty(pair, stats.last_qty)],
            "v": [volume, volume],
            "p": [vwap, vwap],
            "t": [stats.trades, stats.trades],
            "l": [_price(pair, stats.low or last)] * 2,
            "h": [_price(pair, stats.high or last)] * 2,
            "o": _price(pair, stats.open_price or last),
        }
    return out


def depth(venue: Venue, params: Params) -> dict[str, Any]:
    pair = venue.catalog.pair(params.need("pair"))
    count = params.integer("count")
    count = 100 if count is None else count
    if not 1 <= count <= _MAX_DEPTH:
        raise invalid("count")
    book = venue.engine.books[pair.key]
    now = int(venue.clock.time())
    return {
        pair.key: {
            "asks": [[_price(pair, p), _qty(pair, q), now] for p, q in book.levels("ask", count)],
            "bids": [[_price(pair, p), _qty(pair, q), now] for p, q in book.levels("bid", count)],
        }
    }


PUBLIC: Final[dict[str, PublicHandler]] = {
    "Time": time_,
    "SystemStatus": system_status,
    "Assets": assets,
    "AssetPairs": asset_pairs,
    "Ticker": ticker,
    "Depth": depth,
}

"""Public channels of the WS v2 server: `book`, `ticker` and `trade`
(`docs/kraken/websocket.md` sections 2-4).

Subscriptions live on the connection; `publish` brings one connection up to date with the venue
(book diffs through each subscription's `DepthView`, the trades since the last publish, tickers
whose trigger fired). The hub calls it after every market step and soon after any book change.

Where Kraken leaves a choice open: one `book` depth per symbol and connection (a second depth is
`Already subscribed`: the messages carry no depth, so a client could not tell them apart); the
`trade` snapshot (the last 50 trades) is off unless asked for; symbols may be given by any of
Kraken's names, replies use the v2 symbol (`BTC/USD`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final

import msgspec

from orchestrator.simulator.book_feed import BOOK_DEPTHS, DepthView
from orchestrator.simulator.catalog import PairSpec
from orchestrator.simulator.checksum import render_scaled
from orchestrator.simulator.errors import KrakenError
from orchestrator.simulator.events import rfc3339
from orchestrator.simulator.orders import invalid
from orchestrator.simulator.venue import Venue
from orchestrator.simulator.ws_session import (
    ALREADY_SUBSCRIBED,
    PAIR_NOT_SUPPORTED,
    SUBSCRIPTION_NOT_FOUND,
    Connection,
    Recent,
    Request,
    TickerSub,
    encode,
)

CHANNELS: Final = frozenset({"book", "ticker", "trade"})
RECENT_TRADES: Final = 50
_DEFAULT_DEPTH: Final = 10
_EVENT_TRIGGERS: Final = frozenset({"trades", "bbo"})
_CENT: Final = Decimal("0.01")


def _number(value: int, decimals: int) -> msgspec.Raw:
    return msgspec.Raw(render_scaled(value, decimals).encode())


def _symbols(req: Request) -> list[str]:
    symbols = req.params.raw("symbol")
    if not isinstance(symbols, list) or not symbols:
        raise invalid("symbol")
    if not all(isinstance(s, str) and len(s) <= 40 for s in symbols):
        raise invalid("symbol")
    return symbols


def _pair(venue: Venue, name: str) -> PairSpec | None:
    try:
        return venue.catalog.pair(name)
    except KrakenError:
        return None


# --- subscribe / unsubscribe -------------------------------------------------------------------
def subscribe(conn: Connection, req: Request, channel: str, trades: Recent) -> None:
    """One ack (or error) per symbol, each followed by its snapshot when one is asked for."""
    params = req.params
    symbols = _symbols(req)
    snapshot = params.flag("snapshot", default=channel != "trade")
    depth = params.integer("depth")
    depth = _DEFAULT_DEPTH if depth is None else depth
    trigger = params.text("event_trigger") or "trades"
    if channel == "book" and depth not in BOOK_DEPTHS:
        raise invalid("depth")
    if channel == "ticker" and trigger not in _EVENT_TRIGGERS:
        raise invalid("event_trigger")
    venue = conn.venue
    for name in symbols:
        pair = _pair(venue, name)
        if pair is None:
            conn.fail(req, PAIR_NOT_SUPPORTED, symbol=name)
            continue
        if _is_subscribed(conn, channel, pair.key):
            conn.fail(req, ALREADY_SUBSCRIBED, symbol=pair.symbol)
            continue
        result: dict[str, Any] = {"channel": channel}
        if channel == "book":
            result["depth"] = depth
        if channel == "ticker":
            result["event_trigger"] = trigger
        result |= {"snapshot": snapshot, "symbol": pair.symbol}
        conn.ok(req, result)
        first = _start(conn, channel, pair, depth=depth, trigger=trigger, trades=trades)
        if snapshot:
            conn.send_now(encode({"channel": channel, "type": "snapshot", "data": first}))


def _is_subscribed(conn: Connection, channel: str, pair_key: str) -> bool:
    if channel == "book":
        return pair_key in conn.books
    if channel == "ticker":
        return pair_key in conn.tickers
    return pair_key in conn.trades


def _start(
    conn: Connection, channel: str, pair: PairSpec, *, depth: int, trigger: str, trades: Recent
) -> list[Any]:
    """Record the subscription; return what its snapshot would carry."""
    venue = conn.venue
    if channel == "book":
        view = DepthView(venue.public_books[pair.key], depth)
        conn.books[pair.key] = view
        return [view.snapshot()]
    if channel == "ticker":
        conn.tickers[pair.key] = TickerSub(trigger, _ticker_state(venue, pair.key, trigger))
        return [ticker(venue, pair, rfc3339(venue.clock.time()))]
    conn.trades.add(pair.key)
    return trades.get(pair.key)


def unsubscribe(conn: Connection, req: Request, channel: str) -> None:
    for name in _symbols(req):
        pair = _pair(conn.venue, name)
        key = pair.key if pair is not None else ""
        symbol = pair.symbol if pair is not None else name
        result: dict[str, Any] = {"channel": channel}
        if channel == "book" and key in conn.books:
            result["depth"] = conn.books.pop(key).depth
        elif channel == "ticker" and key in conn.tickers:
            result["event_trigger"] = conn.tickers.pop(key).event_trigger
        elif channel == "trade" and key in conn.trades:
            conn.trades.discard(key)
        else:
            conn.fail(req, SUBSCRIPTION_NOT_FOUND, symbol=symbol)
            continue
        result["symbol"] = symbol
        conn.ok(req, result)


# --- publishing --------------------------------------------------------------------------------
def publish(conn: Connection, timestamp: str, trade_messages: dict[str, bytes]) -> None:
    """Send `conn` what changed since its last publish: book diffs, trades, fired tickers."""
    venue = conn.venue
    faults = venue.settings.faults
    for view in conn.books.values():
        payload = view.update(timestamp)
        if payload is None:
            continue
        rate = faults.corrupt_checksum_rate
        if rate > 0 and venue.rng.random() < rate:
            payload = msgspec.structs.replace(payload, checksum=payload.checksum ^ 0x5A5A)
            venue.count("fault:corrupt_checksum")
        conn.send(encode({"channel": "book", "type": "update", "data": [payload]}))
    for key in conn.trades:
        message = trade_messages.get(key)
        if message is not None:
            conn.send(message)
    for key, sub in conn.tickers.items():
        state = _ticker_state(venue, key, sub.event_trigger)
        if state != sub.last_seen:
            sub.last_seen = state
            data = [ticker(venue, venue.catalog.pairs[key], timestamp)]
            conn.send(encode({"channel": "ticker", "type": "update", "data": data}))


def trade_message(trades: list[Any]) -> bytes:
    return encode({"channel": "trade", "type": "update", "data": trades})


def _ticker_state(venue: Venue, pair_key: str, trigger: str) -> object:
    """What decides whether a ticker subscription is due: trades so far, or the best levels."""
    if trigger == "trades":
        return venue.engine.stats(pair_key).trades
    book = venue.public_books[pair_key]
    return (book.top("bid", 1), book.top("ask", 1))


def ticker(venue: Venue, pair: PairSpec, timestamp: str) -> dict[str, Any]:
    """The `ticker` element (docs/kraken/websocket.md 4): best levels, and the trades since the
    venue started."""
    book = venue.public_books[pair.key]
    stats = venue.engine.stats(pair.key)
    price_dp, qty_dp = pair.pair_decimals, pair.lot_decimals
    [(bid, bid_qty)] = book.top("bid", 1) or [(0, 0)]
    [(ask, ask_qty)] = book.top("ask", 1) or [(0, 0)]
    change = stats.last_price - stats.open_price
    change_pct = (
        (Decimal(change) * 100 / stats.open_price).quantize(_CENT)
        if stats.open_price
        else Decimal("0.00")
    )
    return {
        "symbol": pair.symbol,
        "bid": _number(bid, price_dp),
        "bid_qty": _number(bid_qty, qty_dp),
        "ask": _number(ask, price_dp),
        "ask_qty": _number(ask_qty, qty_dp),
        "last": _number(stats.last_price, price_dp),
        "volume": _number(stats.volume, qty_dp),
        "vwap": _number(stats.vwap_int, price_dp),
        "low": _number(stats.low, price_dp),
        "high": _number(stats.high, price_dp),
        "change": _number(change, price_dp),
        "change_pct": msgspec.Raw(format(change_pct, "f").encode()),
        "timestamp": timestamp,
    }

"""The market hub without a socket: frames are fed to its KrakenWs as the reader would.

With no link, `subscribe` only records what the connection wants (sent once it is up), so the
ref-counted union is read from `hub.ws.wanted` and the hub's `BookStore`. Fan-out, staleness and
recovery are driven by snapshot and update frames with Kraken's checksums.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import msgspec
import pytest

from orchestrator.clock import ManualClock
from orchestrator.errors import VenueUnavailable
from orchestrator.exchange.instruments import Instrument, Instruments
from orchestrator.exchange.kraken.ws.book import L2Book, PairPrecision, wire_level
from orchestrator.feeds.conflation import LatestByPair
from orchestrator.feeds.hub import MarketHub
from orchestrator.metrics import Registry
from orchestrator.strategy import Ticker, Trade
from tests.ws_frames import book_snapshot

_encode = msgspec.json.Encoder().encode
Levels = list[tuple[str, str]]


def _instrument(wsname: str, symbol: str, price_decimals: int) -> Instrument:
    return Instrument(rest_name=wsname.replace("/", ""), altname=wsname.replace("/", ""),
                      wsname=wsname, symbol=symbol, base="B", quote="Q",
                      price_decimals=price_decimals, qty_decimals=8,
                      tick_size=Decimal(1).scaleb(-price_decimals), ordermin=Decimal("0.0001"),
                      costmin=Decimal("0.5"))  # fmt: skip


XBT = _instrument("XBT/USD", "BTC/USD", 1)
ETH = _instrument("ETH/USD", "ETH/USD", 2)
SOL = _instrument("SOL/USD", "SOL/USD", 2)
REGISTRY = Instruments([XBT, ETH, SOL])
SNAPSHOTS: dict[str, tuple[Levels, Levels]] = {
    "BTC/USD": ([("50000.0", "1.5"), ("49999.0", "2")], [("50001.0", "0.25")]),
    "ETH/USD": ([("3000.00", "3")], [("3000.50", "4"), ("3001.00", "1")]),
    "SOL/USD": ([("150.00", "40")], [("150.05", "35")]),
}


class Recorder:
    """A listener that keeps what it heard, in order (and marks an inbox, as a worker does)."""

    def __init__(self) -> None:
        self.heard: list[tuple[str, str]] = []
        self.trades: list[Trade] = []
        self.tickers: list[Ticker] = []
        self.inbox = LatestByPair()

    def on_book_changed(self, pair: str) -> None:
        self.heard.append(("changed", pair))
        self.inbox.mark(pair)

    def on_book_stale(self, pair: str, reason: str) -> None:
        self.heard.append((f"stale:{reason}", pair))
        self.inbox.discard(pair)

    def on_trade(self, trade: Trade) -> None:
        self.trades.append(trade)

    def on_ticker(self, ticker: Ticker) -> None:
        self.tickers.append(ticker)

    def take(self) -> list[tuple[str, str]]:
        heard, self.heard = self.heard, []
        return heard


class Venue:
    """Frames as the venue sends them, a scratch book per symbol giving updates' checksums."""

    def __init__(self) -> None:
        self.scratch: dict[str, L2Book] = {}

    def precision(self, symbol: str) -> PairPrecision:
        instrument = REGISTRY.get(symbol)
        return PairPrecision(price_decimals=instrument.price_decimals, qty_decimals=8)

    def snapshot(self, symbol: str) -> bytes:
        bids, asks = SNAPSHOTS[symbol]
        scratch = self.scratch[symbol] = L2Book(symbol, 10, self.precision(symbol))
        scratch.apply_snapshot(
            [wire_level(*lv) for lv in bids], [wire_level(*lv) for lv in asks], 0
        )
        return book_snapshot(symbol, bids, asks, self.precision(symbol))

    def update(self, symbol: str, bids: Levels, asks: Levels, *, corrupt: bool = False) -> bytes:
        scratch = self.scratch[symbol]
        scratch.apply_update([wire_level(*lv) for lv in bids], [wire_level(*lv) for lv in asks], 0)
        checksum = scratch.checksum() ^ (0x5A5A if corrupt else 0)
        entry = {"symbol": symbol, "bids": [_level(*lv) for lv in bids],
                 "asks": [_level(*lv) for lv in asks], "checksum": checksum}  # fmt: skip
        return _encode({"channel": "book", "type": "update", "data": [entry]})


def _level(price: str, qty: str) -> dict[str, msgspec.Raw]:
    return {"price": msgspec.Raw(price.encode()), "qty": msgspec.Raw(qty.encode())}


def trade_frame(symbol: str, price: str, qty: str) -> bytes:
    entry = {"symbol": symbol, "side": "sell", "price": msgspec.Raw(price.encode()),
             "qty": msgspec.Raw(qty.encode()), "ord_type": "limit", "trade_id": 1,
             "timestamp": "2026-01-01T00:00:00.5Z"}  # fmt: skip
    return _encode({"channel": "trade", "type": "update", "data": [entry]})


def ticker_frame(symbol: str, bid: str, ask: str) -> bytes:
    entry = {"symbol": symbol, "bid": msgspec.Raw(bid.encode()), "bid_qty": 1,
             "ask": msgspec.Raw(ask.encode()), "ask_qty": 1, "last": msgspec.Raw(bid.encode()),
             "volume": msgspec.Raw(b"12.5"), "vwap": 1, "low": 1, "high": 1, "change": 0,
             "change_pct": 0}  # fmt: skip
    return _encode({"channel": "ticker", "type": "snapshot", "data": [entry]})


@pytest.fixture
def registry() -> Registry:
    return Registry()


@pytest.fixture
def hub(registry: Registry) -> MarketHub:
    return MarketHub("ws://unused.invalid/v2", clock=ManualClock(), instruments=REGISTRY,
                     depth=10, registry=registry)  # fmt: skip


def wanted(hub: MarketHub) -> set[tuple[str, str | None]]:
    return set(hub.ws.wanted)


def every_channel(*symbols: str) -> set[tuple[str, str | None]]:
    return {(channel, s) for s in symbols for channel in ("book", "trade", "ticker")}


async def test_subscriptions_are_the_union_of_the_listeners_pairs(hub: MarketHub) -> None:
    a, b = Recorder(), Recorder()
    await hub.subscribe([XBT, ETH], a)
    await hub.subscribe([ETH, SOL], b)
    assert wanted(hub) == every_channel("BTC/USD", "ETH/USD", "SOL/USD")
    assert sorted(hub.books.symbols) == ["BTC/USD", "ETH/USD", "SOL/USD"]
    assert [hub.listener_count(p) for p in ("XBT/USD", "ETH/USD", "SOL/USD")] == [1, 2, 1]
    book = hub.ws.wanted[("book", "ETH/USD")]
    assert (book.depth, hub.ws.wanted[("trade", "ETH/USD")].snapshot) == (10, False)


async def test_a_pair_is_unsubscribed_with_its_last_listener_only(hub: MarketHub) -> None:
    a, b = Recorder(), Recorder()
    await hub.subscribe([XBT, ETH], a)
    await hub.subscribe([ETH, SOL], b)
    await hub.unsubscribe([ETH], a)  # b still listens to ETH
    assert wanted(hub) == every_channel("BTC/USD", "ETH/USD", "SOL/USD")
    assert hub.listener_count("ETH/USD") == 1
    await hub.unsubscribe([ETH, SOL], b)
    assert wanted(hub) == every_channel("BTC/USD")
    assert hub.books.symbols == ["BTC/USD"]
    assert hub.pairs == ["XBT/USD"]
    await hub.unsubscribe([ETH, XBT], b)  # not b's: nothing changes
    assert hub.pairs == ["XBT/USD"]
    await hub.unsubscribe([XBT], a)
    assert (wanted(hub), hub.books.symbols, hub.pairs) == (set(), [], [])


async def test_subscribing_twice_is_one_listener(hub: MarketHub) -> None:
    a = Recorder()
    await hub.subscribe([XBT, XBT], a)
    await hub.subscribe([XBT], a)
    assert hub.listener_count("XBT/USD") == 1
    hub.ws.handle_frame(Venue().snapshot("BTC/USD"))
    assert a.take() == [("changed", "XBT/USD")]
    await hub.unsubscribe([XBT], a)
    assert wanted(hub) == set()


async def test_book_changes_reach_the_pairs_listeners_only(hub: MarketHub) -> None:
    a, b, venue = Recorder(), Recorder(), Venue()
    await hub.subscribe([XBT, ETH], a)
    await hub.subscribe([ETH, SOL], b)
    assert hub.book("XBT/USD") is None  # no snapshot yet: not whole
    hub.ws.handle_frame(venue.snapshot("BTC/USD"))
    hub.ws.handle_frame(venue.snapshot("ETH/USD"))
    assert a.take() == [("changed", "XBT/USD"), ("changed", "ETH/USD")]
    assert b.take() == [("changed", "ETH/USD")]
    hub.ws.handle_frame(venue.update("ETH/USD", [("3000.10", "1")], []))
    assert (a.take(), b.take()) == ([("changed", "ETH/USD")], [("changed", "ETH/USD")])
    view = hub.book("ETH/USD")
    assert view is not None
    assert view is hub.book("ETHUSD")  # any of the pair's names; one view, never a copy
    assert (view.pair, view.best_bid) == ("ETH/USD", (Decimal("3000.10"), Decimal(1)))
    assert (hub.is_whole("XBT/USD"), hub.is_whole("SOL/USD")) == (True, False)


async def test_unsubscribing_stops_only_that_listeners_notifications(hub: MarketHub) -> None:
    a, b, venue = Recorder(), Recorder(), Venue()
    await hub.subscribe([ETH], a)
    await hub.subscribe([ETH], b)
    hub.ws.handle_frame(venue.snapshot("ETH/USD"))
    await hub.unsubscribe([ETH], a)
    hub.ws.handle_frame(venue.update("ETH/USD", [], [("3000.50", "0")]))
    assert a.take() == [("changed", "ETH/USD")]  # the snapshot only
    assert b.take() == [("changed", "ETH/USD"), ("changed", "ETH/USD")]
    await hub.unsubscribe([ETH], b)
    hub.ws.handle_frame(venue.update("ETH/USD", [], [("3001.00", "0")]))  # late: ignored
    assert (b.take(), hub.book("ETH/USD")) == ([], None)


async def test_a_listener_joining_a_whole_book_hears_of_it_at_once(hub: MarketHub) -> None:
    a, b = Recorder(), Recorder()
    await hub.subscribe([XBT], a)
    hub.ws.handle_frame(Venue().snapshot("BTC/USD"))
    await hub.subscribe([XBT, SOL], b)  # SOL is not whole: nothing said of it
    assert b.take() == [("changed", "XBT/USD")]


async def test_a_stale_book_is_told_once_sends_no_change_then_recovers(
    hub: MarketHub, registry: Registry
) -> None:
    a, venue = Recorder(), Venue()
    await hub.subscribe([XBT, ETH], a)
    hub.ws.handle_frame(venue.snapshot("BTC/USD"))
    hub.ws.handle_frame(venue.snapshot("ETH/USD"))
    a.take()
    a.inbox.mark("XBT/USD")
    hub.ws.handle_frame(venue.update("BTC/USD", [("50000.5", "1")], [], corrupt=True))
    assert a.take() == [("stale:checksum", "XBT/USD")]
    assert "XBT/USD" not in a.inbox  # the worker drops the mark of a book it cannot read
    assert (hub.book("XBT/USD"), hub.is_whole("XBT/USD"), hub.is_whole("ETH/USD")) == (
        None, False, True)  # fmt: skip
    # Updates of a stale book are dropped; a second refusal of it says nothing new.
    hub.ws.handle_frame(venue.update("BTC/USD", [("49000.0", "1")], []))
    hub.ws.handle_frame(b'{"channel": "book", "type": "snapshot", "data": [{"symbol": "BTC/USD"}]}')
    hub.ws.handle_frame(venue.update("ETH/USD", [("2999.00", "1")], []))  # the other book lives
    assert a.take() == [("changed", "ETH/USD")]
    hub.ws.handle_frame(venue.snapshot("BTC/USD"))  # the resync's snapshot
    assert a.take() == [("changed", "XBT/USD")]
    assert hub.is_whole("XBT/USD")
    text = registry.render()
    assert 'orch_feed_book_stale_total{pair="XBT/USD",reason="checksum"} 1.0' in text
    assert 'orch_feed_book_stale_total{pair="XBT/USD",reason="malformed"} 1.0' in text


async def test_a_dropped_link_tells_every_whole_book_stale(hub: MarketHub) -> None:
    a, b, venue = Recorder(), Recorder(), Venue()
    await hub.subscribe([XBT, ETH], a)
    await hub.subscribe([SOL], b)
    hub.ws.handle_frame(venue.snapshot("BTC/USD"))
    hub.ws.handle_frame(venue.snapshot("SOL/USD"))
    a.take(), b.take()
    for event in hub.books.mark_all_stale("closed"):  # what the client does as its link drops
        hub._on_book(event)  # the client's handler
    assert a.take() == [("stale:closed", "XBT/USD")]  # ETH was never whole: no news of it
    assert b.take() == [("stale:closed", "SOL/USD")]
    assert [hub.is_whole(p) for p in ("XBT/USD", "ETH/USD", "SOL/USD")] == [False] * 3


async def test_trades_and_tickers_fan_out_by_pair_and_are_counted(
    hub: MarketHub, registry: Registry
) -> None:
    a, b = Recorder(), Recorder()
    await hub.subscribe([XBT, ETH], a)
    await hub.subscribe([ETH], b)
    hub.ws.handle_frame(trade_frame("ETH/USD", "3000.25", "123456789.12345678"))
    hub.ws.handle_frame(trade_frame("BTC/USD", "50000.1", "0.5"))
    hub.ws.handle_frame(trade_frame("SOL/USD", "150.00", "1"))  # nobody's: dropped
    hub.ws.handle_frame(ticker_frame("ETH/USD", "3000.00", "3000.50"))
    eth = Trade(pair="ETH/USD", side="sell", price=Decimal("3000.25"),
                qty=Decimal("123456789.12345678"), time_s=1_767_225_600.5)  # fmt: skip
    assert a.trades == [eth, Trade(pair="XBT/USD", side="sell", price=Decimal("50000.1"),
                                   qty=Decimal("0.5"), time_s=1_767_225_600.5)]  # fmt: skip
    assert b.trades == [eth]
    ticker = Ticker(pair="ETH/USD", bid=Decimal("3000.00"), ask=Decimal("3000.50"),
                    last=Decimal("3000.00"), volume_24h=Decimal("12.5"))  # fmt: skip
    assert a.tickers == b.tickers == [ticker]
    text = registry.render()
    assert 'orch_feed_trades_total{pair="ETH/USD"} 1.0' in text
    assert 'orch_feed_trades_total{pair="SOL/USD"}' not in text
    assert 'orch_feed_tickers_total{pair="ETH/USD"} 1.0' in text


async def test_malformed_trades_and_tickers_are_counted_never_raised(
    hub: MarketHub, registry: Registry
) -> None:
    a = Recorder()
    await hub.subscribe([XBT], a)
    hub.ws.handle_frame(b'{"channel": "trade", "type": "update", "data": [{"symbol": 1}]}')
    hub.ws.handle_frame(b'{"channel": "ticker", "type": "update", "data": 5}')
    hub.ws.handle_frame(b'{"channel": "status", "type": "update", "data": [{}]}')  # not ours
    assert (a.trades, a.tickers) == ([], [])
    text = registry.render()
    assert 'orch_feed_malformed_total{channel="trade"} 1.0' in text
    assert 'orch_feed_malformed_total{channel="ticker"} 1.0' in text


async def test_book_updates_are_counted_per_pair(hub: MarketHub, registry: Registry) -> None:
    a, venue = Recorder(), Venue()
    await hub.subscribe([SOL], a)
    hub.ws.handle_frame(venue.snapshot("SOL/USD"))
    for qty in ("41", "42", "43"):
        hub.ws.handle_frame(venue.update("SOL/USD", [("150.00", qty)], []))
    assert 'orch_feed_book_updates_total{pair="SOL/USD"} 4.0' in registry.render()
    assert "orch_feed_pairs 1.0" in registry.render()


async def test_wait_whole_returns_once_every_book_is_whole(hub: MarketHub) -> None:
    venue = Venue()
    await hub.subscribe([XBT, ETH], Recorder())
    waiter = asyncio.create_task(hub.wait_whole([XBT, ETH], timeout_s=5.0))
    hub.ws.handle_frame(venue.snapshot("BTC/USD"))
    await asyncio.sleep(0)
    assert not waiter.done()
    hub.ws.handle_frame(venue.snapshot("ETH/USD"))
    await asyncio.wait_for(waiter, 1.0)


async def test_wait_whole_names_the_books_still_not_whole() -> None:
    clock = ManualClock()
    hub = MarketHub("ws://unused.invalid/v2", clock=clock, instruments=REGISTRY, depth=10,
                    registry=Registry())  # fmt: skip
    await hub.subscribe([XBT, ETH], Recorder())
    hub.ws.handle_frame(Venue().snapshot("BTC/USD"))
    waiter = asyncio.create_task(hub.wait_whole([XBT, ETH], timeout_s=5.0))
    await asyncio.sleep(0)
    await clock.advance(5.0)
    with pytest.raises(VenueUnavailable, match=r"\['ETH/USD'\]"):
        await asyncio.wait_for(waiter, 1.0)


class Boom(Exception):
    """A listener's bug."""


async def test_a_listeners_error_is_its_owners_bug_and_propagates(hub: MarketHub) -> None:
    class Broken(Recorder):
        def on_book_changed(self, pair: str) -> None:
            raise Boom(pair)

    await hub.subscribe([XBT], Broken())
    with pytest.raises(Boom):
        hub.ws.handle_frame(Venue().snapshot("BTC/USD"))  # ends `run()` (the client's rule)
    assert hub.ws.counters["errors"] == 1


def test_a_depth_kraken_does_not_offer_is_refused() -> None:
    with pytest.raises(ValueError, match="depth"):
        MarketHub("ws://unused.invalid/v2", clock=ManualClock(), instruments=REGISTRY, depth=20,
                  registry=Registry())  # fmt: skip

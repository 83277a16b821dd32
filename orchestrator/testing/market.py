"""The replay harness's market data: the live hub's interface over an in-process simulator.

Books are the simulator's own WS v2 `book` frames (`DepthView` snapshots and diffs, encoded as
its server encodes them) fed to a `BookStore`, the live client's books, and read through the
live hub's `LiveBook`: what a strategy reads is checksummed exactly as live, and a mismatch goes
stale and re-syncs as live. Public trades are the engine's, framed by the simulator's `trade`
message; a ticker (the simulator's `ticker` payload) follows each publish that saw trades on its
pair (Kraken's default `event_trigger: trades`), and a pair's first subscription brings one, as
the live ticker subscription's snapshot does. Both are decoded by the live hub's `MarketDecoder`.

When listeners hear: `step` (move the markets, run the venue's timers) publishes at once; any
other change of a book (an order placed, amended, filled) publishes on the next turn of the
loop, as the simulator's WS hub does. Order per publish as on one connection: book updates,
then trades, then tickers. A listener's exception is its owner's bug: it propagates out of
`step`; out of a deferred publish it is kept and raised by the next `step`, `subscribe` or
`close()`.

A listener subscribes to a pair once (again is a no-op); a pair's book is kept while any
listener wants it. `mark_stale` simulates a feed gap (the book stays stale, updates ignored,
until `resync`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Final

from orchestrator.clock import ManualClock
from orchestrator.errors import InvalidRequest
from orchestrator.exchange.instruments import Instrument, Instruments
from orchestrator.exchange.kraken.ws.book import BookEvent, L2Book
from orchestrator.exchange.kraken.ws.book_store import BookStore
from orchestrator.feeds.channels import MarketDecoder
from orchestrator.feeds.hub import MarketListener
from orchestrator.feeds.views import LiveBook
from orchestrator.logs import get_logger
from orchestrator.simulator import ws_public
from orchestrator.simulator.book_feed import DepthView
from orchestrator.simulator.catalog import PairSpec
from orchestrator.simulator.events import rfc3339
from orchestrator.simulator.venue import Venue
from orchestrator.simulator.ws_session import encode, plain

log = get_logger(__name__)

GAP: Final = "gap"


class _Feed:
    """One subscribed pair: its venue-side window, its client-side book, who listens."""

    __slots__ = ("book", "instrument", "l2", "listeners", "view", "whole")

    def __init__(self, instrument: Instrument, view: DepthView, l2: L2Book) -> None:
        self.instrument = instrument
        self.view = view
        self.l2 = l2
        self.book = LiveBook(instrument, l2)
        self.listeners: list[MarketListener] = []
        self.whole = False  # what the listeners were last told


class InProcessMarket:
    """The market-data hub of a replay: books, trades and tickers of an in-process simulator."""

    def __init__(self, venue: Venue, instruments: Instruments, *, depth: int = 10) -> None:
        self.venue = venue
        self.instruments = instruments
        self.depth = depth
        self.books = BookStore()
        self.decoder = MarketDecoder(instruments)  # the live hub's trade and ticker decoding
        self.failure: BaseException | None = None  # a listener's error in a deferred publish
        self._feeds: dict[str, _Feed] = {}  # by wsname, in subscription order
        self._by_symbol: dict[str, _Feed] = {}  # by v2 symbol (the frames' name)
        self._by_key: dict[str, _Feed] = {}  # by the simulator's pair key
        self._trades: dict[str, list[Any]] = {}  # by wsname: trades not yet published
        self._resyncs: list[_Feed] = []
        self._soon: asyncio.Handle | None = None
        venue.engine.level_listeners.append(self._on_level)
        venue.engine.trade_listeners.append(self._on_trade)

    # --- the hub's interface -------------------------------------------------------------------
    async def subscribe(self, pairs: Sequence[Instrument], listener: MarketListener) -> None:
        """`listener` hears these pairs from now on; joining a whole book, it hears
        `on_book_changed` at once. A pair's first listener also hears the `ticker` snapshot,
        as the live hub's ticker subscription brings one."""
        self._raise_failure()
        for pair in pairs:
            feed = self._feeds.get(pair.wsname)
            opened = feed is None
            if feed is None:
                feed = self._open(pair)
            if any(known is listener for known in feed.listeners):
                continue
            feed.listeners.append(listener)
            if feed.whole:
                listener.on_book_changed(pair.wsname)
            if opened:
                self._publish_ticker(feed, rfc3339(self.venue.clock.time()))

    async def unsubscribe(self, pairs: Sequence[Instrument], listener: MarketListener) -> None:
        for pair in pairs:
            feed = self._feeds.get(pair.wsname)
            if feed is None:
                continue
            feed.listeners = [known for known in feed.listeners if known is not listener]
            if not feed.listeners:
                self._close_feed(feed)

    def book(self, pair: str) -> LiveBook | None:
        """The live view of a subscribed pair's book (any of its names), None unless whole."""
        feed = self._feed(pair)
        return None if feed is None or feed.l2.stale else feed.book

    def is_whole(self, pair: str) -> bool:
        return self.book(pair) is not None

    @property
    def pairs(self) -> list[str]:
        """The subscribed pairs (wsnames), in the order they were first asked for."""
        return list(self._feeds)

    def _feed(self, pair: str) -> _Feed | None:
        feed = self._feeds.get(pair)
        if feed is None and pair in self.instruments:
            feed = self._feeds.get(self.instruments.get(pair).wsname)
        return feed

    def _subscribed(self, pair: str) -> _Feed:
        feed = self._feed(pair)
        if feed is None:
            raise ValueError(f"{pair} is not subscribed")
        return feed

    # --- driving the replay --------------------------------------------------------------------
    def step(self, dt_s: float) -> None:
        """Move the simulator's markets and timers by `dt_s`, then publish what changed."""
        self._raise_failure()
        self.venue.step_markets(dt_s)
        self.publish()

    async def advance(self, dt_s: float) -> None:
        """Manual clock only: move time by `dt_s` (sleepers wake), then `step`."""
        clock = self.venue.clock
        if not isinstance(clock, ManualClock):
            raise TypeError("advance() needs a venue built with a ManualClock")
        await clock.advance(dt_s)
        self.step(dt_s)

    def mark_stale(self, pair: str, reason: str = GAP) -> None:
        """A feed gap on `pair`: its book is stale, and updates are ignored, until `resync`."""
        feed = self._subscribed(pair)
        feed.l2.mark_stale()
        self._tell(BookEvent(feed.instrument.symbol, "stale", False, reason=reason))

    def resync(self, pair: str) -> None:
        """A fresh snapshot of `pair`, as a resubscription brings."""
        self._snapshot(self._subscribed(pair))

    def publish(self) -> None:
        """Send every listener what changed since the last publish."""
        if self._soon is not None:
            self._soon.cancel()
            self._soon = None
        timestamp = rfc3339(self.venue.clock.time())
        for feed in list(self._feeds.values()):
            payload = feed.view.update(timestamp)
            if payload is not None:
                self._apply(encode({"channel": "book", "type": "update", "data": [payload]}))
        while self._resyncs:
            self._snapshot(self._resyncs.pop(0))
        trades, self._trades = self._trades, {}
        traded = [(self._feeds[wsname], items) for wsname, items in trades.items()]
        for feed, items in traded:
            self._publish_trades(feed, items)
        for feed, _ in traded:
            self._publish_ticker(feed, timestamp)

    def close(self) -> None:
        """Stop hearing the engine; raises a listener's error kept from a deferred publish."""
        engine = self.venue.engine
        if self._on_level in engine.level_listeners:
            engine.level_listeners.remove(self._on_level)
        if self._on_trade in engine.trade_listeners:
            engine.trade_listeners.remove(self._on_trade)
        if self._soon is not None:
            self._soon.cancel()
            self._soon = None
        self._raise_failure()

    # --- inside --------------------------------------------------------------------------------
    def _open(self, pair: Instrument) -> _Feed:
        spec = self.venue.catalog.pairs.get(pair.rest_name)
        if spec is None:
            raise InvalidRequest(f"the simulator does not list {pair.wsname}")
        book = self.books.add_instrument(pair, self.depth)
        feed = _Feed(pair, DepthView(self.venue.public_books[spec.key], self.depth), book)
        self._feeds[pair.wsname] = self._by_symbol[pair.symbol] = self._by_key[spec.key] = feed
        self._snapshot(feed)
        return feed

    def _close_feed(self, feed: _Feed) -> None:
        pair = feed.instrument
        del self._feeds[pair.wsname], self._by_symbol[pair.symbol]
        self._by_key = {key: f for key, f in self._by_key.items() if f is not feed}
        self._trades.pop(pair.wsname, None)
        self.books.remove_book(pair.symbol)

    def _snapshot(self, feed: _Feed) -> None:
        self._apply(encode({"channel": "book", "type": "snapshot", "data": [feed.view.snapshot()]}))

    def _apply(self, frame: bytes) -> None:
        for event in self.books.on_message(frame):
            self._tell(event)

    def _tell(self, event: BookEvent) -> None:
        feed = self._by_symbol.get(event.symbol)
        if feed is None:
            return
        pair = feed.instrument.wsname
        if event.kind in ("snapshot", "update"):
            if not event.ok:
                return  # a mismatch: its `resync_needed` follows
            feed.whole = True
            for listener in list(feed.listeners):
                listener.on_book_changed(pair)
            return
        if event.kind == "resync_needed":
            log.warning("inprocess.book_resync", pair=pair, reason=event.reason)
            self._resyncs.append(feed)
        if feed.whole:
            feed.whole = False
            for listener in list(feed.listeners):
                listener.on_book_stale(pair, event.reason)

    def _publish_trades(self, feed: _Feed, items: list[Any]) -> None:
        for trade in self.decoder.trades(ws_public.trade_message(items)):
            for listener in list(feed.listeners):
                listener.on_trade(trade)

    def _publish_ticker(self, feed: _Feed, timestamp: str) -> None:
        spec = self.venue.catalog.pairs[feed.instrument.rest_name]
        message = {"channel": "ticker", "type": "update",
                   "data": [ws_public.ticker(self.venue, spec, timestamp)]}  # fmt: skip
        for ticker in self.decoder.tickers(encode(message)):
            for listener in list(feed.listeners):
                listener.on_ticker(ticker)

    def _raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure

    # --- engine listeners: never raise into the engine -----------------------------------------
    def _on_level(self, pair_key: str, side: str, price: int, qty: int) -> None:
        if pair_key in self._by_key:
            self._publish_soon()

    def _on_trade(self, pair: PairSpec, trade: dict[str, Any]) -> None:
        feed = self._by_key.get(pair.key)
        if feed is not None:
            self._trades.setdefault(feed.instrument.wsname, []).append(plain(trade))
            self._publish_soon()

    def _publish_soon(self) -> None:
        """On the next turn of the loop; with none running, the next `step` publishes."""
        if self._soon is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._soon = loop.call_soon(self._publish_due)

    def _publish_due(self) -> None:
        self._soon = None
        if self.failure is not None:
            return
        try:
            self.publish()
        except Exception as exc:
            log.exception("inprocess.listener_failed")
            self.failure = exc

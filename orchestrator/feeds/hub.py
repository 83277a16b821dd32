"""The market-data hub: one public WebSocket per process, shared by every worker.

Subscriptions are the ref-counted union of the listeners' pairs: a pair's `book` (at the hub's
depth), `trade` and `ticker` subscriptions go out with its first listener and are withdrawn
with its last. Books are fanned out without copies: a listener hears only "this pair's book
changed" (`on_book_changed`), synchronously on the socket's reader, and must return at once (a
worker marks its inbox, `conflation.py`); it reads the live book through `book(pair)` when its
loop gets to it, so a slow strategy reads the latest book, never a backlog.

Staleness. `book(pair)` is None unless the book is whole: its snapshot verified and nothing since
made it stale. A stale book sends no change. Going stale (the link dropped, a checksum mismatch,
malformed data) tells the pair's listeners `on_book_stale` once; the next verified snapshot (the
client re-subscribes that book alone, or every book after a reconnect) tells them
`on_book_changed` again.

Errors. Venue input that does not decode is counted, never raised. A listener's exception is its
owner's bug: it ends `run()` (the client's rule), so the owner's TaskGroup sees it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Final, Protocol

from orchestrator.clock import Clock
from orchestrator.errors import VenueUnavailable
from orchestrator.exchange.instruments import Instrument, Instruments
from orchestrator.exchange.kraken.ws.book import BookEvent, L2Book
from orchestrator.exchange.kraken.ws.book_store import BookStore
from orchestrator.exchange.kraken.ws.client import KrakenWs
from orchestrator.exchange.kraken.ws.subscription import Subscription
from orchestrator.feeds.channels import MarketDecoder
from orchestrator.feeds.views import LiveBook
from orchestrator.logs import get_logger
from orchestrator.metrics import Counter, Registry
from orchestrator.strategy import Ticker, Trade

log = get_logger(__name__)

BOOK_DEPTHS: Final = frozenset({10, 25, 100, 500, 1000})  # what Kraken's `book` channel offers
_CHANGED: Final = frozenset({"snapshot", "update"})


class MarketListener(Protocol):
    """Who hears a pair's market: told synchronously on the socket's reader, so each method
    must be cheap and must not raise (an error ends the hub's `run()`)."""

    def on_book_changed(self, pair: str) -> None:
        """The book of `pair` (its wsname) changed and is whole: read it with `hub.book`."""
        ...

    def on_book_stale(self, pair: str, reason: str) -> None:
        """The book of `pair` went stale (`closed`, `silent`, `checksum`, `malformed`...)."""
        ...

    def on_trade(self, trade: Trade) -> None: ...

    def on_ticker(self, ticker: Ticker) -> None: ...


class _Feed:
    """One subscribed pair: its instrument, its book and view, who listens, what they heard."""

    __slots__ = ("book", "instrument", "listeners", "told_whole", "view")

    def __init__(self, instrument: Instrument, book: L2Book) -> None:
        self.instrument = instrument
        self.book = book
        self.view = LiveBook(instrument, book)
        self.listeners: tuple[MarketListener, ...] = ()  # replaced, never mutated: safe to loop
        self.told_whole = False  # the listeners' last news: changed (True) or stale (False)

    @property
    def pair(self) -> str:
        return self.instrument.wsname

    def has(self, listener: MarketListener) -> bool:
        return any(known is listener for known in self.listeners)


class MarketHub:
    """One public `KrakenWs` per process; its books, trades and tickers fanned out by pair."""

    def __init__(
        self, url: str, *, clock: Clock, instruments: Instruments, depth: int, registry: Registry
    ) -> None:
        if depth not in BOOK_DEPTHS:
            raise ValueError(f"book depth must be one of {sorted(BOOK_DEPTHS)}, got {depth}")
        self.clock = clock
        self.instruments = instruments
        self.depth = depth
        self.books = BookStore()
        self.ws = KrakenWs(url, clock=clock, books=self.books, on_book=self._on_book,
                           on_raw=self._on_raw)  # fmt: skip
        self._decoder = MarketDecoder(instruments)
        self._feeds: dict[str, _Feed] = {}  # by v2 symbol, as frames name them
        self._by_pair: dict[str, _Feed] = {}  # by wsname, as strategies name them
        self._lock = asyncio.Lock()  # subscription changes go out in the order they were asked
        self._whole_changed = asyncio.Event()
        self._book_updates = registry.counter(
            "orch_feed_book_updates", "Verified book snapshots and updates", ["pair"]
        )
        self._stale_events = registry.counter(
            "orch_feed_book_stale", "Book stale or resync events", ["pair", "reason"]
        )
        self._trades = registry.counter("orch_feed_trades", "Public trades received", ["pair"])
        self._tickers = registry.counter("orch_feed_tickers", "Tickers received", ["pair"])
        self._malformed = registry.counter(
            "orch_feed_malformed", "Trade or ticker input refused as malformed", ["channel"]
        )
        self._subscribed = registry.gauge("orch_feed_pairs", "Pairs subscribed on the public feed")

    # --- lifecycle ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve the socket until `close()` (reconnecting as needed)."""
        await self.ws.run()

    async def close(self) -> None:
        await self.ws.close()

    async def wait_whole(self, pairs: Sequence[Instrument], timeout_s: float) -> None:
        """Until every pair's book is whole; `VenueUnavailable` naming the others after
        `timeout_s` of the clock (start-up, tests)."""
        try:
            async with self.clock.timeout(timeout_s):
                while not all(self.is_whole(p.wsname) for p in pairs):
                    self._whole_changed.clear()
                    await self._whole_changed.wait()
        except TimeoutError:
            missing = [p.wsname for p in pairs if not self.is_whole(p.wsname)]
            raise VenueUnavailable(f"books not whole after {timeout_s} s: {missing}") from None

    # --- subscriptions -----------------------------------------------------------------------
    async def subscribe(self, pairs: Sequence[Instrument], listener: MarketListener) -> None:
        """`listener` hears these pairs from now on. A pair's first listener subscribes it; a
        listener joining a pair whose book is already whole is told `on_book_changed` at once
        (a quiet book might not change for a while)."""
        async with self._lock:
            first: list[Instrument] = []
            for instrument in pairs:
                feed = self._feeds.get(instrument.symbol)
                if feed is None:
                    feed = _Feed(instrument, self.books.add_instrument(instrument, self.depth))
                    self._feeds[instrument.symbol] = self._by_pair[instrument.wsname] = feed
                    first.append(instrument)
                if feed.has(listener):
                    continue
                feed.listeners = (*feed.listeners, listener)
                log.info("feeds.listening", pair=feed.pair, listeners=len(feed.listeners))
                if not feed.book.stale:
                    listener.on_book_changed(feed.pair)
            self._subscribed.set(len(self._feeds))
            for instrument in first:
                await self._want(instrument)

    async def unsubscribe(self, pairs: Sequence[Instrument], listener: MarketListener) -> None:
        """`listener` hears these pairs no more; a pair's last listener unsubscribes it."""
        async with self._lock:
            last: list[Instrument] = []
            for instrument in pairs:
                feed = self._feeds.get(instrument.symbol)
                if feed is None or not feed.has(listener):
                    continue
                feed.listeners = tuple(known for known in feed.listeners if known is not listener)
                log.info("feeds.left", pair=feed.pair, listeners=len(feed.listeners))
                if not feed.listeners:
                    del self._feeds[instrument.symbol], self._by_pair[instrument.wsname]
                    self.books.remove_book(instrument.symbol)
                    last.append(instrument)
            self._subscribed.set(len(self._feeds))
            for instrument in last:
                await self._unwant(instrument)

    def _subscriptions(self, instrument: Instrument) -> tuple[Subscription, ...]:
        symbol = instrument.symbol
        return (
            Subscription(channel="book", symbol=symbol, depth=self.depth),
            Subscription(channel="trade", symbol=symbol, snapshot=False),  # no old trades
            Subscription(channel="ticker", symbol=symbol),
        )

    async def _want(self, instrument: Instrument) -> None:
        for subscription in self._subscriptions(instrument):
            try:
                await self.ws.subscribe(subscription)
            except VenueUnavailable as exc:  # still wanted: sent again once the link is back
                log.info("feeds.subscribe_deferred", channel=subscription.channel,
                         pair=instrument.wsname, error=str(exc))  # fmt: skip

    async def _unwant(self, instrument: Instrument) -> None:
        for subscription in self._subscriptions(instrument):
            try:
                await self.ws.unsubscribe(subscription.channel, subscription.symbol)
            except VenueUnavailable as exc:  # no longer wanted: a new link will not ask for it
                log.info("feeds.unsubscribe_dropped", channel=subscription.channel,
                         pair=instrument.wsname, error=str(exc))  # fmt: skip

    # --- reads -------------------------------------------------------------------------------
    def book(self, pair: str) -> LiveBook | None:
        """The live view of a subscribed pair's book (any of its names), None unless whole."""
        feed = self._feed(pair)
        if feed is None or feed.book.stale:
            return None
        return feed.view

    def is_whole(self, pair: str) -> bool:
        return self.book(pair) is not None

    @property
    def pairs(self) -> list[str]:
        """The subscribed pairs (wsnames), in the order they were first asked for."""
        return list(self._by_pair)

    def listener_count(self, pair: str) -> int:
        feed = self._feed(pair)
        return 0 if feed is None else len(feed.listeners)

    def _feed(self, pair: str) -> _Feed | None:
        feed = self._by_pair.get(pair)
        if feed is None and pair in self.instruments:
            feed = self._feeds.get(self.instruments.get(pair).symbol)
        return feed

    # --- the socket's handlers ---------------------------------------------------------------
    def _on_book(self, event: BookEvent) -> None:
        feed = self._feeds.get(event.symbol)
        if feed is None:  # a book just unsubscribed
            return
        if event.ok and event.kind in _CHANGED:
            if feed.book.stale:  # never: a verified book is whole; kept as the rule's guard
                return
            self._book_updates.inc(feed.pair)
            if not feed.told_whole:
                feed.told_whole = True
                self._whole_changed.set()
            pair = feed.pair
            for listener in feed.listeners:
                listener.on_book_changed(pair)
            return
        if event.kind in _CHANGED:  # a mismatch: its `resync_needed` follows and tells
            return
        self._stale_events.inc(feed.pair, event.reason)
        if feed.told_whole:
            feed.told_whole = False
            log.info("feeds.book_stale", pair=feed.pair, reason=event.reason)
            for listener in feed.listeners:
                listener.on_book_stale(feed.pair, event.reason)

    def _listeners_of(self, pair: str, counter: Counter) -> tuple[MarketListener, ...]:
        """Who hears this pair's trades or tickers (counted once per event); none if unknown."""
        feed = self._by_pair.get(pair)
        if feed is None:
            return ()
        counter.inc(pair)
        return feed.listeners

    def _on_raw(self, channel: str, frame: bytes) -> None:
        decoder = self._decoder
        malformed = decoder.malformed
        if channel == "trade":
            for trade in decoder.trades(frame):
                for listener in self._listeners_of(trade.pair, self._trades):
                    listener.on_trade(trade)
        elif channel == "ticker":
            for ticker in decoder.tickers(frame):
                for listener in self._listeners_of(ticker.pair, self._tickers):
                    listener.on_ticker(ticker)
        if decoder.malformed > malformed:
            self._malformed.inc(channel, amount=decoder.malformed - malformed)

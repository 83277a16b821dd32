"""The market hub against the simulator, over a real socket, on the test's manual clock.

Two listeners on overlapping pairs share one connection and one subscription per pair and
channel (read from the simulator's own connection table); both hear the books they follow, and
the books match the venue's; one listener leaving a pair silences only it, and the pair's last
listener leaving withdraws it at the venue; a dropped connection tells `stale` to every listener
of a whole book, then the books come back whole and changes flow again.

Waiting is on frames, never on time (as in test_ws_client.py): `barrier` pings and the venue
answers in order; `until` lets loopback I/O run. Both are bounded by a real-time guard.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import TypeVar

import aiohttp
import pytest

from orchestrator.clock import ManualClock
from orchestrator.exchange.instruments import Instruments
from orchestrator.exchange.kraken.common.transport import AiohttpTransport
from orchestrator.exchange.kraken.spot.instruments import load_instruments
from orchestrator.exchange.kraken.spot.rest import KrakenPublic
from orchestrator.feeds.hub import MarketHub
from orchestrator.metrics import Registry
from orchestrator.simulator.app import RunningSimulator, open_simulator
from orchestrator.simulator.orders import OrderRequest
from orchestrator.simulator.ws import WS_HUB_KEY
from orchestrator.simulator.ws_session import Connection
from orchestrator.strategy import Ticker, Trade

IO_GUARD_S = 10.0  # real time: only a hang ever gets near it
KEYS = {"XBT/USD": "XXBTZUSD", "ETH/USD": "XETHZUSD", "SOL/USD": "SOLUSD"}
T = TypeVar("T")


class Recorder:
    """A listener keeping what it heard, in order."""

    def __init__(self) -> None:
        self.heard: list[tuple[str, str]] = []
        self.trades: list[Trade] = []
        self.tickers: list[Ticker] = []

    def on_book_changed(self, pair: str) -> None:
        self.heard.append(("changed", pair))

    def on_book_stale(self, pair: str, reason: str) -> None:
        self.heard.append((f"stale:{reason}", pair))

    def on_trade(self, trade: Trade) -> None:
        self.trades.append(trade)

    def on_ticker(self, ticker: Ticker) -> None:
        self.tickers.append(ticker)

    def take(self) -> list[tuple[str, str]]:
        heard, self.heard = self.heard, []
        return heard

    def changed(self) -> set[str]:
        """The pairs heard changed since the last `take`, which this is."""
        return {pair for what, pair in self.take() if what == "changed"}


async def io(awaitable: Awaitable[T]) -> T:
    async with asyncio.timeout(IO_GUARD_S):
        return await awaitable


async def until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(IO_GUARD_S):
        while not check():  # noqa: ASYNC110 - a condition on socket I/O, not a wait on time
            await asyncio.sleep(0)


async def barrier(hub: MarketHub) -> None:
    """Once the pong is back, every frame the venue queued before the ping has been handled."""
    reply = await io(hub.ws.request("ping", {}))
    assert reply["method"] == "pong"


@pytest.fixture
async def sim(clock: ManualClock) -> AsyncIterator[RunningSimulator]:
    async with open_simulator(clock=clock) as running:
        yield running


@pytest.fixture
async def instruments(sim: RunningSimulator) -> Instruments:
    async with aiohttp.ClientSession() as session:
        public = KrakenPublic(AiohttpTransport(session, timeout_s=IO_GUARD_S), sim.rest_url)
        return await load_instruments(public)


@contextlib.asynccontextmanager
async def running(hub: MarketHub) -> AsyncIterator[None]:
    task = asyncio.create_task(hub.run())
    try:
        await io(hub.ws.wait_connected())
        yield
    finally:
        await hub.close()
        await io(task)


def venue_connection(sim: RunningSimulator) -> Connection:
    [conn] = sim.app[WS_HUB_KEY].connections.values()  # one connection for every listener
    return conn


def venue_subscriptions(conn: Connection) -> dict[str, set[str]]:
    return {"book": set(conn.books), "trade": set(conn.trades), "ticker": set(conn.tickers)}


def books_match_venue(sim: RunningSimulator, hub: MarketHub, pairs: list[str]) -> bool:
    for pair in pairs:
        view = hub.book(pair)
        book = hub.books.book(view.symbol) if view is not None else None
        if book is None:
            return False
        venue = sim.venue.engine.books[KEYS[pair]]
        if (book.scaled_bids(10), book.scaled_asks(10)) != (venue.levels("bid", 10),
                                                            venue.levels("ask", 10)):  # fmt: skip
            return False
    return True


async def market_moves(sim: RunningSimulator, hub: MarketHub, steps: int = 10) -> None:
    for _ in range(steps):
        await sim.advance(0.1)
        await barrier(hub)


async def test_two_listeners_share_one_connection_and_both_hear_their_books(
    sim: RunningSimulator, clock: ManualClock, instruments: Instruments
) -> None:
    xbt, eth, sol = (instruments.get(p) for p in KEYS)
    hub = MarketHub(sim.ws_public_url, clock=clock, instruments=instruments, depth=10,
                    registry=Registry())  # fmt: skip
    a, b = Recorder(), Recorder()
    await hub.subscribe([xbt, eth], a)
    async with running(hub):
        await hub.subscribe([eth, sol], b)  # joins while connected: ETH is not asked for again
        await io(hub.wait_whole([xbt, eth, sol], timeout_s=5.0))
        await barrier(hub)
        keys = set(KEYS.values())
        assert venue_subscriptions(venue_connection(sim)) == {
            "book": keys, "trade": keys, "ticker": keys}  # fmt: skip
        assert venue_connection(sim).books["XETHZUSD"].depth == 10
        counts = sim.venue.request_counts
        # One connection; each pair asked for once per channel, ETH too (two listeners).
        assert (counts["ws:connect"], counts["ws:subscribe"]) == (1, 3 * len(KEYS))
        assert books_match_venue(sim, hub, list(KEYS))
        # Each hears the tickers of its own pairs (their snapshots at subscription).
        assert {t.pair for t in a.tickers} == {"XBT/USD", "ETH/USD"}
        assert {t.pair for t in b.tickers} == {"ETH/USD", "SOL/USD"}
        a.take(), b.take()
        await market_moves(sim, hub)
        assert a.changed() == {"XBT/USD", "ETH/USD"}
        assert b.changed() == {"ETH/USD", "SOL/USD"}
        assert books_match_venue(sim, hub, list(KEYS))
        # A trade on ETH reaches both of its listeners, exactly as the venue made it.
        sim.venue.engine.add_order("mm-xbt", OrderRequest(pair="ETHUSD", side="buy",
                                                          ordertype="market", volume="0.01"))  # fmt: skip
        await until(lambda: bool(a.trades) and bool(b.trades))
        assert a.trades == b.trades
        [trade] = a.trades
        assert (trade.pair, trade.side, trade.qty) == ("ETH/USD", "buy", Decimal("0.01"))
        assert trade.price == Decimal(sim.venue.engine.stats("XETHZUSD").last_price).scaleb(-2)
        assert trade.time_s == pytest.approx(clock.time(), abs=1e-6)  # RFC 3339, to the microsecond
    assert hub.ws.counters["connects"] == 1
    assert hub.ws.counters["malformed"] == 0
    assert hub.books.mismatches == 0


async def test_leaving_a_pair_silences_only_that_listener_and_the_last_withdraws_it(
    sim: RunningSimulator, clock: ManualClock, instruments: Instruments
) -> None:
    xbt, eth, sol = (instruments.get(p) for p in KEYS)
    hub = MarketHub(sim.ws_public_url, clock=clock, instruments=instruments, depth=10,
                    registry=Registry())  # fmt: skip
    a, b = Recorder(), Recorder()
    await hub.subscribe([xbt, eth], a)
    await hub.subscribe([eth, sol], b)
    async with running(hub):
        await io(hub.wait_whole([xbt, eth, sol], timeout_s=5.0))
        await hub.unsubscribe([eth], b)  # a still follows ETH
        await barrier(hub)
        a.take(), b.take()
        await market_moves(sim, hub)
        assert a.changed() == {"XBT/USD", "ETH/USD"}
        assert b.changed() == {"SOL/USD"}
        assert "XETHZUSD" in venue_connection(sim).books
        assert sim.venue.request_counts.get("ws:unsubscribe", 0) == 0
        await hub.unsubscribe([sol], b)  # its last listener: withdrawn at the venue
        await barrier(hub)
        assert sim.venue.request_counts["ws:unsubscribe"] == 3  # book, trade, ticker
        keys = {"XXBTZUSD", "XETHZUSD"}
        assert venue_subscriptions(venue_connection(sim)) == {
            "book": keys, "trade": keys, "ticker": keys}  # fmt: skip
        assert (hub.book("SOL/USD"), hub.books.book("SOL/USD")) == (None, None)
        await market_moves(sim, hub)
        assert b.take() == []
        assert a.changed() == {"XBT/USD", "ETH/USD"}
        await hub.subscribe([sol], b)  # back again: a fresh snapshot, heard as a change
        await io(hub.wait_whole([sol], timeout_s=5.0))
        assert b.changed() == {"SOL/USD"}
        assert books_match_venue(sim, hub, list(KEYS))
    assert hub.ws.counters["malformed"] == 0


async def test_a_dropped_connection_tells_stale_then_the_books_recover(
    sim: RunningSimulator, clock: ManualClock, instruments: Instruments
) -> None:
    xbt, eth, sol = (instruments.get(p) for p in KEYS)
    registry = Registry()
    hub = MarketHub(sim.ws_public_url, clock=clock, instruments=instruments, depth=10,
                    registry=registry)  # fmt: skip
    a, b = Recorder(), Recorder()
    await hub.subscribe([xbt, eth], a)
    await hub.subscribe([eth, sol], b)
    async with running(hub):
        await io(hub.wait_whole([xbt, eth, sol], timeout_s=5.0))
        a.take(), b.take()
        sim.venue.settings.faults.ws_disconnect_after_s = 0.25
        await sim.advance(0.25)  # the venue closes the link at this step
        await until(lambda: ("stale:closed", "SOL/USD") in b.heard)
        # Every listener of a whole book hears it, once; no book reads as whole meanwhile.
        # (the step's own book changes may come before the close: only the stale news counted)
        assert [h for h in a.take() if h[0] != "changed"] == [
            ("stale:closed", "XBT/USD"), ("stale:closed", "ETH/USD")]  # fmt: skip
        assert [h for h in b.take() if h[0] != "changed"] == [
            ("stale:closed", "ETH/USD"), ("stale:closed", "SOL/USD")]  # fmt: skip
        assert not any(hub.is_whole(p) for p in KEYS)
        assert 'orch_feed_book_stale_total{pair="ETH/USD",reason="closed"} 1.0' in registry.render()
        sim.venue.settings.faults.ws_disconnect_after_s = None
        await until(lambda: hub.ws.counters["reconnects"] == 1)
        assert (a.take(), b.take()) == ([], [])  # nothing heard while the link is down
        await sim.advance(hub.ws.backoff_initial_s * 1.25)  # past the backoff and its jitter
        await io(hub.wait_whole([xbt, eth, sol], timeout_s=5.0))
        await barrier(hub)
        assert a.changed() == {"XBT/USD", "ETH/USD"}
        assert b.changed() == {"ETH/USD", "SOL/USD"}
        assert books_match_venue(sim, hub, list(KEYS))
        await market_moves(sim, hub)
        assert a.changed() == {"XBT/USD", "ETH/USD"}
        venue_connection(sim)  # still one connection, the new one
    assert hub.ws.counters["connects"] == 2
    assert ("stale:closed", "ETH/USD") in a.take()  # closing the hub is news to its listeners too

"""The WS client over real sockets, on a manual clock: no test sleeps or waits on time.

Against the simulator (sharing the test's clock: markets move only on `sim.advance`): books stay
whole through checksum faults (only the bad book re-syncs) and through dropped connections
(every book stale at once, then resubscribed); private channels and trading over WS through the
limiter. Against a scripted stand-in venue, for what the simulator cannot do (go silent, never
answer): a silent link is dropped after three heartbeat intervals, and a handler's error ends
`run()` after the socket is closed and pending requests failed.

Waiting is on frames, never on time: `barrier` sends a ping and the venue answers in order, so
everything it queued before has been handled once the pong is back; `until` lets loopback I/O
run until a condition holds. Both are bounded by a real-time guard against a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any, TypeVar

import fakeredis
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from orchestrator.clock import ManualClock
from orchestrator.errors import AmbiguousOutcome, InvalidRequest
from orchestrator.exchange.kraken.common.methods import ADD_ORDER, CANCEL_ORDER
from orchestrator.exchange.kraken.ws.book import BookEvent, PairPrecision
from orchestrator.exchange.kraken.ws.book_store import BookStore
from orchestrator.exchange.kraken.ws.client import KrakenWs
from orchestrator.exchange.kraken.ws.schemas import BalanceSnapshot, Execution, LedgerUpdate
from orchestrator.exchange.kraken.ws.subscription import Subscription
from orchestrator.exchange.kraken.ws.trading import KrakenWsTrading
from orchestrator.ratelimit.policy import VenueRequest
from orchestrator.simulator.app import RunningSimulator, open_simulator
from orchestrator.store.embedded import free_port
from tests.sim_domains import open_sim_domain
from tests.ws_frames import book_snapshot

BTC = PairPrecision(price_decimals=1, qty_decimals=8)
ETH = PairPrecision(price_decimals=2, qty_decimals=8)
SYMBOLS = {"BTC/USD": ("XXBTZUSD", BTC), "ETH/USD": ("XETHZUSD", ETH)}
IO_GUARD_S = 10.0  # real time: only a hang ever gets near it
T = TypeVar("T")


@pytest.fixture
async def sim(clock: ManualClock) -> AsyncIterator[RunningSimulator]:
    async with open_simulator(clock=clock) as running:
        yield running


async def io(awaitable: Awaitable[T]) -> T:
    """Await what socket I/O will complete (not the clock), guarded against a hang."""
    async with asyncio.timeout(IO_GUARD_S):
        return await awaitable


async def until(check: Callable[[], bool]) -> None:
    """Let loopback I/O run until `check()` holds; the manual clock does not move meanwhile.

    Each turn yields to the event loop once (a zero sleep is no wait on time): what makes
    `check()` true is a frame crossing the loopback, which no event of the client announces.
    """
    async with asyncio.timeout(IO_GUARD_S):
        while not check():  # noqa: ASYNC110 - a condition on socket I/O, not a wait on time
            await asyncio.sleep(0)


async def barrier(client: KrakenWs) -> None:
    """Once the pong is back, every frame the venue queued before the ping has been handled."""
    reply = await io(client.request("ping", {}))
    assert reply["method"] == "pong"


@contextlib.asynccontextmanager
async def running(client: KrakenWs) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(client.run())
    try:
        await io(client.wait_connected())
        yield task
    finally:
        await client.close()
        await io(task)


def books_match_venue(sim: RunningSimulator, books: BookStore, depth: int = 10) -> bool:
    for symbol, (key, _) in SYMBOLS.items():
        book = books.book(symbol)
        if book is None or book.stale:
            return False
        venue = sim.venue.engine.books[key]
        if book.scaled_bids(depth) != venue.levels("bid", depth) or book.scaled_asks(
            depth
        ) != venue.levels("ask", depth):
            return False
    return True


async def subscribed_books(
    url: str, clock: ManualClock, **kwargs: Any
) -> tuple[KrakenWs, BookStore]:
    books = BookStore()
    client = KrakenWs(url, clock=clock, books=books, **kwargs)
    for symbol, (_, precision) in SYMBOLS.items():
        books.add_book(symbol, 10, precision)
        await client.subscribe(Subscription(channel="book", symbol=symbol, depth=10))
    return client, books


def stale_events(events: list[BookEvent]) -> list[tuple[str, bool, str]]:
    return [(e.symbol, e.ok, e.reason) for e in events if e.kind == "stale"]


# --- against the simulator -----------------------------------------------------------------------


async def test_books_follow_the_venue(sim: RunningSimulator, clock: ManualClock) -> None:
    client, books = await subscribed_books(sim.ws_public_url, clock)
    async with running(client):
        await barrier(client)
        assert books_match_venue(sim, books)
        for _ in range(20):  # a second of markets, many updates later still exact
            await sim.advance(0.05)
            await barrier(client)
            assert books_match_venue(sim, books)
    assert books.mismatches == 0
    assert client.counters["malformed"] == 0


async def test_corrupted_checksums_resync_only_the_bad_book(
    sim: RunningSimulator, clock: ManualClock
) -> None:
    client, books = await subscribed_books(sim.ws_public_url, clock)
    async with running(client):
        await barrier(client)
        sim.venue.settings.faults.corrupt_checksum_rate = 0.2
        for _ in range(200):
            if client.counters["resyncs"] >= 2:
                break
            await sim.advance(0.05)
            await barrier(client)
        assert client.counters["resyncs"] >= 2
        sim.venue.settings.faults.corrupt_checksum_rate = 0.0
        await barrier(client)  # the re-subscriptions went out before this ping: their
        await barrier(client)  # snapshots come back before the next pong
        assert books_match_venue(sim, books)
    assert books.mismatches >= 2
    assert client.counters["connects"] == 1  # re-synced by re-subscribing, never by reconnecting


async def test_dropped_connection_makes_every_book_stale_then_whole_again(
    sim: RunningSimulator, clock: ManualClock
) -> None:
    events: list[BookEvent] = []
    client, books = await subscribed_books(sim.ws_public_url, clock, on_book=events.append)
    async with running(client):
        await barrier(client)
        assert books_match_venue(sim, books)
        sim.venue.settings.faults.ws_disconnect_after_s = 0.25
        await sim.advance(0.25)  # the venue closes the link at this step
        await until(lambda: bool(stale_events(events)))
        # Told of both books at once: no consumer reads a book of the dead link as whole.
        assert books.stale_symbols == list(SYMBOLS)
        assert stale_events(events) == [("BTC/USD", False, "closed"), ("ETH/USD", False, "closed")]
        sim.venue.settings.faults.ws_disconnect_after_s = None
        await until(lambda: client.counters["reconnects"] == 1)
        await sim.advance(client.backoff_initial_s * 1.25)  # past the backoff and its jitter
        await io(client.wait_connected())
        await barrier(client)
        assert books_match_venue(sim, books)
    assert client.counters["connects"] == 2
    assert books.mismatches == 0


async def test_private_channels_and_trading_over_ws(
    sim: RunningSimulator, clock: ManualClock
) -> None:
    executions: list[Execution] = []
    balances: list[BalanceSnapshot | LedgerUpdate] = []
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())

    async def token() -> str:
        return sim.venue.issue_ws_token(sim.venue.keys_of("mm-xbt")[0]).token

    client = KrakenWs(sim.ws_private_url, clock=clock, token=token,
                      on_execution=executions.append, on_balance=balances.append)  # fmt: skip
    await client.subscribe(Subscription(channel="executions"))
    await client.subscribe(Subscription(channel="balances"))
    async with open_sim_domain(sim, redis, clock, manual_time=True) as domain, running(client):
        limiter = domain.limiter
        trading = KrakenWsTrading(client, permits=limiter, account="mm-xbt", strategy=None)
        await barrier(client)
        assert any(isinstance(b, BalanceSnapshot) and b.asset == "USD" for b in balances)
        add = VenueRequest(method=ADD_ORDER, pair="XBT/USD")
        reply = await io(trading.trade(add, {"order_type": "limit", "side": "buy", "symbol": "BTC/USD",
                                             "order_qty": 0.01, "limit_price": 50000, "cl_ord_id": "ws-1"}))  # fmt: skip
        order_id = reply["result"]["order_id"]
        await barrier(client)
        new = next(e for e in executions if e.order_id == order_id and e.exec_type == "new")
        assert (new.cl_ord_id, new.limit_price, new.order_qty) == (
            "ws-1",
            Decimal(50000),
            Decimal("0.01"),
        )
        cancel = VenueRequest(method=CANCEL_ORDER, pair="XBT/USD", order_ages_s=(0.0,))
        await io(trading.trade(cancel, {"order_id": [order_id]}))
        await barrier(client)
        assert any(e.order_id == order_id and e.exec_type == "canceled" for e in executions)
        with pytest.raises(InvalidRequest):
            await io(trading.trade(add, {"order_type": "limit", "side": "buy", "symbol": "BTC/USD",
                                         "order_qty": 0.01, "limit_price": 50000.05}))  # fmt: skip
        # A market buy fills: its trade shows in executions and its ledger in balances.
        await io(trading.trade(add, {"order_type": "market", "side": "buy", "symbol": "BTC/USD",
                                     "order_qty": 0.001}))  # fmt: skip
        await barrier(client)
        assert any(isinstance(b, LedgerUpdate) and b.type == "trade" for b in balances)
        trade = next(e for e in executions if e.exec_type == "trade")
        assert trade.last_qty == Decimal("0.001")
        assert trade.fees
        # WS and REST share the venue's counters; the limiter charged what the venue did (one
        # clock: neither counter decayed while the test ran).
        venue_level = sim.venue.limits.levels(sim.venue.clock.time())["trade:mm-xbt:XBT/USD"]
        ours = await limiter.level(limiter.policy.trade_scope("mm-xbt", "XBT/USD"))
        assert ours == pytest.approx(venue_level, abs=1e-3)
    assert sim.venue.limits.rejections() == {}
    await redis.aclose()


async def test_idle_private_connection_is_kept_alive_by_pings(
    sim: RunningSimulator, clock: ManualClock
) -> None:
    """No subscription means no heartbeats: the client pings instead of reconnecting."""
    client = KrakenWs(sim.ws_private_url, clock=clock)
    async with running(client):
        for _ in range(10):  # 10 s, past the 3 s of silence that would drop a dead link
            await clock.advance(client.heartbeat_interval_s)  # a heartbeat missed: ping
            await until(lambda: client.last_frame_s == clock.monotonic())  # the pong is back
    assert client.counters["connects"] == 1
    assert client.counters["reconnects"] == 0


# --- against a scripted venue: what the simulator cannot do --------------------------------------


class ScriptedVenue:
    """A stand-in venue that says only what the test gives it (no heartbeats, no replies, no
    pongs) and records what the client sent."""

    def __init__(self) -> None:
        self.links: list[ServerConnection] = []
        self.received: list[dict[str, Any]] = []
        self.ended = 0  # connections that are over (closed or dropped by the client)

    async def serve_one(self, ws: ServerConnection) -> None:
        self.links.append(ws)
        try:
            async for message in ws:
                self.received.append(json.loads(message))
        except ConnectionClosed:
            pass  # the client dropped the link without a closing handshake
        finally:
            self.ended += 1

    def methods(self) -> list[str]:
        return [str(m.get("method")) for m in self.received]

    async def say(self, frame: bytes) -> None:
        await self.links[-1].send(frame.decode())


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[ScriptedVenue, str]]:
    venue = ScriptedVenue()
    async with serve(venue.serve_one, "127.0.0.1", 0, ping_interval=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield venue, f"ws://127.0.0.1:{port}/v2"


async def test_a_silent_link_is_dropped_after_three_heartbeats_and_its_books_go_stale(
    scripted: tuple[ScriptedVenue, str], clock: ManualClock
) -> None:
    venue, url = scripted
    events: list[BookEvent] = []
    client, books = await subscribed_books(url, clock, on_book=events.append)
    assert client.silence_timeout_s == 3 * client.heartbeat_interval_s == 3.0
    async with running(client):
        await until(lambda: venue.methods().count("subscribe") == 2)
        await venue.say(book_snapshot("BTC/USD", [("50000.0", "1.5")], [("50000.5", "0.25")], BTC))
        await venue.say(book_snapshot("ETH/USD", [("3000.00", "2")], [("3000.50", "1")], ETH))
        await until(lambda: books.stale_symbols == [])
        heard_s = clock.monotonic()
        await clock.advance(2.875)  # heartbeats missed, pinged, no answer: not yet dead
        await until(lambda: "ping" in venue.methods())
        assert books.stale_symbols == []
        assert venue.ended == 0
        await clock.advance(0.125)
        await until(lambda: bool(books.stale_symbols))
        assert books.stale_symbols == list(SYMBOLS)  # every book at once
        assert clock.monotonic() - heard_s == 3.0
        assert stale_events(events) == [("BTC/USD", False, "silent"), ("ETH/USD", False, "silent")]
        await until(lambda: venue.ended == 1)
        # And back: a new connection, every book subscribed again.
        await until(lambda: client.counters["reconnects"] == 1)
        await clock.advance(client.backoff_initial_s * 1.25)
        await io(client.wait_connected())
        await until(lambda: venue.methods().count("subscribe") == 4)
    assert client.counters["connects"] == 2


class HandlerBug(Exception):
    """What a handler with a bug raises."""


async def test_a_handlers_error_ends_run_after_the_link_is_closed_and_requests_failed(
    scripted: tuple[ScriptedVenue, str], clock: ManualClock
) -> None:
    venue, url = scripted

    def on_event(channel: str, message: dict[str, Any]) -> None:
        raise HandlerBug(f"cannot handle {channel}")

    client = KrakenWs(url, clock=clock, on_event=on_event)
    run = asyncio.create_task(client.run())
    await io(client.wait_connected())
    order = asyncio.create_task(client.request("add_order", {"symbol": "BTC/USD"}))
    await until(lambda: "add_order" in venue.methods())  # sent; the venue never answers
    await venue.say(b'{"channel": "status", "type": "update", "data": [{"system": "online"}]}')
    with pytest.raises(HandlerBug, match="cannot handle status"):
        await io(run)
    assert order.done()  # failed before run() ended: an order in flight is of unknown outcome
    with pytest.raises(AmbiguousOutcome):
        await order
    await until(lambda: venue.ended == 1)
    assert client.counters["connects"] == 1  # not reconnected: the owner decides what follows
    assert client.counters["errors"] == 1


async def test_a_handlers_error_reaches_the_owners_task_group(
    scripted: tuple[ScriptedVenue, str], clock: ManualClock
) -> None:
    venue, url = scripted

    def on_book(event: BookEvent) -> None:
        raise HandlerBug(f"cannot handle {event.kind}")

    client, _ = await subscribed_books(url, clock, on_book=on_book)

    async def owner() -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(client.run())
            await io(client.wait_connected())
            await venue.say(
                book_snapshot("BTC/USD", [("50000.0", "1.5")], [("50000.5", "0.25")], BTC)
            )
            await asyncio.Event().wait()  # serve until something fails

    with pytest.raises(ExceptionGroup) as failed:
        await io(owner())
    assert failed.group_contains(HandlerBug, match="cannot handle snapshot")


async def test_malformed_frames_over_the_link_do_not_end_it(
    scripted: tuple[ScriptedVenue, str], clock: ManualClock
) -> None:
    venue, url = scripted
    seen: list[str] = []
    client = KrakenWs(url, clock=clock, on_event=lambda channel, _: seen.append(channel),
                      on_execution=lambda _: seen.append("executions"))  # fmt: skip
    async with running(client) as run:
        await venue.say(b"not json")
        await venue.say(b'{"channel": "executions", "type": "update", "data": [{"order_id": 1}]}')
        await venue.say(b'{"channel": "status", "type": "update", "data": []}')
        await until(lambda: seen == ["status"])
        assert client.counters["malformed"] == 2
        assert not run.done()
    assert client.counters["connects"] == 1


async def test_close_ends_a_backoff_wait_without_time_passing(clock: ManualClock) -> None:
    client = KrakenWs(f"ws://127.0.0.1:{free_port()}/v2", clock=clock)  # nothing listens there
    run = asyncio.create_task(client.run())
    await until(lambda: client.counters["reconnects"] == 1)  # refused, now backing off
    await client.close()
    await io(run)
    assert client.counters["connects"] == 0

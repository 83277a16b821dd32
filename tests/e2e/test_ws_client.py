"""The WS client against the simulator on the real clock: books stay whole through checksum faults
(only the bad book re-syncs) and through dropped connections (resubscribe); private channels and
trading over WS through the limiter."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import aiohttp
import fakeredis
import pytest

from orchestrator.clock import RealClock
from orchestrator.config import LimitsConfig
from orchestrator.errors import InvalidRequest
from orchestrator.exchange.kraken.common.methods import ADD_ORDER, CANCEL_ORDER
from orchestrator.exchange.kraken.common.nonce import LocalNonce
from orchestrator.exchange.kraken.spot.rest import KrakenRest
from orchestrator.exchange.kraken.ws.book import PairPrecision
from orchestrator.exchange.kraken.ws.book_store import BookStore
from orchestrator.exchange.kraken.ws.client import KrakenWs, Subscription
from orchestrator.exchange.kraken.ws.schemas import BalanceSnapshot, Execution, LedgerUpdate
from orchestrator.metrics import Registry
from orchestrator.ratelimit.policy import Policy, VenueRequest
from orchestrator.ratelimit.redis import Limiter
from orchestrator.simulator.app import RunningSimulator, open_simulator
from orchestrator.simulator.settings import SimSettings
from orchestrator.store.keys import Keys
from tests.sim_domains import credentials_of

SYMBOLS = {"BTC/USD": ("XXBTZUSD", PairPrecision(price_decimals=1, qty_decimals=8)),
           "ETH/USD": ("XETHZUSD", PairPrecision(price_decimals=2, qty_decimals=8))}  # fmt: skip


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with open_simulator(SimSettings(market_step_s=0.02)) as running:
        yield running


async def eventually(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not check():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def settled_match(sim: RunningSimulator, books: BookStore) -> None:
    """Freeze the markets, let in-flight frames land, then the books must equal the venue's."""
    sim.venue.markets_frozen = True
    try:
        await eventually(lambda: books_match_venue(sim, books), timeout_s=10)
    finally:
        sim.venue.markets_frozen = False


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


@contextlib.asynccontextmanager
async def running(client: KrakenWs) -> AsyncIterator[KrakenWs]:
    task = asyncio.create_task(client.run())
    try:
        await client.wait_connected()
        yield client
    finally:
        await client.close()
        await asyncio.wait_for(task, 5)


async def subscribed_books(sim: RunningSimulator, **kwargs: Any) -> tuple[KrakenWs, BookStore]:
    books = BookStore()
    client = KrakenWs(sim.ws_public_url, clock=RealClock(), books=books, **kwargs)
    for symbol, (_, precision) in SYMBOLS.items():
        books.add_book(symbol, 10, precision)
        await client.subscribe(Subscription(channel="book", symbol=symbol, depth=10))
    return client, books


async def test_books_follow_the_venue(sim: RunningSimulator) -> None:
    client, books = await subscribed_books(sim)
    async with running(client):
        await settled_match(sim, books)
        await asyncio.sleep(0.3)  # many updates later, still exact
        await settled_match(sim, books)
    assert books.mismatches == 0
    assert client.counters["malformed"] == 0


async def test_corrupted_checksums_resync_only_the_bad_book(sim: RunningSimulator) -> None:
    client, books = await subscribed_books(sim)
    async with running(client):
        await settled_match(sim, books)
        sim.venue.settings.faults.corrupt_checksum_rate = 0.2
        await eventually(lambda: client.counters["resyncs"] >= 2)
        sim.venue.settings.faults.corrupt_checksum_rate = 0.0
        await settled_match(sim, books)
    assert books.mismatches >= 2
    assert client.counters["connects"] == 1  # re-synced by re-subscribing, never by reconnecting


async def test_dropped_connection_reconnects_and_books_are_whole(sim: RunningSimulator) -> None:
    client, books = await subscribed_books(sim)
    async with running(client):
        await settled_match(sim, books)
        sim.venue.settings.faults.ws_disconnect_after_s = 0.3
        await eventually(lambda: client.counters["reconnects"] >= 1)
        sim.venue.settings.faults.ws_disconnect_after_s = None
        await settled_match(sim, books)
    assert books.mismatches == 0


async def test_malformed_frames_are_counted_not_fatal(sim: RunningSimulator) -> None:
    client, _ = await subscribed_books(sim)
    client.handle_frame(b"not json")
    client.handle_frame(b'{"channel": "book", "type": "update", "data": [{"symbol": 5}]}')
    client.handle_frame(b'{"channel": "ticker", "data": []}')  # no listener: ignored
    assert client.counters["malformed"] == 1
    assert client.books.malformed >= 1


async def test_private_channels_and_trading_over_ws(sim: RunningSimulator) -> None:
    executions: list[Execution] = []
    balances: list[BalanceSnapshot | LedgerUpdate] = []
    redis = fakeredis.FakeAsyncRedis()
    limits = LimitsConfig()
    limiter = Limiter(
        redis,
        Keys("ws"),
        Policy("intermediate", limits),
        RealClock(),
        limits=limits,
        registry=Registry(),
    )
    async with aiohttp.ClientSession() as session:
        rest = KrakenRest(session, sim.rest_url, account="mm-xbt", nonce=LocalNonce(),
                          credentials=credentials_of(sim, "mm-xbt"))  # fmt: skip

        async def token() -> str:
            return str((await rest.private("GetWebSocketsToken"))["token"])

        token_source: Callable[[], Awaitable[str]] = token
        client = KrakenWs(sim.ws_private_url, clock=RealClock(), token=token_source, limiter=limiter,
                          account="mm-xbt", on_execution=executions.append, on_balance=balances.append)  # fmt: skip
        await client.subscribe(Subscription(channel="executions"))
        await client.subscribe(Subscription(channel="balances"))
        async with running(client):
            await eventually(
                lambda: any(isinstance(b, BalanceSnapshot) and b.asset == "USD" for b in balances)
            )
            add = VenueRequest(method=ADD_ORDER, pair="XBT/USD", via_ws=True)
            reply = await client.trade("add_order", {"order_type": "limit", "side": "buy", "symbol": "BTC/USD",
                                                     "order_qty": 0.01, "limit_price": 50000, "cl_ord_id": "ws-1"},
                                       request=add)  # fmt: skip
            order_id = reply["result"]["order_id"]
            await eventually(
                lambda: any(e.order_id == order_id and e.exec_type == "new" for e in executions)
            )
            new = next(e for e in executions if e.order_id == order_id and e.exec_type == "new")
            assert (new.cl_ord_id, new.limit_price, new.order_qty) == (
                "ws-1",
                Decimal(50000),
                Decimal("0.01"),
            )
            cancel = VenueRequest(
                method=CANCEL_ORDER, pair="XBT/USD", order_ages_s=(0.0,), via_ws=True
            )
            await client.trade("cancel_order", {"order_id": [order_id]}, request=cancel)
            await eventually(
                lambda: any(
                    e.order_id == order_id and e.exec_type == "canceled" for e in executions
                )
            )
            with pytest.raises(InvalidRequest):
                await client.trade("add_order", {"order_type": "limit", "side": "buy", "symbol": "BTC/USD",
                                                 "order_qty": 0.01, "limit_price": 50000.05}, request=add)  # fmt: skip
            # A market buy fills: its trade shows in executions and its ledger in balances.
            await client.trade("add_order", {"order_type": "market", "side": "buy", "symbol": "BTC/USD",
                                             "order_qty": 0.001}, request=add)  # fmt: skip
            await eventually(
                lambda: any(isinstance(b, LedgerUpdate) and b.type == "trade" for b in balances)
            )
            trade = next(e for e in executions if e.exec_type == "trade")
            assert trade.last_qty == Decimal("0.001")
            assert trade.fees
    # WS and REST share the venue's counters; the limiter charged what the venue did.
    venue_level = sim.venue.limits.levels(sim.venue.clock.time())["trade:mm-xbt:XBT/USD"]
    ours = await limiter.level(limiter.policy.trade_scope("mm-xbt", "XBT/USD"))
    assert ours >= venue_level - 0.5  # ours decays from slightly earlier bookings
    assert sim.venue.limits.rejections() == {}
    await redis.aclose()


async def test_idle_private_connection_is_kept_alive_by_pings(sim: RunningSimulator) -> None:
    """No subscription means no heartbeats: the client pings instead of reconnecting."""

    async def token() -> str:
        return sim.venue.issue_ws_token(sim.venue.keys_of("mm-xbt")[0]).token

    client = KrakenWs(sim.ws_private_url, clock=RealClock(), token=token, heartbeat_timeout_s=0.2)
    async with running(client):
        await asyncio.sleep(1.0)
        assert client.counters["connects"] == 1
        assert client.counters["reconnects"] == 0

"""The in-process market: the simulator's own book frames in the live client's checksummed books,
its trades and tickers, moved by `step`; same seed, same run. No sockets, a manual clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from orchestrator.clock import ManualClock
from orchestrator.errors import InvalidRequest
from orchestrator.exchange.instruments import Instrument, Instruments
from orchestrator.exchange.protocol import OrderSpec
from orchestrator.simulator.settings import SimSettings
from orchestrator.simulator.venue import Venue
from orchestrator.strategy import Side, Ticker, Trade
from orchestrator.testing.market import InProcessMarket
from orchestrator.testing.venue import InProcessVenue, build_inprocess_domain

PAIRS = ("XBT/USD", "ETH/USD")


class Listener:
    """Records what the hub told it, in order."""

    def __init__(self) -> None:
        self.heard: list[tuple[Any, ...]] = []

    def on_book_changed(self, pair: str) -> None:
        self.heard.append(("book", pair))

    def on_book_stale(self, pair: str, reason: str) -> None:
        self.heard.append(("stale", pair, reason))

    def on_trade(self, trade: Trade) -> None:
        self.heard.append(("trade", trade))

    def on_ticker(self, ticker: Ticker) -> None:
        self.heard.append(("ticker", ticker))

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return [h for h in self.heard if h[0] == kind]


@pytest.fixture
def domain(clock: ManualClock) -> tuple[Venue, Instruments]:
    return build_inprocess_domain(SimSettings(seed=5), clock)


@pytest.fixture
async def market(domain: tuple[Venue, Instruments]) -> AsyncIterator[InProcessMarket]:
    hub = InProcessMarket(*domain)
    yield hub
    hub.close()


def pairs(instruments: Instruments) -> list[Instrument]:
    return [instruments.get(name) for name in PAIRS]


def matches_venue(market: InProcessMarket, sim: Venue, pair: Instrument) -> bool:
    """The client-side book is the venue's top `depth`, level for level, and checksummed."""
    book = market.books.book(pair.symbol)
    venue_book = sim.public_books[pair.rest_name]
    return (
        book is not None
        and not book.stale
        and book.scaled_bids() == venue_book.top("bid", market.depth)
        and book.scaled_asks() == venue_book.top("ask", market.depth)
    )


async def test_subscribing_gives_whole_checksummed_books(
    market: InProcessMarket, domain: tuple[Venue, Instruments]
) -> None:
    sim, instruments = domain
    listener = Listener()
    assert market.book("XBT/USD") is None
    await market.subscribe(pairs(instruments), listener)
    assert listener.of("book") == [("book", "XBT/USD"), ("book", "ETH/USD")]
    tickers = [ticker for _, ticker in listener.of("ticker")]  # the ticker channel's snapshot
    assert [ticker.pair for ticker in tickers] == list(PAIRS)
    for pair in pairs(instruments):
        assert market.is_whole(pair.wsname)
        assert matches_venue(market, sim, pair)
    view = market.book("XBT/USD")
    assert view is not None
    assert view.pair == "XBT/USD"
    assert len(view.bids()) == len(view.asks()) == 10
    assert view.best_bid == view.bids(1)[0]
    assert view.best_ask == view.asks(1)[0]
    bid, ask = view.best_bid[0], view.best_ask[0]
    assert (view.mid, view.spread) == ((bid + ask) / 2, ask - bid)
    assert bid < ask
    assert (tickers[0].bid, tickers[0].ask) == (bid, ask)
    assert market.book("BTC/USD") is view  # any of the pair's names
    assert market.pairs == list(PAIRS)
    assert market.books.mismatches == 0
    assert not market.is_whole("SOL/USD")  # never subscribed


async def test_books_change_with_step_and_stay_exact(
    market: InProcessMarket, domain: tuple[Venue, Instruments]
) -> None:
    sim, instruments = domain
    listener = Listener()
    await market.subscribe(pairs(instruments), listener)
    first = market.book("XBT/USD")
    assert first is not None
    start = (first.bids(), first.asks())
    for _ in range(40):  # ten seconds of markets
        await market.advance(0.25)
        for pair in pairs(instruments):
            assert matches_venue(market, sim, pair)
    assert (first.bids(), first.asks()) != start  # the view is live: no copy
    assert len(listener.of("book")) > 2 * 10
    assert market.books.mismatches == 0
    assert market.books.malformed == 0


async def test_an_order_moves_the_book_and_publishes_its_trade_and_ticker(
    market: InProcessMarket, domain: tuple[Venue, Instruments]
) -> None:
    sim, instruments = domain
    btc = instruments.get("XBT/USD")
    listener = Listener()
    await market.subscribe([btc], listener)
    trader = InProcessVenue(sim, "mm-xbt", instruments)
    fills: list[tuple[Decimal | None, Decimal | None]] = []
    trader.subscribe_executions(
        lambda e: fills.append((e.last_price, e.last_qty)) if e.exec_type == "trade" else None,
        snapshot=False,
    )
    listener.heard.clear()
    spec = OrderSpec(instrument=btc, side="buy", order_type="market", volume=Decimal("0.002"),
                     cl_ord_id="mkt-1")  # fmt: skip
    await trader.place(spec)
    assert listener.heard == []  # the public feed publishes on the next turn of the loop
    await asyncio.sleep(0)
    [(price, qty)] = fills
    [(_, trade)] = listener.of("trade")
    assert (trade.pair, trade.side, trade.price, trade.qty) == ("XBT/USD", "buy", price, qty)
    assert trade.time_s == sim.clock.time()
    [(_, ticker)] = listener.of("ticker")
    assert (ticker.pair, ticker.last, ticker.volume_24h) == ("XBT/USD", price, qty)
    assert listener.heard.index(("book", "XBT/USD")) < listener.heard.index(("trade", trade))
    assert matches_venue(market, sim, btc)
    trader.close()


async def test_a_feed_gap_makes_the_book_stale_until_resync(
    market: InProcessMarket, domain: tuple[Venue, Instruments]
) -> None:
    sim, instruments = domain
    btc, eth = pairs(instruments)
    listener = Listener()
    await market.subscribe([btc, eth], listener)
    market.mark_stale("XBT/USD")
    assert listener.heard[-1] == ("stale", "XBT/USD", "gap")
    assert market.book("XBT/USD") is None
    assert not market.is_whole("XBT/USD")
    listener.heard.clear()
    for _ in range(8):
        await market.advance(0.25)
    assert market.book("XBT/USD") is None  # updates of a stale book are ignored, as live
    assert market.books.ignored_stale > 0
    assert ("book", "XBT/USD") not in listener.heard
    assert ("book", "ETH/USD") in listener.heard  # the other book went on
    market.resync("XBT/USD")
    assert listener.heard[-1:] == [("book", "XBT/USD")]
    assert matches_venue(market, sim, btc)
    market.mark_stale("XBT/USD")
    market.mark_stale("XBT/USD")  # already stale: no news
    assert listener.of("stale") == [("stale", "XBT/USD", "gap")]


async def test_books_are_kept_while_someone_listens(
    market: InProcessMarket, domain: tuple[Venue, Instruments]
) -> None:
    _, instruments = domain
    btc = instruments.get("XBT/USD")
    one, two = Listener(), Listener()
    await market.subscribe([btc], one)
    await market.subscribe([btc], two)
    await market.subscribe([btc], two)  # again: a no-op
    assert two.heard == [("book", "XBT/USD")]  # a late subscriber hears of the whole book
    await market.unsubscribe([btc], one)
    heard = len(one.heard)
    await market.advance(1.0)
    assert len(one.heard) == heard
    assert len(two.of("book")) > 1
    await market.unsubscribe([btc], two)
    assert market.book("XBT/USD") is None
    assert market.books.symbols == []
    await market.advance(1.0)
    assert len(two.heard) == len(two.of("book"))


async def test_a_pair_the_simulator_does_not_list_is_refused(market: InProcessMarket) -> None:
    stranger = Instrument(rest_name="XDGUSD", altname="XDGUSD", wsname="XDG/USD",
                          symbol="DOGE/USD", base="XXDG", quote="ZUSD", price_decimals=5,
                          qty_decimals=8, tick_size=Decimal("0.00001"), ordermin=Decimal(1),
                          costmin=Decimal("0.5"))  # fmt: skip
    with pytest.raises(InvalidRequest, match="does not list"):
        await market.subscribe([stranger], Listener())


async def test_a_listeners_error_in_a_deferred_publish_surfaces_at_the_next_step(
    domain: tuple[Venue, Instruments],
) -> None:
    sim, instruments = domain
    market = InProcessMarket(sim, instruments)
    btc = instruments.get("XBT/USD")

    class Broken(Listener):
        def on_trade(self, trade: Trade) -> None:
            raise LookupError("listener bug")

    await market.subscribe([btc], Broken())
    trader = InProcessVenue(sim, "mm-xbt", instruments)
    spec = OrderSpec(instrument=btc, side="sell", order_type="market", volume=Decimal("0.002"),
                     cl_ord_id="mkt-2")  # fmt: skip
    await trader.place(spec)
    await asyncio.sleep(0)
    assert isinstance(market.failure, LookupError)
    with pytest.raises(LookupError, match="listener bug"):
        market.step(0.25)
    trader.close()
    with pytest.raises(LookupError):
        market.close()
    assert market._on_trade not in sim.engine.trade_listeners


async def record_run(seed: int) -> list[Any]:
    """Everything a listener reads over 20 s of one domain: books at each step, trades."""
    clock = ManualClock()
    sim, instruments = build_inprocess_domain(SimSettings(seed=seed), clock)
    market = InProcessMarket(sim, instruments)
    listener = Listener()
    await market.subscribe(pairs(instruments), listener)
    trader = InProcessVenue(sim, "master", instruments)
    btc = instruments.get("XBT/USD")
    seen: list[Any] = []
    for i in range(80):
        if i % 10 == 0:
            side: Side = "buy" if i % 20 == 0 else "sell"
            spec = OrderSpec(instrument=btc, side=side, order_type="market",
                             volume=Decimal("0.01"), cl_ord_id=f"det-{i}")  # fmt: skip
            await trader.place(spec)
            await asyncio.sleep(0)
        await market.advance(0.25)
        for name in PAIRS:
            view = market.book(name)
            assert view is not None
            seen.append((name, view.bids(), view.asks()))
    trader.close()
    market.close()
    return [*seen, *listener.of("trade"), *listener.of("ticker")]


async def test_the_same_seed_gives_the_same_books_and_trades() -> None:
    first, second = await record_run(11), await record_run(11)
    assert first == second
    assert sum(1 for item in first if item[0] == "trade") >= 8
    assert len({(bids[0], asks[0]) for _, bids, asks in first[:160]}) > 10  # it moved
    assert await record_run(12) != first  # and the seed is what decides it

"""The live worker through the replay harness: intents, refusals, containment, stop and restart.

Every test runs the production worker, order manager, journal (fakeredis) and risk checks
against the simulator's engine in-process, on a manual clock; what the venue holds is read from
the engine itself, never from the worker.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest

from orchestrator.errors import StoreUnavailable, VenueUnavailable
from orchestrator.exchange.protocol import OrderSpec
from orchestrator.simulator.settings import SimSettings
from orchestrator.strategy import BookView, Fill, OrderUpdate, Strategy, StrategyParams
from orchestrator.testing.harness import ReplayHarness
from orchestrator.testing.venue import InProcessVenue

PAIR = "XBT/USD"
SETTINGS = SimSettings()  # the demo domain: sub-accounts mm-xbt, twap-eth, mm-sol


def strategy_config(name: str, account: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "module": "tests.unit.workers.test_worker", "account": account,
            "pairs": [PAIR]} | extra  # fmt: skip


class Recorder(Strategy[StrategyParams]):
    """Remembers what it heard; subclasses act on it."""

    def on_start(self) -> None:
        self.books = 0
        self.updates: list[OrderUpdate] = []
        self.fills: list[Fill] = []

    def on_book(self, book: BookView) -> None:
        self.books += 1

    def on_order(self, order: OrderUpdate) -> None:
        self.updates.append(order)

    def on_fill(self, fill: Fill) -> None:
        self.fills.append(fill)

    def statuses(self, cl_ord_id: str) -> list[str]:
        return [u.status for u in self.updates if u.cl_ord_id == cl_ord_id]


class RestsOneBid(Recorder):
    """One bid 1% under the mid, once."""

    def on_start(self) -> None:
        super().on_start()
        self.placed: str | None = None

    def on_book(self, book: BookView) -> None:
        super().on_book(book)
        if self.placed is None and book.mid is not None:
            price = self.ctx.instrument(book.pair).round_price(book.mid * Decimal("0.99"))
            self.placed = self.ctx.place(book.pair, "buy", Decimal("0.01"), price)


class TakesOnce(Recorder):
    """Buys 0.01 at the ask with an IOC limit, once."""

    def on_start(self) -> None:
        super().on_start()
        self.placed: str | None = None

    def on_book(self, book: BookView) -> None:
        super().on_book(book)
        ask = book.best_ask
        if self.placed is None and ask is not None:
            self.placed = self.ctx.place(book.pair, "buy", Decimal("0.01"), ask[0],
                                         time_in_force="IOC")  # fmt: skip


class RaisesWhenArmed(RestsOneBid):
    armed = False  # the test arms it once its order rests

    def on_book(self, book: BookView) -> None:
        super().on_book(book)
        if self.armed:
            raise RuntimeError("strategy bug")


class Slow(Recorder):
    def on_book(self, book: BookView) -> None:
        super().on_book(book)
        time.sleep(0.03)  # over a 10 ms budget


def venue_open(replay: ReplayHarness, account: str) -> list[str]:
    return [o.cl_ord_id or o.txid for o in replay.venue.engine.open_orders(account).values()]


async def test_a_resting_order_is_journalled_placed_and_tracked() -> None:
    async with ReplayHarness(SETTINGS) as replay:
        worker = replay.add(strategy_config("bid", "mm-xbt"), RestsOneBid)
        await replay.start()
        await replay.run_for(2.0)
        strategy = worker.strategy
        assert isinstance(strategy, RestsOneBid)
        assert strategy.placed is not None
        assert venue_open(replay, "mm-xbt") == [strategy.placed]
        assert strategy.statuses(strategy.placed)[-1] == "new"
        assert await worker.manager.journal.pending() == []  # settled from the venue's reply
        settled = await worker.manager.journal.settled()
        assert [(s.cl_ord_id, s.outcome) for s in settled] == [(strategy.placed, "placed")]
        usd = replay.venue.domain.accounts["mm-xbt"].balances["ZUSD"]
        assert worker.available()["ZUSD"] < usd  # the bid's hold is counted before any report


async def test_a_fill_moves_position_and_pnl_as_the_venue_balances_do() -> None:
    async with ReplayHarness(SETTINGS) as replay:
        account = replay.venue.domain.accounts["mm-xbt"]
        usd_before, xbt_before = account.balances["ZUSD"], account.balances["XXBT"]
        worker = replay.add(strategy_config("taker", "mm-xbt"), TakesOnce)
        await replay.start()
        await replay.run_for(1.0)
        strategy = worker.strategy
        assert isinstance(strategy, TakesOnce)
        assert strategy.fills, "the IOC at the ask filled"
        position = worker.positions.position(PAIR, None)
        assert position.qty == account.balances["XXBT"] - xbt_before == Decimal("0.01")
        spent = usd_before - account.balances["ZUSD"]
        assert sum(f.price * f.qty + f.fee for f in strategy.fills) == spent
        assert strategy.statuses(strategy.placed or "")[-1] == "filled"


@pytest.mark.parametrize(
    ("intent", "check"),
    [
        ({"pair": "ETH/USD"}, "shape"),  # not one of its pairs
        ({"volume": 0.01}, "shape"),  # a float
        ({"price_factor": Decimal("0.5")}, "price_band"),
        ({"volume": Decimal("1000")}, "balance"),
        ({"volume": Decimal("0.00000001")}, "instrument"),  # below ordermin
    ],
)
async def test_a_refused_intent_is_reported_and_nothing_is_sent(
    intent: dict[str, Any], check: str
) -> None:
    class Bad(Recorder):
        def on_book(self, book: BookView) -> None:
            super().on_book(book)
            if self.books == 1 and book.mid is not None:
                price = self.ctx.instrument(PAIR).round_price(
                    book.mid * intent.get("price_factor", Decimal("0.99"))
                )
                self.ctx.place(intent.get("pair", PAIR), "buy",
                               intent.get("volume", Decimal("0.01")), price)  # fmt: skip

    async with ReplayHarness(SETTINGS) as replay:
        worker = replay.add(strategy_config("bad", "mm-xbt"), Bad)
        await replay.start()
        await replay.run_for(1.0)
        strategy = worker.strategy
        assert isinstance(strategy, Bad)
        [refused] = strategy.updates
        assert refused.status == "rejected"
        assert refused.reason is not None
        assert refused.reason.startswith(check)
        assert venue_open(replay, "mm-xbt") == []
        assert replay.venue.engine.orders == {} or all(
            o.account != "mm-xbt" for o in replay.venue.engine.orders.values()
        )
        assert await worker.manager.journal.pending() == []
        assert await worker.manager.journal.settled() == []  # never journalled: never sent


async def test_a_strategy_that_raises_is_stopped_alone_and_its_orders_cancelled() -> None:
    async with ReplayHarness(SETTINGS) as replay:
        bad = replay.add(strategy_config("bad", "mm-xbt"), RaisesWhenArmed)
        good = replay.add(strategy_config("good", "mm-sol"), RestsOneBid)
        await replay.start()
        await replay.run_for(0.5)
        assert venue_open(replay, "mm-xbt") != []  # the bad one had an order resting
        assert isinstance(bad.strategy, RaisesWhenArmed)
        bad.strategy.armed = True
        started = replay.clock.time()
        await replay.run_for(2.0)
        assert bad.state == "failed"
        assert bad.failure is not None
        assert "on_book raised RuntimeError" in bad.failure
        assert venue_open(replay, "mm-xbt") == []
        cancelled_s = max(o.closed_s or 0 for o in replay.venue.engine.orders.values()
                          if o.account == "mm-xbt")  # fmt: skip
        assert cancelled_s - started <= 1.0
        assert good.state == "running"
        assert len(venue_open(replay, "mm-sol")) == 1
        events = await replay.events.recent(10)
        assert any(e.get("kind") == "strategy_failed" and e.get("strategy") == "bad"
                   for e in events)  # fmt: skip


async def test_repeated_overruns_of_the_callback_budget_stop_the_strategy() -> None:
    async with ReplayHarness(SETTINGS) as replay:
        worker = replay.add(strategy_config("slow", "mm-xbt", callback_budget_ms=10), Slow)
        await replay.start()
        await replay.run_for(5.0)
        assert worker.state == "failed"
        assert worker.failure is not None
        assert "overran" in worker.failure


async def test_stop_cancels_the_orders_unless_configured_not_to() -> None:
    async with ReplayHarness(SETTINGS) as replay:
        replay.add(strategy_config("cancels", "mm-xbt"), RestsOneBid)
        replay.add(strategy_config("keeps", "mm-sol", cancel_on_stop=False), RestsOneBid)
        await replay.start()
        await replay.run_for(1.0)
        await replay.stop()
        assert venue_open(replay, "mm-xbt") == []
        assert len(venue_open(replay, "mm-sol")) == 1


async def test_a_restarted_worker_adopts_its_own_open_order() -> None:
    async with ReplayHarness(SETTINGS) as replay:
        first = replay.add(strategy_config("keeps", "mm-xbt", cancel_on_stop=False), RestsOneBid)
        await replay.start()
        await replay.run_for(1.0)
        await replay.stop()
        [resting] = venue_open(replay, "mm-xbt")
        second = replay.add(strategy_config("keeps2", "mm-xbt", cancel_on_stop=False), Recorder)
        await replay.start("keeps2")
        assert [o.cl_ord_id for o in second.manager.open_orders()] == [resting]
        assert venue_open(replay, "mm-xbt") == [resting]  # adopted, not cancelled as an orphan
        assert first.state == "stopped"


async def test_an_orphan_order_is_cancelled_by_default() -> None:
    async with ReplayHarness(SETTINGS) as replay:
        first = replay.add(strategy_config("keeps", "mm-xbt", cancel_on_stop=False), RestsOneBid)
        await replay.start()
        await replay.run_for(1.0)
        await replay.stop()
        await replay.redis.flushall()  # the journal is lost: the order is nobody's
        replay.add(strategy_config("new", "mm-xbt"), Recorder)
        await replay.start("new")
        await replay.run_for(0.5)
        assert venue_open(replay, "mm-xbt") == []
        assert first.state == "stopped"


async def test_an_orphan_placed_by_hand_without_a_cl_ord_id_is_cancelled() -> None:
    async with ReplayHarness(SETTINGS) as replay:
        by_hand = InProcessVenue(replay.venue, "mm-xbt", replay.instruments)
        await by_hand.place(OrderSpec(instrument=replay.instruments.get(PAIR), side="buy",
                                      order_type="limit", volume=Decimal("0.01"),
                                      price=Decimal(1000), cl_ord_id="hand"))  # fmt: skip
        [orphan] = replay.venue.engine.open_orders("mm-xbt").values()
        orphan.cl_ord_id = None  # as an order placed without one (by hand, on Kraken's site)
        by_hand.close()
        replay.add(strategy_config("new", "mm-xbt"), Recorder)
        await replay.start("new")
        await replay.run_for(0.5)
        assert venue_open(replay, "mm-xbt") == []


class FailsOnce:
    """A stand-in around a venue or journal whose first call of `method` raises `error`; every
    other call is the real one's."""

    def __init__(self, inner: Any, method: str, error: Exception) -> None:
        self._inner = inner
        self._method = method
        self._error = error
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._inner, name)
        if name != self._method:
            return real

        async def first_fails(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls == 1:
                raise self._error
            return await real(*args, **kwargs)

        return first_fails


async def test_the_venues_passing_trouble_at_start_is_waited_out() -> None:
    flaky: list[FailsOnce] = []

    def wrap(venue: InProcessVenue) -> Any:
        flaky.append(FailsOnce(venue, "open_orders", VenueUnavailable("OpenOrders: timed out")))
        return flaky[0]

    async with ReplayHarness(SETTINGS) as replay:
        worker = replay.add(strategy_config("bid", "mm-xbt"), RestsOneBid, wrap_venue=wrap)
        await replay.start()
        await replay.run_for(3.0)
        assert flaky[0].calls >= 2
        assert worker.state == "running"
        assert len(venue_open(replay, "mm-xbt")) == 1


async def test_a_settle_redis_refused_is_tried_again_while_running() -> None:
    journals: list[FailsOnce] = []

    def wrap(journal: Any) -> Any:
        refused = StoreUnavailable("Redis at redis://127.0.0.1:1: connection refused")
        journals.append(FailsOnce(journal, "settle", refused))
        return journals[0]

    async with ReplayHarness(SETTINGS) as replay:
        worker = replay.add(strategy_config("bid", "mm-xbt"), RestsOneBid, wrap_journal=wrap)
        await replay.start()
        await replay.run_for(3.0)
        assert journals[0].calls == 2  # refused, then settled on the retry
        assert await worker.manager.journal.pending() == []
        [settled] = await worker.manager.journal.settled()
        assert settled.outcome == "placed"


class QuotesBothSides(Recorder):
    """A bid and an ask in one callback, once: one batch of two at the venue."""

    def on_start(self) -> None:
        super().on_start()
        self.quoted: list[str] = []

    def on_book(self, book: BookView) -> None:
        super().on_book(book)
        if not self.quoted and book.mid is not None:
            tick = self.ctx.instrument(PAIR)
            bid = tick.round_price(book.mid * Decimal("0.99"))
            ask = tick.round_price(book.mid * Decimal("1.01"), up=True)
            self.quoted = [self.ctx.place(PAIR, "buy", Decimal("0.01"), bid),
                           self.ctx.place(PAIR, "sell", Decimal("0.01"), ask)]  # fmt: skip


class CountsCalls:
    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._inner, name)
        if not name.startswith(("place", "cancel", "amend")):
            return real

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return await real(*args, **kwargs)

        return counted


async def test_places_of_one_pair_asked_together_go_as_one_batch() -> None:
    counters: list[CountsCalls] = []

    def wrap(venue: InProcessVenue) -> Any:
        counters.append(CountsCalls(venue))
        return counters[0]

    async with ReplayHarness(SETTINGS) as replay:
        worker = replay.add(strategy_config("mm", "mm-xbt"), QuotesBothSides, wrap_venue=wrap)
        await replay.start()
        await replay.run_for(1.0)
        strategy = worker.strategy
        assert isinstance(strategy, QuotesBothSides)
        assert counters[0].calls == ["place_batch"]
        assert sorted(venue_open(replay, "mm-xbt")) == sorted(strategy.quoted)
        assert [strategy.statuses(c)[-1] for c in strategy.quoted] == ["new", "new"]
        settled = await worker.manager.journal.settled()
        assert sorted(s.cl_ord_id for s in settled if s.outcome == "placed") == sorted(
            strategy.quoted
        )
        # Kraken prices a batch of two at one unit on the trading counter, not two
        level = replay.venue.limits.levels(replay.clock.time())
        [(scope, used)] = [(k, v) for k, v in level.items() if "mm-xbt" in k and "XBT" in k]
        assert used <= 1.0, scope


async def test_a_batch_the_venue_could_not_take_is_reported_order_by_order() -> None:
    class TwoBids(QuotesBothSides):
        def on_book(self, book: BookView) -> None:
            if not self.quoted and book.mid is not None:
                bid = self.ctx.instrument(PAIR).round_price(book.mid * Decimal("0.99"))
                self.quoted = [self.ctx.place(PAIR, "buy", Decimal("0.01"), bid),
                               self.ctx.place(PAIR, "buy", Decimal("0.01"), bid)]  # fmt: skip

    async with ReplayHarness(SETTINGS) as replay:
        worker = replay.add(strategy_config("mm", "mm-xbt"), TwoBids)
        replay.venues["mm"].fail_next("batch_add", "unavailable")
        await replay.start()
        await replay.run_for(1.0)
        strategy = worker.strategy
        assert isinstance(strategy, TwoBids)
        assert [strategy.statuses(c)[-1] for c in strategy.quoted] == ["rejected", "rejected"]
        assert venue_open(replay, "mm-xbt") == []
        assert await worker.manager.journal.pending() == []

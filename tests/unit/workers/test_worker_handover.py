"""An intent's request starts before the worker's loop re-arms its wait, and only where the loop
would have waited anyway: through the replay harness (the production worker, order manager and
risk checks on the simulator's engine, manual clock)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from orchestrator.exchange.protocol import OrderRef
from orchestrator.simulator.settings import SimSettings
from orchestrator.strategy import BookView, Strategy, StrategyParams
from orchestrator.testing.harness import ReplayHarness
from orchestrator.testing.venue import InProcessVenue

PAIR = "XBT/USD"
ACCOUNT = "mm-xbt"  # the demo domain's sub-account: 10 000 USD, 0.5 XBT


class AmendsEveryBook(Strategy[StrategyParams]):
    """One bid 1% under the mid, then an amend on every book (its price and a tick under, in
    turn), once it rests."""

    def on_start(self) -> None:
        self.order_id: str | None = None
        self.prices: tuple[Decimal, Decimal] = (Decimal(0), Decimal(0))

    def on_book(self, book: BookView) -> None:
        if self.order_id is None:
            mid = book.mid
            if mid is None:
                return
            instrument = self.ctx.instrument(book.pair)
            price = instrument.round_price(mid * Decimal("0.99"))
            self.prices = (price, price - instrument.tick_size)
            self.order_id = self.ctx.place(book.pair, "buy", Decimal("0.01"), price)
            return
        order = self.ctx.order(self.order_id)
        if order is not None and order.status == "new":
            price = self.prices[1] if order.price == self.prices[0] else self.prices[0]
            self.ctx.amend(self.order_id, price=price)


class SeesTheWorkersWait:
    """The worker's venue: records, as each amend is sent, whether the worker's loop had
    armed its next wait already (its timeout on the manual clock)."""

    def __init__(self, venue: InProcessVenue, replay: ReplayHarness) -> None:
        self._venue = venue
        self._replay = replay
        self.waits_armed: list[int] = []

    async def amend(
        self, ref: OrderRef, *, price: Decimal | None = None, volume: Decimal | None = None
    ) -> OrderRef:
        self.waits_armed.append(self._replay.clock.timeouts)
        return await self._venue.amend(ref, price=price, volume=volume)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._venue, name)


async def test_an_amend_is_sent_before_the_worker_loop_waits_again() -> None:
    venues: list[SeesTheWorkersWait] = []

    def wrap(venue: InProcessVenue) -> Any:
        venues.append(SeesTheWorkersWait(venue, replay))
        return venues[-1]

    async with ReplayHarness(SimSettings()) as replay:
        config = {"name": "s", "module": __name__, "account": ACCOUNT, "pairs": [PAIR]}
        worker = replay.add(config, AmendsEveryBook, wrap_venue=wrap)
        await replay.start()
        await replay.run_for(5.0)
        [venue] = venues
        assert len(venue.waits_armed) >= 5, "the strategy amended on most books"
        # No timeout was armed as any amend went out: the worker's loop (the only one waiting
        # on this clock's timeouts here) was still to re-arm its wait.
        assert set(venue.waits_armed) == {0}
        assert worker.state == "running"
        assert worker.manager.counted("amend", "ok") == len(venue.waits_armed)

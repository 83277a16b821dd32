"""Kraken's dead man's switch kept alive from each worker's health, on the simulator's clock.

Two workers each rest an order; one worker's loop stops taking events, as a hung worker's would.
Its switch is no longer refreshed, so the venue itself cancels its orders once the countdown runs
out (within 60 s of venue time); the healthy worker's orders stay.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from orchestrator.simulator.settings import SimSettings
from orchestrator.strategy import BookView, Strategy, StrategyParams
from orchestrator.testing.harness import ReplayHarness

PAIR = "XBT/USD"
TIMEOUT_S = 60


class RestsOneBid(Strategy[StrategyParams]):
    def on_start(self) -> None:
        self.placed: str | None = None

    def on_book(self, book: BookView) -> None:
        if self.placed is None and book.mid is not None:
            price = self.ctx.instrument(PAIR).round_price(book.mid * Decimal("0.98"))
            self.placed = self.ctx.place(PAIR, "buy", Decimal("0.01"), price)


def config(name: str, account: str) -> dict[str, Any]:
    return {"name": name, "module": "tests.unit.workers.test_worker_dead_man",
            "account": account, "pairs": [PAIR]}  # fmt: skip


def open_on(replay: ReplayHarness, account: str) -> int:
    return len(replay.venue.engine.open_orders(account))


async def test_a_hung_workers_orders_are_cancelled_by_the_venue_a_healthy_ones_stay() -> None:
    async with ReplayHarness(SimSettings(), dead_man=True, dead_man_timeout_s=TIMEOUT_S) as replay:
        hung = replay.add(config("hung", "mm-xbt"), RestsOneBid)
        healthy = replay.add(config("healthy", "mm-sol"), RestsOneBid)
        await replay.start()
        await replay.run_for(2.0)
        assert open_on(replay, "mm-xbt") == open_on(replay, "mm-sol") == 1
        assert replay.switches["hung"].refreshes >= 1

        hung.suspend_loop()
        stalled_at_s = replay.clock.time()
        last_armed_s = replay.switches["hung"].last_armed_s
        assert last_armed_s is not None
        await replay.run_for(TIMEOUT_S - 5.0)
        assert hung.health() is not None  # the stall is seen
        assert replay.switches["hung"].unhealthy_reason is not None
        await replay.run_for(10.0)

        [cancelled] = [o for o in replay.venue.engine.orders.values() if o.account == "mm-xbt"]
        assert cancelled.status == "canceled"
        assert cancelled.reason == "Dead man's switch"
        assert cancelled.closed_s is not None
        assert cancelled.closed_s - stalled_at_s <= TIMEOUT_S
        assert open_on(replay, "mm-sol") == 1  # refreshed all along: untouched
        assert healthy.health() is None
        assert replay.switches["healthy"].unhealthy_reason is None

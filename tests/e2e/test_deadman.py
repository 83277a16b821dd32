"""The dead man's switch against the simulator, on the simulator's clock: two workers' accounts,
each with a resting order; one stays healthy and keeps its switch armed, the other turns
unhealthy (its loop stalled) and stops refreshing. After 60 s of venue time the venue has
cancelled the unhealthy account's orders and left the healthy one's alone; once well again the
switch is re-armed, and a clean shutdown disarms both. Over each order entry: the private
WebSocket (`WsOrderEntry`, the default) and REST (`KrakenTrading`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import fakeredis
import pytest

from orchestrator.clock import ManualClock
from orchestrator.exchange.kraken.account import KrakenDomain
from orchestrator.exchange.kraken.ws.client import KrakenWs
from orchestrator.exchange.kraken.ws.order_entry import WsOrderEntry
from orchestrator.exchange.kraken.ws.private import open_private_ws
from orchestrator.exchange.kraken.ws.trading import KrakenWsTrading
from orchestrator.exchange.protocol import OrderSpec, TradingVenue
from orchestrator.simulator.app import RunningSimulator, open_simulator
from orchestrator.workers.deadman import DeadManSwitch
from tests.e2e.test_ws_client import barrier, io, until
from tests.sim_domains import domain_settings, open_sim_domain

ACCOUNTS = ("s0", "s1")  # s0 stays healthy, s1 stalls
TIMEOUT_S = 60
REFRESH_S = 20.0
STALLS_AT_S = 10


@contextlib.asynccontextmanager
async def private_sockets(
    sim: RunningSimulator, domain: KrakenDomain, clock: ManualClock
) -> AsyncIterator[dict[str, KrakenWs]]:
    sockets: dict[str, KrakenWs] = {}
    async with asyncio.TaskGroup() as group:
        try:
            for name in ACCOUNTS:
                ws = open_private_ws(domain.account(name), sim.ws_private_url, clock=clock,
                                     on_execution=lambda _: None, on_balance=lambda _: None)  # fmt: skip
                group.create_task(ws.run())
                await io(ws.wait_connected())
                sockets[name] = ws
            yield sockets
        finally:
            for ws in sockets.values():
                await ws.close()


def verdict(health: dict[str, str | None], name: str) -> Callable[[], str | None]:
    return lambda: health[name]


def refreshed(switch: DeadManSwitch, times: int) -> Callable[[], bool]:
    """Whether the venue has taken `times` arms of the switch (each is real socket I/O)."""
    return lambda: switch.refreshes == times


@pytest.mark.parametrize("order_entry", ["ws", "rest"])
async def test_an_unhealthy_workers_orders_are_cancelled_by_the_venue_a_healthy_ones_kept(
    order_entry: str, clock: ManualClock
) -> None:
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    async with (
        open_simulator(domain_settings(len(ACCOUNTS)), clock=clock) as sim,
        open_sim_domain(sim, redis, clock, manual_time=True) as domain,
        private_sockets(sim, domain, clock) as sockets,
    ):
        sim.venue.markets_frozen = True  # the orders rest; only the switch may cancel them
        engine = sim.venue.engine
        venues: dict[str, TradingVenue] = {}
        for name in ACCOUNTS:
            rest = domain.account(name).trading
            trading = KrakenWsTrading(sockets[name], permits=domain.limiter, account=name,
                                      strategy=None)  # fmt: skip
            ws_entry = WsOrderEntry(sockets[name], trading, rest, clock)
            venues[name] = ws_entry if order_entry == "ws" else rest
        xbt = domain.instruments.get("XBT/USD")
        for name in ACCOUNTS:
            await io(venues[name].place(OrderSpec(instrument=xbt, side="buy", order_type="limit",
                                                  volume=Decimal("0.01"), price=Decimal("50000.0"),
                                                  cl_ord_id=f"{name}-resting")))  # fmt: skip

        async def pass_second() -> None:
            await sim.advance(1.0)
            for ws in sockets.values():
                await barrier(ws)  # the links hear a frame every second of venue time

        health: dict[str, str | None] = dict.fromkeys(ACCOUNTS)
        switches = {
            name: DeadManSwitch(venues[name], clock, timeout_s=TIMEOUT_S, refresh_s=REFRESH_S,
                                healthy=verdict(health, name), name=name)
            for name in ACCOUNTS
        }  # fmt: skip
        healthy, stalled = switches["s0"], switches["s1"]
        async with asyncio.TaskGroup() as group:
            for switch in switches.values():
                group.create_task(switch.run())
            await until(lambda: all(refreshed(s, 1)() for s in switches.values()))
            armed_s = clock.time()
            assert engine.dead_man == {"s0": armed_s + TIMEOUT_S, "s1": armed_s + TIMEOUT_S}

            for second in range(1, TIMEOUT_S + 1):
                if second == STALLS_AT_S:
                    health["s1"] = "loop stalled"
                if second == TIMEOUT_S:  # the last second of s1's countdown: nothing gone yet
                    assert [len(engine.open_orders(n)) for n in ACCOUNTS] == [1, 1]
                await pass_second()
                await until(refreshed(healthy, 1 + second // int(REFRESH_S)))
            # 60 s after its last arm, the venue cancelled everything of s1, nothing of s0.
            assert len(engine.open_orders("s0")) == 1
            assert engine.open_orders("s1") == {}
            gone = await io(venues["s1"].find_order("s1-resting"))
            assert gone is not None
            assert (gone.status, gone.reason) == ("canceled", "Dead man's switch")
            assert engine.dead_man == {"s0": clock.time() + TIMEOUT_S}  # refreshed just now
            assert (stalled.refreshes, stalled.misses, stalled.unhealthy_reason) == (
                1, 3, "loop stalled",
            )  # fmt: skip

            health["s1"] = None  # well again: armed within a quarter of the refresh interval
            for _ in range(int(stalled.retry_s)):
                await pass_second()
            await until(refreshed(stalled, 2))
            assert "s1" in engine.dead_man

            for switch in switches.values():  # clean shutdown
                await io(switch.disarm())
        assert engine.dead_man == {}
        assert healthy.failures == stalled.failures == 0
        assert [ws.counters["connects"] for ws in sockets.values()] == [1, 1]  # links held
        if order_entry == "ws":  # every arm, refresh and disarm went over the socket
            assert sim.venue.request_counts.get("private:CancelAllOrdersAfter", 0) == 0
            # s0: armed at 0, refreshed at 20, 40, 60; s1: armed at 0 and 65; both disarmed
            assert sim.venue.request_counts["ws:cancel_all_orders_after"] == 4 + 2 + 2
        assert sim.venue.limits.rejections() == {}
    await redis.aclose()

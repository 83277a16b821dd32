"""Redis restarted empty while processes trade: the venue never refuses a request.

Four "processes" (each the product's own wiring, `open_kraken`, with its own Redis connection and
limiter) trade on the simulator, each on its own account's XBT/USD counter. Redis is killed and
started again, empty (no persistence), on the same port. Then `late`, a live process that never
touched the others' counters, keeps asking on one of them:

- while the process that spent that counter lives, it hands its floors back at once and new risk
  resumes after the grace (well within 2 s);
- once that process is gone, nobody knows the counter: it is treated as full at the loss, and
  no new risk is granted on it before the new-risk room (threshold x reserve, plus the cost and
  the transit allowance) has decayed.

Either way the simulator counts no rate-limit rejection.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from orchestrator.clock import RealClock
from orchestrator.config import LimitsConfig
from orchestrator.errors import LimiterUnavailable, OrchestratorError, RateLimited
from orchestrator.exchange.kraken.account import KrakenDomain
from orchestrator.exchange.protocol import OrderRef, OrderSpec
from orchestrator.simulator.app import RunningSimulator, open_simulator
from orchestrator.store.connection import redis_client
from tests.redis_process import RedisProcess, own_redis_server
from tests.sim_domains import domain_settings, open_sim_domain, sim_config

PAIR = "XBT/USD"
LIVE = ["s0", "s1", "s2"]  # the three trading processes, an account each
LATE = "s3"  # the fourth process's own account before the restart
WARM_S = 1.5  # trading before the restart


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    with own_redis_server() as server:
        yield server


@dataclass
class Trader:
    """One process's trading loop on one account: place, then cancel at once (1 + 8 a round)."""

    domain: KrakenDomain
    account: str
    pause_s: float
    grants: list[float] = field(default_factory=list)  # when each place came back (time.time())
    refusals: Counter[str] = field(default_factory=Counter)
    granted: asyncio.Event = field(default_factory=asyncio.Event)  # set at the first grant
    stopped: bool = False

    async def run(self) -> None:
        trading = self.domain.account(self.account).trading
        instrument = self.domain.instruments.get(PAIR)
        open_refs: list[OrderRef] = []
        n = 0
        while not self.stopped:
            for ref in list(open_refs):
                with contextlib.suppress(RateLimited, LimiterUnavailable):
                    await trading.cancel(ref)
                    open_refs.remove(ref)
            n += 1
            spec = OrderSpec(instrument=instrument, side="buy", order_type="limit",
                             volume=Decimal("0.0001"), price=Decimal("30000.0"),
                             cl_ord_id=f"{self.account}-{id(self) % 10_000}-{n}")  # fmt: skip
            try:
                open_refs.append(await trading.place(spec))
            except OrchestratorError as exc:  # refused by the limiter (or Redis was away)
                self.refusals[type(exc).__name__] += 1
                await asyncio.sleep(0.02)
                continue
            self.grants.append(time.time())
            self.granted.set()
            await asyncio.sleep(self.pause_s)

    def first_grant_after(self, at_s: float) -> float:
        return min((t for t in self.grants if t >= at_s), default=float("inf"))


@contextlib.asynccontextmanager
async def trading(trader: Trader) -> AsyncIterator[Trader]:
    task = asyncio.create_task(trader.run())
    try:
        yield trader
    finally:
        trader.stopped = True
        await asyncio.wait_for(task, timeout=10)


@contextlib.asynccontextmanager
async def process(sim: RunningSimulator, server: RedisProcess) -> AsyncIterator[KrakenDomain]:
    """One process: its own Redis connection and the product's wiring (limiter and watcher)."""
    redis = redis_client(server.url, socket_connect_timeout=0.3, socket_timeout=0.5)
    try:
        async with open_sim_domain(sim, redis, RealClock(), config=sim_config(sim)) as domain:
            yield domain
    finally:
        await redis.aclose()


async def restart_empty(server: RedisProcess) -> tuple[float, float]:
    """Kill redis-server and start it again with nothing (the processes run on meanwhile):
    (when it died, when it answered again)."""
    killed_s = time.time()
    await asyncio.to_thread(server.kill)
    await asyncio.to_thread(server.start)
    return killed_s, time.time()


async def test_live_processes_hand_back_their_floors_and_new_risk_resumes(
    own_redis: RedisProcess,
) -> None:
    async with open_simulator(domain_settings(4)) as sim, contextlib.AsyncExitStack() as stack:
        domains = [await stack.enter_async_context(process(sim, own_redis)) for _ in range(4)]
        # Each spends its counter faster than it decays (2.34/s): well used, not yet full.
        traders = [Trader(d, a, pause_s=0.6) for d, a in zip(domains[1:3], LIVE[1:], strict=True)]
        for trader in traders:
            await stack.enter_async_context(trading(trader))
        async with trading(Trader(domains[0], LIVE[0], pause_s=0.3)), \
                trading(Trader(domains[3], LATE, pause_s=0.6)):  # fmt: skip
            await asyncio.sleep(WARM_S)
        # s0's process lives on but no longer trades: only its watcher can hand s0 back.
        killed_s, restarted_s = await restart_empty(own_redis)
        # The fourth asks greedily on s0, which it never saw: what s0's process knew must hold.
        late = await stack.enter_async_context(trading(Trader(domains[3], LIVE[0], pause_s=0.0)))
        await asyncio.sleep(3.0)
        for trader in (*traders, late):
            trader.stopped = True
        lost_s = domains[3].limiter.epoch.lost_s
        first_s = min(t.first_grant_after(restarted_s) for t in traders)
        late_first_s = late.first_grant_after(restarted_s)
        print(f"restart->lost_s {lost_s - restarted_s:+.3f} s; first new-risk grant "
              f"{first_s - restarted_s:.3f} s after the restart, on s0 (late, never saw it) "
              f"{late_first_s - restarted_s:.3f} s, {len(late.grants)} grants in 3 s; "
              f"refusals {dict(late.refusals)}")  # fmt: skip
        assert lost_s >= killed_s  # every process is in the epoch begun at the loss
        assert {d.limiter.epoch.id for d in domains} == {domains[3].limiter.epoch.id}
        assert first_s - restarted_s < 2.0
        assert late_first_s - restarted_s < 2.0
        assert sim.venue.limits.rejections() == {}


async def test_a_counter_nobody_knows_is_full_until_its_room_has_decayed(
    own_redis: RedisProcess,
) -> None:
    limits = LimitsConfig()
    async with open_simulator(domain_settings(4)) as sim, contextlib.AsyncExitStack() as stack:
        domains = [await stack.enter_async_context(process(sim, own_redis)) for _ in range(3)]
        scope = domains[0].limiter.policy.trade_scope(LIVE[0], PAIR)
        for domain, account in zip(domains[1:], LIVE[1:], strict=True):
            await stack.enter_async_context(trading(Trader(domain, account, pause_s=0.6)))
        late_domain = domains[2]
        # s0's own process fills its counter, then stops: its floors go with it.
        async with process(sim, own_redis) as gone:
            async with trading(Trader(gone, LIVE[0], pause_s=0.0)) as filler:
                await asyncio.sleep(WARM_S)
            print(f"s0 filled with {len(filler.grants)} orders")
        killed_s, restarted_s = await restart_empty(own_redis)
        late = await stack.enter_async_context(trading(Trader(late_domain, LIVE[0], pause_s=0.0)))
        room_s = (scope.threshold * limits.risk_reserve_fraction + 1) / scope.decay_per_s
        worst_s = room_s + limits.transit_allowance_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(late.granted.wait(), timeout=worst_s + 5.0)
        late.stopped = True
        lost_s = late_domain.limiter.epoch.lost_s
        first_s = late.first_grant_after(restarted_s)
        print(f"restart->lost_s {lost_s - restarted_s:+.3f} s; worst case {worst_s:.3f} s; "
              f"first grant on s0 {first_s - lost_s:.3f} s after the loss; "
              f"refusals {dict(late.refusals)}")  # fmt: skip
        assert lost_s >= killed_s
        assert first_s >= lost_s + worst_s
        assert first_s < lost_s + worst_s + 2.0  # and not much later
        assert sim.venue.limits.rejections() == {}

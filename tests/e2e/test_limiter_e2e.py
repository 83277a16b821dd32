"""Eight strategies on eight sub-accounts at full demand, through the shared limiter, against the
simulator: the venue refuses nothing for rate limits, and the domain pool is well used."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from decimal import Decimal

import redis.asyncio as aioredis

from orchestrator.clock import RealClock
from orchestrator.errors import RateLimited
from orchestrator.exchange.kraken.spot.trading import KrakenTrading
from orchestrator.exchange.protocol import OrderRef, OrderSpec
from orchestrator.simulator.app import open_simulator
from orchestrator.store.keys import Keys
from tests.sim_domains import domain_settings, open_sim_domain, sim_config

STRATEGIES = 8
RUN_S = 6.0


async def run_strategy(
    trading: KrakenTrading, name: str, stop_at: float, stats: dict[str, int]
) -> None:
    """Place far-away limit orders as fast as permitted; cancel the oldest once 10 rest."""
    resting: deque[OrderRef] = deque()
    instrument = trading.instruments.get("XBT/USD")
    while time.monotonic() < stop_at:
        try:
            if len(resting) >= 10:
                # Priced from the reply's time: never older than the venue thinks, so never cheaper.
                await trading.cancel(resting.popleft())
                stats["cancels"] += 1
            else:
                spec = OrderSpec(instrument=instrument, side="buy", order_type="limit",
                                 volume=Decimal("0.0001"), price=Decimal("30000.0"),
                                 cl_ord_id=f"{name}-{stats['adds']}")  # fmt: skip
                resting.append(await trading.place(spec))
                stats["adds"] += 1
        except RateLimited as exc:  # demand beyond the pool: back off as told, never poll
            stats["limited"] += 1
            await asyncio.sleep(min(exc.wait_s, max(0.0, stop_at - time.monotonic())))


async def test_eight_strategies_full_demand_zero_rejections(redis_server: str, keys: Keys) -> None:
    async with open_simulator(domain_settings(STRATEGIES)) as sim:
        redis = aioredis.Redis.from_url(redis_server)
        strategies = [{"name": f"st{i}", "module": "strategies.example", "account": f"s{i}",
                       "pairs": ["XBT/USD"]} for i in range(STRATEGIES)]  # fmt: skip
        config = sim_config(sim, namespace=keys.namespace, strategies=strategies)
        stats = {"adds": 0, "cancels": 0, "limited": 0}
        async with open_sim_domain(sim, redis, RealClock(), config=config) as domain:
            stop_at = time.monotonic() + RUN_S
            await asyncio.gather(*(run_strategy(domain.account(f"s{i}").trading, f"st{i}", stop_at,
                                                stats) for i in range(STRATEGIES)))  # fmt: skip
        state = sim.venue.limits.rejections()
        await redis.aclose()
    assert state == {}, f"the venue refused for rate limits: {state}"
    # Pool capacity over the run (with the 10% reserve kept for cancels): the limiter should
    # have used most of it. adds cost 1, cancels of orders under 5 s cost 8.
    used = stats["adds"] + 8 * stats["cancels"]
    capacity = 625 * 0.9 + 11.7 * RUN_S
    assert used >= 0.5 * capacity, (stats, capacity)

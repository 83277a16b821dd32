"""Eight strategies on eight sub-accounts at full demand, through the shared limiter, against the
simulator: the venue refuses nothing for rate limits, and the domain pool is well used."""

from __future__ import annotations

import asyncio
import time
from collections import deque

import aiohttp
import redis.asyncio as aioredis

from orchestrator.clock import RealClock
from orchestrator.config import LimitsConfig
from orchestrator.errors import RateLimited
from orchestrator.exchange.kraken.common.nonce import LocalNonce
from orchestrator.exchange.kraken.spot.rest import KrakenRest
from orchestrator.metrics import Registry
from orchestrator.ratelimit.policy import Policy, VenueRequest
from orchestrator.ratelimit.redis import Limiter
from orchestrator.simulator.app import open_simulator
from orchestrator.store.keys import Keys
from tests.sim_domains import credentials_of, domain_settings

STRATEGIES = 8
RUN_S = 6.0
PAIR = "XBT/USD"


async def run_strategy(rest: KrakenRest, stop_at: float, stats: dict[str, int]) -> None:
    """Place far-away limit orders as fast as permitted; cancel the oldest once 10 rest."""
    resting: deque[tuple[str, float]] = deque()
    order = {
        "pair": "XBTUSD",
        "type": "buy",
        "ordertype": "limit",
        "volume": "0.0001",
        "price": "30000.0",
    }
    while time.monotonic() < stop_at:
        try:
            if len(resting) >= 10:
                txid, placed_s = resting.popleft()
                # Age measured from the reply: never older than the venue thinks, so never cheaper.
                age_s = time.monotonic() - placed_s
                await rest.private("CancelOrder", {"txid": txid},
                                   request=VenueRequest(method="CancelOrder", pair=PAIR, order_ages_s=(age_s,)))  # fmt: skip
                stats["cancels"] += 1
            else:
                result = await rest.private(
                    "AddOrder", order, request=VenueRequest(method="AddOrder", pair=PAIR)
                )
                resting.append((result["txid"][0], time.monotonic()))
                stats["adds"] += 1
        except RateLimited as exc:  # demand beyond the pool: back off as told, never poll
            stats["limited"] += 1
            await asyncio.sleep(min(exc.wait_s, max(0.0, stop_at - time.monotonic())))


async def test_eight_strategies_full_demand_zero_rejections(redis_server: str, keys: Keys) -> None:
    async with (
        open_simulator(domain_settings(STRATEGIES)) as sim,
        aiohttp.ClientSession() as session,
    ):
        redis = aioredis.Redis.from_url(redis_server)
        limits = LimitsConfig()
        weights = {f"st{i}": 1.0 for i in range(STRATEGIES)}
        limiter = Limiter(redis, keys, Policy("intermediate", limits), RealClock(), limits=limits,
                          weights=weights, registry=Registry())  # fmt: skip
        clients = []
        for i in range(STRATEGIES):
            credentials = credentials_of(sim, f"s{i}")
            clients.append(KrakenRest(session, sim.rest_url, account=f"s{i}", credentials=credentials,
                                      nonce=LocalNonce(), limiter=limiter, strategy=f"st{i}"))  # fmt: skip
        stats = {"adds": 0, "cancels": 0, "limited": 0}
        stop_at = time.monotonic() + RUN_S
        await asyncio.gather(*(run_strategy(c, stop_at, stats) for c in clients))
        state = sim.venue.limits.rejections()
        await redis.aclose()
    assert state == {}, f"the venue refused for rate limits: {state}"
    # Pool capacity over the run (with the 10% reserve kept for cancels): the limiter should
    # have used most of it. adds cost 1, cancels of orders under 5 s cost 8.
    used = stats["adds"] + 8 * stats["cancels"]
    capacity = 625 * 0.9 + 11.7 * RUN_S
    assert used >= 0.5 * capacity, (stats, capacity)

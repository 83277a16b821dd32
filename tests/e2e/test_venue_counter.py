"""Budget spent outside the limiter (another tool on the same account, with its own key) stops
causing rejections once the venue's own counter feeds the limiter (`executions` with
`ratecounter`, `ratelimit/venue_counter.py`); without the feed the same run is refused."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import aiohttp
import redis.asyncio as aioredis

from orchestrator.clock import RealClock
from orchestrator.errors import RateLimited, VenueRateLimited
from orchestrator.exchange.kraken.spot.trading import KrakenTrading
from orchestrator.exchange.kraken.ws.private import open_private_ws
from orchestrator.exchange.protocol import OrderSpec
from orchestrator.metrics import Registry
from orchestrator.ratelimit.venue_counter import VenueCounterSync
from orchestrator.simulator.app import RunningSimulator, open_simulator
from orchestrator.store.keys import Keys
from tests.sim_domains import domain_settings, open_sim_domain, sim_config
from tests.unit.simulator.conftest import SimClient

ACCOUNT = "s0"
OUTSIDE_ROUNDS = 7  # add + cancel under 5 s old: 1 + 8 each, 63 of the tier's 125
ADDS = 75  # beyond what is left at the venue (~62 + decay) but within the limiter's 112
RUN_S = 16.0


async def spend_outside(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    """Another tool on the account: its own key, plain signed REST, no limiter."""
    first = sim.venue.keys_of(ACCOUNT)[0]
    other = SimClient(http, sim, sim.venue.add_key(ACCOUNT, None, None, tuple(first.permissions)))
    for _ in range(OUTSIDE_ROUNDS):
        placed = await other.ok("AddOrder", pair="XBTUSD", type="buy", ordertype="limit",
                                volume="0.0001", price="30000.0")  # fmt: skip
        await other.ok("CancelOrder", txid=placed["txid"][0])


async def greedy(trading: KrakenTrading, stop_at: float) -> dict[str, int]:
    """Place resting orders as fast as the limiter permits, `ADDS` of them or until refused."""
    stats = {"adds": 0, "venue_refused": 0, "limiter_refused": 0}
    instrument = trading.instruments.get("XBT/USD")
    while stats["adds"] < ADDS and time.monotonic() < stop_at:
        spec = OrderSpec(instrument=instrument, side="buy", order_type="limit",
                         volume=Decimal("0.0001"), price=Decimal("30000.0"),
                         cl_ord_id=f"g-{stats['adds']}-{stats['venue_refused']}")  # fmt: skip
        try:
            await trading.place(spec)
            stats["adds"] += 1
        except VenueRateLimited:
            stats["venue_refused"] += 1
        except RateLimited:  # the scope is full for longer than a permit may wait
            stats["limiter_refused"] += 1
            break
    return stats


async def run(redis_server: str, namespace: str, *, feed: bool) -> tuple[dict[str, int], int]:
    """One account, outside spending, then the greedy loop; (its stats, venue rejections)."""
    clock = RealClock()
    async with open_simulator(domain_settings(1)) as sim:
        redis = aioredis.Redis.from_url(redis_server)
        config = sim_config(sim, namespace=namespace)
        async with (
            open_sim_domain(sim, redis, clock, config=config) as domain,
            aiohttp.ClientSession() as http,
        ):
            account = domain.account(ACCOUNT)
            sync = VenueCounterSync(domain.limiter, account=ACCOUNT,
                                    instruments=domain.instruments, registry=Registry())  # fmt: skip
            ws = open_private_ws(account, sim.ws_private_url, clock=clock,
                                 on_execution=lambda _: None, on_balance=lambda _: None,
                                 on_ratecount=sync.offer if feed else None)  # fmt: skip
            async with asyncio.TaskGroup() as tg:
                socket = tg.create_task(ws.run())
                syncing = tg.create_task(sync.run())
                await ws.wait_connected(timeout_s=5.0)
                await spend_outside(sim, http)
                await asyncio.sleep(0.3)  # the reports cross the socket (when asked for)
                stats = await greedy(account.trading, time.monotonic() + RUN_S)
                syncing.cancel()
                await ws.close()
                await socket
            stats["resyncs"] = int(sync.raised.get(ACCOUNT))
            async with http.get(sim.rest_url + "/admin/state") as response:
                rejections = int((await response.json())["rate_limit_rejections"])
        await redis.aclose()
    return stats, rejections


async def test_the_venue_counter_feed_turns_outside_spending_into_no_rejections(
    redis_server: str, keys: Keys
) -> None:
    stats, rejections = await run(redis_server, keys.namespace + "on", feed=True)
    print("feed on:", stats, "rejections", rejections)
    assert stats["resyncs"] >= 1
    assert (stats["adds"], rejections) == (ADDS, 0)
    stats, rejections = await run(redis_server, keys.namespace + "off", feed=False)
    print("feed off:", stats, "rejections", rejections)
    assert stats["resyncs"] == 0
    assert rejections >= 1
    assert stats["venue_refused"] == rejections

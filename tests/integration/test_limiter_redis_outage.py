"""Redis killed mid-run and restarted empty: new risk stops (nothing reaches the venue), cancels
still flow on the local budget, the venue sees no rate-limit rejection, and service resumes soon
after Redis returns, with the counters no emptier than this process knew them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest

from orchestrator.clock import RealClock
from orchestrator.errors import LimiterUnavailable
from orchestrator.exchange.kraken.account import KrakenDomain
from orchestrator.exchange.protocol import OrderRef, OrderSpec
from orchestrator.simulator.app import open_simulator
from orchestrator.store.connection import redis_client
from tests.redis_process import RedisProcess, own_redis_server
from tests.sim_domains import domain_settings, open_sim_domain


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    with own_redis_server() as server:
        yield server


async def place(domain: KrakenDomain, cl_ord_id: str) -> OrderRef:
    spec = OrderSpec(instrument=domain.instruments.get("XBT/USD"), side="buy",
                     order_type="limit", volume=Decimal("0.0001"), price=Decimal("30000.0"),
                     cl_ord_id=cl_ord_id)  # fmt: skip
    return await domain.account("s0").trading.place(spec)


async def test_redis_outage(own_redis: RedisProcess) -> None:
    redis = redis_client(own_redis.url, socket_connect_timeout=0.3, socket_timeout=0.5)
    async with open_simulator(domain_settings(2)) as sim, \
            open_sim_domain(sim, redis, RealClock()) as domain:  # fmt: skip
        refs = [await place(domain, f"o-{i}") for i in range(6)]

        own_redis.kill()
        with pytest.raises(LimiterUnavailable):
            await place(domain, "refused")
        orders_before = len(sim.venue.engine.orders)
        for ref in refs[:3]:  # cancels still flow, on the local budget
            assert await domain.account("s0").trading.cancel(ref) is True
        assert domain.limiter.metrics.permits.get("risk_reducing", "local") == 3
        assert len(sim.venue.engine.orders) == orders_before  # no new risk reached the venue

        own_redis.start()
        returned_s = time.monotonic()
        while True:
            try:
                await place(domain, "after")
                break
            except LimiterUnavailable:
                assert time.monotonic() - returned_s < 5.0, "service did not resume within 5 s"
                await asyncio.sleep(0.1)
        # The restarted Redis holds this process's last view: nothing below what was spent.
        level = await domain.limiter.level(domain.limiter.policy.trade_scope("s0", "XBT/USD"))
        assert level > 0
        assert sim.venue.limits.rejections() == {}
        assert sim.venue.request_counts.get("error:EAPI:Invalid nonce", 0) == 0
    await redis.aclose()

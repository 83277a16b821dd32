"""Redis dies with orders open: cancels still reach the venue, with the nonce and the key mutex
in Redis (the multi-process setup). The nonce falls back to a local source above anything Redis
handed out, the key lock to a local lock, the limiter to its local cancel budget."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest

from orchestrator.clock import RealClock
from orchestrator.errors import LimiterUnavailable
from orchestrator.exchange.protocol import OrderRef, OrderSpec
from orchestrator.simulator.app import open_simulator
from orchestrator.store.connection import redis_client
from orchestrator.store.keys import Keys
from tests.redis_process import RedisProcess, own_redis_server
from tests.sim_domains import domain_settings, open_sim_domain, sim_config


@pytest.fixture
def server() -> Iterator[RedisProcess]:
    with own_redis_server() as running:
        yield running


def fallbacks(caplog: pytest.LogCaptureFixture, event: str) -> list[dict[str, object]]:
    """The fields of each `<part>.local_fallback` record: a part leaving Redis for its local
    stand-in says so once, when it does."""
    return [r.__dict__["fields"] for r in caplog.records if r.getMessage() == event]


async def test_redis_killed_with_ten_orders_open_cancel_all_reaches_the_venue(
    server: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="orchestrator")
    redis = redis_client(server.url, socket_connect_timeout=0.3, socket_timeout=0.5)
    async with open_simulator(domain_settings(2)) as sim, \
            open_sim_domain(sim, redis, RealClock()) as domain:  # fmt: skip
        instrument = domain.instruments.get("XBT/USD")
        refs = {
            name: [
                await domain.account(name).trading.place(
                    OrderSpec(
                        instrument=instrument,
                        side="buy",
                        order_type="limit",
                        volume=Decimal("0.001"),
                        price=Decimal(30000 + i),
                        cl_ord_id=f"{name}-{i}",
                    )
                )
                for i in range(5)
            ]
            for name in ("s0", "s1")
        }
        assert sum(len(sim.venue.engine.open_orders(a)) for a in refs) == 10
        permits = domain.limiter.metrics.permits
        assert permits.get("risk_reducing", "local") == 0
        assert fallbacks(caplog, "nonce.local_fallback") == []
        assert fallbacks(caplog, "key_lock.local_fallback") == []

        server.kill()
        started_s = time.monotonic()
        counts = await asyncio.gather(
            *(domain.account(name).trading.cancel_all(refs[name]) for name in refs)
        )
        elapsed_s = time.monotonic() - started_s
        assert counts == [5, 5]
        assert all(sim.venue.engine.open_orders(a) == {} for a in refs)
        assert elapsed_s < 2.0
        assert sim.venue.request_counts.get("error:EAPI:Invalid nonce", 0) == 0
        assert sim.venue.limits.rejections() == {}
        # The path taken was the local one: the limiter's cancel budget granted both cancel-alls,
        # and each account's key took its nonce and its lock locally (each says so once).
        assert permits.get("risk_reducing", "local") == 2
        assert permits.get("risk_reducing", "redis") == 0
        keys = Keys(sim_config(sim).redis.namespace)  # the namespace open_sim_domain wires
        nonce_keys = {keys.nonce(domain.account(name).rest.key_id) for name in refs}
        assert sorted(str(f["key"]) for f in fallbacks(caplog, "nonce.local_fallback")) == sorted(
            nonce_keys
        )
        assert len(fallbacks(caplog, "key_lock.local_fallback")) == len(refs)
        with pytest.raises(LimiterUnavailable):  # new risk stays out while Redis is down
            await domain.account("s0").trading.place(
                OrderSpec(
                    instrument=instrument,
                    side="buy",
                    order_type="limit",
                    volume=Decimal("0.001"),
                    price=Decimal(30000),
                    cl_ord_id="after",
                )
            )
    await redis.aclose()


async def test_redis_hung_cancels_still_reach_the_venue_promptly(server: RedisProcess) -> None:
    """Redis stopped (SIGSTOP: it accepts nothing, refuses nothing), with the product's 2 s
    socket timeout: a cancel-all and five concurrent cancels on one key all land within 3 s,
    not a socket timeout per Redis call in turn."""
    redis = redis_client(server.url, socket_connect_timeout=2.0, socket_timeout=2.0)
    async with open_simulator(domain_settings(2)) as sim, \
            open_sim_domain(sim, redis, RealClock()) as domain:  # fmt: skip
        instrument = domain.instruments.get("XBT/USD")

        async def place(name: str, i: int) -> OrderRef:
            spec = OrderSpec(instrument=instrument, side="buy", order_type="limit",
                             volume=Decimal("0.001"), price=Decimal(30000 + i),
                             cl_ord_id=f"hung-{name}-{i}")  # fmt: skip
            return await domain.account(name).trading.place(spec)

        s0 = [await place("s0", i) for i in range(5)]
        s1 = [await place("s1", i) for i in range(5)]
        server.pause()
        try:
            started_s = time.monotonic()
            results = await asyncio.gather(
                domain.account("s0").trading.cancel_all(s0),
                *(domain.account("s1").trading.cancel(ref) for ref in s1),
            )
            elapsed_s = time.monotonic() - started_s
        finally:
            server.resume()
        assert results == [5, True, True, True, True, True]
        assert all(sim.venue.engine.open_orders(a) == {} for a in ("s0", "s1"))
        assert elapsed_s < 3.0, elapsed_s
        assert sim.venue.request_counts.get("error:EAPI:Invalid nonce", 0) == 0
        assert sim.venue.limits.rejections() == {}
    await redis.aclose()

"""Many strategies in one process acquire at once through the client the product builds
(`store.connection.connect`): a busy connection pool makes callers wait for a connection, it
never reads as "Redis unreachable" (which would refuse every new order for `retry_after_s`)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from orchestrator.clock import RealClock
from orchestrator.config import LimitsConfig, RedisConfig
from orchestrator.errors import LimiterUnavailable, StoreUnavailable
from orchestrator.metrics import Registry
from orchestrator.ratelimit.policy import Charge, Policy
from orchestrator.ratelimit.redis import Limiter
from orchestrator.store.connection import connect, redis_client
from orchestrator.store.errors import redis_errors
from orchestrator.store.keys import Keys

STRATEGIES = 200
ROUNDS = 5


async def test_200_strategies_acquiring_at_once_are_never_refused_for_the_pool(
    redis_server: str,
) -> None:
    client = await connect(redis_server, RedisConfig(url=redis_server))
    limits = LimitsConfig()
    names = [f"s{i}" for i in range(STRATEGIES)]
    limiter = Limiter(client, Keys(f"pool{uuid.uuid4().hex[:8]}"), Policy("pro", limits),
                      RealClock(), limits=limits, weights=dict.fromkeys(names, 1.0),
                      registry=Registry())  # fmt: skip
    unavailable = 0

    async def strategy(index: int) -> None:
        nonlocal unavailable
        pair = f"P{index}/USD"  # a pair each: no strategy waits on another's counter
        charges = [
            Charge(limiter.policy.trade_scope(names[index], pair), 1),
            Charge(limiter.policy.domain_scope(pair), 1),
        ]
        for _ in range(ROUNDS):
            try:
                await limiter.acquire(charges, lane="new_risk", deadline_s=5,
                                      strategy=names[index])  # fmt: skip
            except LimiterUnavailable:
                unavailable += 1

    try:
        await asyncio.gather(*(strategy(i) for i in range(STRATEGIES)))
    finally:
        await client.aclose()
    assert unavailable == 0
    assert limiter.metrics.permits.get("new_risk", "redis") == STRATEGIES * ROUNDS


async def test_a_full_pool_waits_for_a_connection_then_is_unavailable(redis_server: str) -> None:
    client = redis_client(redis_server, max_connections=2, pool_timeout_s=0.2)
    key = f"pool{uuid.uuid4().hex[:8]}"
    # Twenty callers on two connections: each waits its turn, none fails.
    counts = await asyncio.gather(*(client.incr(key) for _ in range(20)))
    assert sorted(counts) == list(range(1, 21))
    # Both connections held (blocking pops) past the wait: the next caller is told so.
    holders = [asyncio.ensure_future(client.blpop([f"{key}:never"], timeout=1)) for _ in range(2)]
    await asyncio.sleep(0.1)
    with pytest.raises(StoreUnavailable, match="No connection available"):
        async with redis_errors(client, "test.incr"):
            await client.incr(key)
    assert await asyncio.gather(*holders) == [None, None]
    await client.aclose()

"""A failover seen from a client still connected to the old primary, now a replica: `READONLY`
is "unavailable, reconnect" (never a crash), and once a primary answers at that address again the
next calls reconnect and service resumes."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator

import pytest

from orchestrator.clock import RealClock
from orchestrator.config import LimitsConfig
from orchestrator.errors import LimiterUnavailable, StoreUnavailable
from orchestrator.metrics import Registry
from orchestrator.ratelimit.policy import Charge, Policy, Scope
from orchestrator.ratelimit.redis import Limiter
from orchestrator.store.connection import Redis, redis_client
from orchestrator.store.embedded import free_port, open_embedded_redis
from orchestrator.store.errors import redis_errors
from orchestrator.store.keys import Keys

SCOPE = Scope("domain:XBT/USD", 100.0, 10.0)


@pytest.fixture
async def own_redis() -> AsyncIterator[str]:
    """A private redis-server: this test turns it into a replica and back."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    async with open_embedded_redis() as embedded:
        yield embedded.url


async def demote(admin: Redis) -> None:
    """The server becomes a replica (of nobody listening): it refuses writes with READONLY."""
    await admin.replicaof("127.0.0.1", free_port())


async def test_readonly_after_a_failover_reconnects(own_redis: str) -> None:
    admin, client = redis_client(own_redis), redis_client(own_redis)
    limits = LimitsConfig()
    limiter = Limiter(client, Keys(f"ro{uuid.uuid4().hex[:8]}"), Policy("intermediate", limits),
                      RealClock(), limits=limits, registry=Registry(), retry_after_s=0.05)  # fmt: skip
    await limiter.acquire([Charge(SCOPE, 1)], lane="new_risk", deadline_s=0)
    first_id = await client.client_id()

    await demote(admin)
    with pytest.raises(StoreUnavailable, match="replica"):
        async with redis_errors(client, "test.set"):
            await client.set("k", "v")
    with pytest.raises(LimiterUnavailable):
        await limiter.acquire([Charge(SCOPE, 1)], lane="new_risk", deadline_s=0)
    cancel = await limiter.acquire([Charge(SCOPE, 1)], lane="risk_reducing", deadline_s=1)
    assert cancel.fallback

    await admin.replicaof("NO", "ONE")  # a primary at that address again
    await asyncio.sleep(limiter.retry_after_s)
    permit = await limiter.acquire([Charge(SCOPE, 1)], lane="new_risk", deadline_s=0)
    assert not permit.fallback
    assert await client.client_id() != first_id  # the replica's connection was dropped
    await client.aclose()
    await admin.aclose()

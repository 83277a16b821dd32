"""The shared nonce's fallback: above anything Redis handed out, and Redis resumes above it."""

from __future__ import annotations

import time
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from orchestrator.clock import ManualClock
from orchestrator.exchange.kraken.common.nonce import SharedNonce
from orchestrator.metrics import Registry
from orchestrator.store.health import RedisHealth
from orchestrator.store.keys import Keys

AHEAD_US = 30_000_000  # Redis's clock 30 s ahead of ours: other processes got nonces that high


class ScriptedRedis:
    """Stands in for redis-py: the allocation script answers from Redis's (skewed) clock, or
    fails with `failure`; it records the floor each call carried."""

    def __init__(self) -> None:
        self.failure: Exception | None = None
        self.floors: list[int] = []
        self.last = 0

    def register_script(self, source: str) -> Any:
        async def run(*, keys: list[str], args: list[int]) -> str:
            if self.failure is not None:
                raise self.failure
            self.floors.append(int(args[0]))
            now_us = time.time_ns() // 1000 + AHEAD_US
            self.last = max(now_us, self.last + 1, int(args[0]) + 1)
            return str(self.last)

        return run


@pytest.mark.parametrize(
    "failure", [RedisConnectionError("refused"), ResponseError("BUSY running a script")]
)
async def test_local_nonces_stay_above_redis_and_redis_resumes_above_them(
    failure: Exception,
) -> None:
    redis = ScriptedRedis()
    health = RedisHealth(ManualClock(), Registry(), retry_after_s=0.0)  # ask Redis every time
    nonce = SharedNonce(redis, Keys("t"), "k", health)  # type: ignore[arg-type]
    from_redis = [await nonce.next() for _ in range(3)]
    redis.failure = failure
    local = [await nonce.next() for _ in range(3)]  # Redis down (or refusing)
    assert local == sorted(set(local))
    # Anything another process got from Redis up to the outage was at most Redis's clock then,
    # 30 s ahead of ours: the local nonces keep that lead.
    assert local[0] > max(from_redis)
    assert local[0] > time.time_ns() // 1000 + AHEAD_US - 1_000_000
    redis.failure = None
    resumed = await nonce.next()
    assert redis.floors[-1] == local[-1]  # Redis is told what was sent without it
    assert resumed > local[-1]

"""The shared mutex on fakeredis: a lost lease never raises after the block ran, a busy mutex
says so within the wait, and Redis refusing is a StoreError before the block."""

from __future__ import annotations

import fakeredis
import pytest
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from orchestrator.errors import StoreError, StoreUnavailable
from orchestrator.store.mutex import MutexBusy, RedisMutex


async def test_a_lost_lease_never_raises_after_the_block(
    fake_redis: fakeredis.FakeAsyncRedis,
) -> None:
    mutex = RedisMutex(fake_redis, "m", lease_s=5.0)
    ran = False
    async with mutex.hold(wait_s=1.0):
        await fake_redis.delete("m")  # a restart, a flush or a failover lost the lease
        ran = True
    assert ran


async def test_a_held_mutex_is_busy_for_another_holder(
    fake_redis: fakeredis.FakeAsyncRedis,
) -> None:
    first, second = (
        RedisMutex(fake_redis, "m", lease_s=5.0),
        RedisMutex(fake_redis, "m", lease_s=5.0),
    )
    async with first.hold(wait_s=1.0):
        with pytest.raises(MutexBusy):
            async with second.hold(wait_s=0.05):
                pass
    async with second.hold(wait_s=0.05):  # released: free at once
        pass


async def test_redis_refusing_is_a_store_error_before_the_block(
    fake_redis: fakeredis.FakeAsyncRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def busy(*args: object, **kwargs: object) -> object:
        raise ResponseError("BUSY Redis is busy running a script")

    monkeypatch.setattr(fake_redis, "set", busy)
    with pytest.raises(StoreError, match="BUSY"):
        async with RedisMutex(fake_redis, "m", lease_s=5.0).hold(wait_s=0.1):
            pytest.fail("the block must not run")


async def test_a_lease_whose_reply_was_lost_is_undone(
    fake_redis: fakeredis.FakeAsyncRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SET landed, its reply did not: left alone, the lease would block every process for
    a whole lease; the mutex frees it at once (it knows its own token)."""
    real_set = fake_redis.set

    async def set_then_lose_reply(*args: object, **kwargs: object) -> object:
        await real_set(*args, **kwargs)  # type: ignore[arg-type]
        raise RedisTimeoutError("Timeout reading from socket")

    monkeypatch.setattr(fake_redis, "set", set_then_lose_reply)
    with pytest.raises(StoreUnavailable):
        async with RedisMutex(fake_redis, "m", lease_s=30.0).hold(wait_s=0.1):
            pytest.fail("the block must not run")
    assert await fake_redis.exists("m") == 0

"""The shared mutex on fakeredis: a lost lease never raises after the block ran, a busy mutex
says so within the wait, Redis refusing is a StoreError before the block, and waiters are
served in the order they came."""

from __future__ import annotations

import asyncio

import fakeredis
import pytest
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from orchestrator.errors import StoreError, StoreUnavailable
from orchestrator.store.mutex import MutexBusy, RedisMutex


async def test_a_lost_lease_never_raises_after_the_block(
    fake_redis: fakeredis.FakeAsyncRedis,
) -> None:
    mutex = RedisMutex(fake_redis, "m", queue="m:q", lease_s=5.0)
    ran = False
    async with mutex.hold(wait_s=1.0):
        await fake_redis.delete("m")  # a restart, a flush or a failover lost the lease
        ran = True
    assert ran


async def test_a_held_mutex_is_busy_for_another_holder(
    fake_redis: fakeredis.FakeAsyncRedis,
) -> None:
    first, second = (
        RedisMutex(fake_redis, "m", queue="m:q", lease_s=5.0),
        RedisMutex(fake_redis, "m", queue="m:q", lease_s=5.0),
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

    monkeypatch.setattr(fake_redis, "evalsha", busy)
    with pytest.raises(StoreError, match="BUSY"):
        async with RedisMutex(fake_redis, "m", queue="m:q", lease_s=5.0).hold(wait_s=0.1):
            pytest.fail("the block must not run")


async def test_a_lease_whose_reply_was_lost_is_undone(
    fake_redis: fakeredis.FakeAsyncRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SET landed, its reply did not: left alone, the lease would block every process for
    a whole lease; the mutex frees it at once (it knows its own token)."""
    real_evalsha = fake_redis.evalsha

    async def lease_then_lose_reply(*args: object, **kwargs: object) -> object:
        await real_evalsha(*args, **kwargs)  # type: ignore[arg-type]
        raise RedisTimeoutError("Timeout reading from socket")

    monkeypatch.setattr(fake_redis, "evalsha", lease_then_lose_reply)
    with pytest.raises(StoreUnavailable):
        async with RedisMutex(fake_redis, "m", queue="m:q", lease_s=30.0).hold(wait_s=0.1):
            pytest.fail("the block must not run")
    assert await fake_redis.exists("m") == 0


async def test_a_holder_asking_again_queues_behind_the_waiter(
    fake_redis: fakeredis.FakeAsyncRedis,
) -> None:
    """Released and asked for again at once, the mutex goes to the process that was waiting,
    not back to the releaser (which would win every race against the waiter's next poll)."""
    first = RedisMutex(fake_redis, "m", queue="m:q", lease_s=5.0)
    second = RedisMutex(fake_redis, "m", queue="m:q", lease_s=5.0)
    order: list[str] = []
    held = asyncio.Event()

    async def waiter() -> None:
        await held.wait()
        async with second.hold(wait_s=2.0):
            order.append("second")

    task = asyncio.create_task(waiter())
    async with first.hold(wait_s=1.0):
        held.set()
        await asyncio.sleep(0.05)  # the waiter has polled and holds its place
    async with first.hold(wait_s=2.0):
        order.append("first again")
    await task
    assert order == ["second", "first again"]


async def test_a_waiter_that_gives_up_leaves_the_queue(
    fake_redis: fakeredis.FakeAsyncRedis,
) -> None:
    first = RedisMutex(fake_redis, "m", queue="m:q", lease_s=5.0)
    second = RedisMutex(fake_redis, "m", queue="m:q", lease_s=5.0)
    async with first.hold(wait_s=1.0):
        with pytest.raises(MutexBusy):
            async with second.hold(wait_s=0.05):
                pass
        assert await fake_redis.zcard("m:q") == 0  # no place left to hold up the next one
    async with first.hold(wait_s=0.05):  # free at once: nobody queued ahead
        pass

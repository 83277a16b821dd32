"""Heartbeats on a real redis-server: live within `timeout_s` of now (either way), stale ones
kept until they are garbage (10 timeouts old) and then dropped, unless the process beat again
meanwhile; `leave` forgets at once; `run` beats on its clock and rides out a Redis outage."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator

import msgspec
import pytest
import redis.asyncio as aioredis

from orchestrator.clock import ManualClock
from orchestrator.control.peers import Heartbeat, Peers
from orchestrator.errors import StoreUnavailable
from orchestrator.store.connection import redis_client
from orchestrator.store.keys import Keys
from tests.redis_process import RedisProcess, own_redis_server


def heartbeat(process: str, time_s: float) -> Heartbeat:
    return Heartbeat(process=process, pid=42, host="host-1", strategies=["mm1"], running=["mm1"],
                     accounts=["sub1"], rebalancer=process == "A", time_s=time_s)  # fmt: skip


async def test_live_is_within_the_timeout_either_way(
    redis: aioredis.Redis, keys: Keys, clock: ManualClock
) -> None:
    peers = Peers(redis, keys, clock, timeout_s=3.0)
    now_s = clock.time()
    for process, time_s in (
        ("A", now_s),
        ("B", now_s - 2.9),
        ("C", now_s + 2.0),
        ("D", now_s - 3.5),
    ):
        await peers.beat(heartbeat(process, time_s))
    live = await peers.live()
    assert sorted(live) == ["A", "B", "C"]
    assert live["A"] == heartbeat("A", now_s)
    assert await redis.hexists(keys.processes(), "D")  # stale, not garbage yet: kept


async def test_garbage_heartbeats_are_dropped(
    redis: aioredis.Redis, keys: Keys, clock: ManualClock
) -> None:
    peers = Peers(redis, keys, clock, timeout_s=1.0)
    await peers.beat(heartbeat("old", clock.time() - 10.5))
    await peers.beat(heartbeat("stale", clock.time() - 9.0))
    await redis.hset(keys.processes(), "odd", b"not a heartbeat")
    assert await peers.live() == {}
    assert sorted(await redis.hkeys(keys.processes())) == [b"odd", b"stale"]  # unreadable: kept


async def test_a_process_that_beat_meanwhile_is_not_dropped(
    redis: aioredis.Redis, keys: Keys, clock: ManualClock
) -> None:
    """The drop compares the value it read: a fresh beat between the read and the drop stays."""
    peers = Peers(redis, keys, clock, timeout_s=1.0)
    stale = heartbeat("A", clock.time() - 100.0)
    fresh = heartbeat("A", clock.time())
    await redis.hset(keys.processes(), "A", msgspec.json.encode(fresh))
    dropped = await peers._prune(keys=[keys.processes()], args=["A", msgspec.json.encode(stale)])
    assert dropped == 0
    assert sorted(await peers.live()) == ["A"]


async def test_leave_forgets_at_once(redis: aioredis.Redis, keys: Keys, clock: ManualClock) -> None:
    peers = Peers(redis, keys, clock)
    await peers.beat(heartbeat("A", clock.time()))
    await peers.leave("A")
    assert await peers.live() == {}


async def test_run_beats_every_interval(
    redis: aioredis.Redis, keys: Keys, clock: ManualClock
) -> None:
    peers = Peers(redis, keys, clock)
    task = asyncio.create_task(peers.run(lambda: heartbeat("A", clock.time()), interval_s=1.0))
    try:
        for _ in range(3):
            await _until(lambda: clock.sleepers == 1)
            assert (await peers.live())["A"].time_s == clock.time()
            await clock.advance(1.0)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
def server() -> Iterator[RedisProcess]:
    with own_redis_server() as running:
        yield running


async def test_run_rides_out_a_redis_outage(server: RedisProcess, clock: ManualClock) -> None:
    client = redis_client(server.url, socket_timeout=0.5, socket_connect_timeout=0.5)
    keys = Keys("peers")
    peers = Peers(client, keys, clock)
    task = asyncio.create_task(peers.run(lambda: heartbeat("A", clock.time()), interval_s=1.0))
    try:
        await _until(lambda: clock.sleepers == 1)
        server.kill()
        with pytest.raises(StoreUnavailable):
            await peers.live()
        for _ in range(2):  # beats fail, logged, and the loop goes on
            await clock.advance(1.0)
            await _until(lambda: clock.sleepers == 1)
        assert not task.done()
        server.start()
        await clock.advance(1.0)
        await _until(lambda: clock.sleepers == 1)
        assert sorted(await peers.live()) == ["A"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.aclose()


async def _until(condition: Callable[[], bool], within_s: float = 2.0) -> None:
    async with asyncio.timeout(within_s):
        while not condition():  # noqa: ASYNC110 - the loop under test runs on Redis I/O
            await asyncio.sleep(0.005)

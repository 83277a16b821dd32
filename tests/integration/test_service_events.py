"""Service events against a real redis-server that is killed, restarted and hung: publishing
never raises, and what was published meanwhile reaches the stream, in order, once it is back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from orchestrator.clock import RealClock
from orchestrator.metrics import Registry
from orchestrator.service_events import ServiceEvents
from orchestrator.store.connection import redis_client
from orchestrator.store.keys import Keys
from tests.redis_process import RedisProcess, own_redis_server


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    with own_redis_server() as server:
        yield server


async def test_events_survive_a_killed_and_restarted_redis(own_redis: RedisProcess) -> None:
    redis = redis_client(own_redis.url, socket_connect_timeout=0.3, socket_timeout=0.5)
    events = ServiceEvents(redis, Keys("it"), clock=RealClock(), registry=Registry())
    try:
        await events.publish("service.started", strategies=2)
        assert [e["kind"] for e in await events.recent()] == ["service.started"]

        own_redis.kill()
        started_s = time.monotonic()
        await events.publish("strategy.failed", strategy="mm1", reason="on_book raised")
        await events.publish("strategy.stopped", strategy="mm1", cancelled=3)
        assert time.monotonic() - started_s < 3.0  # refused connections: no long waits
        assert events.backlog == 2

        own_redis.start()  # empty: the old server's memory is gone
        await events.publish("strategy.started", strategy="mm2")

        recent = await events.recent()
        assert [e["kind"] for e in recent] == ["strategy.failed", "strategy.stopped",
                                              "strategy.started"]  # fmt: skip
        assert recent[0]["reason"] == "on_book raised"
        assert float(recent[0]["time_s"]) <= float(recent[2]["time_s"])
        assert events.backlog == 0
    finally:
        await redis.aclose()


async def test_a_hung_redis_costs_at_most_the_timeout(own_redis: RedisProcess) -> None:
    redis = redis_client(own_redis.url, socket_connect_timeout=5.0, socket_timeout=5.0)
    events = ServiceEvents(redis, Keys("it"), clock=RealClock(), registry=Registry(),
                           timeout_s=0.3)  # fmt: skip
    try:
        await events.publish("before")
        own_redis.pause()
        started_s = time.monotonic()
        await events.publish("during")
        assert time.monotonic() - started_s < 1.5  # the publish timeout, not the socket's
        own_redis.resume()

        for _ in range(50):  # the cut connection is replaced on the next call
            if await events.flush():
                break
            await asyncio.sleep(0.1)
        kinds = [e["kind"] for e in await events.recent()]
        # At least once: the cut XADD may have landed before the pause took it.
        assert kinds[0] == "before"
        assert set(kinds[1:]) == {"during"}
    finally:
        await redis.aclose()


async def test_the_stream_is_capped(own_redis: RedisProcess) -> None:
    redis = redis_client(own_redis.url)
    events = ServiceEvents(redis, Keys("it"), clock=RealClock(), registry=Registry(), maxlen=10)
    try:
        for i in range(500):
            await events.publish("tick", i=i)
        length = await redis.xlen(Keys("it").service_events())
        assert 10 <= length < 500  # MAXLEN ~: trimmed by whole stream nodes
        [last] = await events.recent(1)
        assert last["i"] == "499"
    finally:
        await redis.aclose()

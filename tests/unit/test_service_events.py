"""Service events on fakeredis: the stream entry, and a publish that never raises while Redis is
down, refusing or hung, keeping events in a bounded backlog flushed in order once it is back."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import fakeredis
import pytest

from orchestrator.clock import ManualClock
from orchestrator.errors import StoreUnavailable
from orchestrator.logs import JsonFormatter, register_secret
from orchestrator.metrics import Registry
from orchestrator.service_events import ServiceEvents
from orchestrator.store.health import RedisHealth
from orchestrator.store.keys import Keys


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
async def client(server: fakeredis.FakeServer) -> AsyncIterator[fakeredis.FakeAsyncRedis]:
    redis = fakeredis.FakeAsyncRedis(server=server)
    yield redis
    await redis.aclose()


def events_of(
    client: fakeredis.FakeAsyncRedis, clock: ManualClock, **kwargs: object
) -> tuple[ServiceEvents, Registry]:
    registry = Registry()
    events = ServiceEvents(client, Keys("t"), clock=clock, registry=registry, **kwargs)  # type: ignore[arg-type]
    return events, registry


async def kinds_in_redis(events: ServiceEvents) -> list[str]:
    return [entry["kind"] for entry in await events.recent(1_000)]


async def test_an_event_is_one_stream_entry(
    client: fakeredis.FakeAsyncRedis, clock: ManualClock
) -> None:
    events, _ = events_of(client, clock)

    await events.publish("strategy.failed", strategy="mm1", orders=3, loss=-1.5, paused=True,
                         detail=None)  # fmt: skip

    assert await client.xlen(Keys("t").service_events()) == 1
    [fields] = await events.recent()
    assert len(fields.pop("event_id")) == 32
    assert fields == {"kind": "strategy.failed", "time_s": repr(clock.time()), "strategy": "mm1",
                      "orders": "3", "loss": "-1.5", "paused": "true"}  # fmt: skip


async def test_recent_is_oldest_first_and_counted(
    client: fakeredis.FakeAsyncRedis, clock: ManualClock
) -> None:
    events, _ = events_of(client, clock)
    for i in range(5):
        await events.publish(f"e{i}")
        await clock.advance(1.0)

    recent = await events.recent(3)
    assert [e["kind"] for e in recent] == ["e2", "e3", "e4"]
    assert [float(e["time_s"]) for e in recent] == [
        clock.time() - 3,
        clock.time() - 2,
        clock.time() - 1,
    ]


async def test_down_redis_keeps_events_and_flushes_them_in_order(
    server: fakeredis.FakeServer, client: fakeredis.FakeAsyncRedis, clock: ManualClock
) -> None:
    events, registry = events_of(client, clock)
    await events.publish("before")
    server.connected = False

    await events.publish("during.1")  # no raise
    await clock.advance(5.0)
    await events.publish("during.2")
    assert events.backlog == 2
    assert "orch_service_events_backlog 2.0" in registry.render()

    server.connected = True
    await events.publish("after")

    assert events.backlog == 0
    assert await kinds_in_redis(events) == ["before", "during.1", "during.2", "after"]
    during = await events.recent(4)
    assert (
        float(during[2]["time_s"]) - float(during[1]["time_s"]) == 5.0
    )  # stamped when it happened


async def test_a_full_backlog_drops_the_oldest_and_counts(
    server: fakeredis.FakeServer, client: fakeredis.FakeAsyncRedis, clock: ManualClock
) -> None:
    events, registry = events_of(client, clock, backlog_max=3)
    server.connected = False
    for i in range(5):
        await events.publish(f"e{i}")
    assert events.backlog == 3
    assert events.dropped.get() == 2
    assert "orch_service_events_dropped_total 2.0" in registry.render()

    server.connected = True
    assert await events.flush() is True
    assert await kinds_in_redis(events) == ["e2", "e3", "e4"]


async def test_a_refusing_redis_is_not_raised_either(
    client: fakeredis.FakeAsyncRedis, clock: ManualClock
) -> None:
    events, _ = events_of(client, clock)
    await client.set(Keys("t").service_events(), "not a stream")  # WRONGTYPE on XADD

    await events.publish("kept")
    assert events.backlog == 1

    await client.delete(Keys("t").service_events())
    assert await events.flush() is True
    assert await kinds_in_redis(events) == ["kept"]


async def test_a_hung_redis_costs_one_timeout_then_the_shared_verdict_skips_it(
    client: fakeredis.FakeAsyncRedis, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    health = RedisHealth(clock, Registry(), retry_after_s=2.0)
    events, _ = events_of(client, clock, timeout_s=0.5, health=health)
    calls = 0

    async def hang(*args: object, **kwargs: object) -> None:
        nonlocal calls
        calls += 1
        await asyncio.Event().wait()

    real_xadd = client.xadd
    monkeypatch.setattr(client, "xadd", hang)
    publishing = asyncio.create_task(events.publish("first"))
    await asyncio.sleep(0)
    await clock.advance(0.5)
    await asyncio.wait_for(publishing, 1.0)  # returned after the timeout, without raising
    assert health.is_down()

    await events.publish("second")  # straight to the backlog: Redis is known down
    assert (calls, events.backlog) == (1, 2)

    monkeypatch.setattr(client, "xadd", real_xadd)
    await clock.advance(2.0)
    await events.publish("third")
    assert await kinds_in_redis(events) == ["first", "second", "third"]
    assert not health.is_down()


async def test_concurrent_publishers_each_land_once_in_order(
    client: fakeredis.FakeAsyncRedis, clock: ManualClock
) -> None:
    events, _ = events_of(client, clock)
    await asyncio.gather(*(events.publish(f"e{i}") for i in range(20)))
    assert await kinds_in_redis(events) == [f"e{i}" for i in range(20)]
    assert events.backlog == 0


async def test_secrets_never_reach_the_stream_or_the_log(
    client: fakeredis.FakeAsyncRedis, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    register_secret("kraken-secret-value")
    events, _ = events_of(client, clock)
    with caplog.at_level(logging.INFO):
        await events.publish("strategy.failed", reason="signing kraken-secret-value failed",
                             api_token="abc123456")  # fmt: skip

    [entry] = await events.recent(1)
    assert (entry["reason"], entry["api_token"]) == ("signing *** failed", "***")
    [line] = [
        json.loads(JsonFormatter().format(r))
        for r in caplog.records
        if r.getMessage() == "service.event"
    ]
    assert line["kind"] == "strategy.failed"
    assert line["fields"]["reason"] == "signing *** failed"
    assert "kraken-secret-value" not in json.dumps(line)
    assert "abc123456" not in json.dumps(line)


async def test_reserved_fields_are_refused(
    client: fakeredis.FakeAsyncRedis, clock: ManualClock
) -> None:
    events, _ = events_of(client, clock)
    with pytest.raises(ValueError, match="reserved"):
        await events.publish("x", time_s=1.0)


async def test_recent_raises_when_redis_is_down(
    server: fakeredis.FakeServer, client: fakeredis.FakeAsyncRedis, clock: ManualClock
) -> None:
    events, _ = events_of(client, clock)
    server.connected = False
    with pytest.raises(StoreUnavailable):
        await events.recent()


async def test_listeners_hear_their_kind_in_process_even_with_redis_down(
    client: fakeredis.FakeAsyncRedis, server: fakeredis.FakeServer
) -> None:
    events, _ = events_of(client, ManualClock())
    heard: list[dict[str, str]] = []
    events.listen("rebalance_requested", lambda fields: heard.append(dict(fields)))

    def broken(fields: object) -> None:
        raise RuntimeError("a listener's bug")

    events.listen("rebalance_requested", broken)
    server.connected = False
    await events.publish("rebalance_requested", strategy="mm", asset="ZUSD", reason="low")
    await events.publish("strategy_failed", strategy="mm")  # another kind: not heard
    assert heard == [{"strategy": "mm", "asset": "ZUSD", "reason": "low"}]
    assert events.backlog == 2  # the broken listener stopped nothing

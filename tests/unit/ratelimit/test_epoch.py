"""The epoch guard on fakeredis and a manual clock: a cold start assumes nothing, a vanished
epoch is a loss noticed once however many notice it, a seq going back is a loss, floors only
ever raise a counter, a scope nobody knows is full until it has decayed, and the grace after a
loss refuses new risk only."""

from __future__ import annotations

import asyncio

import fakeredis
import pytest

from orchestrator.clock import ManualClock
from orchestrator.metrics import Registry
from orchestrator.ratelimit.epoch import EpochGuard
from orchestrator.ratelimit.policy import Scope
from orchestrator.ratelimit.wire import pack_counter, unpack_counter
from orchestrator.store.keys import Keys

POOL = Scope("domain:XBT/USD", 100.0, 10.0)  # full to empty in 10 s
KEYS = Keys("t")
STATE = KEYS.limiter_state()


def make(
    redis: fakeredis.FakeAsyncRedis,
    clock: ManualClock,
    floors: dict[str, float] | None = None,
    registry: Registry | None = None,
) -> EpochGuard:
    held = floors if floors is not None else {}
    return EpochGuard(redis, KEYS, clock, floors=lambda: held,
                      reserve_fraction=0.1, transit_s=0.0, script_time=clock.time,
                      registry=registry or Registry())  # fmt: skip


async def stored_tat(redis: fakeredis.FakeAsyncRedis, scope: str) -> float | None:
    value = await redis.hget(STATE, KEYS.limiter_scope_field(scope))
    return None if value is None else unpack_counter(value)[0]


async def after_a_loss(redis: fakeredis.FakeAsyncRedis, clock: ManualClock) -> EpochGuard:
    """A guard that held an epoch, and the Redis that lost it (emptied), noticed."""
    guard = make(redis, clock)
    first = await guard.ensure()
    await redis.flushall()
    await guard.on_mismatch(first)
    return guard


async def test_a_cold_start_creates_the_epoch_with_nothing_lost(
    fake_redis: fakeredis.FakeAsyncRedis, clock: ManualClock
) -> None:
    guard = make(fake_redis, clock)
    epoch_id = await guard.ensure()
    assert epoch_id
    assert guard.lost_s == 0.0
    assert not guard.new_risk_blocked(clock.time())
    assert guard.missing_tat(POOL, clock.time(), "new_risk") == 0.0
    # A second process adopts it as it is.
    other = make(fake_redis, clock)
    assert await other.ensure() == epoch_id
    assert other.lost_s == 0.0


async def test_a_known_epoch_vanishing_is_a_loss_at_that_moment(
    fake_redis: fakeredis.FakeAsyncRedis, clock: ManualClock
) -> None:
    registry = Registry()
    guard = make(fake_redis, clock, registry=registry)
    first = await guard.ensure()
    await clock.advance(5.0)
    await fake_redis.flushall()  # Redis restarted empty
    assert await guard.on_mismatch(first) != first
    assert guard.lost_s == clock.time()
    assert guard.losses.get("changed") == 1
    # A process starting now adopts the loss (it knew no epoch, but Redis does).
    late = make(fake_redis, clock)
    assert await late.ensure() == guard.id
    assert late.lost_s == clock.time()


async def test_two_processes_noticing_the_loss_settle_on_one_epoch(
    fake_redis: fakeredis.FakeAsyncRedis, clock: ManualClock
) -> None:
    a, b = make(fake_redis, clock), make(fake_redis, clock)
    first = await a.ensure()
    assert await b.ensure() == first
    await clock.advance(2.0)
    await fake_redis.flushall()
    lost_at = clock.time()
    a_id = await a.on_mismatch(first)
    await clock.advance(0.1)
    assert await b.on_mismatch(first) == a_id  # adopted, not created again
    assert a.lost_s == b.lost_s == lost_at
    # The same seq regression seen by both: one bump.
    mark_a, mark_b = a.mark(), b.mark()
    await a.recover(mark_a)
    bumped = a.id
    assert bumped != a_id
    await b.recover(mark_b)  # its bump names an id that is gone: no second bump
    assert b.id == bumped
    assert await b.on_mismatch(a_id) == bumped
    assert await fake_redis.hget(STATE, "id") == bumped.encode()


async def test_a_seq_going_back_is_a_loss(
    fake_redis: fakeredis.FakeAsyncRedis, clock: ManualClock
) -> None:
    guard = make(fake_redis, clock)
    await guard.ensure()
    now_s = clock.time()
    assert not guard.on_seq(1, now_s, guard.mark())
    assert not guard.on_seq(2, now_s, guard.mark())
    # Two calls out at once, replies in either order: both were sent after seq 2.
    mark = guard.mark()
    assert not guard.on_seq(4, now_s, mark)
    assert not guard.on_seq(3, now_s, mark)
    # A reply sent after seq 4 was seen, yet numbered 3: a replica behind the primary answered.
    mark = guard.mark()
    assert guard.on_seq(3, now_s, mark)
    old = guard.id
    await clock.advance(1.0)
    await guard.recover(mark)
    assert guard.id != old
    assert guard.lost_s == clock.time()
    assert guard.losses.get("seq") == 1


async def test_the_watcher_sees_a_seq_going_back_and_an_epoch_older_than_ours(
    fake_redis: fakeredis.FakeAsyncRedis, clock: ManualClock
) -> None:
    guard = make(fake_redis, clock)
    epoch_key = STATE
    first = await guard.ensure()
    await fake_redis.hset(epoch_key, "seq", 10)
    await guard.poll()
    assert guard.id == first
    await fake_redis.hset(epoch_key, "seq", 4)  # failed over to a replica 6 grants behind
    await clock.advance(1.0)
    await guard.poll()
    assert guard.id != first
    assert guard.lost_s == clock.time()
    # Then a fresh process cold-starts a Redis that lost everything before we noticed: its epoch
    # says nothing was lost, but it began after ours was last confirmed. We bump it.
    await fake_redis.flushall()
    fresh = make(fake_redis, clock)
    cold = await fresh.ensure()
    assert fresh.lost_s == 0.0
    await clock.advance(0.25)
    await guard.poll()
    assert guard.id not in ("", cold, first)
    assert guard.lost_s == clock.time()
    assert guard.losses.get("stale") == 1
    assert await fresh.on_mismatch(cold) == guard.id
    assert fresh.lost_s == guard.lost_s


async def test_restore_only_raises_floors_and_keeps_the_cooldown(
    fake_redis: fakeredis.FakeAsyncRedis, clock: ManualClock
) -> None:
    now_s = clock.time()
    floors = {"low": now_s + 1.0, "high": now_s + 9.0, "new": now_s + 4.0, "past": now_s - 1.0}
    guard = make(fake_redis, clock, floors)
    first = await guard.ensure()
    # What Redis holds after the loss, written by a process that restored before us.
    await fake_redis.hset(STATE, KEYS.limiter_scope_field("low"), pack_counter(now_s + 5.0, 0.0))
    await fake_redis.hset(
        STATE, KEYS.limiter_scope_field("high"), pack_counter(now_s + 2.0, now_s + 3.0)
    )
    await fake_redis.hdel(STATE, "id", "lost_s", "seq")
    await guard.on_mismatch(first)
    assert await stored_tat(fake_redis, "low") == now_s + 5.0  # never lowered
    assert await stored_tat(fake_redis, "high") == now_s + 9.0  # raised
    stored = await fake_redis.hget(STATE, KEYS.limiter_scope_field("high"))
    assert stored is not None
    assert unpack_counter(stored)[1] == now_s + 3.0  # its cooldown kept
    assert await stored_tat(fake_redis, "new") == now_s + 4.0  # absent: written
    assert await stored_tat(fake_redis, "past") is None  # decayed already: nothing to hand back
    assert await fake_redis.ttl(STATE) == -1  # it holds the epoch: it never expires


async def test_a_scope_nobody_knows_is_full_at_the_loss_until_it_has_decayed(
    fake_redis: fakeredis.FakeAsyncRedis, clock: ManualClock
) -> None:
    guard = await after_a_loss(fake_redis, clock)
    lost_s = guard.lost_s
    full_s = lost_s + POOL.threshold / POOL.decay_per_s
    assert guard.missing_tat(POOL, lost_s, "new_risk") == full_s
    assert guard.missing_tat(POOL, full_s - 0.01, "new_risk") == full_s
    assert guard.missing_tat(POOL, full_s, "new_risk") == 0.0
    # Cancels assume the level new risk may leave (the reserve above it is theirs).
    assert guard.missing_tat(POOL, lost_s, "risk_reducing") == pytest.approx(lost_s + 9.0)
    assert guard.missing_tat(POOL, lost_s + 9.0, "risk_reducing") == 0.0


async def test_the_grace_after_a_loss_refuses_new_risk_only(
    fake_redis: fakeredis.FakeAsyncRedis, clock: ManualClock
) -> None:
    guard = await after_a_loss(fake_redis, clock)
    lost_s = guard.lost_s
    assert guard.new_risk_blocked(lost_s)
    assert guard.new_risk_blocked(lost_s + guard.restore_grace_s - 0.01)
    assert not guard.new_risk_blocked(lost_s + guard.restore_grace_s)
    # Cancels are never blocked: their tat is the only thing the loss changes for them.
    assert guard.missing_tat(POOL, lost_s, "risk_reducing") > 0


async def test_the_watcher_hands_back_floors_of_an_idle_process(
    fake_redis: fakeredis.FakeAsyncRedis, clock: ManualClock
) -> None:
    now_s = clock.time()
    guard = make(fake_redis, clock, {"held": now_s + 8.0})
    await guard.ensure()
    guard.start()
    try:
        await fake_redis.flushall()
        await clock.advance(guard.poll_s)
        for _ in range(20):  # let the watcher's few Redis calls run
            if await stored_tat(fake_redis, "held") is not None:
                break
            await asyncio.sleep(0.01)
        assert await stored_tat(fake_redis, "held") == now_s + 8.0
    finally:
        await guard.stop()

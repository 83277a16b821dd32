"""Re-syncing the limiter from the venue's own counter (`ratelimit/venue_counter.py`): only
upward, the cooldown kept, a raise counted; on fakeredis and a manual clock."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import fakeredis
import pytest

from orchestrator.clock import ManualClock
from orchestrator.config import LimitsConfig
from orchestrator.errors import InvalidRequest
from orchestrator.exchange.instruments import Instrument, Instruments
from orchestrator.exchange.kraken.ws.schemas import RateCount
from orchestrator.metrics import Registry
from orchestrator.ratelimit.policy import Charge, Policy
from orchestrator.ratelimit.redis import Limiter
from orchestrator.ratelimit.venue_counter import VenueCounterSync
from orchestrator.ratelimit.wire import unpack_counter
from orchestrator.store.keys import Keys

XBT_USD = Instrument(rest_name="XXBTZUSD", altname="XBTUSD", wsname="XBT/USD", symbol="BTC/USD",
                     base="XXBT", quote="ZUSD", price_decimals=1, qty_decimals=8,
                     tick_size=Decimal("0.1"), ordermin=Decimal("0.0001"),
                     costmin=Decimal("0.5"))  # fmt: skip


def make(
    redis: fakeredis.FakeAsyncRedis, clock: ManualClock, *, per_account_cap: bool = True
) -> tuple[Limiter, VenueCounterSync]:
    limits = LimitsConfig(risk_reserve_fraction=0.1, transit_allowance_s=0.0,
                          per_account_cap=per_account_cap)  # fmt: skip
    limiter = Limiter(redis, Keys("t"), Policy("intermediate", limits), clock, limits=limits,
                      script_time=clock.time, registry=Registry())  # fmt: skip
    sync = VenueCounterSync(limiter, account="a", instruments=Instruments([XBT_USD]),
                            registry=Registry())  # fmt: skip
    return limiter, sync


async def stored(redis: fakeredis.FakeAsyncRedis, field: str) -> tuple[float, float]:
    """The scope's (tat, cool) as stored."""
    value = await redis.hget(Keys("t").limiter_state(), field)
    assert isinstance(value, bytes)
    return unpack_counter(value)


async def test_a_higher_venue_level_raises_the_scope(
    fake_redis: fakeredis.FakeAsyncRedis, clock: ManualClock
) -> None:
    limiter, sync = make(fake_redis, clock)
    scope = limiter.policy.trade_scope("a", "XBT/USD")  # 125, 2.34 per s
    assert await sync.sync("BTC/USD", 62.5)
    assert await limiter.level(scope) == pytest.approx(62.5)
    assert sync.raised.get("a") == 1


async def test_never_lowers_what_the_limiter_booked(
    fake_redis: fakeredis.FakeAsyncRedis, clock: ManualClock
) -> None:
    limiter, sync = make(fake_redis, clock)
    scope = limiter.policy.trade_scope("a", "XBT/USD")
    await limiter.acquire([Charge(scope, 40)], lane="new_risk", deadline_s=1)
    assert not await sync.sync("BTC/USD", 10)
    assert not await sync.sync("BTC/USD", 0)
    assert await limiter.level(scope) == pytest.approx(40)
    assert sync.raised.get("a") == 0


async def test_the_cooldown_of_a_venue_refusal_is_kept(
    fake_redis: fakeredis.FakeAsyncRedis, clock: ManualClock
) -> None:
    limiter, sync = make(fake_redis, clock)
    scope = limiter.policy.trade_scope("a", "XBT/USD")
    await limiter.penalize(scope, cooldown_s=30.0)
    await clock.advance(10)  # within the cooldown, the level partly decayed
    field = limiter.keys.limiter_scope_field(scope.name)
    before = (await stored(fake_redis, field))[1]
    assert await sync.sync("BTC/USD", 120)  # above the 101.6 left of the penalty
    tat, cool = await stored(fake_redis, field)
    assert cool == before
    assert tat == pytest.approx(clock.time() + 120 / scope.decay_per_s)


async def test_offered_reports_are_applied_by_run_latest_per_pair(
    fake_redis: fakeredis.FakeAsyncRedis, clock: ManualClock
) -> None:
    limiter, sync = make(fake_redis, clock)
    scope = limiter.policy.trade_scope("a", "XBT/USD")
    task = asyncio.create_task(sync.run())
    for level in (10.0, 30.0, 20.0):
        sync.offer(RateCount("BTC/USD", level))
    for _ in range(200):
        await asyncio.sleep(0.001)
        if sync.raised.get("a"):
            break
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sync.raised.get("a") == 1  # one script call for the burst, at its latest level
    assert await limiter.level(scope) == pytest.approx(20)


async def test_unknown_pairs_and_no_account_counter(
    fake_redis: fakeredis.FakeAsyncRedis, clock: ManualClock
) -> None:
    _, sync = make(fake_redis, clock)
    with pytest.raises(InvalidRequest):
        await sync.sync("DOGE/USD", 5)
    _, pooled = make(fake_redis, clock, per_account_cap=False)
    assert not await pooled.sync("BTC/USD", 50)

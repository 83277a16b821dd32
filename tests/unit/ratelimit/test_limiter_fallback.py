"""The limiter when Redis cannot decide: every redis-py error is translated (no raw one escapes a
public call), new risk is refused, and cancels go through a local budget that charges their real
costs on the levels this process last saw, checked against the venue's own counter model
(`orchestrator.simulator.limits`, written apart from the limiter) on the manual clock."""

from __future__ import annotations

import asyncio
from typing import Any

import fakeredis
import pytest
import redis.asyncio as aioredis
from redis.exceptions import (
    BusyLoadingError,
    MaxConnectionsError,
    ReadOnlyError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from orchestrator.clock import ManualClock
from orchestrator.errors import LimiterUnavailable, RateLimited, StoreError
from orchestrator.ratelimit.permits import Permit
from orchestrator.ratelimit.policy import Charge, trading_cost
from orchestrator.ratelimit.redis import Limiter
from orchestrator.simulator.errors import KrakenError
from orchestrator.simulator.limits import VenueLimits
from tests.unit.ratelimit.test_limiter import ACCOUNT, POOL, make, run_until_done

PAIR = "XBT/USD"
YOUNG_CANCEL = trading_cost("cancel", 1.0)  # 8: an order placed a second ago
TRANSIT_S = 0.05


class FailingRedis(aioredis.Redis):
    """A client whose every command fails with `error`: the seam every limiter call goes by."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        raise self.error


class Venue:
    """Kraken's counters as the venue keeps them, charged when each permit is granted."""

    def __init__(self, clock: ManualClock) -> None:
        self.limits = VenueLimits("intermediate")  # 5x domain pool per pair, per-account cap
        self.clock = clock
        self.rejections = 0

    def send(self, account: str, cost: float) -> None:
        try:
            self.limits.charge_trading(account, PAIR, cost, self.clock.time())
        except KrakenError:
            self.rejections += 1


def trading(limiter: Limiter, account: str, cost: float) -> list[Charge]:
    policy = limiter.policy
    return [
        Charge(policy.trade_scope(account, PAIR), cost),
        Charge(policy.domain_scope(PAIR), cost),
    ]


async def fill_to_the_new_risk_limit(limiter: Limiter, venue: Venue, account: str) -> int:
    """Orders (cost 1) until new risk is refused, each one also charged at the venue."""
    placed = 0
    while True:
        try:
            await limiter.acquire(trading(limiter, account, 1), lane="new_risk", deadline_s=0)
        except RateLimited:
            return placed
        venue.send(account, 1)
        placed += 1


async def cancel(
    limiter: Limiter, venue: Venue, clock: ManualClock, *, deadline_s: float = 10.0
) -> Permit:
    """One young cancel, sent to the venue the moment its permit is granted."""

    async def send() -> Permit:
        permit = await limiter.acquire(
            trading(limiter, "a", YOUNG_CANCEL), lane="risk_reducing", deadline_s=deadline_s,
            account="a",
        )  # fmt: skip
        venue.send("a", YOUNG_CANCEL)
        return permit

    task = asyncio.ensure_future(send())
    await run_until_done(clock, task)
    return task.result()


REDIS_ERRORS = [
    RedisConnectionError("Connection refused"),
    RedisTimeoutError("Timeout reading from socket"),
    BusyLoadingError("Redis is loading the dataset in memory"),
    ReadOnlyError("You can't write against a read only replica."),
    MaxConnectionsError("Too many connections"),
    RedisConnectionError("No connection available."),
    OSError("Network is unreachable"),
    ResponseError("ERR Error running script"),
]


@pytest.mark.parametrize("error", REDIS_ERRORS, ids=lambda e: f"{type(e).__name__}:{e}")
async def test_no_raw_redis_error_escapes_a_public_call(
    clock: ManualClock, error: Exception
) -> None:
    limiter = make(FailingRedis(error), clock, per_account_cap=True)
    with pytest.raises(LimiterUnavailable) as info:
        await limiter.acquire(trading(limiter, "a", 1), lane="new_risk", deadline_s=1)
    assert isinstance(info.value.__cause__, StoreError)
    permit = await limiter.acquire(
        trading(limiter, "a", 1), lane="risk_reducing", deadline_s=1, account="a"
    )
    assert permit.fallback
    await limiter.penalize(limiter.policy.domain_scope(PAIR))  # logged, known locally
    await limiter.feedback(permit, "trading")
    with pytest.raises(StoreError):
        await limiter.level(ACCOUNT)


async def test_cancels_on_a_counter_known_full_wait_for_their_real_cost(
    clock: ManualClock,
) -> None:
    server = fakeredis.FakeServer()
    redis = fakeredis.FakeAsyncRedis(server=server)
    limiter = make(redis, clock, per_account_cap=True, transit_s=TRANSIT_S)
    venue = Venue(clock)
    assert await fill_to_the_new_risk_limit(limiter, venue, "a") == 112  # 125 x 0.9, in transit
    await cancel(limiter, venue, clock, deadline_s=0)  # into the reserve: 120 of 125
    assert venue.rejections == 0

    server.connected = False
    started_s = clock.monotonic()
    permits = [await cancel(limiter, venue, clock) for _ in range(5)]
    assert all(p.fallback for p in permits)
    assert venue.rejections == 0  # before: 4 of 5 (1 per cancel, the level forgotten)
    # Paced by decay: 8 units at 2.34/s each, after the first has waited for its room.
    spent_s = clock.monotonic() - started_s
    assert spent_s == pytest.approx((120 + 5 * 8 - 125 + 2.34 * TRANSIT_S) / 2.34, abs=0.05)
    assert limiter.metrics.permits.get("risk_reducing", "local") == 5
    await redis.aclose()


async def test_a_cancel_that_cannot_fit_by_its_deadline_is_refused(clock: ManualClock) -> None:
    server = fakeredis.FakeServer()
    redis = fakeredis.FakeAsyncRedis(server=server)
    limiter = make(redis, clock, per_account_cap=True, transit_s=TRANSIT_S)
    venue = Venue(clock)
    await fill_to_the_new_risk_limit(limiter, venue, "a")
    await cancel(limiter, venue, clock, deadline_s=0)
    server.connected = False
    with pytest.raises(RateLimited) as info:
        await cancel(limiter, venue, clock, deadline_s=0.5)
    assert info.value.scope == limiter.policy.trade_scope("a", PAIR).name
    assert info.value.wait_s == pytest.approx((120 + 8 - 125 + 2.34 * TRANSIT_S) / 2.34, abs=1e-3)
    await redis.aclose()


async def test_a_counter_never_seen_is_assumed_at_the_new_risk_limit(clock: ManualClock) -> None:
    server = fakeredis.FakeServer()
    redis = fakeredis.FakeAsyncRedis(server=server)
    other_process = make(redis, clock, per_account_cap=True, transit_s=TRANSIT_S)
    ours = make(redis, clock, per_account_cap=True, transit_s=TRANSIT_S)
    venue = Venue(clock)
    await fill_to_the_new_risk_limit(other_process, venue, "a")  # ours never saw the counter

    server.connected = False
    first = await cancel(ours, venue, clock)
    assert first.waited_s == 0  # the reserve is there for cancels
    for _ in range(2):
        await cancel(ours, venue, clock)
    assert venue.rejections == 0  # before: 1 (a burst of 2 at 1 each, on a 112/125 counter)
    await redis.aclose()


async def test_venue_feedback_while_redis_is_down_holds_cancels_back(
    clock: ManualClock,
) -> None:
    server = fakeredis.FakeServer()
    redis = fakeredis.FakeAsyncRedis(server=server)
    limiter = make(redis, clock, per_account_cap=True, transit_s=TRANSIT_S)
    venue = Venue(clock)
    permit = await cancel(limiter, venue, clock, deadline_s=0)  # seen: 8 of 125
    server.connected = False
    await limiter.feedback(permit, "trading")  # the venue says the account's counter is full
    with pytest.raises(RateLimited) as info:
        await cancel(limiter, venue, clock, deadline_s=0)
    assert info.value.scope == limiter.policy.trade_scope("a", PAIR).name
    assert info.value.wait_s == pytest.approx((125 + 8 - 125 + 2.34 * TRANSIT_S) / 2.34, abs=1e-3)
    await redis.aclose()


async def test_redis_back_counts_what_was_spent_and_forgets_the_local_view(
    clock: ManualClock,
) -> None:
    server = fakeredis.FakeServer()
    redis = fakeredis.FakeAsyncRedis(server=server)
    limiter = make(redis, clock, per_account_cap=True, transit_s=TRANSIT_S)
    venue = Venue(clock)
    await cancel(limiter, venue, clock, deadline_s=0)  # 8 on a counter Redis knows
    server.connected = False
    for _ in range(3):
        assert (await cancel(limiter, venue, clock, deadline_s=0)).fallback
    server.connected = True
    await redis.flushall()  # Redis comes back empty (a restart without persistence)
    await clock.advance(limiter.retry_after_s)
    permit = await cancel(limiter, venue, clock, deadline_s=0)
    assert not permit.fallback
    trade = limiter.policy.trade_scope("a", PAIR)
    expected = 5 * 8 - 2.34 * limiter.retry_after_s  # what this process spent, decayed
    assert await limiter.level(trade) == pytest.approx(expected)
    assert limiter.health.gauge.get() == 0
    assert venue.rejections == 0
    await redis.aclose()


async def test_the_worst_case_of_a_counter_never_seen_decays_from_when_it_was_assumed(
    clock: ManualClock,
) -> None:
    limiter = make(FailingRedis(RedisConnectionError("Connection refused")), clock)
    big_cancel = [Charge(POOL, 15)]  # a CancelAll: 90 (the new-risk limit) + 15 > 100
    with pytest.raises(RateLimited) as info:
        await limiter.acquire(big_cancel, lane="risk_reducing", deadline_s=0)
    assert info.value.wait_s == pytest.approx(0.5)  # 5 units at 10/s
    await clock.advance(0.5)
    assert (await limiter.acquire(big_cancel, lane="risk_reducing", deadline_s=0)).fallback

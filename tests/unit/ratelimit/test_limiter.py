"""The Redis limiter on fakeredis and a manual clock: reservations, deadlines, lanes, fair shares,
venue feedback, and failing closed when Redis is gone."""

from __future__ import annotations

import asyncio
from typing import Any

import fakeredis
import pytest
import redis.asyncio as aioredis

from orchestrator.clock import ManualClock
from orchestrator.config import LimitsConfig
from orchestrator.errors import LimiterUnavailable, RateLimited
from orchestrator.exchange.kraken.common.methods import ADD_ORDER, CANCEL_ALL, CANCEL_ORDER
from orchestrator.metrics import Registry
from orchestrator.ratelimit.policy import Charge, Policy, Scope, VenueRequest
from orchestrator.ratelimit.redis import Limiter
from orchestrator.store.embedded import free_port
from orchestrator.store.keys import Keys

POOL = Scope("domain:XBT/USD", 100.0, 10.0)
ACCOUNT = Scope("trade:a:XBT/USD", 20.0, 2.0)


def make(
    redis: aioredis.Redis,
    clock: ManualClock,
    weights: dict[str, float] | None = None,
    transit_s: float = 0.0,
    per_account_cap: bool = False,
) -> Limiter:
    # Without the per-account cap by default: most tests charge raw scopes, and shares are then
    # exactly the weights.
    limits = LimitsConfig(
        risk_reserve_fraction=0.1, transit_allowance_s=transit_s, per_account_cap=per_account_cap
    )
    policy = Policy("intermediate", limits)
    return Limiter(
        redis, Keys("t"), policy, clock, limits=limits, weights=weights,
        script_time=clock.time, registry=Registry(),
    )  # fmt: skip


@pytest.fixture
def limiter(fake_redis: fakeredis.FakeAsyncRedis, clock: ManualClock) -> Limiter:
    return make(fake_redis, clock)


async def settle(clock: ManualClock, task: asyncio.Future[Any]) -> None:
    """Let the task run until it is done or asleep on the manual clock (I/O takes a few turns)."""
    for _ in range(10_000):
        if task.done() or clock.sleepers:
            return
        await asyncio.sleep(0)


async def run_until_done(
    clock: ManualClock, task: asyncio.Future[Any], step_s: float = 0.01
) -> float:
    """Advance the manual clock only while `task` sleeps on it; return the clock time it took."""
    start = clock.monotonic()
    for _ in range(100_000):
        await settle(clock, task)
        if task.done():
            return clock.monotonic() - start
        await clock.advance(step_s)
    raise AssertionError("task never finished")


async def test_grants_until_the_new_risk_limit(limiter: Limiter) -> None:
    for _ in range(18):  # 20 x (1 - 0.1) = 18 fit with no wait
        permit = await limiter.acquire([Charge(ACCOUNT, 1)], lane="new_risk", deadline_s=0)
        assert permit.waited_s == 0
    with pytest.raises(RateLimited) as info:
        await limiter.acquire([Charge(ACCOUNT, 1)], lane="new_risk", deadline_s=0)
    assert info.value.scope == ACCOUNT.name
    assert info.value.wait_s == pytest.approx(0.5)  # one unit at 2/s


async def test_reservation_sleeps_once_for_the_booked_slot(
    limiter: Limiter, clock: ManualClock
) -> None:
    for _ in range(18):
        await limiter.acquire([Charge(ACCOUNT, 1)], lane="new_risk", deadline_s=0)
    task = asyncio.create_task(limiter.acquire([Charge(ACCOUNT, 1)], lane="new_risk", deadline_s=5))
    took_s = await run_until_done(clock, task)
    assert took_s == pytest.approx(0.5, abs=0.02)
    assert task.result().waited_s == pytest.approx(0.5, abs=0.02)
    # The next caller is booked behind it: 1.0 s after the first reservation started.
    second = asyncio.create_task(
        limiter.acquire([Charge(ACCOUNT, 1)], lane="new_risk", deadline_s=5)
    )
    assert await run_until_done(clock, second) == pytest.approx(0.5, abs=0.02)


async def test_concurrent_callers_get_distinct_slots(limiter: Limiter, clock: ManualClock) -> None:
    for _ in range(18):
        await limiter.acquire([Charge(ACCOUNT, 1)], lane="new_risk", deadline_s=0)
    start = clock.monotonic()
    finished: list[float] = []

    async def one() -> None:
        await limiter.acquire([Charge(ACCOUNT, 1)], lane="new_risk", deadline_s=10)
        finished.append(clock.monotonic() - start)

    everyone = asyncio.gather(*(one() for _ in range(4)))
    for _ in range(10_000):  # all four booked and asleep: no polling, one sleep each
        if clock.sleepers == 4:
            break
        await asyncio.sleep(0)
    assert clock.sleepers == 4
    await run_until_done(clock, everyone)
    assert sorted(finished) == pytest.approx([0.5, 1.0, 1.5, 2.0], abs=0.011)


async def test_risk_reducing_uses_the_reserve(limiter: Limiter) -> None:
    for _ in range(18):
        await limiter.acquire([Charge(ACCOUNT, 1)], lane="new_risk", deadline_s=0)
    with pytest.raises(RateLimited):
        await limiter.acquire([Charge(ACCOUNT, 1)], lane="new_risk", deadline_s=0)
    for _ in range(2):  # the 10% reserve: 2 units left for cancels
        await limiter.acquire([Charge(ACCOUNT, 1)], lane="risk_reducing", deadline_s=0)
    with pytest.raises(RateLimited):
        await limiter.acquire([Charge(ACCOUNT, 1)], lane="risk_reducing", deadline_s=0)


async def test_all_scopes_or_none(limiter: Limiter, fake_redis: fakeredis.FakeAsyncRedis) -> None:
    for _ in range(18):
        await limiter.acquire([Charge(ACCOUNT, 1)], lane="new_risk", deadline_s=0)
    with pytest.raises(RateLimited):
        await limiter.acquire([Charge(POOL, 1), Charge(ACCOUNT, 1)], lane="new_risk", deadline_s=0)
    keys = Keys("t")
    assert await fake_redis.hget(keys.limiter_state(), keys.limiter_scope_field(POOL.name)) is None


async def test_penalize_fills_the_counter(limiter: Limiter, clock: ManualClock) -> None:
    await limiter.penalize(POOL, cooldown_s=2.0)
    with pytest.raises(RateLimited) as info:
        await limiter.acquire([Charge(POOL, 1)], lane="risk_reducing", deadline_s=0)
    assert info.value.wait_s == pytest.approx(2.0)  # the cooldown binds before decay would
    assert limiter.metrics.cooldowns.get(POOL.name) == 1


async def test_acquire_for_uses_kraken_costs(
    fake_redis: fakeredis.FakeAsyncRedis, clock: ManualClock
) -> None:
    limiter = make(fake_redis, clock, per_account_cap=True)
    request = VenueRequest(method=CANCEL_ORDER, pair="XBT/USD", order_ages_s=(1.0,))
    permit = await limiter.acquire_for(request, account="a", key_id="k", deadline_s=0)
    assert permit.lane == "risk_reducing"
    assert set(permit.scopes) == {"trade:a:XBT/USD", "domain:XBT/USD"}
    levels = [
        await limiter.level(c.scope)
        for c in limiter.policy.charges_for(request, account="a", key_id="k")
    ]
    assert levels == pytest.approx([8.0, 8.0])


async def test_feedback_fills_the_permits_scopes_of_that_kind(
    fake_redis: fakeredis.FakeAsyncRedis, clock: ManualClock
) -> None:
    limiter = make(fake_redis, clock, per_account_cap=True)
    policy = limiter.policy
    # A CancelAll over two pairs: the REST counter of the key, and both pairs' counters.
    charges = [Charge(policy.rest_scope("k"), 1)] + [
        Charge(scope, 2)
        for pair in ("XBT/USD", "ETH/USD")
        for scope in (policy.trade_scope("a", pair), policy.domain_scope(pair))
    ]
    permit = await limiter.acquire(charges, lane="risk_reducing", deadline_s=0)
    assert permit.charges == tuple(charges)  # the scopes with their thresholds and decays

    async def levels() -> dict[str, float]:
        return {c.scope.name: await limiter.level(c.scope) for c in charges}

    await limiter.feedback(permit, "trading")
    assert await levels() == pytest.approx(
        {"rest:k": 1, "trade:a:XBT/USD": 125, "domain:XBT/USD": 2,
         "trade:a:ETH/USD": 125, "domain:ETH/USD": 2}
    )  # fmt: skip
    await limiter.feedback(permit, "rest")
    await limiter.feedback(permit, "domain")
    assert await levels() == pytest.approx(
        {"rest:k": 20, "trade:a:XBT/USD": 125, "domain:XBT/USD": 625,
         "trade:a:ETH/USD": 125, "domain:ETH/USD": 625}
    )  # fmt: skip


async def test_feedback_of_a_kind_the_permit_did_not_book_fills_nothing(
    fake_redis: fakeredis.FakeAsyncRedis, clock: ManualClock
) -> None:
    limiter = make(fake_redis, clock, per_account_cap=True)
    trade = limiter.policy.trade_scope("a", "XBT/USD")
    permit = await limiter.acquire([Charge(trade, 1)], lane="new_risk", deadline_s=0)  # WS: no REST
    await limiter.feedback(permit, "rest")
    await limiter.feedback(permit, None)  # a rate-limit code we do not know
    assert limiter.metrics.cooldowns.values == {}  # nothing penalized
    assert await limiter.level(trade) == pytest.approx(1.0)


async def test_fair_share_runaway_cannot_starve_others(
    fake_redis: fakeredis.FakeAsyncRedis, clock: ManualClock
) -> None:
    limiter = make(fake_redis, clock, weights={"runaway": 1.0, "calm": 1.0})
    # The runaway fills the pool while the calm one is idle: borrowing idle capacity is allowed.
    taken = 0
    while True:
        try:
            await limiter.acquire(
                [Charge(POOL, 1)], lane="new_risk", deadline_s=0, strategy="runaway"
            )
        except RateLimited:
            break
        taken += 1
    assert taken == 90  # the whole new-risk pool
    await clock.advance(5.0)  # 50 units decay
    await limiter.acquire(
        [Charge(POOL, 1)], lane="new_risk", deadline_s=0, strategy="calm"
    )  # calm is active now
    # The runaway is far over its share: it may only borrow what calm is not due (45 - 1 used).
    borrowed = 0
    while True:
        try:
            await limiter.acquire(
                [Charge(POOL, 1)], lane="new_risk", deadline_s=0, strategy="runaway"
            )
        except RateLimited:
            break
        borrowed += 1
    assert borrowed <= 6
    calm = 0
    for _ in range(40):
        await limiter.acquire([Charge(POOL, 1)], lane="new_risk", deadline_s=0, strategy="calm")
        calm += 1
    assert calm == 40  # calm still gets its share


async def test_fails_closed_without_redis_and_recovers(clock: ManualClock) -> None:
    port = free_port()
    broken = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=0.2)
    limiter = make(broken, clock)
    with pytest.raises(LimiterUnavailable):
        await limiter.acquire([Charge(POOL, 1)], lane="new_risk", deadline_s=1)
    permit = await limiter.acquire(
        [Charge(POOL, 1)], lane="risk_reducing", deadline_s=1, account="a"
    )
    assert permit.fallback
    assert limiter.health.gauge.get() == 1
    await broken.aclose()


async def test_cancelled_while_waiting_keeps_the_slot_booked(
    limiter: Limiter, clock: ManualClock
) -> None:
    for _ in range(18):
        await limiter.acquire([Charge(ACCOUNT, 1)], lane="new_risk", deadline_s=0)
    task = asyncio.create_task(limiter.acquire([Charge(ACCOUNT, 1)], lane="new_risk", deadline_s=5))
    await settle(clock, task)
    assert clock.sleepers == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Its slot stays booked (conservative): the next caller queues behind it, never beside it.
    with pytest.raises(RateLimited) as info:
        await limiter.acquire([Charge(ACCOUNT, 1)], lane="new_risk", deadline_s=0)
    assert info.value.wait_s == pytest.approx(1.0)


async def test_script_reloads_after_script_flush(
    limiter: Limiter, fake_redis: fakeredis.FakeAsyncRedis
) -> None:
    await limiter.acquire([Charge(ACCOUNT, 1)], lane="new_risk", deadline_s=0)
    await fake_redis.script_flush()
    permit = await limiter.acquire(
        [Charge(ACCOUNT, 1)], lane="new_risk", deadline_s=0
    )  # NOSCRIPT -> EVAL
    assert permit.scopes == (ACCOUNT.name,)


async def test_metrics_are_rendered(limiter: Limiter) -> None:
    await limiter.acquire([Charge(ACCOUNT, 1)], lane="new_risk", deadline_s=0)
    with pytest.raises(RateLimited):
        await limiter.acquire([Charge(ACCOUNT, 100)], lane="new_risk", deadline_s=0)
    assert limiter.metrics.permits.get("new_risk", "redis") == 1
    assert limiter.metrics.refusals.get("new_risk", "deadline") == 1


async def test_transit_allowance_keeps_room_for_the_trip(
    fake_redis: fakeredis.FakeAsyncRedis, clock: ManualClock
) -> None:
    limiter = make(fake_redis, clock, transit_s=0.5)  # 0.5 s x 2/s = 1 unit kept free
    for _ in range(17):
        await limiter.acquire([Charge(ACCOUNT, 1)], lane="new_risk", deadline_s=0)
    with pytest.raises(RateLimited):
        await limiter.acquire([Charge(ACCOUNT, 1)], lane="new_risk", deadline_s=0)


async def test_cancels_count_toward_the_share_but_never_wait_on_it(
    fake_redis: fakeredis.FakeAsyncRedis, clock: ManualClock
) -> None:
    limiter = make(fake_redis, clock, weights={"a": 1.0, "b": 1.0})
    for _ in range(50):  # far beyond a's share of 45: cancels still pass
        await limiter.acquire([Charge(POOL, 1)], lane="risk_reducing", deadline_s=0, strategy="a")
    await limiter.acquire(
        [Charge(POOL, 1)], lane="new_risk", deadline_s=0, strategy="b"
    )  # b is active
    with pytest.raises(RateLimited):  # a's new risk now borrows; b's unused share is not lendable
        await limiter.acquire([Charge(POOL, 1)], lane="new_risk", deadline_s=0, strategy="a")


@pytest.mark.parametrize("pairs_known", [True, False])
async def test_the_burst_is_split_by_the_weights_configured_on_the_pool(
    fake_redis: fakeredis.FakeAsyncRedis, clock: ManualClock, pairs_known: bool
) -> None:
    """a and b both trade XBT/USD, b has not asked yet: knowing their pairs, a's opening is
    its half of the pool's new-risk burst (562.5 / 2), and it may not borrow b's half; not
    knowing them, a is alone on the pool and takes all of it."""
    limits = LimitsConfig(risk_reserve_fraction=0.1, transit_allowance_s=0.0, per_account_cap=False)
    pairs = {"a": ["XBT/USD"], "b": ["XBT/USD"], "c": ["ETH/USD"]} if pairs_known else None
    limiter = Limiter(
        fake_redis, Keys("t"), Policy("intermediate", limits), clock, limits=limits,
        weights={"a": 1.0, "b": 1.0, "c": 5.0}, pairs=pairs, script_time=clock.time,
        registry=Registry(),
    )  # fmt: skip
    pool = limiter.policy.domain_scope("XBT/USD")
    granted = 0
    for _ in range(1000):
        try:
            await limiter.acquire([Charge(pool, 1)], lane="new_risk", deadline_s=0, strategy="a")
        except RateLimited:
            break
        granted += 1
    assert pool.threshold == 625.0
    assert granted == (281 if pairs_known else 562)


def test_weights_are_capped_at_what_one_account_can_use() -> None:
    limits = LimitsConfig(domain_multiplier=5)
    capped = Limiter.effective_weights(
        {"big": 4.0, "mid": 2.0, **{f"s{i}": 1.0 for i in range(6)}}, limits
    )
    # 20% of the capped total (one account's 1x of the 5x pool), not 20% of the total before
    # capping (12 / 5 = 2.4 would leave it 23%: 3% of the decay reserved for a share its account
    # cannot use, the utilization benchmark's loss).
    assert capped["big"] == pytest.approx(2.0)
    assert capped["big"] / sum(capped.values()) == pytest.approx(1 / 5)
    assert capped["mid"] == 2.0
    one_huge = Limiter.effective_weights(
        {"huge": 100.0, **{f"s{i}": 1.0 for i in range(9)}}, limits
    )
    assert one_huge["huge"] / sum(one_huge.values()) == pytest.approx(1 / 5)
    even = {f"s{i}": 1.0 for i in range(10)}
    assert Limiter.effective_weights(even, limits) == even  # nobody above 1/5: nothing capped
    few = {"a": 4.0, "b": 1.0}  # no more strategies than the multiplier: nobody can reach 1/5
    assert Limiter.effective_weights(few, limits) == few
    uncapped = Limiter.effective_weights(
        {"big": 4.0, "small": 1.0}, LimitsConfig(per_account_cap=False)
    )
    assert uncapped == {"big": 4.0, "small": 1.0}


async def test_a_cancel_all_costlier_than_the_threshold_goes_at_once_and_books_in_full(
    fake_redis: fakeredis.FakeAsyncRedis, clock: ManualClock
) -> None:
    """The venue takes CancelAll at any level: 20 young orders (cost 160 > 125) are not refused
    forever; the counters book all of it, so what follows waits for the venue's own decay."""
    limiter = make(fake_redis, clock, per_account_cap=True)
    young = tuple(("XBT/USD", 1.0) for _ in range(20))
    request = VenueRequest(method=CANCEL_ALL, cancel_all=young)
    permit = await limiter.acquire_for(request, account="a", key_id="k", deadline_s=0.0)
    assert permit.waited_s == 0.0
    assert await limiter.level(limiter.policy.trade_scope("a", "XBT/USD")) == pytest.approx(160)
    add = VenueRequest(method=ADD_ORDER, pair="XBT/USD")
    with pytest.raises(RateLimited):
        await limiter.acquire_for(add, account="a", key_id="k", deadline_s=1.0)


@pytest.mark.parametrize("bad", ["has space", "a|b", "", "-"])
def test_a_strategy_name_the_script_cannot_carry_is_refused(
    fake_redis: fakeredis.FakeAsyncRedis, clock: ManualClock, bad: str
) -> None:
    with pytest.raises(ValueError, match="strategy name"):
        make(fake_redis, clock, weights={bad: 1.0})
    limiter = make(fake_redis, clock, weights={"ok": 1.0})
    with pytest.raises(ValueError, match="strategy name"):
        limiter.set_weights({"ok": 1.0, bad: 2.0})
    assert limiter.weights == {"ok": 1.0}  # unchanged


async def test_a_reply_the_limiter_cannot_read_is_a_store_error(
    fake_redis: fakeredis.FakeAsyncRedis, clock: ManualClock
) -> None:
    limiter = make(fake_redis, clock)
    await limiter.acquire([Charge(POOL, 1)], lane="new_risk", deadline_s=0)  # loads the script
    garbled = await fake_redis.script_load("return 'granted, probably'")
    limiter._acquire_sha = garbled  # looks inside on purpose: a script that disagrees with us
    with pytest.raises(LimiterUnavailable, match=r"acquire\.lua answered"):
        await limiter.acquire([Charge(POOL, 1)], lane="new_risk", deadline_s=0)

"""The peer libraries of the limiter benchmark, each configured as well as its API allows to
hold a strategy to two Kraken counters: its account's and the pool's.

A peer is a `Gate` called before each request (the client itself then has no limiter); ours is
`OpenGate`, because our limiter sits inside `KrakenRest`. The peers are imported when built:
they live in the `bench` extra only.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Final, Protocol

import redis.asyncio as aioredis

from orchestrator.config import LimitsConfig


@dataclass(frozen=True, slots=True)
class Counter:
    """A Kraken decaying counter as the peers are told it: the burst and the steady rate."""

    threshold: float
    decay_per_s: float

    @property
    def refill_s(self) -> float:
        """Seconds for an empty counter's whole threshold to decay."""
        return self.threshold / self.decay_per_s


def moving_window(counter: Counter) -> tuple[int, int]:
    """The `limits` item that never overruns a Kraken counter: N per T s with N <= threshold and
    N/T <= decay (then a full window is a full counter at worst). Longest whole-second window."""
    window_s = math.floor(counter.threshold / counter.decay_per_s)
    return math.floor(counter.decay_per_s * window_s), window_s


def gcra_rate(counter: Counter) -> tuple[int, int, int]:
    """pyrate-limiter's `Rate(limit, interval_ms, burst=...)` for a Kraken counter: 11.7/s is
    1170 per 100 s, integers as Rate wants them."""
    return round(counter.decay_per_s * 100), 100_000, int(counter.threshold)


class Gate(Protocol):
    async def admit(self, strategy: str, account: str, cost: int, stop_at: float) -> bool:
        """Block until `cost` may be sent for `strategy` on `account`; False when `stop_at`
        came first."""
        ...


class OpenGate:
    """Ours: the limiter is inside `KrakenRest` (it takes the permit before signing)."""

    async def admit(self, strategy: str, account: str, cost: int, stop_at: float) -> bool:
        return True


class LimitsGate:
    """`limits`: moving window in Redis (shared by every process), cost as the hit's `cost`.

    Kraken's decaying counter has no window equivalent; "N per T" is safe when N <= threshold
    and N/T <= decay, and the longest whole-second T keeps the largest burst: 620 per 53 s for
    the pool, 124 per 53 s per account. Its price: after a burst nothing is admitted until the
    burst's entries leave the window (53 s later), where Kraken's counter would already admit
    11.7/s. Two scopes are two calls (account, then pool): not atomic, no reserve lane.
    """

    def __init__(self, redis_url: str, namespace: str, *, pool: Counter, account: Counter) -> None:
        from limits import RateLimitItemPerSecond  # noqa: PLC0415 - bench extra only
        from limits.aio.storage import RedisStorage  # noqa: PLC0415
        from limits.aio.strategies import MovingWindowRateLimiter  # noqa: PLC0415

        storage = RedisStorage(f"async+{redis_url}", implementation="redispy", key_prefix=namespace)
        self._strategy = MovingWindowRateLimiter(storage)
        self._pool = RateLimitItemPerSecond(*moving_window(pool))
        self._account = RateLimitItemPerSecond(*moving_window(account))

    async def admit(self, strategy: str, account: str, cost: int, stop_at: float) -> bool:
        return await self._take(self._account, ("trade", account), cost, stop_at) and (
            await self._take(self._pool, ("domain", "XBTUSD"), cost, stop_at)
        )

    async def _take(self, item: Any, ids: tuple[str, ...], cost: int, stop_at: float) -> bool:
        while time.time() < stop_at:
            if await self._strategy.hit(item, *ids, cost=cost):
                return True
            stats = await self._strategy.get_window_stats(item, *ids)
            # The oldest entry leaves the window at `reset_time`; a cost > 1 may need more.
            wait_s = max(0.002, float(stats.reset_time) - time.time())
            await asyncio.sleep(min(wait_s, max(0.0, stop_at - time.time())))
        return False


class PyrateGate:
    """`pyrate-limiter`: GCRA state in Redis (RedisStateStore), a Rate with `burst` = threshold
    and emission = decay, the cost as the item's weight. GCRA *is* Kraken's counter, up to
    integer microseconds. Two scopes are two limiters (account, then pool; not atomic), one pair
    per strategy so no strategy waits behind another's lock; the clock is each host's; no
    reserve lane. `buffer_ms` (extra sleep after the computed wait) lowered from 50 to 5.
    """

    BUFFER_MS: Final = 5

    def __init__(
        self, redis: aioredis.Redis, namespace: str, *, pool: Counter, account: Counter
    ) -> None:
        self._redis = redis
        self._namespace = namespace
        self._pool_counter = pool
        self._account_counter = account
        self._limiters: dict[str, tuple[Any, Any]] = {}

    def _limiter(self, key: str, counter: Counter) -> Any:
        from pyrate_limiter import (  # noqa: PLC0415 - bench extra only
            GCRA,
            Limiter,
            Rate,
            RedisStateStore,
            SingleBucketFactory,
            StateBucket,
        )

        limit, interval_ms, burst = gcra_rate(counter)
        rate = Rate(limit, interval_ms, burst=burst)
        bucket = StateBucket([rate], GCRA(), RedisStateStore(self._redis, key))
        return Limiter(SingleBucketFactory(bucket, schedule_leak=False), buffer_ms=self.BUFFER_MS)

    async def admit(self, strategy: str, account: str, cost: int, stop_at: float) -> bool:
        pair = self._limiters.get(strategy)
        if pair is None:
            pair = (
                self._limiter(f"{self._namespace}:trade:{account}", self._account_counter),
                self._limiter(f"{self._namespace}:domain", self._pool_counter),
            )
            self._limiters[strategy] = pair
        # Its own `timeout=` leaves "cannot reuse already awaited coroutine" tasks behind when
        # it fires (4.5.1); an outer timeout cancels the wait cleanly.
        try:
            async with asyncio.timeout(max(0.0, stop_at - time.time())):
                for limiter in pair:
                    await limiter.try_acquire_async(strategy, weight=cost, blocking=True)
        except TimeoutError:
            return False
        return True


class AioGate:
    """`aiolimiter`: a leaky bucket in each process, the cost as `amount`. Exact for one account
    (its strategy lives in one process); the pool gets a static equal share per process
    (hummingbot's `rate_limits_share_pct`): threshold/P with decay/P, so the P buckets sum to
    Kraken's pool however demand is spread. Share left idle by one process is lost to others.
    """

    def __init__(self, processes: int, *, pool: Counter, account: Counter) -> None:
        from aiolimiter import AsyncLimiter  # noqa: PLC0415 - bench extra only

        self._make = AsyncLimiter
        self._account_counter = account
        self._pool = AsyncLimiter(pool.threshold / processes, time_period=pool.refill_s)
        self._accounts: dict[str, Any] = {}

    async def admit(self, strategy: str, account: str, cost: int, stop_at: float) -> bool:
        bucket = self._accounts.get(account)
        if bucket is None:
            counter = self._account_counter
            bucket = self._make(counter.threshold, time_period=counter.refill_s)
            self._accounts[account] = bucket
        try:
            async with asyncio.timeout(max(0.0, stop_at - time.time())):
                await bucket.acquire(cost)
                await self._pool.acquire(cost)
        except TimeoutError:
            return False
        return True


class _Gcra:
    """Kraken's decaying counter kept in one process: the theoretical arrival time of an
    empty counter (`tat`); a cost fits once the level less what decays by then leaves room.
    The room less `TRANSIT_S` of decay, as ours keeps (`limits.transit_allowance_s`: the venue
    counts a request a little after it was let through, when the others' have decayed less)."""

    TRANSIT_S: Final = LimitsConfig().transit_allowance_s

    def __init__(self, counter: Counter) -> None:
        self.counter = counter
        self.tat_s = 0.0

    def fit_s(self, cost: int, now_s: float) -> float:
        room_s = (self.counter.threshold - cost) / self.counter.decay_per_s - self.TRANSIT_S
        return max(now_s, self.tat_s - room_s)

    def take(self, cost: int, send_s: float) -> None:
        self.tat_s = max(self.tat_s, send_s) + cost / self.counter.decay_per_s


class _SlidingLog:
    """A sliding-window log in one process: at most `limit` cost in any `window_s`."""

    def __init__(self, counter: Counter) -> None:
        self.limit, self.window_s = moving_window(counter)
        self.log: deque[tuple[float, int]] = deque()
        self.total = 0

    def fit_s(self, cost: int, now_s: float) -> float:
        while self.log and self.log[0][0] <= now_s - self.window_s:
            self.total -= self.log.popleft()[1]
        if self.total + cost <= self.limit:
            return now_s
        spent = self.total
        for at_s, c in self.log:  # the entries that must leave before `cost` fits
            spent -= c
            if spent + cost <= self.limit:
                return at_s + self.window_s
        return math.inf

    def take(self, cost: int, send_s: float) -> None:
        self.log.append((send_s, cost))
        self.total += cost


class _LocalGate:
    """A per-process limiter: the account's counter and this process's static share of the
    pool, both in memory; one sleep until both fit (single-threaded: nothing else can take
    the room meanwhile unless another order loop does, so it checks again after the sleep)."""

    def __init__(self, make: Any, processes: int, *, pool: Counter, account: Counter) -> None:
        self._make = make
        self._account_counter = account
        self._pool = make(Counter(pool.threshold / processes, pool.decay_per_s / processes))
        self._accounts: dict[str, Any] = {}

    async def admit(self, strategy: str, account: str, cost: int, stop_at: float) -> bool:
        mine = self._accounts.get(account)
        if mine is None:
            mine = self._accounts[account] = self._make(self._account_counter)
        while (now_s := time.time()) < stop_at:
            fit_s = max(mine.fit_s(cost, now_s), self._pool.fit_s(cost, now_s))
            if fit_s <= now_s:
                mine.take(cost, now_s)
                self._pool.take(cost, now_s)
                return True
            await asyncio.sleep(min(fit_s, stop_at) - now_s)
        return False


class StaticGate(_LocalGate):
    """Static partition: each of P processes holds 1/P of the pool (threshold/P, decay/P) as an
    exact Kraken counter, and each account's own counter; no coordination. The best a static
    equal share can do: share left idle by one process is lost to the others."""

    def __init__(self, processes: int, *, pool: Counter, account: Counter) -> None:
        super().__init__(_Gcra, processes, pool=pool, account=account)


class WindowGate(_LocalGate):
    """Per-process sliding window: a sliding log per process over its 1/P of the pool, "N per
    T" as for `limits` (N <= threshold/P, N/T <= decay/P), and one per account."""

    def __init__(self, processes: int, *, pool: Counter, account: Counter) -> None:
        super().__init__(_SlidingLog, processes, pool=pool, account=account)


def peer_notes(*, pool: Counter, account: Counter, processes: int) -> list[str]:
    """How each peer was configured, for the report."""
    pool_n, pool_t = moving_window(pool)
    acct_n, acct_t = moving_window(account)
    pool_rate, account_rate = gcra_rate(pool), gcra_rate(account)
    share = Counter(pool.threshold / processes, pool.decay_per_s / processes)
    share_n, share_t = moving_window(share)
    return [
        f"static partition: an exact Kraken counter per process for 1/{processes} of the pool "
        f"({share.threshold:g} burst, {share.decay_per_s:g}/s) and one per account, in memory",
        f"per-process sliding window: a sliding log per process, '{share_n} per {share_t} s' "
        f"(1/{processes} of the pool) and '{acct_n} per {acct_t} s' per account, in memory",
        f"limits: moving window '{pool_n} per {pool_t} s' (pool) and '{acct_n} per {acct_t} s' "
        f"(account), hit(cost=...): after its burst nothing until the window slides, {pool_t} s on",
        f"pyrate-limiter: GCRA Rate({pool_rate[0]} per {pool_rate[1] // 1000} s, "
        f"burst={pool_rate[2]}) (pool) and ({account_rate[0]} per {account_rate[1] // 1000} s, "
        f"burst={account_rate[2]}) (account) in RedisStateStore, weight=cost; account then pool, "
        "not atomic",
        f"aiolimiter: AsyncLimiter({pool.threshold / processes:g}, {pool.refill_s:.2f} s) per "
        f"process (a static 1/{processes} share) + AsyncLimiter({account.threshold:g}, "
        f"{account.refill_s:.2f} s) per account",
        "peers: no cancel lane (whole threshold for every request), each host's clock, the "
        "age-based cancel cost passed as their weight",
    ]

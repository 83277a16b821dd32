"""A mutex shared by processes through Redis: a lease, renewed while held.

It is redis-py's asyncio `Lock` (an owner token under SET NX PX, released and extended by owner
only), with two additions: the lease is renewed in the background while the block runs, so a
request longer than one lease keeps it; and every Redis error leaves as `StoreUnavailable`, so
callers decide what to do without Redis (the key lock falls back to a local lock). Once the
block has run, nothing Redis does (a lost lease, an outage) raises: the request is already out.

Waiters are served in the order they came (first come, first served across processes): each
poll refreshes the waiter's place in a queue beside the lease, and the lease goes only to the
queue's head. Without it, a process that releases and asks again wins the race against every
other process's next poll, and another process can wait out its whole deadline behind two
requests of the same process. A waiter that stops polling (gave up, died) loses its place
after `_PLACE_TTL_POLLS` polls.

A holder that dies (kill -9) keeps the mutex for at most one lease; waiters poll every `poll_s`
and give up at their own deadline (`wait_s`).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Final

import redis.asyncio as aioredis

from orchestrator.errors import StoreError
from orchestrator.logs import get_logger
from orchestrator.store.errors import redis_errors

log = get_logger(__name__)

_RENEWALS_PER_LEASE: Final = 3
_PLACE_TTL_POLLS: Final = 20  # a waiter keeps its place this many polls without asking

# KEYS: the lease, the queue (member: token, score: place), its expiry (member: token, score:
# ms when the place lapses). ARGV: token, lease ms, place ttl ms. Returns 1 when leased.
_ACQUIRE_LUA: Final = """
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local token = ARGV[1]
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now_ms, 'LIMIT', 0, 16)) do
  redis.call('ZREM', KEYS[2], gone)
  redis.call('ZREM', KEYS[3], gone)
end
if not redis.call('ZSCORE', KEYS[2], token) then
  local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
  redis.call('ZADD', KEYS[2], (last[2] and tonumber(last[2]) or 0) + 1, token)
end
redis.call('ZADD', KEYS[3], now_ms + tonumber(ARGV[3]), token)
local ttl_ms = tonumber(ARGV[3]) * 4
redis.call('PEXPIRE', KEYS[2], ttl_ms)
redis.call('PEXPIRE', KEYS[3], ttl_ms)
if redis.call('ZRANGE', KEYS[2], 0, 0)[1] ~= token then return 0 end
if not redis.call('SET', KEYS[1], token, 'NX', 'PX', ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[2], token)
redis.call('ZREM', KEYS[3], token)
return 1
"""

# KEYS: the queue, its expiry. ARGV: token. A waiter that gave up leaves its place at once.
_LEAVE_LUA: Final = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""


class MutexBusy(StoreError):
    """Another holder kept the mutex past the caller's wait."""


class _QueuedLock(aioredis.lock.Lock):
    """redis-py's lock (its polling, release and extension by owner), leased in queue order."""

    def __init__(self, mutex: RedisMutex, *, blocking_timeout: float) -> None:
        super().__init__(mutex.redis, mutex.name, timeout=mutex.lease_s, sleep=mutex.poll_s,
                         blocking_timeout=blocking_timeout, thread_local=False)  # fmt: skip
        self._mutex = mutex

    async def do_acquire(self, token: str | bytes) -> bool:
        mutex = self._mutex
        leased = await mutex._acquire(keys=[mutex.name, *mutex.queue_keys],
                                      args=[token, mutex.lease_ms, mutex.place_ttl_ms])  # fmt: skip
        return bool(leased)


class RedisMutex:
    def __init__(
        self, redis: aioredis.Redis, name: str, *, queue: str, lease_s: float,
        poll_s: float = 0.01,
    ) -> None:  # fmt: skip
        """`queue`: the key of the waiters' queue (two keys, `queue` and `queue:lapse`); in the
        same hash slot as `name` on Redis Cluster (`Keys.key_mutex_queue`)."""
        if lease_s <= 0:
            raise ValueError(f"lease_s must be > 0, got {lease_s}")
        self.redis = redis
        self.name = name
        self.queue_keys = [queue, f"{queue}:lapse"]
        self.lease_s = lease_s
        self.lease_ms = int(lease_s * 1000)
        self.poll_s = poll_s
        self.place_ttl_ms = max(1, int(poll_s * _PLACE_TTL_POLLS * 1000))
        self._acquire = redis.register_script(_ACQUIRE_LUA)
        self._leave = redis.register_script(_LEAVE_LUA)

    @contextlib.asynccontextmanager
    async def hold(self, *, wait_s: float) -> AsyncIterator[None]:
        """Hold the mutex for the block. `MutexBusy` after `wait_s`; `StoreError` when Redis
        cannot answer or refuses (before the block runs, never after it)."""
        lock = _QueuedLock(self, blocking_timeout=max(wait_s, self.poll_s))
        token = secrets.token_hex(16).encode()  # ours, so a lease whose reply was lost is undone
        try:
            async with redis_errors(self.redis, f"mutex {self.name}"):
                acquired = await lock.acquire(token=token)
        except StoreError:
            await self._undo(lock, token)
            raise
        if not acquired:
            await self._give_up(token)
            raise MutexBusy(f"{self.name} held by another process for more than {wait_s} s")
        renewal = asyncio.get_running_loop().create_task(self._renew(lock))
        try:
            yield
        finally:
            renewal.cancel()
            await asyncio.wait([renewal])  # never raises: an outer cancellation stays one
            await self._release(lock)

    async def _renew(self, lock: aioredis.lock.Lock) -> None:
        """Push the lease out every third of it; a failed renewal is logged, not fatal: the
        request it guards is already on its way."""
        while True:
            await asyncio.sleep(self.lease_s / _RENEWALS_PER_LEASE)
            try:
                async with redis_errors(self.redis, f"mutex {self.name}"):
                    await lock.reacquire()
            except StoreError as exc:  # unreachable, or the lease is lost (LockError)
                log.warning("mutex.renew_failed", name=self.name, error=str(exc))
                return

    async def _undo(self, lock: aioredis.lock.Lock, token: bytes) -> None:
        """The SET may have landed though its reply did not: free the lease if it is ours, at
        once, or it blocks every process for `lease_s`. Best effort, briefly: Redis is ailing."""
        try:
            async with redis_errors(self.redis, f"mutex {self.name}"), asyncio.timeout(0.2):
                await lock.do_release(token)
        except StoreError as exc:
            log.info("mutex.undo_skipped", name=self.name, error=str(exc))
        await self._give_up(token)

    async def _give_up(self, token: bytes) -> None:
        """Leave the queue now rather than hold up the next waiter until the place lapses.
        Best effort: a place left behind lapses on its own."""
        try:
            async with redis_errors(self.redis, f"mutex {self.name}"), asyncio.timeout(0.2):
                await self._leave(keys=self.queue_keys, args=[token])
        except StoreError as exc:
            log.info("mutex.leave_skipped", name=self.name, error=str(exc))

    async def _release(self, lock: aioredis.lock.Lock) -> None:
        try:
            async with redis_errors(self.redis, f"mutex {self.name}"):
                await lock.release()
        except StoreError as exc:
            # Unreachable, or the lease is lost (LockError): it expires on its own within
            # `lease_s`. Never raised: the request the mutex guarded has already gone out.
            log.warning("mutex.release_failed", name=self.name, error=str(exc))

"""One request per API key at a time, so that nonces reach Kraken in the order they were taken.

Within a process an asyncio lock queues the callers; across processes sharing a key, a Redis
mutex (store/mutex.py) does. The lease is longer than the longest request it guards and renewed
while held, so a slow venue never lets a second process in; a holder killed with -9 delays the
others by at most one lease. Waiting is bounded by the caller's deadline.

Cancels must reach the venue even when Redis does not answer (or answers with an error): then
the key lock is the local lock alone (and the nonce comes from the local fallback, see
nonce.py). Two processes cut off from Redis may then interleave on one key; a nonce window on
the key absorbs that (docs/outcomes.md).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Protocol

import redis.asyncio as aioredis

from orchestrator.errors import StoreError, VenueUnavailable
from orchestrator.logs import get_logger
from orchestrator.store.health import RedisHealth
from orchestrator.store.keys import Keys
from orchestrator.store.mutex import MutexBusy, RedisMutex

log = get_logger(__name__)


class KeyLock(Protocol):
    def hold(self, *, wait_s: float) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold the key for one request; `VenueUnavailable` (nothing sent) after `wait_s`."""
        ...


class LocalKeyLock:
    """For a key no other process uses."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def hold(self, *, wait_s: float) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(wait_s):
                await self._lock.acquire()
        except TimeoutError:
            raise VenueUnavailable(
                f"API key busy in this process for more than {wait_s} s"
            ) from None
        try:
            yield
        finally:
            self._lock.release()


class SharedKeyLock:
    """For a key several processes use: the local lock, then the Redis mutex."""

    def __init__(
        self, redis: aioredis.Redis, keys: Keys, key_id: str, *, lease_s: float,
        health: RedisHealth,
    ) -> None:  # fmt: skip
        """`lease_s`: longer than the longest request (the REST timeout plus a margin).
        `health`: the process's verdict on Redis; while it is down, the local lock alone."""
        self._health = health
        self._local = LocalKeyLock()
        self._mutex = RedisMutex(redis, keys.key_mutex(key_id),
                                 queue=keys.key_mutex_queue(key_id), lease_s=lease_s)  # fmt: skip
        self._fallback = False

    @contextlib.asynccontextmanager
    async def hold(self, *, wait_s: float) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        async with self._local.hold(wait_s=wait_s), self._shared(deadline - loop.time()):
            yield

    @contextlib.asynccontextmanager
    async def _shared(self, wait_s: float) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if self._health.is_down():
                self._fall_back("Redis marked down")
            else:
                try:
                    await stack.enter_async_context(self._mutex.hold(wait_s=max(0.0, wait_s)))
                except MutexBusy as exc:
                    raise VenueUnavailable(f"API key busy: {exc}") from exc
                except StoreError as exc:  # unreachable, or refusing (BUSY, a failover, an ACL)
                    self._health.mark_down("key_lock", str(exc))
                    self._fall_back(str(exc))
                else:
                    if self._fallback:
                        log.info("key_lock.redis_recovered")
                    self._fallback = False
            yield

    def _fall_back(self, reason: str) -> None:
        if not self._fallback:
            log.warning("key_lock.local_fallback", reason=reason)
        self._fallback = True

"""A mutex shared by processes through Redis: a lease, renewed while held.

It is redis-py's asyncio `Lock` (an owner token under SET NX PX, released and extended by owner
only), with two additions: the lease is renewed in the background while the block runs, so a
request longer than one lease keeps it; and every Redis error leaves as `StoreUnavailable`, so
callers decide what to do without Redis (the key lock falls back to a local lock). Once the
block has run, nothing Redis does (a lost lease, an outage) raises: the request is already out.

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


class MutexBusy(StoreError):
    """Another holder kept the mutex past the caller's wait."""


class RedisMutex:
    def __init__(
        self, redis: aioredis.Redis, name: str, *, lease_s: float, poll_s: float = 0.01
    ) -> None:
        self.redis = redis
        self.name = name
        self.lease_s = lease_s
        self.poll_s = poll_s

    @contextlib.asynccontextmanager
    async def hold(self, *, wait_s: float) -> AsyncIterator[None]:
        """Hold the mutex for the block. `MutexBusy` after `wait_s`; `StoreError` when Redis
        cannot answer or refuses (before the block runs, never after it)."""
        lock = self.redis.lock(
            self.name,
            timeout=self.lease_s,
            sleep=self.poll_s,
            blocking_timeout=max(wait_s, self.poll_s),
            thread_local=False,
        )
        token = secrets.token_hex(16).encode()  # ours, so a lease whose reply was lost is undone
        try:
            async with redis_errors(self.redis, f"mutex {self.name}"):
                acquired = await lock.acquire(token=token)
        except StoreError:
            await self._undo(lock, token)
            raise
        if not acquired:
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

    async def _release(self, lock: aioredis.lock.Lock) -> None:
        try:
            async with redis_errors(self.redis, f"mutex {self.name}"):
                await lock.release()
        except StoreError as exc:
            # Unreachable, or the lease is lost (LockError): it expires on its own within
            # `lease_s`. Never raised: the request the mutex guarded has already gone out.
            log.warning("mutex.release_failed", name=self.name, error=str(exc))

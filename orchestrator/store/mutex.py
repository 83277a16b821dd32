"""A mutex shared by processes through Redis: one holder at a time, waiters woken, no polling.

Used to send one request per API key at a time when several processes share the key, so that
nonces reach Kraken in the order they were allocated. Holding is a lease (`ttl_ms`): a holder that
dies frees the mutex when its lease runs out. Waiters block on a wake-up list (BLPOP) that each
release pushes to, and re-check after at most the lease time, so a lost wake-up costs a delay,
never a deadlock. Within one process an asyncio lock queues callers first, so only one of them
waits on Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Final

import redis.asyncio as aioredis

_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('RPUSH', KEYS[2], '1')
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  return 1
end
return 0
"""


class RedisMutex:
    def __init__(self, redis: aioredis.Redis, name: str, *, ttl_ms: int = 5000) -> None:
        self.redis = redis
        self.lock_key = name
        self.wake_key = f"{name}:wake"
        self.ttl_ms = ttl_ms
        self._local = asyncio.Lock()
        self._release = redis.register_script(_RELEASE)

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        async with self._local:
            token = secrets.token_hex(8)
            while not await self.redis.set(self.lock_key, token, nx=True, px=self.ttl_ms):
                pttl = await self.redis.pttl(self.lock_key)
                timeout_s = max(0.01, min(self.ttl_ms, pttl if pttl > 0 else 10) / 1000)
                await self.redis.blpop([self.wake_key], timeout=timeout_s)
            try:
                yield
            finally:
                await self._release(keys=[self.lock_key, self.wake_key], args=[token, self.ttl_ms])

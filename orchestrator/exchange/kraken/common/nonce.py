"""Nonces: strictly increasing per API key, across every process and host that uses the key.

`SharedNonce` allocates from one Redis counter per key (microseconds of Redis TIME, or last + 1
if that is not larger), so two processes never hand out the same or a lower nonce. Allocation
order is not arrival order, though: the REST client also sends one request per key at a time
(the key lock, `key_lock.py`), which keeps `EAPI:Invalid nonce` away when the key's nonce window
is 0.

When Redis cannot answer, a cancel must still reach Kraken, so `SharedNonce` falls back to a local
source that stays above anything Redis handed out: the local clock plus the largest lead Redis's
clock was seen to have over it, and never below the last nonce this process used. When Redis is
back, the first allocation carries this process's last nonce as a floor, so the shared counter
resumes above what was sent without it.
"""

from __future__ import annotations

import time
from typing import Final, Protocol

import redis.asyncio as aioredis

from orchestrator.errors import StoreError
from orchestrator.logs import get_logger
from orchestrator.store.errors import redis_errors
from orchestrator.store.health import RedisHealth
from orchestrator.store.keys import Keys

log = get_logger(__name__)

# KEYS[1] the key's counter; ARGV[1] a floor (the caller's last nonce).
_ALLOCATE: Final = """
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local nonce = math.max(now_us, last + 1, tonumber(ARGV[1]) + 1)
redis.call('SET', KEYS[1], string.format('%d', nonce))
return string.format('%d', nonce)
"""


def _local_us() -> int:
    return time.time_ns() // 1000


class NonceSource(Protocol):
    async def next(self) -> int:
        """A nonce larger than every one this source handed out before."""
        ...


class LocalNonce:
    """Microseconds of the wall clock, bumped when two calls fall in the same microsecond.

    Only for a key that no other process uses.
    """

    def __init__(self) -> None:
        self._last = 0

    async def next(self) -> int:
        self._last = max(_local_us(), self._last + 1)
        return self._last


class SharedNonce:
    """One shared counter per API key (named by its non-secret id) in Redis, with a local
    fallback while Redis is unreachable."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, key_id: str, health: RedisHealth) -> None:
        """`key_id`: the key's fingerprint (`common.auth.key_fingerprint`), never the key.
        `health`: the process's verdict on Redis; while it is down, nonces are local at once."""
        self._redis = redis
        self._health = health
        self._key = keys.nonce(key_id)
        self._script = redis.register_script(_ALLOCATE)
        self._last = 0  # the last nonce this process used, from Redis or not
        self._lead_us = 0  # the largest (Redis nonce - local clock) seen
        self._local_mode = False

    async def next(self) -> int:
        if self._health.is_down():
            return self._next_local("Redis marked down")
        before_us = _local_us()
        try:
            async with redis_errors(self._redis, "nonce"):
                nonce = int(await self._script(keys=[self._key], args=[self._last]))
        except StoreError as exc:  # unreachable, or refusing: cancels must still go out
            self._health.mark_down("nonce", str(exc))
            return self._next_local(str(exc))
        # Measured from before the call, the lead is over- rather than under-estimated.
        self._lead_us = max(self._lead_us, nonce - before_us)
        if self._local_mode:
            self._local_mode = False
            log.info("nonce.redis_recovered", key=self._key)
        self._last = max(self._last, nonce)
        return self._last

    def _next_local(self, reason: str) -> int:
        if not self._local_mode:
            self._local_mode = True
            log.warning("nonce.local_fallback", key=self._key, reason=reason)
        self._last = max(_local_us() + self._lead_us, self._last + 1)
        return self._last

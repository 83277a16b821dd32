"""Nonces: strictly increasing per API key, across every process and host that uses the key.

`RedisNonce` allocates from one Redis counter per key (microseconds of Redis TIME, or last + 1 if
that is not larger), so two processes never hand out the same or a lower nonce. Allocation order
is not arrival order, though: the REST client also sends one request per key at a time
(`KrakenRest` holds a per-key lock from allocation until the reply), which is what keeps
`EAPI:Invalid nonce` away when the key's nonce window is 0.
"""

from __future__ import annotations

import time
from typing import Final, Protocol

import redis.asyncio as aioredis

from orchestrator.store.keys import Keys

_ALLOCATE: Final = """
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local nonce = math.max(now_us, last + 1)
redis.call('SET', KEYS[1], string.format('%d', nonce))
return string.format('%d', nonce)
"""


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
        self._last = max(time.time_ns() // 1000, self._last + 1)
        return self._last


class RedisNonce:
    """One shared counter per API key (named by its non-secret id) in Redis."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, key_id: str) -> None:
        """`key_id`: the key's fingerprint (`rest.key_fingerprint`), never the key itself."""
        self._key = keys.nonce(key_id)
        self._script = redis.register_script(_ALLOCATE)

    async def next(self) -> int:
        return int(await self._script(keys=[self._key]))

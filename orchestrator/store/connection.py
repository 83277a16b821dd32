"""Opening the service's Redis client, embedded or external.

We use `redis.asyncio` (redis-py, with the hiredis parser): maintained, supports Streams, Lua
script caching (EVALSHA with EVAL fallback) and Cluster, and fakeredis emulates it in unit tests.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from orchestrator.config import RedisConfig
from orchestrator.errors import StoreUnavailable
from orchestrator.logs import get_logger
from orchestrator.store.embedded import open_embedded_redis

log = get_logger(__name__)

Redis = aioredis.Redis


def safe_url(url: str) -> str:
    """The URL with any password replaced, fit for logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


async def connect(url: str, config: RedisConfig) -> Redis:
    """A client for `url`, checked with a PING. Raises `StoreUnavailable` naming the safe URL."""
    client: Redis = aioredis.Redis.from_url(
        url,
        socket_connect_timeout=config.connect_timeout_s,
        socket_timeout=config.socket_timeout_s,
        health_check_interval=30,
    )
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        raise StoreUnavailable(
            f"Redis at {safe_url(url)} unreachable: {type(exc).__name__}"
        ) from exc
    return client


@contextlib.asynccontextmanager
async def open_redis(config: RedisConfig) -> AsyncIterator[Redis]:
    """The service's Redis client for the life of the block (and its embedded server, if any)."""
    async with contextlib.AsyncExitStack() as stack:
        if config.url == "embedded":
            embedded = await stack.enter_async_context(open_embedded_redis(config.server_binary))
            url = embedded.url
        else:
            url = config.url
        client = await connect(url, config)
        stack.push_async_callback(client.aclose)
        log.info("redis.connected", url=safe_url(url))
        yield client

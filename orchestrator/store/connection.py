"""Opening the service's Redis client, embedded or external.

We use `redis.asyncio` (redis-py, with the hiredis parser): maintained, supports Streams, Lua
script caching (EVALSHA with EVAL fallback) and Cluster, and fakeredis emulates it in unit tests.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, Final
from urllib.parse import unquote_plus

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.sentinel import SentinelManagedConnection

from orchestrator.config import RedisConfig
from orchestrator.errors import StoreError
from orchestrator.logs import REDACTED, get_logger, is_sensitive_name
from orchestrator.store.cluster import SCHEME as CLUSTER_SCHEME
from orchestrator.store.cluster import cluster_client
from orchestrator.store.embedded import open_embedded_redis
from orchestrator.store.errors import redis_errors
from orchestrator.store.sentinel import SCHEME as SENTINEL_SCHEME
from orchestrator.store.sentinel import sentinel_client

log = get_logger(__name__)

Redis = aioredis.Redis
_PACKABLE: Final = (bytes, str, int, float)
# Connections per process. Opened only as concurrent callers need them (one per task awaiting
# Redis: a limiter call per strategy, nonce and key-lock calls per API key; the key lock polls,
# so a waiter holds none between polls), so this is a ceiling, not a cost: above what any
# process we run needs at once (200 strategies with their keys), and low enough that a dozen
# processes stay well inside Redis's default `maxclients` (10 000) even if one runs away.
MAX_CONNECTIONS: Final = 512
POOL_TIMEOUT_S: Final = 2.0  # a full pool: wait this long for a connection, then unavailable


class _HiredisPacking:
    """Commands packed by hiredis's C packer.

    redis-py's asyncio client packs commands in Python (about 8 us for the limiter's 17-argument
    EVALSHA against 1 us in C); this is on the path of every permit. Arguments of other types
    (or bools, which redis-py refuses) take redis-py's own packer, errors included.
    """

    def pack_command(self, *args: Any) -> list[bytes]:
        if args and isinstance(args[0], str) and " " in args[0]:
            args = (*args[0].split(), *args[1:])  # "SCRIPT FLUSH" is two words on the wire
        for arg in args:
            if type(arg) not in _PACKABLE:
                packed: list[bytes] = super().pack_command(*args)  # type: ignore[misc]
                return packed
        return [hiredis.pack_command(args)]


class HiredisPackingConnection(_HiredisPacking, aioredis.Connection):
    """A TCP connection whose commands hiredis packs."""


class HiredisSentinelConnection(_HiredisPacking, SentinelManagedConnection):
    """A connection to the master a Sentinel names, whose commands hiredis packs."""


def redis_client(
    url: str,
    *,
    max_connections: int = MAX_CONNECTIONS,
    pool_timeout_s: float = POOL_TIMEOUT_S,
    single_connection_client: bool = False,
    **kwargs: Any,
) -> Redis:
    """A `redis.asyncio` client for `url`; plain TCP connections pack commands with hiredis.

    Its pool opens connections as concurrent callers need them, up to `max_connections`; past
    that a caller waits (at most `pool_timeout_s`) for one to be released instead of failing at
    once: a busy pool is not an unreachable Redis. `kwargs` go to each connection. A
    `redis+sentinel://` URL gives a client of the master its sentinels name
    (`store/sentinel.py`), a `redis+cluster://` URL a Redis Cluster client (`store/cluster.py`).
    """
    if url.startswith(CLUSTER_SCHEME):
        return cluster_client(url, max_connections=max_connections, **kwargs)
    if url.startswith(SENTINEL_SCHEME):
        return sentinel_client(
            url,
            connection_class=HiredisSentinelConnection,
            max_connections=max_connections,
            single_connection_client=single_connection_client,
            **kwargs,
        )
    if url.startswith("redis://"):
        kwargs.setdefault("connection_class", HiredisPackingConnection)
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=pool_timeout_s, **kwargs
    )
    client = aioredis.Redis(connection_pool=pool, single_connection_client=single_connection_client)
    client.auto_close_connection_pool = True  # as `Redis.from_url`: closing it closes its pool
    return client


def socket_timeout_s(client: Redis) -> float | None:
    """The command timeout `client`'s connections were given (None: none)."""
    # A Cluster client's too (its nodes' pools share them); untyped in redis-py.
    kwargs: dict[str, Any] = client.get_connection_kwargs()  # type: ignore[no-untyped-call]
    timeout = kwargs.get("socket_timeout")
    return None if timeout is None else float(timeout)


def safe_url(url: str) -> str:
    """The URL with every password replaced by `***`, fit for output, logs and errors.

    Works on the text rather than on `urlsplit`'s fields so that it never raises (a bad port)
    and never leaks a piece of a password: when a password holds an unencoded `/`, `?` or `#`,
    a parser ends the user part early and shows the rest as path, query or fragment; here
    everything up to the last `@` is hidden instead. Query parameters named like secrets
    (`?password=`, which redis-py accepts) are hidden too.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url  # not a URL at all (`user:pw@host`): still hide the password
    userinfo, at, tail = rest.rpartition("@")
    if at:
        if any(c in userinfo for c in "/?#"):
            userinfo = REDACTED  # an `@` past the host, or raw reserved characters: hide it all
        elif ":" in userinfo:
            userinfo = f"{userinfo.partition(':')[0]}:{REDACTED}"
        rest = f"{userinfo}@{tail}"
    before_fragment, hash_sign, fragment = rest.partition("#")
    path, question, query = before_fragment.partition("?")
    if question:
        query = "&".join(
            f"{item.partition('=')[0]}={REDACTED}"
            if is_sensitive_name(unquote_plus(item.partition("=")[0]))
            else item
            for item in query.split("&")
        )
    return f"{scheme}{sep}{path}{question}{query}{hash_sign}{fragment}"


async def connect(url: str, config: RedisConfig) -> Redis:
    """A client for `url`, checked with a PING. Raises `StoreUnavailable` naming the safe URL."""
    client = redis_client(
        url,
        pool_timeout_s=config.socket_timeout_s,  # waiting for a connection: as long as a command
        socket_connect_timeout=config.connect_timeout_s,
        socket_timeout=config.socket_timeout_s,
        health_check_interval=30,
    )
    try:
        async with redis_errors(client, f"Redis at {safe_url(url)}"):
            await client.ping()
    except StoreError:
        await client.aclose()
        raise
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

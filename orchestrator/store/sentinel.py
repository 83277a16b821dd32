"""Redis Sentinel URLs: the master of a monitored service, found through its sentinels and found
again after a failover.

    redis+sentinel://[user:password@]host1:26379,host2:26379,host3:26379/mymaster[/db]

The user and password are the master's (the Redis ACL user the service runs as); sentinels that
require their own take `?sentinel_username=` and `?sentinel_password=`. Each connection asks the
sentinels for the master when it connects, so after a failover the next connection lands on the
promoted replica; a connection still open to a demoted master gets READONLY, which the store's
error edge reads as "reconnect" (`store/errors.py`), and the limiter's epoch tells whether the new
master lost grants (`ratelimit/epoch.py`). redis-py's `Sentinel` does the asking; this module
only reads the URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qs, unquote

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection

from orchestrator.errors import ConfigError
from orchestrator.store.multi_host import split_multi_host

SCHEME: Final = "redis+sentinel://"
DEFAULT_PORT: Final = 26379


@dataclass(frozen=True, slots=True)
class SentinelUrl:
    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int
    username: str | None
    password: str | None
    sentinel_username: str | None
    sentinel_password: str | None


def parse_sentinel_url(url: str) -> SentinelUrl:
    """The parts of a `redis+sentinel://` URL; `ConfigError` (naming `redis.url`, never the
    password) when one is missing or malformed."""
    split = split_multi_host(url, scheme=SCHEME, default_port=DEFAULT_PORT, what="sentinel")
    parts = split.parts
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ConfigError("redis.url", "a Sentinel URL ends with /<service name>[/<db>]")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(query) - {"sentinel_username", "sentinel_password"}
    if unknown:
        raise ConfigError("redis.url", f"unknown Sentinel URL parameters: {sorted(unknown)}")
    return SentinelUrl(
        sentinels=split.hosts,
        service=unquote(path[0]),
        db=int(path[1]) if len(path) == 2 else 0,
        username=split.username,
        password=split.password,
        sentinel_username=query.get("sentinel_username"),
        sentinel_password=query.get("sentinel_password"),
    )


class SentinelRedis(aioredis.Redis):
    """The master's client; closing it also closes the clients of the sentinels it asked."""

    sentinels: Sentinel | None = None  # not `sentinel`: that is the SENTINEL command's method

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.sentinels is not None:
            for client in self.sentinels.sentinels:
                await client.aclose()


def sentinel_client(
    url: str,
    *,
    connection_class: type[SentinelManagedConnection],
    max_connections: int,
    single_connection_client: bool,
    **kwargs: Any,
) -> aioredis.Redis:
    """A client of the master of the service `url` names; `kwargs` go to each connection (the
    sentinels' own connections take the same timeouts)."""
    parsed = parse_sentinel_url(url)
    timeouts = {k: v for k, v in kwargs.items() if k.startswith("socket_")}
    sentinel_kwargs: dict[str, Any] = dict(timeouts)
    if parsed.sentinel_username:
        sentinel_kwargs["username"] = parsed.sentinel_username
    if parsed.sentinel_password:
        sentinel_kwargs["password"] = parsed.sentinel_password
    sentinel = Sentinel(list(parsed.sentinels), sentinel_kwargs=sentinel_kwargs)
    # As `Sentinel.master_for`, which cannot pass `single_connection_client` to the client.
    pool = SentinelConnectionPool(  # type: ignore[no-untyped-call]  # untyped in redis-py
        parsed.service,
        sentinel,
        connection_class=connection_class,
        max_connections=max_connections,
        username=parsed.username,
        password=parsed.password,
        db=parsed.db,
        **kwargs,
    )
    client = SentinelRedis(connection_pool=pool, single_connection_client=single_connection_client)
    client.sentinels = sentinel
    client.auto_close_connection_pool = True  # closing the client closes its pool
    return client

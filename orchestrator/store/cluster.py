"""Redis Cluster URLs: a client that routes each command to the node holding its keys' slot.

    redis+cluster://[user:password@]host1:6379[,host2:6379,...][/0]

The hosts are startup nodes (any of the cluster's; the client learns the rest). Every key that
one script, transaction or multi-key command touches shares a hash tag (`store/keys.py`: the
limiter's `{<ns>:domain}`, the control plane's `{<ns>:ctl}`, each account's orders), so the
same code runs on one Redis and on a Cluster with no CROSSSLOT error. redis-py's `RedisCluster`
does the routing (MOVED, ASK, a failover's new topology); this module only reads the URL.
"""

from __future__ import annotations

from typing import Any, Final, cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from orchestrator.errors import ConfigError
from orchestrator.store.multi_host import split_multi_host

SCHEME: Final = "redis+cluster://"
DEFAULT_PORT: Final = 6379
# What `RedisCluster` takes of the connection settings every client here is given.
_PASSED: Final = ("socket_timeout", "socket_connect_timeout", "health_check_interval")


def parse_cluster_url(url: str) -> tuple[list[tuple[str, int]], str | None, str | None]:
    """The startup nodes, the user and the password of a `redis+cluster://` URL; `ConfigError`
    naming `redis.url` (never the password) when malformed. A Cluster has one database: 0."""
    split = split_multi_host(url, scheme=SCHEME, default_port=DEFAULT_PORT, what="cluster node")
    parts = split.parts
    if parts.path.strip("/") not in ("", "0") or parts.query:
        raise ConfigError("redis.url", "a Cluster URL names nodes only (database 0, no query)")
    return list(split.hosts), split.username, split.password


def cluster_client(url: str, *, max_connections: int, **kwargs: Any) -> aioredis.Redis:
    """A Cluster client for `url`. Typed as `Redis`: redis-py's `RedisCluster` serves the same
    command API under another class (no common base); every command this project sends is
    single-slot by its hash tags. Of `kwargs` only the timeouts and the health check apply
    (a Cluster client keeps a pool per node; there is no single connection to pin)."""
    nodes, username, password = parse_cluster_url(url)
    passed = {k: v for k, v in kwargs.items() if k in _PASSED}
    client = RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in nodes],
        username=username,
        password=password,
        max_connections=max_connections,
        **passed,
    )
    return cast(aioredis.Redis, client)

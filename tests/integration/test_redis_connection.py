"""open_redis: embedded redis-server, the fakeredis fallback, external URLs, clear failures."""

from __future__ import annotations

import asyncio
import os

import pytest
import redis.asyncio as aioredis
import uvloop
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError

from orchestrator.config import RedisConfig
from orchestrator.errors import StoreUnavailable
from orchestrator.store.connection import (
    HiredisPackingConnection,
    open_redis,
    redis_client,
    safe_url,
)
from orchestrator.store.embedded import free_port, open_embedded_redis


async def test_embedded_redis_server_starts_and_stops() -> None:
    async with open_embedded_redis() as embedded:
        assert embedded.backend == "redis-server"
        assert embedded.port != 6379
        client = aioredis.Redis.from_url(embedded.url)
        await client.set("k", "v")
        assert await client.get("k") == b"v"
        await client.aclose()
    client = aioredis.Redis.from_url(embedded.url, socket_connect_timeout=0.2)
    with pytest.raises(RedisConnectionError):
        await client.ping()
    await client.aclose()


def test_embedded_redis_server_is_out_of_reach_of_a_terminal_ctrl_c() -> None:
    """Ctrl-C on a terminal signals its whole foreground process group: the embedded Redis
    in ours died with the service's shutdown still journaling to it (CI, 2026-12-03). On the
    service's own loop (uvloop, whose subprocess options differ from asyncio's)."""

    async def check() -> None:
        async with open_embedded_redis() as embedded:
            assert embedded.pid is not None
            assert os.getpgid(embedded.pid) == embedded.pid != os.getpgid(0)

    uvloop.run(check())


async def test_fakeredis_fallback_when_no_binary() -> None:
    config = RedisConfig(url="embedded", server_binary="no-such-redis-server-binary")
    async with open_redis(config) as client:
        await client.set("k", "1")
        assert await client.incr("k") == 2
        # Lua must work in the fallback too: the limiter depends on it.
        assert await client.eval("return redis.call('GET', KEYS[1])", 1, "k") == b"2"


async def test_open_redis_external_url(redis_server: str) -> None:
    async with open_redis(RedisConfig(url=redis_server)) as client:
        assert await client.ping()


async def test_unreachable_redis_is_a_clear_error_without_password() -> None:
    url = f"redis://:topsecretpw@127.0.0.1:{free_port()}/0"
    config = RedisConfig(url=url, connect_timeout_s=0.2)
    with pytest.raises(StoreUnavailable) as info:
        async with open_redis(config):
            pass
    assert "topsecretpw" not in str(info.value)
    assert "127.0.0.1" in str(info.value)


def test_safe_url_hides_passwords() -> None:
    assert safe_url("redis://user:pw@h:1/0") == "redis://user:***@h:1/0"
    assert safe_url("redis://h:1/0") == "redis://h:1/0"
    assert "pw" not in safe_url("rediss://:pw@host/0")


async def test_embedded_server_does_not_outlive_cancellation() -> None:
    started = asyncio.Event()
    seen: dict[str, int] = {}

    async def run() -> None:
        async with open_embedded_redis() as embedded:
            seen["port"] = embedded.port
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(run())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    client = aioredis.Redis.from_url(
        f"redis://127.0.0.1:{seen['port']}/0", socket_connect_timeout=0.2
    )
    with pytest.raises(RedisConnectionError):  # nobody listens any more
        await client.ping()
    await client.aclose()


def test_fixture_server_is_private(redis_server: str) -> None:
    assert not redis_server.endswith(":6379/0")


async def test_hiredis_packing_connection_speaks_redis(redis_server: str) -> None:
    client = redis_client(redis_server)
    assert client.connection_pool.connection_class is HiredisPackingConnection
    await client.set("packed", "välue ✓")
    assert await client.get("packed") == "välue ✓".encode()
    assert await client.incrbyfloat("pf", 1.5) == 1.5
    assert await client.eval("return ARGV[1] .. ARGV[2]", 0, "a", 7) == b"a7"
    await client.script_flush()  # a two-word command name
    with pytest.raises(DataError, match="Invalid input"):
        await client.set("b", True)  # redis-py's own refusal still applies
    await client.aclose()

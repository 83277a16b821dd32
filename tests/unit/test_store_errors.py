"""redis_errors: every redis-py error becomes StoreUnavailable or StoreError, chained; READONLY
drops the idle connections so the next call reconnects; cancellation passes through."""

from __future__ import annotations

import asyncio

import fakeredis
import pytest
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    BusyLoadingError,
    DataError,
    MasterDownError,
    MaxConnectionsError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from orchestrator.errors import StoreError, StoreUnavailable
from orchestrator.store.errors import redis_errors

UNAVAILABLE = [
    RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."),
    RedisTimeoutError("Timeout reading from socket"),
    BusyLoadingError("Redis is loading the dataset in memory"),
    ReadOnlyError("You can't write against a read only replica."),
    MasterDownError("Link with MASTER is down"),
    MaxConnectionsError("Too many connections"),
    RedisConnectionError("No connection available."),  # a BlockingConnectionPool that timed out
    OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
    ConnectionResetError(104, "Connection reset by peer"),
    TimeoutError(),
    OSError("Network is unreachable"),
]
OTHER = [ResponseError("ERR user_script:1: bad"), NoScriptError("No matching script"), DataError()]


@pytest.mark.parametrize("error", UNAVAILABLE, ids=lambda e: type(e).__name__)
async def test_unavailability_is_store_unavailable(
    fake_redis: fakeredis.FakeAsyncRedis, error: Exception
) -> None:
    with pytest.raises(StoreUnavailable) as info:
        async with redis_errors(fake_redis, "test.op"):
            raise error
    assert info.value.__cause__ is error
    assert str(info.value).startswith("test.op: ")
    assert type(error).__name__ in str(info.value)


@pytest.mark.parametrize(
    "error",
    [AuthenticationError("invalid username-password pair"), AuthorizationError("NOPERM")],
    ids=lambda e: type(e).__name__,
)
async def test_refused_credentials_are_a_store_error_not_an_outage(
    fake_redis: fakeredis.FakeAsyncRedis, error: RedisError
) -> None:
    """A wrong password is a configuration mistake: waiting for Redis to come back won't cure it."""
    with pytest.raises(StoreError, match="credentials or permissions") as info:
        async with redis_errors(fake_redis, "test.op"):
            raise error
    assert type(info.value) is StoreError


@pytest.mark.parametrize("error", OTHER, ids=lambda e: type(e).__name__)
async def test_other_redis_errors_are_store_errors(
    fake_redis: fakeredis.FakeAsyncRedis, error: RedisError
) -> None:
    with pytest.raises(StoreError) as info:
        async with redis_errors(fake_redis, "test.op"):
            raise error
    assert type(info.value) is StoreError
    assert info.value.__cause__ is error


async def test_readonly_drops_idle_connections_so_the_next_call_reconnects(
    fake_redis: fakeredis.FakeAsyncRedis,
) -> None:
    await fake_redis.ping()
    pool = fake_redis.connection_pool
    (idle,) = pool._available_connections
    assert idle.is_connected
    with pytest.raises(StoreUnavailable, match="replica"):
        async with redis_errors(fake_redis, "test.write"):
            raise ReadOnlyError("You can't write against a read only replica.")
    assert not idle.is_connected
    assert await fake_redis.ping()  # a fresh connection


async def test_other_errors_keep_the_connections(fake_redis: fakeredis.FakeAsyncRedis) -> None:
    await fake_redis.ping()
    (idle,) = fake_redis.connection_pool._available_connections
    with pytest.raises(StoreError):
        async with redis_errors(fake_redis, "test.op"):
            raise ResponseError("WRONGTYPE")
    assert idle.is_connected


async def test_success_and_foreign_errors_pass_through(
    fake_redis: fakeredis.FakeAsyncRedis,
) -> None:
    async with redis_errors(fake_redis, "test.op"):
        await fake_redis.set("k", "v")
    assert await fake_redis.get("k") == b"v"
    with pytest.raises(ValueError, match="ours"):
        async with redis_errors(fake_redis, "test.op"):
            raise ValueError("ours")
    with pytest.raises(asyncio.CancelledError):
        async with redis_errors(fake_redis, "test.op"):
            raise asyncio.CancelledError


async def test_a_real_call_on_a_server_that_is_down() -> None:
    server = fakeredis.FakeServer()
    client = fakeredis.FakeAsyncRedis(server=server)
    server.connected = False
    with pytest.raises(StoreUnavailable, match=r"^limiter\.level: "):
        async with redis_errors(client, "limiter.level"):
            await client.get("k")
    await client.aclose()

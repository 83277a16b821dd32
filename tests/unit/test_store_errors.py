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


@pytest.mark.parametrize("error", [*UNAVAILABLE, ResponseError("WRONGTYPE")], ids=repr)
async def test_an_error_that_ends_a_cancelled_call_is_the_cancellation(
    fake_redis: fakeredis.FakeAsyncRedis, error: Exception
) -> None:
    """A cancel that lands as the server goes away (the CI shutdown of 2026-12-03: Ctrl-C killed
    the embedded Redis too) can come back from redis-py as its ConnectionError, the cancellation
    lost (Python 3.11's wait_for). Translated to StoreUnavailable, a loop that logs and retries
    it (the venue counter's) never ends and the shutdown overruns its bound: it must stay a
    cancellation, the error chained as its context."""
    loops = 0
    in_call = asyncio.Event()

    async def retrying_loop() -> None:
        nonlocal loops
        while True:  # like a component's loop: a StoreError is logged and tried again
            loops += 1
            try:
                async with redis_errors(fake_redis, "test.op"):
                    try:  # the call in flight when the cancel lands
                        in_call.set()
                        await asyncio.sleep(10)
                    except asyncio.CancelledError:  # what 3.11's wait_for can turn it into
                        raise error from None
            except StoreError:
                await asyncio.sleep(0)

    task = asyncio.create_task(retrying_loop())
    await in_call.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(2.0):
            await task
    assert loops == 1
    assert task.cancelled()

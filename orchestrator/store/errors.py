"""redis-py's errors translated into orchestrator's tree, in one place (like httpcore's
`map_exceptions`): wrap every Redis call of a public operation, and no raw redis error escapes it.

    from orchestrator.store.errors import redis_errors

    async with redis_errors(client, "nonce.next"):
        value = await client.incr(key)

- `StoreUnavailable` (Redis cannot serve us now; retry later, fail closed meanwhile):
  connection and timeout errors, `LOADING` (a restart replaying its data), a pool with no
  connection free in time (`MaxConnectionsError`, "No connection available"), `OSError`, `OOM`
  (writes refused at maxmemory), and `READONLY` / `MASTERDOWN`: the server we are connected to is
  a replica after a failover. For those two the client's idle connections are dropped first, so
  that the next call reconnects (to the new primary) instead of failing the same way forever.
- `StoreError`: a wrong password or a missing ACL permission (a configuration mistake that no
  retry cures), and any other `RedisError` (a script error, a wrong type): a bug or bad data.

`what` names the operation in the message ("limiter.acquire"), so a log line says who failed.
The original error is chained (`__cause__`). Cancellation passes through untouched, and a
cancellation redis-py lost on Python 3.11 is raised again at the end of the block, whether the
call returned or failed.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Final, NoReturn

import redis.asyncio as aioredis
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    MasterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
)
from redis.exceptions import (
    ConnectionError as RedisConnectionError,
)
from redis.exceptions import (
    TimeoutError as RedisTimeoutError,
)

from orchestrator.errors import StoreError, StoreUnavailable
from orchestrator.logs import get_logger

log = get_logger(__name__)

# A replica answered: reconnecting is the cure. (BusyLoadingError and MaxConnectionsError are
# ConnectionErrors; the builtin TimeoutError and ConnectionError are OSErrors.)
_RECONNECT: Final = (ReadOnlyError, MasterDownError)
# A wrong password or a missing ACL permission is a configuration mistake, not an outage.
_REFUSED: Final = (AuthenticationError, AuthorizationError)
_UNAVAILABLE: Final = (RedisConnectionError, RedisTimeoutError, OutOfMemoryError, OSError)


def stop_if_cancelled(cause: BaseException | None = None) -> None:
    """Python 3.11's `asyncio.wait_for`, which redis-py sends commands with, loses a
    cancellation that lands just as the reply comes in (CPython gh-86296, fixed in 3.12): the
    call returns as if nothing happened, and a loop that only awaits Redis (a listener, a
    heartbeat) then runs on after its task was cancelled, and a shutdown waits on it forever.
    A task asked to stop stops at the end of its Redis call."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from cause


class redis_errors:
    """Async context manager translating redis-py errors raised in its block (see the module)."""

    __slots__ = ("client", "what")

    def __init__(self, client: aioredis.Redis, what: str) -> None:
        self.client = client
        self.what = what

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None:
            stop_if_cancelled()
            return
        if isinstance(exc, _CAUGHT):
            await raise_translated(self.client, self.what, exc)


# What the edge translates: anything else (a cancellation, our own errors) passes untouched.
_CAUGHT: Final = (RedisError, OSError)


async def raise_translated(
    client: aioredis.Redis, what: str, exc: RedisError | OSError
) -> NoReturn:
    """`redis_errors`' translation of `exc`, raised: for a hot path that catches redis-py's
    errors itself instead of entering the context manager per call (about 1 us). Such a path
    calls `stop_if_cancelled` after its call succeeds, as the context manager does.

    A task being cancelled gets its cancellation instead, with `exc` as its cause: the same
    lost cancel can come back as the error of the call it ended (the server going away as the
    task is stopped), and a caller that logs and retries a `StoreError` would then never stop."""
    stop_if_cancelled(exc)
    if isinstance(exc, _REFUSED):  # before the ConnectionErrors: waiting will not cure it
        raise StoreError(
            f"{what}: Redis refused our credentials or permissions ({_describe(exc)}); "
            "check the user and password of redis.url and the user's ACL"
        ) from exc
    if isinstance(exc, _RECONNECT):
        await _drop_idle_connections(client, what)
        raise StoreUnavailable(
            f"{what}: Redis answered as a replica ({_describe(exc)}); reconnecting"
        ) from exc
    if isinstance(exc, _UNAVAILABLE):
        raise StoreUnavailable(f"{what}: Redis unavailable ({_describe(exc)})") from exc
    raise StoreError(f"{what}: Redis error ({_describe(exc)})") from exc


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _drop_idle_connections(client: aioredis.Redis, what: str) -> None:
    """Disconnect the pool's idle connections: the next call opens a fresh one.

    Connections in use by other tasks are left alone (their commands are in flight); each that
    meets the replica comes back here and is dropped in turn. Errors while closing sockets we are
    discarding are logged: the replica's error is the one the caller must see.
    """
    pool = getattr(client, "connection_pool", None)  # a Cluster client re-routes by itself
    if pool is None:
        return
    try:
        await pool.disconnect(inuse_connections=False)
    except (RedisError, OSError) as exc:
        log.warning("redis.disconnect_failed", what=what, error=type(exc).__name__)

"""An embedded Redis for the demo and single-host runs: a private `redis-server` child on a free
loopback port, or, when no binary exists, fakeredis's TCP server inside this process.

Both are reached through a normal `redis://` URL, so the rest of the service cannot tell them apart
(and other processes such as `orchestrator ctl` can connect too). Nothing is persisted.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final, Literal

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from orchestrator.errors import StoreUnavailable
from orchestrator.logs import get_logger

log = get_logger(__name__)

_START_ATTEMPTS: Final = 3  # a free port may be taken between probing and binding
_READY_TIMEOUT_S: Final = 10.0
_STOP_TIMEOUT_S: Final = 5.0


@dataclass(frozen=True, slots=True)
class EmbeddedRedis:
    url: str
    backend: Literal["redis-server", "fakeredis"]
    port: int
    pid: int | None = None  # the redis-server child's; None for the in-process fakeredis


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (callers retry if it is taken before they bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to SIGTERM the child when we die, so no orphan redis-server outlives a crash."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


async def _wait_ready(url: str, proc: asyncio.subprocess.Process | None) -> bool:
    client = aioredis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _READY_TIMEOUT_S
    delay_s = 0.005
    try:
        while loop.time() < deadline:
            if proc is not None and proc.returncode is not None:
                return False
            with contextlib.suppress(RedisError, OSError):
                if await client.ping():
                    return True
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, 0.2)
        return False
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def _redis_server_child(binary: str) -> AsyncIterator[EmbeddedRedis]:
    with tempfile.TemporaryDirectory(prefix="orch-redis-") as workdir:
        for _ in range(_START_ATTEMPTS):
            port = free_port()
            proc = await asyncio.create_subprocess_exec(
                binary,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
                "--dir", workdir,
                "--loglevel", "warning",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
                # Its own session (so its own process group): a Ctrl-C typed on our terminal
                # goes to the foreground group, and Redis must outlive the stop it starts
                # (cancels journaled, leases released); we stop it ourselves, last. (uvloop
                # takes `start_new_session`, not `process_group`.)
                start_new_session=True,
            )  # fmt: skip
            url = f"redis://127.0.0.1:{port}/0"
            if await _wait_ready(url, proc):
                break
            await _stop(proc)
        else:
            raise StoreUnavailable(f"embedded {binary} did not start after {_START_ATTEMPTS} tries")
        log.info("redis.embedded_started", backend="redis-server", port=port, pid=proc.pid)
        try:
            yield EmbeddedRedis(url=url, backend="redis-server", port=port, pid=proc.pid)
        finally:
            await _stop(proc)
            log.info("redis.embedded_stopped", backend="redis-server", port=port)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        return
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), _STOP_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()


@contextlib.asynccontextmanager
async def _fakeredis_server() -> AsyncIterator[EmbeddedRedis]:
    from fakeredis import TcpFakeServer  # noqa: PLC0415 - only this fallback needs it

    server = TcpFakeServer(("127.0.0.1", 0), server_type="redis")
    port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, name="fakeredis", daemon=True)
    thread.start()
    url = f"redis://127.0.0.1:{port}/0"
    try:
        if not await _wait_ready(url, None):
            raise StoreUnavailable("embedded fakeredis did not answer")
        log.info("redis.embedded_started", backend="fakeredis", port=port)
        yield EmbeddedRedis(url=url, backend="fakeredis", port=port)
    finally:
        server.shutdown()
        server.server_close()
        await asyncio.to_thread(thread.join, _STOP_TIMEOUT_S)
        log.info("redis.embedded_stopped", backend="fakeredis", port=port)


@contextlib.asynccontextmanager
async def open_embedded_redis(binary: str = "redis-server") -> AsyncIterator[EmbeddedRedis]:
    """Run a private Redis for the life of the block: redis-server if found, else fakeredis."""
    path = shutil.which(binary)
    if path is None:
        log.warning("redis.embedded_fallback", reason=f"{binary} not found", backend="fakeredis")
        async with _fakeredis_server() as embedded:
            yield embedded
    else:
        async with _redis_server_child(path) as embedded:
            yield embedded

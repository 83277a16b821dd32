"""Shared fixtures: a private redis-server, a fakeredis client, a manual clock.

The real Redis is our own child on a free port for the whole session; tests never touch the
machine's shared Redis (6379) and never flush anything but their own server.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import fakeredis
import pytest
import redis.asyncio as aioredis

from orchestrator.clock import ManualClock
from orchestrator.logs import forget_secrets
from orchestrator.store.embedded import free_port
from orchestrator.store.keys import Keys

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by folder, so `-m integration` and `-m e2e` select them without decorators."""
    for item in items:
        parts = Path(str(item.fspath)).relative_to(_HERE).parts
        if parts and parts[0] in ("integration", "e2e"):
            item.add_marker(getattr(pytest.mark, parts[0]))


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """URL of a private redis-server started for this test session on a free port."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    with tempfile.TemporaryDirectory(prefix="orch-test-redis-") as workdir:
        for _ in range(3):
            port = free_port()
            proc = subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", workdir, "--loglevel", "warning"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and proc.poll() is None and not _ping(port):
                time.sleep(0.01)
            if proc.poll() is None and _ping(port):
                break
            proc.kill()
            proc.wait()
        else:
            pytest.fail("could not start a private redis-server")
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


@pytest.fixture
async def redis(redis_server: str) -> AsyncIterator[aioredis.Redis]:
    """A client of the private redis-server. Tests isolate themselves with the `keys` fixture."""
    client = aioredis.Redis.from_url(redis_server)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def keys() -> Keys:
    """Key names under a namespace of this test alone."""
    return Keys(f"t{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=["fakeredis", "redis-server"])
async def any_redis(request: pytest.FixtureRequest) -> AsyncIterator[aioredis.Redis]:
    """Both stores a Lua script must agree on: fakeredis, and the private redis-server."""
    if request.param == "fakeredis":
        client: aioredis.Redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    else:
        client = aioredis.Redis.from_url(request.getfixturevalue("redis_server"))
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def fake_redis() -> AsyncIterator[fakeredis.FakeAsyncRedis]:
    """An in-memory Redis (with Lua) private to the test."""
    client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client session (clients under test and admin calls to the simulator)."""
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(autouse=True)
def _no_secrets_between_tests() -> Iterator[None]:
    """Each test starts with an empty secret registry."""
    yield
    forget_secrets()

"""The order journal on a real redis-server: the settle script and its cap, races between the
venue's answer and reconciliation, and Redis outages: killed or hung, `record` fails with
StoreUnavailable within the socket timeout (so nothing is sent); restarted without persistence,
the journal is gone (hence AOF in production); with AOF, it survives kill -9."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
import redis.asyncio as aioredis

from orchestrator.errors import StoreUnavailable
from orchestrator.store.connection import redis_client
from orchestrator.store.embedded import free_port
from orchestrator.store.keys import Keys
from orchestrator.workers.journal import JournalEntry, OrderJournal
from tests.redis_process import RedisProcess, own_redis_server

SOCKET_TIMEOUT_S = 0.5


def entry(cl_ord_id: str, created_s: float = 1_700_000_000.0) -> JournalEntry:
    return JournalEntry(
        cl_ord_id=cl_ord_id,
        strategy="mm",
        account="sub1",
        pair="XBT/USD",
        side="sell",
        order_type="limit",
        time_in_force="GTC",
        post_only=False,
        volume=Decimal("0.5"),
        price=Decimal("30000.5"),
        created_s=created_s,
    )


@pytest.fixture
def server() -> Iterator[RedisProcess]:
    with own_redis_server() as running:
        yield running


def client(url: str) -> aioredis.Redis:
    return redis_client(url, socket_connect_timeout=0.3, socket_timeout=SOCKET_TIMEOUT_S)


async def pending_after_restart(journal: OrderJournal) -> list[JournalEntry]:
    """The first call after a restart meets the pooled connection the old server closed
    (StoreUnavailable, the connection dropped); the next reconnects."""
    with contextlib.suppress(StoreUnavailable):
        return await journal.pending()
    return await journal.pending()


async def test_racing_settles_write_one_outcome(redis: aioredis.Redis, keys: Keys) -> None:
    """The venue's reply and reconciliation settle the same orders at once: each order gets
    exactly one outcome, and none stays pending."""
    journal = OrderJournal(redis, keys, "sub1")
    ids = [f"o{n}" for n in range(20)]
    for n, cl_ord_id in enumerate(ids):
        await journal.record(entry(cl_ord_id, created_s=float(n)))
    assert [e.cl_ord_id for e in await journal.pending()] == ids
    results = await asyncio.gather(
        *(journal.settle(i, "placed", txid=f"T-{i}") for i in ids),
        *(journal.settle(i, "not_placed") for i in ids),
    )
    assert sum(results) == len(ids)
    settled = await journal.settled(count=100)
    assert sorted(s.entry.cl_ord_id for s in settled) == sorted(ids)
    assert await journal.pending() == []


async def test_the_outcomes_stream_stays_near_its_cap(redis: aioredis.Redis, keys: Keys) -> None:
    journal = OrderJournal(redis, keys, "sub1", settled_maxlen=10)
    for n in range(500):
        await journal.record(entry(f"o{n}"))
        await journal.settle(f"o{n}", "placed", txid=f"T{n}")
    length = await redis.xlen(journal.settled_key)
    assert 10 <= length <= 10 + 100  # MAXLEN ~ trims whole nodes (100 entries by default)
    assert [s.txid for s in await journal.settled(count=3)] == ["T499", "T498", "T497"]


async def test_redis_killed_record_fails_at_once(server: RedisProcess) -> None:
    redis = client(server.url)
    try:
        journal = OrderJournal(redis, Keys("j"), "sub1")
        await journal.record(entry("before"))
        server.kill()
        for cl_ord_id in ("first", "second"):  # a dropped connection, then a refused one
            started_s = time.monotonic()
            with pytest.raises(StoreUnavailable, match=r"journal\.record"):
                await journal.record(entry(cl_ord_id))
            assert time.monotonic() - started_s < SOCKET_TIMEOUT_S
        with pytest.raises(StoreUnavailable):
            await journal.settle("before", "placed")
    finally:
        await redis.aclose()


async def test_redis_hung_record_fails_within_the_socket_timeout(server: RedisProcess) -> None:
    """SIGSTOP: nothing answers. `record` gives up after one socket timeout; its command may
    still land once Redis wakes (a lost reply), and then the entry is pending: reconciliation
    settles it, and recording it again is accepted."""
    redis = client(server.url)
    try:
        journal = OrderJournal(redis, Keys("j"), "sub1")
        await journal.pending()  # connected
        server.pause()
        started_s = time.monotonic()
        with pytest.raises(StoreUnavailable, match=r"journal\.record"):
            await journal.record(entry("hung"))
        elapsed_s = time.monotonic() - started_s
        assert SOCKET_TIMEOUT_S * 0.8 <= elapsed_s < SOCKET_TIMEOUT_S + 0.3
        server.resume()
        pending = await journal.pending()
        assert pending in ([], [entry("hung")])  # landed or not: never half written
        await journal.record(entry("hung"))
        assert await journal.pending() == [entry("hung")]
        assert await journal.settle("hung", "not_placed")
    finally:
        await redis.aclose()


async def test_a_restart_without_persistence_loses_the_journal(server: RedisProcess) -> None:
    """Why production Redis needs AOF: this server runs with `--appendonly no --save ""`."""
    redis = client(server.url)
    try:
        journal = OrderJournal(redis, Keys("j"), "sub1")
        await journal.record(entry("in-flight"))
        server.kill()
        server.start()
        assert await pending_after_restart(journal) == []
    finally:
        await redis.aclose()


@contextlib.contextmanager
def aof_redis_server() -> Iterator[tuple[str, list[str]]]:
    """(url, argv) of a redis-server with AOF fsynced on every write, in its own directory."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    with tempfile.TemporaryDirectory(prefix="orch-test-aof-") as workdir:
        port = free_port()
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "yes", "--appendfsync", "always", "--dir", workdir]  # fmt: skip
        yield f"redis://127.0.0.1:{port}/0", argv


def start(argv: list[str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock,
        ):
            sock.sendall(b"PING\r\n")
            if sock.recv(16).startswith(b"+PONG"):
                return proc
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    raise RuntimeError("redis-server did not start")


async def test_with_aof_the_journal_survives_kill_9() -> None:
    with aof_redis_server() as (url, argv):
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        proc = start(argv, port)
        redis = client(url)
        try:
            journal = OrderJournal(redis, Keys("j"), "sub1")
            await journal.record(entry("in-flight"))
            await journal.record(entry("done"))
            await journal.settle("done", "placed", txid="T1")
            proc.kill()  # SIGKILL: no shutdown save
            proc.wait()
            proc = start(argv, port)
            assert await pending_after_restart(journal) == [entry("in-flight")]
            assert [(s.entry.cl_ord_id, s.txid) for s in await journal.settled()] == [
                ("done", "T1")
            ]
        finally:
            await redis.aclose()
            proc.kill()
            proc.wait()

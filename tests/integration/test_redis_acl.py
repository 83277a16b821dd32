"""deploy/redis/acl.conf, loaded into a private redis-server as its README says to (namespace
replaced, password hashes appended): the operator user can send a command, get its reply and
follow the audit stream, and write nothing else; the service user runs the service's own Redis
code (scripts, consumer groups, locks, nonces, events) and stays inside its namespace; nobody
gets in without a password."""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import pytest
import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError, RedisError

from orchestrator.clock import ManualClock, RealClock
from orchestrator.config import RedisConfig
from orchestrator.control.audit import AuditLog
from orchestrator.control.client import ControlClient
from orchestrator.errors import StoreError
from orchestrator.exchange.kraken.common.nonce import SharedNonce
from orchestrator.metrics import Registry
from orchestrator.secrets import Secret
from orchestrator.service_events import ServiceEvents
from orchestrator.store.embedded import free_port
from orchestrator.store.health import RedisHealth
from orchestrator.store.keys import Keys
from orchestrator.store.mutex import RedisMutex
from tests.integration.test_ctl_client import GROUP, SECRET, STATUS, FakeService, serving

ROOT = Path(__file__).resolve().parents[2]
ACL_FILE: Final = ROOT / "deploy" / "redis" / "acl.conf"
README: Final = ROOT / "deploy" / "redis" / "README.md"
PASSWORDS: Final = {"orchestrator": "service-pw-0123456789", "operator": "operator-pw-0123456789"}


def acl_for(namespace: str) -> str:
    """The shipped file made ready as the README says: namespace replaced, SHA-256 appended."""
    text = ACL_FILE.read_text().replace("orch:", f"{namespace}:")
    for user, password in PASSWORDS.items():
        digest = hashlib.sha256(password.encode()).hexdigest()
        text = re.sub(rf"^(user {user} .*)$", rf"\1 #{digest}", text, flags=re.MULTILINE)
    return text


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"-NOAUTH")  # up, and the default user is off
    except OSError:
        return False


@pytest.fixture
def acl_port(tmp_path: Path, keys: Keys) -> Iterator[int]:
    """Port of a private redis-server running the ACL file for this test's namespace."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    acl = tmp_path / "users.acl"
    acl.write_text(acl_for(keys.namespace))
    log = tmp_path / "redis.log"
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--aclfile", str(acl),
             "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None and not _answers(port):
            time.sleep(0.01)
        if not _answers(port):
            pytest.fail(f"redis-server did not start with the ACL file:\n{log.read_text()}")
        yield port
    finally:
        proc.kill()
        proc.wait(timeout=10)


@contextlib.asynccontextmanager
async def connected(port: int, user: str | None, password: str | None = None) -> Any:
    auth = f"{user}:{password or PASSWORDS[user]}@" if user else ""
    client = aioredis.Redis.from_url(f"redis://{auth}127.0.0.1:{port}/0", socket_timeout=2.0)
    try:
        yield client
    finally:
        await client.aclose()


def test_the_file_is_written_for_the_default_namespace_and_says_how_to_change_it() -> None:
    text = ACL_FILE.read_text()
    patterns = re.findall(r"~(\S+)", text)
    assert patterns
    assert all(p.startswith(("orch:", "{orch:")) for p in patterns), patterns
    assert RedisConfig().namespace == "orch"
    assert text.count("orch:") == len(patterns)  # the README's sed touches key patterns only
    readme = README.read_text()
    assert "sed 's/orch:/desk2:/g'" in readme
    assert {"user default off", "user orchestrator on", "user operator on"} <= {
        " ".join(line.split()[:3]) for line in text.splitlines()
    }


@pytest.mark.parametrize(("user", "password"), [(None, None), ("operator", "wrong-password")])
async def test_nobody_gets_in_without_the_password(
    acl_port: int, user: str | None, password: str | None
) -> None:
    async with connected(acl_port, user, password) as client:
        with pytest.raises(RedisError):
            await client.ping()


async def test_the_operator_sends_a_command_and_reads_its_reply_and_the_audit(
    acl_port: int, keys: Keys
) -> None:
    async with (
        connected(acl_port, "orchestrator") as service_redis,
        connected(acl_port, "operator") as operator_redis,
    ):
        client = ControlClient(operator_redis, keys, operator="ada", secret=Secret(SECRET),
                               clock=RealClock(), slice_s=0.2)  # fmt: skip
        async with serving(FakeService(service_redis, keys)) as service:
            command = client.command("status")
            reply = await client.request(command, timeout_s=5.0)
        assert reply.ok
        assert reply.result == STATUS
        assert service.seen == [command]
        [entry] = [e async for e in _first(client.watch(since="0"))]
        assert entry.record["command_id"] == command.id
        await service_redis.hset(keys.strategy_status(), "mm1", b"{}")
        assert await operator_redis.hgetall(keys.strategy_status()) == {b"mm1": b"{}"}
        assert await operator_redis.lpop(keys.reply("1-0")) is None


async def _first(entries: Any) -> Any:
    async for entry in entries:
        yield entry
        return


def _other(keys: Keys) -> Keys:
    return Keys(f"{keys.namespace}x")


OPERATOR_REFUSED: Final[list[Callable[[Keys], tuple[Any, ...]]]] = [
    lambda k: ("SET", f"{k.namespace}:x", "1"),
    lambda k: ("XADD", k.audit(), "*", "kind", "forged"),
    lambda k: ("HSET", k.processes(), "p9", "{}"),
    lambda k: ("HSET", k.strategy_status(), "mm1", "{}"),
    lambda k: ("LPUSH", k.reply("1-0"), "forged"),
    lambda k: ("XRANGE", k.commands(), "-", "+"),  # others' signed commands: not readable
    lambda k: ("DEL", k.commands()),
    lambda k: ("XTRIM", k.commands(), "MAXLEN", "0"),
    lambda k: ("HGETALL", k.trading_state()),
    lambda k: ("HSET", k.trading_state(), "state", "ACTIVE"),
    lambda k: ("XADD", _other(k).commands(), "*", "wire", "x"),
    lambda k: ("EVAL", "return 1", "0"),
    lambda k: ("FLUSHALL",),
    lambda k: ("KEYS", "*"),
    lambda k: ("SCAN", "0"),
    lambda k: ("CONFIG", "GET", "*"),
    lambda k: ("ACL", "LIST"),
    lambda k: ("PUBLISH", "x", "y"),
]


def _ids(cases: list[Callable[[Keys], tuple[Any, ...]]]) -> list[str]:
    return [" ".join(str(a) for a in case(Keys("ns"))[:2]) for case in cases]


@pytest.mark.parametrize("refused", OPERATOR_REFUSED, ids=_ids(OPERATOR_REFUSED))
async def test_the_operator_may_do_nothing_else(
    acl_port: int, keys: Keys, refused: Callable[[Keys], tuple[Any, ...]]
) -> None:
    async with connected(acl_port, "operator") as client:
        with pytest.raises(NoPermissionError):
            await client.execute_command(*refused(keys))


async def test_a_refusal_reaches_ctl_as_a_store_error_naming_the_acl(
    acl_port: int, keys: Keys
) -> None:
    async with connected(acl_port, "operator") as client:
        ctl = ControlClient(client, _other(keys), operator="ada", secret=Secret(SECRET),
                            clock=RealClock())  # fmt: skip
        with pytest.raises(StoreError, match="permissions"):
            await ctl.request(ctl.command("status"))


async def test_the_service_user_runs_the_services_redis_code(acl_port: int, keys: Keys) -> None:
    clock, registry = ManualClock(), Registry()
    async with connected(acl_port, "orchestrator") as redis:
        nonce = SharedNonce(redis, keys, "key1", RedisHealth(clock, registry))
        first = await nonce.next()
        assert int(await redis.get(keys.nonce("key1"))) == first  # from Redis, not local
        async with RedisMutex(
            redis, keys.key_mutex("key1"), queue=keys.key_mutex_queue("key1"), lease_s=1.0
        ).hold(wait_s=1.0):
            assert await redis.exists(keys.key_mutex("key1"))
        assert not await redis.exists(keys.key_mutex("key1"))  # released by its script
        events = ServiceEvents(redis, keys, clock=clock, registry=registry)
        await events.publish("strategy_failed", strategy="mm1")
        assert events.backlog == 0
        assert [e["kind"] for e in await events.recent()] == ["strategy_failed"]
        audit = AuditLog(redis, keys, clock)
        await audit.append("halt", {"operator": "ada"})
        assert [e.kind for e in await audit.read()] == ["halt"]
        # The consumer group's commands beyond FakeService's (a claim, the pending list).
        stream = keys.commands()
        await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
        await redis.xadd(stream, {"wire": b"x"})
        await redis.xreadgroup(GROUP, "p1", {stream: ">"}, count=1)
        assert (await redis.xpending(stream, GROUP))["pending"] == 1
        claimed = await redis.xautoclaim(stream, GROUP, "p2", min_idle_time=0)
        assert len(claimed[1]) == 1
        await redis.zadd(keys.rebalancer_finished(), {"r1": 1.0})
        await redis.time()
        assert "redis_version" in await redis.info("server")


SERVICE_REFUSED: Final[list[Callable[[Keys], tuple[Any, ...]]]] = [
    lambda k: ("SET", f"{_other(k).namespace}:x", "1"),
    lambda k: ("HGETALL", _other(k).processes()),
    lambda k: ("EVAL", "return redis.call('GET', KEYS[1])", "1", _other(k).nonce("k")),
    lambda k: ("FLUSHALL",),
    lambda k: ("FLUSHDB",),
    lambda k: ("KEYS", "*"),
    lambda k: ("CONFIG", "SET", "maxmemory", "1"),
    lambda k: ("ACL", "SETUSER", "operator", "+@all"),
    lambda k: ("SCRIPT", "FLUSH"),
    lambda k: ("CLIENT", "KILL", "TYPE", "normal"),
    lambda k: ("SWAPDB", "0", "1"),
    lambda k: ("SHUTDOWN",),
    lambda k: ("PUBLISH", "x", "y"),
]


@pytest.mark.parametrize("refused", SERVICE_REFUSED, ids=_ids(SERVICE_REFUSED))
async def test_the_service_user_stays_in_its_namespace(
    acl_port: int, keys: Keys, refused: Callable[[Keys], tuple[Any, ...]]
) -> None:
    async with connected(acl_port, "orchestrator") as client:
        with pytest.raises(NoPermissionError):
            await client.execute_command(*refused(keys))

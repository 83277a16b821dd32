"""The operator's side against a real redis-server: `ControlClient` sends signed commands to a
stand-in service and gets its replies; it sends nothing when no service is alive, and says
which command went unanswered; `AuditLog` writes and reads the audit stream and its mirror;
`orchestrator ctl` end to end, as a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import stat
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, Final, cast

import msgspec
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from orchestrator.clock import ManualClock, RealClock
from orchestrator.control.audit import AuditEntry, AuditLog, decode_entry
from orchestrator.control.auth import OperatorKey, verify
from orchestrator.control.client import ControlClient, NoReply, ServiceNotRunning
from orchestrator.control.commands import Command, StartStrategy, Status, type_of
from orchestrator.control.replies import Reply, decode_reply, encode, to_builtins
from orchestrator.errors import CommandError, StoreUnavailable
from orchestrator.secrets import Secret
from orchestrator.store.embedded import free_port
from orchestrator.store.keys import Keys

ROOT = Path(__file__).resolve().parents[2]
Rows = list[tuple[bytes, dict[bytes, bytes]]]
GROUP: Final = "orchestrator"
SECRET: Final = "ada-signing-secret-0123456789"
OPERATORS: Final = {"ada": OperatorKey(Secret(SECRET), "admin")}
STATUS: Final = {
    "trading": "ACTIVE",
    "processes": [{"process": "p1", "strategies": ["mm1", "mm2"], "rebalancer": True}],
    "strategies": [
        {"name": "mm1", "state": "running", "pnl": "1.25"},
        {"name": "mm2", "state": "paused", "pnl": "-0.5"},
    ],
}
# What the service's bus does in one script: reply, its expiry, the ack, the audit entry.
FINISH_LUA: Final = """
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('XACK', KEYS[2], ARGV[3], ARGV[4])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', '1000', '*',
           'kind', 'command', 'time_s', ARGV[5], 'record', ARGV[6])
return 1
"""


def answer(command: Command) -> Any:
    match command:
        case Status():
            return STATUS
        case StartStrategy(strategy="nope"):
            raise CommandError("no strategy 'nope' is configured")
        case _:
            return {"done": type_of(command), "command": to_builtins(command)}


class FakeService:
    """A stand-in for the service's command listener, as the spec describes the wire: a
    heartbeat in `keys.processes()`, the consumer group on the commands stream, each entry
    verified with `auth.verify` and answered by LPUSHing a `Reply` onto `keys.reply(entry)`."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        operators: Mapping[str, OperatorKey] = OPERATORS,
        *,
        process: str = "p1",
        respond: Callable[[Command], Any] = answer,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.operators = operators
        self.process = process
        self.respond = respond
        self.seen: list[Command] = []
        self.stopping = asyncio.Event()
        self._finish = redis.register_script(FINISH_LUA)

    def heartbeat(self, time_s: float) -> bytes:
        return json.dumps({
            "process": self.process, "pid": os.getpid(), "host": "test-host",
            "strategies": ["mm1", "mm2"], "running": ["mm1"], "accounts": ["sub1"],
            "rebalancer": True, "time_s": time_s,
        }).encode()  # fmt: skip

    async def beat(self, time_s: float | None = None) -> None:
        beat = self.heartbeat(time.time() if time_s is None else time_s)
        await self.redis.hset(self.keys.processes(), self.process, beat)

    async def serve(self) -> None:
        with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists
            await self.redis.xgroup_create(self.keys.commands(), GROUP, id="0", mkstream=True)
        while not self.stopping.is_set():
            await self.beat()
            batches = await self.redis.xreadgroup(
                GROUP, self.process, {self.keys.commands(): ">"}, count=10, block=100
            )
            for _, rows in cast(list[tuple[bytes, Rows]], batches or []):
                for entry, fields in rows:
                    await self._answer(entry.decode(), fields.get(b"wire", b""))

    async def _answer(self, entry: str, wire: bytes) -> None:
        now_s = time.time()
        command: Command | None = None
        result, error = None, None
        try:
            command = verify(wire, self.operators, now_s=now_s, max_age_s=60.0)
            self.seen.append(command)
            result = self.respond(command)
        except CommandError as exc:
            error = str(exc)
        reply = Reply(
            entry=entry, command_id=command.id if command else None,
            type=type_of(command) if command else None, ok=error is None, result=result,
            error=error, process=self.process, time_s=now_s,
        )  # fmt: skip
        audit = {"operator": command.operator if command else None, "type": reply.type,
                 "command_id": reply.command_id, "ok": reply.ok, "error": error,
                 "process": self.process}  # fmt: skip
        await self._finish(
            keys=[self.keys.reply(entry), self.keys.commands(), self.keys.audit()],
            args=[encode(reply), 300_000, GROUP, entry, repr(now_s), json.dumps(audit)],
        )


@contextlib.asynccontextmanager
async def serving(service: FakeService) -> AsyncIterator[FakeService]:
    """The service running for the block. Stopped by a flag, not by cancelling it: on Python
    3.11 a cancel landing in a redis-py call can be lost (see client._stop_if_cancelled)."""
    await service.beat()  # alive before the first request, as a started service is
    task = asyncio.create_task(service.serve())
    try:
        yield service
    finally:
        service.stopping.set()
        await asyncio.wait_for(task, 5.0)  # a service that crashed raises its error here


async def entries(redis: aioredis.Redis, key: str) -> Rows:
    """The stream's entries, oldest first: [(entry id, {field: value})]."""
    return cast(Rows, await redis.xrange(key))


def client_for(redis: aioredis.Redis, keys: Keys, **kwargs: Any) -> ControlClient:
    return ControlClient(
        redis, keys, operator="ada", secret=Secret(SECRET), clock=RealClock(), **kwargs
    )


# --- ControlClient -----------------------------------------------------------------------------
async def test_a_live_service_answers_the_signed_command(redis: aioredis.Redis, keys: Keys) -> None:
    client = client_for(redis, keys)
    async with serving(FakeService(redis, keys)) as service:
        command = client.command("status")
        reply = await client.request(command, timeout_s=5.0)
    assert reply.ok
    assert reply.result == STATUS
    assert (reply.command_id, reply.type, reply.process) == (command.id, "status", "p1")
    assert service.seen == [command]  # verified against the operator's secret
    [(entry, fields)] = await entries(redis, keys.commands())
    assert reply.entry == entry.decode()
    assert set(fields) == {b"wire"}
    assert await redis.exists(keys.reply(reply.entry)) == 0  # popped


async def test_an_error_reply_comes_back_as_a_reply(redis: aioredis.Redis, keys: Keys) -> None:
    client = client_for(redis, keys)
    async with serving(FakeService(redis, keys)):
        reply = await client.request(client.command("start_strategy", strategy="nope"))
    assert not reply.ok
    assert reply.error == "no strategy 'nope' is configured"


async def test_a_wrong_secret_is_refused_by_the_service(redis: aioredis.Redis, keys: Keys) -> None:
    client = ControlClient(redis, keys, operator="ada", secret=Secret("not-adas-secret-000"),
                           clock=RealClock())  # fmt: skip
    async with serving(FakeService(redis, keys)):
        reply = await client.request(client.command("status"))
    assert not reply.ok
    assert reply.error == "bad signature for operator 'ada'"


def test_commands_carry_a_fresh_id_the_operator_and_the_time() -> None:
    clock = ManualClock(1_800_000_000.0)
    client = ControlClient(None, Keys("t"), operator="a" * 63, secret=Secret("s" * 20),  # type: ignore[arg-type]
                           clock=clock)  # fmt: skip
    ids = {client.command("status").id for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"[A-Za-z0-9_.:-]{8,64}", i) and i.startswith("a" * 40) for i in ids)
    halt = client.command("halt", reason="drill")
    assert (halt.operator, halt.time_s) == ("a" * 63, 1_800_000_000.0)


@pytest.mark.parametrize(
    ("type_name", "fields", "says"),
    [
        ("nope", {}, "unknown command type 'nope'"),
        ("list_transfers", {"limit": 0}, "$.limit"),
        ("halt", {}, "missing required field `reason`"),
        ("start_strategy", {"strategy": "mm1", "size": 1}, "unknown field `size`"),
        ("status", {"operator": "eve"}, "['operator'] are set by the client"),
        ("set_limit_shares", {"weights": {"mm1": -1}}, "$.weights"),
    ],
)
def test_a_bad_command_is_refused_naming_what_is_wrong(
    type_name: str, fields: dict[str, Any], says: str
) -> None:
    client = ControlClient(None, Keys("t"), operator="ada", secret=Secret("s" * 20),  # type: ignore[arg-type]
                           clock=ManualClock())  # fmt: skip
    with pytest.raises(CommandError) as info:
        client.command(type_name, **fields)
    assert says in str(info.value)


@pytest.mark.parametrize("beat", ["none", "stale", "unreadable"])
async def test_without_a_live_service_nothing_is_sent(
    redis: aioredis.Redis, keys: Keys, beat: str
) -> None:
    service = FakeService(redis, keys)
    if beat == "stale":
        await service.beat(time.time() - 3.5)
    elif beat == "unreadable":
        await redis.hset(keys.processes(), "p1", b"not json")
    client = client_for(redis, keys)
    with pytest.raises(ServiceNotRunning) as info:
        await client.request(client.command("status"))
    assert str(info.value) == (f"no service process is running in namespace {keys.namespace} "
                               "(no heartbeat in the last 3 s)")  # fmt: skip
    assert await redis.exists(keys.commands()) == 0


async def test_a_live_service_that_does_not_answer_is_no_reply(
    redis: aioredis.Redis, keys: Keys
) -> None:
    await FakeService(redis, keys).beat()  # alive, but nobody reads the stream
    client = client_for(redis, keys, slice_s=0.1)
    command = client.command("status")
    started_s = time.monotonic()
    with pytest.raises(NoReply) as info:
        await client.request(command, timeout_s=0.3)
    assert 0.3 <= time.monotonic() - started_s < 1.5
    [(entry, _)] = await entries(redis, keys.commands())
    assert f"no reply to command {command.id} (entry {entry.decode()}) within 0.3 s" in str(
        info.value
    )


async def test_the_reply_wait_is_sliced_below_the_socket_timeout(
    redis_server: str, keys: Keys
) -> None:
    """A reply 1 s out, on a client whose socket times out at 0.5 s: one BLPOP that long would
    read as a dead socket; slices of 0.2 s get the reply."""
    redis = aioredis.Redis.from_url(redis_server, socket_timeout=0.5)
    try:
        service = FakeService(redis, keys)
        await service.beat()
        client = client_for(redis, keys, slice_s=0.2)
        command = client.command("status")

        async def late_reply() -> None:
            await redis.xread({keys.commands(): "0-0"}, block=400)  # the command is out
            await asyncio.sleep(1.0)
            [(entry, _)] = await entries(redis, keys.commands())
            reply = Reply(entry=entry.decode(), command_id=command.id, type="status", ok=True,
                          result="late", process="p1", time_s=time.time())  # fmt: skip
            await redis.lpush(keys.reply(reply.entry), encode(reply))

        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(late_reply())
            reply = await client.request(command, timeout_s=5.0)
        assert reply.result == "late"
    finally:
        await redis.aclose()


async def test_an_unreachable_redis_is_store_unavailable(keys: Keys) -> None:
    redis = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=0.5)
    try:
        client = client_for(redis, keys)
        with pytest.raises(StoreUnavailable, match=r"ctl\.processes: Redis unavailable"):
            await client.request(client.command("status"))
    finally:
        await redis.aclose()


# --- the audit stream --------------------------------------------------------------------------
async def test_audit_entries_are_written_and_read_in_the_bus_format(
    redis: aioredis.Redis, keys: Keys, clock: ManualClock
) -> None:
    audit = AuditLog(redis, keys, clock)
    await audit.append("halt", {"operator": "ada", "reason": "drill", "n": 1})
    await clock.advance(1.5)
    await audit.append("transfer", {"amount": "0.1"})
    [(_, fields), _] = await entries(redis, keys.audit())
    assert fields == {b"kind": b"halt", b"time_s": repr(1_700_000_000.0).encode(),
                      b"record": b'{"operator":"ada","reason":"drill","n":1}'}  # fmt: skip
    first, second = await audit.read()
    assert (first.kind, first.time_s, first.record) == (
        "halt", 1_700_000_000.0, {"operator": "ada", "reason": "drill", "n": 1},
    )  # fmt: skip
    assert (second.kind, second.time_s) == ("transfer", 1_700_000_001.5)
    assert await audit.read(since=first.entry) == [second]  # `since` is exclusive: pages
    assert await audit.read(count=1) == [first]


async def test_an_unreadable_audit_entry_is_shown_not_hidden() -> None:
    entry = decode_entry(b"1-0", {b"kind": b"command", b"time_s": b"x", b"record": b"{nope"})
    assert entry.kind == "command"
    assert entry.record == {"unreadable": "{nope"}
    assert entry.time_s != entry.time_s  # nan


async def test_the_mirror_is_an_owner_only_json_lines_file(
    redis: aioredis.Redis, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(redis, keys, clock, mirror=path)
    await audit.append("halt", {"operator": "ada"})
    audit.mirror("strategy_failed", {"strategy": "mm1"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first, second = [json.loads(line) for line in path.read_text().splitlines()]
    [(entry, _)] = await entries(redis, keys.audit())
    assert first == {"entry": entry.decode(), "kind": "halt", "time_s": 1_700_000_000.0,
                     "record": {"operator": "ada"}}  # fmt: skip
    assert second == {"entry": None, "kind": "strategy_failed", "time_s": 1_700_000_000.0,
                      "record": {"strategy": "mm1"}}  # fmt: skip


async def test_a_mirror_that_cannot_be_written_is_logged_not_raised(
    redis: aioredis.Redis, keys: Keys, clock: ManualClock, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    audit = AuditLog(redis, keys, clock, mirror=tmp_path)  # a directory: cannot be opened
    await audit.append("halt", {"operator": "ada"})
    assert len(await audit.read()) == 1
    assert any(r.getMessage() == "audit.mirror_failed" for r in caplog.records)


async def test_redis_down_raises_but_the_mirror_keeps_the_line(
    keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    redis = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=0.5)
    try:
        audit = AuditLog(redis, keys, clock, mirror=tmp_path / "audit.jsonl")
        with pytest.raises(StoreUnavailable, match=r"audit\.append"):
            await audit.append("halt", {"operator": "ada"})
    finally:
        await redis.aclose()
    line = json.loads((tmp_path / "audit.jsonl").read_text())
    assert (line["entry"], line["kind"]) == (None, "halt")


async def test_watch_follows_the_audit_stream_from_now(
    redis: aioredis.Redis, keys: Keys, clock: ManualClock
) -> None:
    audit = AuditLog(redis, keys, clock)
    await audit.append("halt", {"n": 0})  # before the watch: not shown from "$"
    client = client_for(redis, keys, slice_s=0.1)
    seen: list[AuditEntry] = []

    async def follow(since: str, count: int) -> None:
        async for entry in client.watch(since=since):
            seen.append(entry)
            if len(seen) == count:
                return

    watching = asyncio.create_task(follow("$", 2))
    await asyncio.sleep(0.3)  # the watch has pinned "$" and is blocked in XREAD
    await audit.append("transfer", {"n": 1})
    await audit.append("command", {"n": 2})
    await asyncio.wait_for(watching, 5.0)
    assert [(e.kind, e.record) for e in seen] == [("transfer", {"n": 1}), ("command", {"n": 2})]
    seen.clear()
    await asyncio.wait_for(follow("0", 3), 5.0)
    assert [e.record["n"] for e in seen] == [0, 1, 2]


async def test_a_cancelled_watch_or_request_stops(redis: aioredis.Redis, keys: Keys) -> None:
    """Cancelled at any moment (Ctrl-C), even as a reply lands, a watch and a request stop."""
    await FakeService(redis, keys).beat()
    client = client_for(redis, keys, slice_s=0.01)

    async def watch() -> None:
        async for _ in client.watch():
            pass

    for i in range(40):
        work = watch() if i % 2 else client.request(client.command("status"), timeout_s=30.0)
        task: asyncio.Task[Any] = asyncio.ensure_future(work)
        await asyncio.sleep(0.005 * (i % 7))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 2.0)


# --- `orchestrator ctl`, end to end ------------------------------------------------------------
@pytest.fixture
def ctl_config(tmp_path: Path, redis_server: str, keys: Keys) -> Path:
    secret = tmp_path / "ada.secret"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    config = tmp_path / "ctl.toml"
    config.write_text(
        f'[redis]\nurl = "{redis_server}"\nnamespace = "{keys.namespace}"\n\n'
        '[[control.operators]]\nname = "ada"\nsecret = "file:ada.secret"\nrole = "admin"\n'
    )
    return config


async def ctl(config: Path, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orchestrator", "ctl", "--config", str(config), *args,
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    assert SECRET not in out.decode() + err.decode()
    return proc.returncode, out.decode(), err.decode()


async def test_ctl_status_prints_the_status_as_tables(
    redis: aioredis.Redis, keys: Keys, ctl_config: Path
) -> None:
    async with serving(FakeService(redis, keys)):
        code, out, err = await ctl(ctl_config, "status")
    assert (code, err) == (0, "")
    assert re.search(r"trading\s+ACTIVE", out)
    assert re.search(r"name\s+.\s+state\s+.\s+pnl", out)
    assert re.search(r"mm2\s+.\s+paused\s+.\s+-0.5", out)
    assert re.search(r"p1\s+.\s+mm1, mm2\s+.\s+true", out)


async def test_ctl_json_prints_the_reply(
    redis: aioredis.Redis, keys: Keys, ctl_config: Path
) -> None:
    async with serving(FakeService(redis, keys)) as service:
        code, out, _ = await ctl(ctl_config, "--json", "set-shares", "mm1=2", "mm2=0.5")
    reply = decode_reply(out.strip().encode())
    assert code == 0
    assert reply.ok
    assert reply.type == "set_limit_shares"
    assert reply.result["command"]["weights"] == {"mm1": 2.0, "mm2": 0.5}
    assert [c.id for c in service.seen] == [reply.command_id]


async def test_ctl_an_error_reply_is_one_line_and_exit_1(
    redis: aioredis.Redis, keys: Keys, ctl_config: Path
) -> None:
    async with serving(FakeService(redis, keys)):
        code, out, err = await ctl(ctl_config, "start", "nope")
    assert (code, out) == (1, "")
    assert err == "error: no strategy 'nope' is configured\n"


async def test_ctl_without_a_service_exits_1_and_says_so(ctl_config: Path, keys: Keys) -> None:
    code, out, err = await ctl(ctl_config, "status")
    assert (code, out) == (1, "")
    assert err == (f"orchestrator ctl: no service process is running in namespace "
                   f"{keys.namespace} (no heartbeat in the last 3 s)\n")  # fmt: skip


async def test_ctl_an_unknown_operator_is_a_usage_error(ctl_config: Path) -> None:
    code, _, err = await ctl(ctl_config, "--operator", "mallory", "status")
    assert code == 2
    assert err == "orchestrator ctl: unknown operator 'mallory'; configured: ada\n"


async def test_ctl_bad_words_are_a_usage_error_naming_the_word(ctl_config: Path) -> None:
    code, _, err = await ctl(ctl_config, "set-shares", "mm1=lots")
    assert code == 2
    assert "weight of mm1 must be a positive number, got 'lots'" in err


async def test_ctl_reaches_the_demo_through_the_files_it_publishes(
    redis: aioredis.Redis, redis_server: str, keys: Keys, tmp_path: Path
) -> None:
    """`redis.url = "embedded"` with `control.demo_operator`: ctl finds the running demo's
    Redis in .run/redis.url and signs as `demo` with .run/demo-operator.secret."""
    config = tmp_path / "demo.toml"
    config.write_text(f'[redis]\nnamespace = "{keys.namespace}"\n[control]\ndemo_operator = true\n')
    code, _, err = await ctl(config, "status")
    assert code == 2
    assert "is `embedded` and no demo service runs from" in err
    run = tmp_path / ".run"
    run.mkdir()
    (run / "redis.url").write_text(redis_server + "\n")
    code, _, err = await ctl(config, "status")
    assert code == 2
    assert "demo-operator.secret) is not there yet" in err
    (run / "demo-operator.secret").write_text(SECRET)
    demo = {"demo": OperatorKey(Secret(SECRET), "admin")}
    async with serving(FakeService(redis, keys, demo)) as service:
        code, out, err = await ctl(config, "--json", "status")
    assert (code, err) == (0, "")
    assert decode_reply(out.strip().encode()).ok
    assert [c.operator for c in service.seen] == ["demo"]


async def test_ctl_an_unreachable_redis_exits_1_without_the_password(tmp_path: Path) -> None:
    config = tmp_path / "ctl.toml"
    config.write_text(f'[redis]\nurl = "redis://ada:hunter2-pw@127.0.0.1:{free_port()}/0"\n'
                      '[[control.operators]]\nname = "ada"\nsecret = "env:ADA_SECRET"\n')  # fmt: skip
    code, _, err = await ctl(config, "watch")
    assert code == 1
    assert "Redis at redis://ada:***@127.0.0.1" in err
    assert "hunter2" not in err
    assert len(err.splitlines()) == 1


async def test_ctl_watch_prints_one_line_per_entry(
    redis: aioredis.Redis, keys: Keys, ctl_config: Path, clock: ManualClock
) -> None:
    audit = AuditLog(redis, keys, clock)
    await audit.append("halt", {"operator": "ada", "reason": "drill"})
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH")}
    for flags, expect in (((), "halt operator=ada reason=drill"), (("--json",), '"kind":"halt"')):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "orchestrator", "ctl", "--config", str(ctl_config), *flags,
            "watch", "--since", "0", cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            proc.send_signal(signal.SIGINT)  # Ctrl-C: stops the watch
            assert await asyncio.wait_for(proc.wait(), 10) == 130
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert expect in line
        if flags:
            entry = msgspec.json.decode(line, type=AuditEntry)
            assert entry.record == {"operator": "ada", "reason": "drill"}
        else:
            assert line.startswith("2023-11-14T22:13:20.000Z halt")

"""Commands outlive the process that should run them: a service restarted mid-stream runs what
was sent while it was down, each command once; a consumer that died holding a command has it
claimed (XAUTOCLAIM) and answered once by a live one.

Every check is read from Redis (the reply lists, the command records, the group's pending list,
the audit stream) or from the venue (the simulator in this process), never from the service's
replies alone:
- restart: `orchestrator run` (instance "proc-a") is stopped with SIGTERM; while it is down the
  operators send set_params (twice: a sender's retry, the same signed bytes), pause_strategy,
  status, a command reusing the id of one answered before the stop, and one entry proc-a is
  made to have read and not answered (XREADGROUP as proc-a, as if it died right after the read);
  proc-a started again answers each entry once, runs each command once;
- claim, in this process: entries delivered to a consumer "dead-proc" that never answers (one it
  also took: its command record says taken by dead-proc) are claimed by the live service after
  `control.claim_idle_s` and answered once;
- claim, real processes: a service child frozen (SIGSTOP) while Redis hands it a command, then
  killed (SIGKILL); a second service process (another instance) claims and answers it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, cast

import redis.asyncio as aioredis

from orchestrator.clock import RealClock
from orchestrator.control.auth import sign
from orchestrator.control.bus import CommandBus, Delivery
from orchestrator.control.client import ControlClient, ServiceNotRunning, make_command
from orchestrator.control.commands import Command
from orchestrator.control.replies import Reply, decode_reply
from orchestrator.secrets import Secret
from orchestrator.simulator.app import RunningSimulator, open_simulator
from orchestrator.simulator.settings import SimSettings, domain_accounts
from orchestrator.store.keys import Keys
from tests.service_harness import (
    ServiceSetup,
    StrategySpec,
    operator_client,
    operator_secret,
    running_service,
    spawn_service,
    write_config,
)

GROUP: Final = "orchestrator"  # control.consumer_group's default
CLAIM_IDLE_S: Final = 1.0
FUNDS: Final = {"ZUSD": Decimal(50_000), "XXBT": Decimal(2), "XETH": Decimal(20)}
SPREAD_BPS: Final = 150  # each quote this far from the mid: 3% between bid and ask
NEW_SPREAD_BPS: Final = 400  # what set_params asks for: 8%
MAKERS: Final = (
    StrategySpec("mm0", "s0", "XBT/USD",
                 {"size": "0.01", "spread_bps": SPREAD_BPS, "requote_bps": 20}),
    StrategySpec("mm1", "s1", "ETH/USD",
                 {"size": "0.2", "spread_bps": SPREAD_BPS, "requote_bps": 20}),
)  # fmt: skip
WIDER: Final = {"size": "0.2", "spread_bps": NEW_SPREAD_BPS, "requote_bps": 20}
SERVING_BOUND_S: Final = 40.0  # a child started until it answers, on a loaded machine
STOP_BOUND_S: Final = 20.0
SETTLE_S: Final = 1.5  # after the last reply: a second one would have come by then


# --- helpers ---------------------------------------------------------------------------------
def quote_gap(sim: RunningSimulator, account: str) -> float | None:
    """(ask - bid) / mid of the account's two resting quotes; None unless it has both."""
    orders = list(sim.venue.engine.open_orders(account).values())
    bids = [Decimal(o.price) for o in orders if o.side == "buy" and o.price is not None]
    asks = [Decimal(o.price) for o in orders if o.side == "sell" and o.price is not None]
    if len(bids) != 1 or len(asks) != 1:
        return None
    return float((asks[0] - bids[0]) / ((asks[0] + bids[0]) / 2))


async def eventually(check: Any, bound_s: float, what: str) -> None:
    deadline = time.monotonic() + bound_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {bound_s:g} s: {what}")
        await asyncio.sleep(0.1)


async def serving(client: ControlClient, bound_s: float = SERVING_BOUND_S) -> list[Any]:
    """Once a service answers and runs both strategies: its list_strategies rows."""
    deadline = time.monotonic() + bound_s
    while True:
        with contextlib.suppress(ServiceNotRunning):
            reply = await client.request(client.command("list_strategies"), timeout_s=5.0)
            rows = cast(list[dict[str, Any]], reply.result)
            if reply.ok and {r["state"] for r in rows} == {"running"} and len(rows) == 2:
                return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"no service running both strategies within {bound_s:g} s")
        await asyncio.sleep(0.3)


async def replies(
    redis: aioredis.Redis, keys: Keys, entries: Sequence[str], bound_s: float
) -> dict[str, list[Reply]]:
    """Every reply on each entry's list, once each had one (or the bound passed) and a settle
    time went by (a second answer would be there by then)."""
    deadline = time.monotonic() + bound_s
    while True:
        pipe = redis.pipeline(transaction=False)
        for entry in entries:
            pipe.lrange(keys.reply(entry), 0, -1)
        got = dict(zip(entries, await pipe.execute(), strict=True))
        if all(got.values()) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(SETTLE_S)
    pipe = redis.pipeline(transaction=False)
    for entry in entries:
        pipe.lrange(keys.reply(entry), 0, -1)
    raw = await pipe.execute()
    return {e: [decode_reply(r) for r in rs] for e, rs in zip(entries, raw, strict=True)}


async def audit(redis: aioredis.Redis, keys: Keys, kind: str) -> list[dict[str, Any]]:
    rows = cast(list[tuple[bytes, dict[bytes, bytes]]], await redis.xrange(keys.audit()))
    return [json.loads(f[b"record"]) for _, f in rows if f[b"kind"] == kind.encode()]


async def record(redis: aioredis.Redis, keys: Keys, command_id: str) -> dict[str, str]:
    raw = await redis.hgetall(keys.command_record(command_id))
    return {_text(k): _text(v) for k, v in raw.items()}


async def pending(redis: aioredis.Redis, keys: Keys) -> dict[str, int]:
    """Entries of the main stream delivered and not acked, by consumer."""
    summary = await redis.xpending(keys.commands(), GROUP)
    return {_text(c["name"]): int(c["pending"]) for c in summary["consumers"]}


async def deliver_to(redis: aioredis.Redis, keys: Keys, consumer: str, wire: bytes) -> str:
    """XADD `wire` and have `consumer` read it, in one transaction: no live consumer can read it
    first. `consumer` never answers it (it died right after the read)."""
    pipe = redis.pipeline(transaction=True)
    pipe.xadd(keys.commands(), {"wire": wire})
    pipe.xreadgroup(GROUP, consumer, {keys.commands(): ">"}, count=1)
    added, read = await pipe.execute()
    entry = _text(added)
    [[_, [(got, _)]]] = read
    assert _text(got) == entry, "the entry went to the dead consumer"
    return entry


async def stop(proc: asyncio.subprocess.Process) -> int:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(proc.wait(), timeout=STOP_BOUND_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"the service did not stop within {STOP_BOUND_S:g} s") from None


@contextlib.asynccontextmanager
async def children(logs: list[Path]) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """The service children a test starts: killed if still running when it ends, their logs'
    tails shown when it fails."""
    procs: list[asyncio.subprocess.Process] = []
    try:
        yield procs
    except BaseException:
        for log in logs:
            if log.exists():
                print(f"--- {log.name} ---\n{log.read_text(errors='replace')[-3000:]}")
        raise
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def hand_to_frozen(
    client: ControlClient, proc: asyncio.subprocess.Process, consumer: str
) -> tuple[str, Command]:
    """Freeze `proc` (SIGSTOP) and send a status command, which Redis hands to the consumer
    blocked in its read; frozen between two reads it holds none, so it is let go on (SIGCONT,
    it answers that one) and frozen again. The entry it holds and the command."""
    redis, keys = client.redis, client.keys
    for _ in range(3):
        proc.send_signal(signal.SIGSTOP)
        command = client.command("status")
        entry = await client.send(command)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            holding = await redis.xpending_range(keys.commands(), GROUP, min=entry, max=entry,
                                                 count=1)  # fmt: skip
            if holding:
                assert _text(cast(bytes, holding[0]["consumer"])) == consumer, holding
                return entry, command
            await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGCONT)
        await asyncio.sleep(0.5)
    raise AssertionError(f"Redis handed no command to the frozen {consumer} in 3 tries")


def _setup(tmp: Path, sim: RunningSimulator, url: str, keys: Keys, instance: str) -> Path:
    return write_config(ServiceSetup(tmp=tmp, sim=sim, redis_url=url, namespace=keys.namespace,
                                     strategies=MAKERS, instance=instance,
                                     extra={"control": {"claim_idle_s": CLAIM_IDLE_S}}))  # fmt: skip


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# --- a restart mid-stream --------------------------------------------------------------------
async def test_commands_sent_while_the_service_was_down_run_once_when_it_is_back(
    tmp_path: Path, redis_server: str, keys: Keys
) -> None:
    settings = SimSettings(accounts=domain_accounts(len(MAKERS), FUNDS))
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    async with (
        open_simulator(settings) as sim,
        operator_client(redis_server, keys.namespace, "tom") as tom,
        operator_client(redis_server, keys.namespace, "vera") as vera,
        children(logs) as procs,
    ):
        redis = tom.redis
        config = _setup(tmp_path, sim, redis_server, keys, "proc-a")
        procs.append(await spawn_service(config, logs[0]))
        await serving(vera)
        before = vera.command("status")  # answered before the stop: its id is used
        assert (await vera.request(before)).ok
        assert await stop(procs[0]) == 0
        assert await redis.hget(keys.processes(), "proc-a") is None, "proc-a left"

        # While it is down. First an entry proc-a read and never answered.
        limits = vera.command("limits")
        read_entry = await deliver_to(redis, keys, "proc-a", sign(limits, Secret(
            operator_secret("vera"))))  # fmt: skip
        wider = tom.command("set_params", strategy="mm1", params=WIDER)
        pause = tom.command("pause_strategy", strategy="mm0")
        status = vera.command("status")
        reuse = make_command("set_params", {"strategy": "mm1", "params": MAKERS[1].params},
                             operator="tom", time_s=time.time(), command_id=before.id)  # fmt: skip
        sent = {
            "wider": await tom.send(wider),
            "wider_retry": await tom.send(wider),  # the same signed bytes again
            "pause": await tom.send(pause),
            "status": await vera.send(status),
            "reuse": await tom.send(reuse),
            "limits": read_entry,
        }
        assert await pending(redis, keys) == {"proc-a": 1}

        procs.append(await spawn_service(config, logs[1]))  # the same instance, back
        got = await replies(redis, keys, list(sent.values()), SERVING_BOUND_S)
        for name, entry in sent.items():
            assert len(got[entry]) == 1, (name, got[entry])
        answer = {name: got[entry][0] for name, entry in sent.items()}
        assert {a.process for a in answer.values()} == {"proc-a"}
        # The retry: one of the two entries ran it, the other was refused as a replay.
        first, second = sorted([answer["wider"], answer["wider_retry"]], key=lambda a: not a.ok)
        assert first.ok, first
        assert first.result["params"]["spread_bps"] == str(NEW_SPREAD_BPS)
        assert not second.ok
        assert "already used" in (second.error or ""), second
        assert answer["pause"].ok, answer["pause"]
        assert answer["pause"].result == {"strategy": "mm0", "state": "paused"}
        assert answer["status"].ok, answer["status"]
        assert answer["status"].result["trading_state"] == "ACTIVE"
        assert answer["limits"].ok, answer["limits"]
        assert not answer["reuse"].ok
        assert "already used" in (answer["reuse"].error or ""), answer["reuse"]

        # What the venue shows: mm1 quoting at the new spread (not the reused id's), mm0 paused.
        await eventually(lambda: (gap := quote_gap(sim, "s1")) is not None
                         and abs(gap - 2 * NEW_SPREAD_BPS / 10_000) < 0.005, 15.0,
                         f"mm1 quoting {2 * NEW_SPREAD_BPS} bps wide: {quote_gap(sim, 's1')}")  # fmt: skip
        await eventually(lambda: not sim.venue.engine.open_orders("s0"), 5.0, "mm0 paused")
        rows = {r["strategy"]: r["state"] for r in
                (await vera.request(vera.command("list_strategies"))).result}  # fmt: skip
        assert rows == {"mm0": "paused", "mm1": "running"}

        # Once each: one audit record per entry, one run per command id, every record done.
        records = await audit(redis, keys, "command")
        by_entry = Counter(r["entry"] for r in records)
        assert all(by_entry[entry] == 1 for entry in sent.values()), by_entry
        runs = Counter(r["command_id"] for r in records if r["ok"])
        for command in (wider, pause, status, limits, before):
            assert runs[command.id] == 1, (command.id, runs)
            assert (await record(redis, keys, command.id))["state"] == "done"
        paused = [r for r in await audit(redis, keys, "strategy_paused") if r["strategy"] == "mm0"]
        assert len(paused) == 1, paused
        assert await pending(redis, keys) == {}
        assert await stop(procs[1]) == 0


# --- a dead consumer's entries claimed -------------------------------------------------------
async def test_a_dead_consumers_command_is_claimed_and_answered_once(
    tmp_path: Path, redis_server: str, keys: Keys
) -> None:
    settings = SimSettings(accounts=domain_accounts(len(MAKERS), FUNDS))
    async with open_simulator(settings) as sim:
        config = _setup(tmp_path, sim, redis_server, keys, "proc-live")
        async with (
            running_service(config) as service,
            operator_client(redis_server, keys.namespace, "tom") as tom,
        ):
            redis = tom.redis
            await serving(tom)
            secret = Secret(operator_secret("tom"))
            # Read by dead-proc, which died before anything else.
            wider = tom.command("set_params", strategy="mm1", params=WIDER)
            started = time.monotonic()
            read_only = await deliver_to(redis, keys, "dead-proc", sign(wider, secret))
            # Read and taken by dead-proc (its record says so), which died handling it.
            pause = tom.command("pause_strategy", strategy="mm0")
            taken = await deliver_to(redis, keys, "dead-proc", sign(pause, secret))
            dead = CommandBus(redis, keys, group=GROUP, process="dead-proc", clock=RealClock())
            delivery = Delivery(stream=keys.commands(), entry=taken, reply_to=taken,
                                wire=sign(pause, secret), routed_from=None, broadcast=False,
                                queued_s=int(taken.split("-")[0]) / 1000)  # fmt: skip
            assert await dead.take(pause.id, delivery) == "new"
            assert await record(redis, keys, pause.id) == {
                "state": "taken", "entry": taken, "by": "dead-proc"}  # fmt: skip
            assert await pending(redis, keys) == {"dead-proc": 2}

            bound_s = 2 * CLAIM_IDLE_S + 3.0  # idle long enough, the next claim, a read's block
            deadline = started + bound_s
            latency: dict[str, float] = {}
            while len(latency) < 2 and time.monotonic() < deadline:
                for entry in (read_only, taken):
                    if entry not in latency and await redis.llen(keys.reply(entry)):
                        latency[entry] = time.monotonic() - started
                await asyncio.sleep(0.02)
            print(f"\nclaimed and answered {', '.join(f'{s:.2f} s' for s in latency.values())} "
                  f"after the dead consumer's read (claim_idle_s {CLAIM_IDLE_S:g})")  # fmt: skip
            assert len(latency) == 2, f"not both answered within {bound_s:g} s: {latency}"

            got = await replies(redis, keys, [read_only, taken], 1.0)
            for entry, command in ((read_only, wider), (taken, pause)):
                [answer] = got[entry]
                assert answer.ok, answer
                assert answer.process == service.process == "proc-live"
                assert answer.command_id == command.id
                assert await record(redis, keys, command.id) == {
                    "state": "done", "entry": entry, "by": "proc-live"}  # fmt: skip
            records = await audit(redis, keys, "command")
            assert Counter(r["entry"] for r in records if r["entry"] in (read_only, taken)) \
                == {read_only: 1, taken: 1}  # fmt: skip
            assert await pending(redis, keys) == {}
            assert service.units["mm1"].worker.context.params.spread_bps == NEW_SPREAD_BPS
            assert service.units["mm0"].worker.state == "paused"
            await eventually(lambda: not sim.venue.engine.open_orders("s0"), 5.0,
                             "mm0's quotes cancelled")  # fmt: skip


async def test_a_service_killed_holding_a_command_has_it_answered_by_another(
    tmp_path: Path, redis_server: str, keys: Keys
) -> None:
    settings = SimSettings(accounts=domain_accounts(len(MAKERS), FUNDS))
    logs = [tmp_path / "proc-x.log", tmp_path / "proc-y.log"]
    async with (
        open_simulator(settings) as sim,
        operator_client(redis_server, keys.namespace, "vera") as vera,
        children(logs) as procs,
    ):
        redis = vera.redis
        procs.append(await spawn_service(_setup(tmp_path, sim, redis_server, keys, "proc-x"),
                                         logs[0]))  # fmt: skip
        await serving(vera)
        victim = procs[0]
        try:
            entry, status = await hand_to_frozen(vera, victim, "proc-x")
        finally:
            victim.send_signal(signal.SIGKILL)  # dies holding it, frozen: nothing answered
            await victim.wait()
        assert await redis.llen(keys.reply(entry)) == 0

        started_s = time.time()
        procs.append(await spawn_service(_setup(tmp_path, sim, redis_server, keys, "proc-y"),
                                         logs[1]))  # fmt: skip
        [answer] = (await replies(redis, keys, [entry], SERVING_BOUND_S))[entry]
        print(
            f"\nproc-x killed holding {entry}: proc-y, started then, answered it "
            f"{answer.time_s - started_s:.2f} s later"
        )
        assert answer.ok, answer
        assert answer.process == "proc-y"
        events = [json.loads(line) for line in logs[1].read_text().splitlines()
                  if '"control_bus.claimed"' in line]  # fmt: skip
        assert [e for e in events if entry in e["entries"]], "proc-y claimed it (XAUTOCLAIM)"
        assert answer.command_id == status.id
        assert await record(redis, keys, status.id) == {
            "state": "done", "entry": entry, "by": "proc-y"}  # fmt: skip
        records = [r for r in await audit(redis, keys, "command") if r["entry"] == entry]
        assert len(records) == 1, records
        assert await pending(redis, keys) == {}
        assert await stop(procs[1]) == 0

"""Hostile and late inputs a review found against the control plane, each now a regression test
against the running service (real redis-server, simulator):
- a signature with a non-ASCII character is answered (it once left the entry pending forever);
- one entry whose id was set by hand into the future does not disable every later command;
- a resume that a dead consumer took before a halt, claimed after it, does not undo the halt;
- a stale broadcast copy of a resume is not obeyed against the trading state in Redis;
- a halt does not wait behind 16 slow commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from orchestrator.clock import RealClock
from orchestrator.control.auth import sign
from orchestrator.control.client import ControlClient
from orchestrator.control.commands import PauseStrategy, encode_command
from orchestrator.control.peers import Heartbeat
from orchestrator.control.replies import Reply, decode_reply
from orchestrator.control.trading import TradingSwitch
from orchestrator.secrets import Secret
from orchestrator.service import Service
from orchestrator.simulator.app import RunningSimulator, open_simulator
from orchestrator.simulator.settings import SimSettings, domain_accounts
from orchestrator.store.keys import Keys
from orchestrator.testing.service import open_orders, until
from tests.service_harness import (
    ServiceSetup,
    StrategySpec,
    operator_client,
    operator_secret,
    running_service,
    write_config,
)

pytestmark = pytest.mark.e2e

FUNDS = {"ZUSD": Decimal(50_000), "XXBT": Decimal(2), "XETH": Decimal(20)}
MAKERS = [
    StrategySpec("mm0", "s0", "XBT/USD", {"size": "0.01", "spread_bps": 80, "requote_bps": 40}),
    StrategySpec("mm1", "s1", "ETH/USD", {"size": "0.1", "spread_bps": 80, "requote_bps": 40}),
]
GROUP = "orchestrator"
Desk = tuple[RunningSimulator, Service, ControlClient, ControlClient]


@contextlib.asynccontextmanager
async def desk(tmp: Path, url: str, keys: Keys) -> AsyncIterator[Desk]:
    async with open_simulator(SimSettings(accounts=domain_accounts(3, FUNDS))) as sim:
        setup = ServiceSetup(tmp, sim, url, keys.namespace, MAKERS,
                             extra={"control": {"claim_idle_s": 1.0}})  # fmt: skip
        async with (
            running_service(write_config(setup)) as service,
            operator_client(url, keys.namespace) as alice,
            operator_client(url, keys.namespace, "tom") as tom,
        ):
            await until(lambda: open_orders(sim, "s0") + open_orders(sim, "s1") == 4,
                        timeout_s=30, what="quotes")  # fmt: skip
            yield sim, service, alice, tom


async def replies(client: ControlClient, keys: Keys, entry: str) -> list[Reply]:
    raw = await client.redis.lrange(keys.reply(entry), 0, -1)
    return [decode_reply(r if isinstance(r, bytes) else r.encode()) for r in raw]


async def test_a_non_ascii_signature_is_answered(
    tmp_path: Path, redis_server: str, keys: Keys
) -> None:
    async with desk(tmp_path, redis_server, keys) as (_sim, _service, alice, _tom):
        body = encode_command(alice.command("status")).decode()
        wire = msgspec.json.encode({"command": body, "signature": "é"})
        raw = await alice.redis.xadd(keys.commands(), {"wire": wire})
        entry = raw.decode() if isinstance(raw, bytes) else raw
        deadline = time.monotonic() + 5
        while not (got := await replies(alice, keys, entry)):
            assert time.monotonic() < deadline, "no reply"
            await asyncio.sleep(0.05)
        [reply] = got
        assert not reply.ok
        assert "bad signature" in (reply.error or "")
        assert (await alice.redis.xpending(keys.commands(), GROUP))["pending"] == 0


async def test_an_entry_from_the_future_does_not_disable_commands(
    tmp_path: Path, redis_server: str, keys: Keys
) -> None:
    async with desk(tmp_path, redis_server, keys) as (sim, service, alice, _tom):
        await alice.redis.xadd(keys.commands(), {"x": "1"}, id="4102444800000-0")  # year 2100
        reply = await alice.request(alice.command("halt", reason="fat finger"), timeout_s=10)
        assert reply.ok, reply.error
        assert service.trading_state.state == "HALTED"
        assert open_orders(sim, "s0") == open_orders(sim, "s1") == 0


async def test_a_resume_claimed_after_a_halt_does_not_undo_it(
    tmp_path: Path, redis_server: str, keys: Keys
) -> None:
    async with desk(tmp_path, redis_server, keys) as (sim, service, alice, _tom):
        redis = alice.redis
        resume = alice.command("resume_trading")
        pipe = redis.pipeline(transaction=True)
        pipe.xadd(keys.commands(), {"wire": sign(resume, Secret(operator_secret("alice")))})
        pipe.xreadgroup(GROUP, "dead-proc", {keys.commands(): ">"}, count=1)
        added, _ = await pipe.execute()  # dead-proc read the resume and died
        resume_entry = added.decode() if isinstance(added, bytes) else added
        halt = await alice.request(alice.command("halt", reason="stop everything"))
        assert halt.ok, halt.error
        deadline = time.monotonic() + 8
        while not (late := await replies(alice, keys, resume_entry)):  # claimed after 1 s
            assert time.monotonic() < deadline, "the dead consumer's resume was never claimed"
            await asyncio.sleep(0.05)
        assert not late[0].ok
        assert "superseded" in (late[0].error or "")
        await asyncio.sleep(1.5)  # a follow of Redis included
        assert (await TradingSwitch(redis, keys, RealClock()).read()).state == "HALTED"
        assert service.trading_state.state == "HALTED"
        assert open_orders(sim, "s0") == open_orders(sim, "s1") == 0


async def test_a_stale_broadcast_resume_is_not_obeyed(
    tmp_path: Path, redis_server: str, keys: Keys
) -> None:
    async with desk(tmp_path, redis_server, keys) as (sim, service, alice, _tom):
        assert (await alice.request(alice.command("halt", reason="x"))).ok
        orders_at_halt = len(sim.venue.engine.orders)
        resume = sign(alice.command("resume_trading"), Secret(operator_secret("alice")))
        await alice.redis.xadd(keys.inbox("proc-a"), {
            "wire": resume, "entry": f"{int(time.time() * 1000)}-0", "from": "proc-x",
            "broadcast": "1"})  # fmt: skip
        await asyncio.sleep(2.0)
        assert service.trading_state.state == "HALTED"
        assert len(sim.venue.engine.orders) == orders_at_halt


async def test_a_halt_does_not_wait_behind_slow_commands(
    tmp_path: Path, redis_server: str, keys: Keys
) -> None:
    async with desk(tmp_path, redis_server, keys) as (sim, service, alice, tom):
        redis = alice.redis
        stop = asyncio.Event()

        async def ghost() -> None:  # a process whose heartbeat is fresh but that never answers
            while not stop.is_set():
                beat = Heartbeat(process="ghost", pid=1, host="h", strategies=[], running=[],
                                 accounts=[], rebalancer=False, time_s=time.time())  # fmt: skip
                await redis.hset(keys.processes(), "ghost", msgspec.json.encode(beat))
                await asyncio.sleep(0.5)

        beating = asyncio.create_task(ghost())
        await asyncio.sleep(0.6)
        for _ in range(16):  # each waits broadcast_timeout_s (2 s) for the ghost's answer
            await tom.send(tom.command("cancel_all"))
        await asyncio.sleep(0.05)
        sent_s = time.monotonic()
        halting = asyncio.create_task(alice.request(alice.command("halt", reason="now"),
                                                    timeout_s=20))  # fmt: skip
        await until(lambda: service.trading_state.state == "HALTED", timeout_s=5, what="halted")
        halted_after_s = time.monotonic() - sent_s
        await halting
        stop.set()
        await beating
        assert halted_after_s < 1.0, halted_after_s
        assert open_orders(sim, "s0") == open_orders(sim, "s1") == 0


async def test_a_routed_copy_left_in_an_inbox_while_away_is_refused(
    tmp_path: Path, redis_server: str, keys: Keys
) -> None:
    async with desk(tmp_path, redis_server, keys) as (_sim, service, alice, _tom):
        now_s = time.time()
        taken = f"{int((now_s - 120) * 1000)}-0"  # Redis took it 2 min ago, signed then
        pause = PauseStrategy(id="late-00000001", operator="alice", time_s=now_s - 120,
                              strategy="mm0")  # fmt: skip
        await alice.redis.xadd(
            keys.inbox("proc-a"),
            {"wire": sign(pause, Secret(operator_secret("alice"))), "entry": taken,
             "from": "proc-b"},
            id=f"{int((now_s - 90) * 1000)}-0",  # routed here 90 s ago, this process away
        )  # fmt: skip
        deadline = time.monotonic() + 5
        while not (got := await replies(alice, keys, taken)):
            assert time.monotonic() < deadline, "no reply"
            await asyncio.sleep(0.05)
        assert not got[0].ok
        assert "while this process was away" in (got[0].error or "")
        assert service.units["mm0"].worker.state == "running"

"""The kill switch scenario, shared by `benchmarks/kill_switch.py` and its e2e test
(tests/e2e/test_kill_switch.py): a desk of two service processes and 50 resting orders.

    async with open_desk(workdir, redis_url=url, namespace=ns) as desk:
        await desk.wait_ladders()             # 50 orders open at the venue, both processes live
        halt = await desk.halt("drill")       # HaltRun: when the last order closed, the reply
        placed = desk.placed_since(halt.sent_s)
        resume = await desk.resume()          # ResumeRun: the reply, the ladders back
        codes = await desk.stop()             # SIGTERM to both: their exit codes

Two `orchestrator run` children (`proc-a` runs three ladder strategies, `proc-b` two), one Redis
(the caller's), one simulator in this process: what is measured is read off its engine, never
from the service's claims. Each ladder (tests/fixtures/strategies/ladder.py) rests 5 bids and 5
asks 2-3 % from the mid on its own sub-account, so nothing fills and the venue holds exactly 50
orders. Times are the simulator's clock (`time.time()`, the engine stamps `closed_s` with it),
taken in this process: `sent_s` just before the command's XADD, the last cancel as the greatest
`closed_s` of the orders open at the venue then (and of any placed after it).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from orchestrator.control.client import ControlClient, NoReply
from orchestrator.control.replies import Reply, decode_reply
from orchestrator.simulator.app import RunningSimulator, open_simulator
from orchestrator.simulator.orders import Order
from orchestrator.simulator.settings import SimSettings, domain_accounts
from orchestrator.testing.service import (
    ServiceSetup,
    StrategySpec,
    operator_client,
    spawn_service,
    stop_service,
    write_config,
)

LADDER_MODULE: Final = "tests.fixtures.strategies.ladder"
LEVELS: Final = 5  # per side
# name, account, pair, size, process
LADDERS: Final = (
    ("ladder0", "s0", "XBT/USD", "0.001", "proc-a"),
    ("ladder1", "s1", "ETH/USD", "0.02", "proc-a"),
    ("ladder2", "s2", "SOL/USD", "0.5", "proc-a"),
    ("ladder3", "s3", "XBT/USD", "0.001", "proc-b"),
    ("ladder4", "s4", "ETH/USD", "0.02", "proc-b"),
)
PROCESSES: Final = ("proc-a", "proc-b")
ORDERS: Final = len(LADDERS) * 2 * LEVELS
FUNDS: Final = {"ZUSD": Decimal(50_000), "XXBT": Decimal(2), "XETH": Decimal(20),
                "SOL": Decimal(500)}  # fmt: skip
POLL_S: Final = 0.002  # how often the venue's open orders are looked at while waiting for 0
_SLICE_S: Final = 0.5  # one BLPOP of a reply: below the client's socket timeout


@dataclass(frozen=True, slots=True)
class HaltRun:
    """One `halt`, as the venue and the operator saw it (wall clock, the simulator's)."""

    open_at_send: int  # orders open at the venue just before the XADD
    sent_s: float  # just before the XADD
    last_cancel_s: float | None  # the last of those (and of any placed since) closed; None: open
    reply: Reply
    reply_s: float  # when the reply was read

    @property
    def to_last_cancel_s(self) -> float | None:
        return None if self.last_cancel_s is None else self.last_cancel_s - self.sent_s

    @property
    def to_reply_s(self) -> float:
        return self.reply_s - self.sent_s


@dataclass(frozen=True, slots=True)
class ResumeRun:
    sent_s: float
    reply: Reply
    reply_s: float
    restored_s: float  # when the venue held all the ladders' orders again

    @property
    def to_restored_s(self) -> float:
        return self.restored_s - self.sent_s


class Desk:
    def __init__(
        self, sim: RunningSimulator, client: ControlClient, *, redis_url: str, workdir: Path
    ) -> None:
        self.sim = sim
        self.client = client
        self.redis_url = redis_url
        self.workdir = workdir
        self.accounts = tuple(a.name for a in sim.venue.settings.accounts)
        self.procs: dict[str, asyncio.subprocess.Process] = {}

    async def start(self) -> None:
        """Both processes spawned (configs and logs under `workdir`)."""
        for process in PROCESSES:
            specs = [
                StrategySpec(name=name, account=account, pair=pair, module=LADDER_MODULE,
                             params={"size": size, "levels": LEVELS})
                for name, account, pair, size, where in LADDERS if where == process
            ]  # fmt: skip
            setup = ServiceSetup(tmp=self.workdir, sim=self.sim, redis_url=self.redis_url,
                                 namespace=self.client.keys.namespace, strategies=specs,
                                 instance=process)  # fmt: skip
            path = write_config(setup)
            self.procs[process] = await spawn_service(path, self.log_path(process))

    def log_path(self, process: str) -> Path:
        return self.workdir / f"{process}.log"

    def log_tail(self, process: str, chars: int = 3000) -> str:
        path = self.log_path(process)
        text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
        return text[-chars:]

    # --- what the venue holds ------------------------------------------------------------------
    def open_orders(self) -> dict[str, Order]:
        engine = self.sim.venue.engine
        return {txid: o for a in self.accounts for txid, o in engine.open_orders(a).items()}

    def open_by_account(self) -> dict[str, int]:
        engine = self.sim.venue.engine
        return {a: len(engine.open_orders(a)) for a in self.accounts}

    def placed_since(self, since_s: float, until_s: float | None = None) -> list[Order]:
        """Orders of the desk's accounts the venue took at or after `since_s` (before
        `until_s`), whatever became of them."""
        mine = set(self.accounts)
        return [o for o in self.sim.venue.engine.orders.values()
                if o.account in mine and o.opened_s >= since_s
                and (until_s is None or o.opened_s < until_s)]  # fmt: skip

    # --- waiting -------------------------------------------------------------------------------
    def _check_alive(self) -> None:
        for process, proc in self.procs.items():
            if proc.returncode is not None:
                raise RuntimeError(f"{process} exited with {proc.returncode}:\n"
                                   f"{self.log_tail(process)}")  # fmt: skip

    async def wait_ladders(self, *, timeout_s: float = 30.0) -> float:
        """Until the venue holds all `ORDERS` orders and both processes beat; when."""
        deadline_s = time.monotonic() + timeout_s
        while time.monotonic() < deadline_s:
            self._check_alive()
            if len(self.open_orders()) >= ORDERS:
                live = await self.client.live_processes()
                if all(p in live for p in PROCESSES):
                    return time.time()
            await asyncio.sleep(0.05)
        tails = "\n".join(f"--- {p}\n{self.log_tail(p, 1500)}" for p in PROCESSES)
        raise TimeoutError(f"the ladders did not rest {ORDERS} orders within {timeout_s:g} s: "
                           f"{self.open_by_account()}\n{tails}")  # fmt: skip

    async def _send(self, type_name: str, **fields: Any) -> tuple[float, str]:
        command = self.client.command(type_name, **fields)
        sent_s = time.time()
        return sent_s, await self.client.send(command)

    async def _reply(self, entry: str, timeout_s: float) -> tuple[Reply, float]:
        """The reply to stream entry `entry`, and when it was read."""
        redis, key = self.client.redis, self.client.keys.reply(entry)
        deadline_s = time.monotonic() + timeout_s
        while (left_s := deadline_s - time.monotonic()) > 0:
            popped = await redis.blpop([key], timeout=max(0.01, min(_SLICE_S, left_s)))
            if popped is not None:
                raw = popped[1]
                return decode_reply(raw.encode() if isinstance(raw, str) else raw), time.time()
        raise NoReply(f"no reply to entry {entry} within {timeout_s:g} s")

    async def halt(self, reason: str, *, timeout_s: float = 10.0) -> HaltRun:
        """Send `halt` (operator alice) and wait for 0 open orders and for the reply."""
        before = self.open_orders()
        sent_s, entry = await self._send("halt", reason=reason)
        reply_task = asyncio.create_task(self._reply(entry, timeout_s))
        try:
            deadline_s = time.monotonic() + timeout_s
            while self.open_orders() and time.monotonic() < deadline_s:  # noqa: ASYNC110 - the venue's state, polled
                await asyncio.sleep(POLL_S)
            reply, reply_s = await reply_task
        finally:
            reply_task.cancel()
        watched = list(before.values()) + self.placed_since(sent_s)
        closed = [o.closed_s for o in watched]
        last = max((c for c in closed if c is not None), default=sent_s)
        return HaltRun(open_at_send=len(before), sent_s=sent_s,
                       last_cancel_s=None if None in closed else last, reply=reply,
                       reply_s=reply_s)  # fmt: skip

    async def resume(self, *, timeout_s: float = 15.0) -> ResumeRun:
        """Send `resume_trading` and wait for the reply and for the ladders to rest again."""
        sent_s, entry = await self._send("resume_trading")
        reply, reply_s = await self._reply(entry, timeout_s)
        if not reply.ok:
            return ResumeRun(sent_s=sent_s, reply=reply, reply_s=reply_s, restored_s=float("nan"))
        restored_s = await self.wait_ladders(timeout_s=timeout_s)
        return ResumeRun(sent_s=sent_s, reply=reply, reply_s=reply_s, restored_s=restored_s)

    async def trading_state(self) -> str | None:
        raw = await self.client.redis.hget(self.client.keys.trading_state(), "state")
        return raw.decode() if isinstance(raw, bytes) else raw

    async def stop(self, *, timeout_s: float = 20.0) -> dict[str, int]:
        """SIGTERM to every process, as an operator stops them; their exit codes."""
        codes = await asyncio.gather(*(stop_service(p, timeout_s=timeout_s)
                                       for p in self.procs.values()))  # fmt: skip
        return dict(zip(self.procs, codes, strict=True))


@contextlib.asynccontextmanager
async def open_desk(
    workdir: Path, *, redis_url: str, namespace: str, operator: str = "alice"
) -> AsyncIterator[Desk]:
    """The simulator, the two processes spawned (not yet waited for), and an operator's client;
    whatever runs is stopped when the block ends (killed if SIGTERM is not enough)."""
    settings = SimSettings(accounts=domain_accounts(len(LADDERS), dict(FUNDS)))
    async with (
        open_simulator(settings) as sim,
        operator_client(redis_url, namespace, operator) as client,
    ):
        desk = Desk(sim, client, redis_url=redis_url, workdir=workdir)
        try:
            await desk.start()
            yield desk
        finally:
            await desk.stop()

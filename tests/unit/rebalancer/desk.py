"""A desk for the executor's tests: the simulator on a manual clock (served on loopback, as the
treasury talks HTTP), the product's wiring pointed at it (`open_sim_domain`), fakeredis, and the
executor built over them the way the service builds it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

import fakeredis

from orchestrator.clock import ManualClock
from orchestrator.exchange.kraken.account import KrakenDomain
from orchestrator.exchange.protocol import AccountReader, Treasury
from orchestrator.metrics import Registry
from orchestrator.rebalancer.executor import FuturesMover, TransferExecutor
from orchestrator.rebalancer.journal import TransferJournal
from orchestrator.rebalancer.transfers import MoveKind, PlannedTransfer, TransferRecord
from orchestrator.simulator.app import RunningSimulator, open_simulator
from orchestrator.simulator.settings import AccountSeed, SimSettings
from orchestrator.store.keys import Keys
from tests.sim_domains import open_sim_domain

FUNDS: Final = {"ZUSD": Decimal(100_000), "XXBT": Decimal(10)}
SUB_FUNDS: Final = {"ZUSD": Decimal(1_000), "XXBT": Decimal(1)}
SETTLE_AFTER_S: Final = 60.0


def desk_settings() -> SimSettings:
    """A master and two sub-accounts, with spot funds and flex collateral on the master."""
    return SimSettings(accounts=(
        AccountSeed(name="master", role="master", balances=FUNDS,
                    futures_flex={"ZUSD": Decimal(5_000)}),
        AccountSeed(name="s0", balances=SUB_FUNDS, futures_flex={"ZUSD": Decimal(100)}),
        AccountSeed(name="s1", balances=SUB_FUNDS),
    ))  # fmt: skip


def move(
    amount: str, source: str = "master", target: str = "s0", *, asset: str = "ZUSD",
    kind: MoveKind = "transfer",
) -> PlannedTransfer:  # fmt: skip
    return PlannedTransfer(kind=kind, asset=asset, amount=Decimal(amount), source=source,
                           target=target, reason="band_low")  # fmt: skip


@dataclass(slots=True)
class Desk:
    sim: RunningSimulator
    domain: KrakenDomain
    redis: fakeredis.FakeAsyncRedis
    clock: ManualClock
    keys: Keys = field(default_factory=lambda: Keys("desk"))
    events: list[TransferRecord] = field(default_factory=list)
    registry: Registry = field(default_factory=Registry)

    def journal(self) -> TransferJournal:
        return TransferJournal(self.redis, self.keys, self.clock)

    @property
    def account_ids(self) -> dict[str, str]:
        return {a.name: a.venue_id for a in self.domain.accounts.values()}

    @property
    def readers(self) -> dict[str, AccountReader]:
        return {a.name: a.reader for a in self.domain.accounts.values()}

    def executor(
        self,
        *,
        journal: TransferJournal | None = None,
        treasury: Treasury | None = None,
        futures: FuturesMover | None = None,
        readers: Mapping[str, AccountReader] | None = None,
        registry: Registry | None = None,
    ) -> TransferExecutor:
        async def on_event(record: TransferRecord) -> None:
            self.events.append(record)

        return TransferExecutor(
            journal or self.journal(), treasury or self.domain.treasury,
            futures_treasury=futures or self.domain.futures_treasury,
            account_ids=self.account_ids, readers=readers or self.readers, clock=self.clock,
            registry=registry or self.registry, on_event=on_event,
            settle_after_s=SETTLE_AFTER_S,
        )  # fmt: skip

    async def later(self, dt_s: float) -> None:
        """Let `dt_s` of venue time pass: pending transfers and withdrawals fall due."""
        await self.clock.advance(dt_s)
        self.sim.venue.tick()

    def balance(self, account: str, asset: str) -> Decimal:
        """What the venue holds (its own books, not a client's read)."""
        return self.sim.venue.domain.accounts[account].balance(asset)

    def flex(self, account: str, asset: str = "ZUSD") -> Decimal:
        return self.sim.venue.domain.accounts[account].futures["flex"].get(asset, Decimal(0))

    def strike(self, method: str, fault: str = "lost") -> None:
        """The next `method` request is executed and its reply suffers `fault`."""
        faults = self.sim.venue.settings.faults
        if fault == "lost":
            faults.lost_reply_next, faults.lost_reply_methods = 1, (method,)
        elif fault == "garbled":
            faults.garbled_reply_next, faults.garbled_reply_methods = 1, (method,)
        else:
            faults.reset_reply_next, faults.reset_reply_methods = 1, (method,)

    def sent(self, method: str) -> int:
        """How many `method` requests reached the venue."""
        return self.sim.venue.request_counts.get(f"private:{method}", 0)


@contextlib.asynccontextmanager
async def open_desk(settings: SimSettings | None = None) -> AsyncIterator[Desk]:
    """The desk for one test; the clock jumps through the clients' own waits (the limiter's
    pacing), and moves otherwise only when the test says (`Desk.later`)."""
    clock = ManualClock(autojump=True)
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    async with (
        open_simulator(settings or desk_settings(), clock=clock) as sim,
        open_sim_domain(sim, redis, clock, manual_time=True) as domain,
    ):
        sim.venue.markets_frozen = True
        domain.treasury.confirm_delay_s = 0.0
        if domain.futures_treasury is not None:
            domain.futures_treasury.confirm_delay_s = 0.0
        yield Desk(sim, domain, redis, clock)
    await redis.aclose()

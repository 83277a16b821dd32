"""The rebalancer as a service component: cycles that read, reconcile, plan and move money.

    rebalancer = Rebalancer(config, reads=..., executor=..., journal=..., clock=clock, ...)
    tg.create_task(supervisor.supervise("rebalancer", rebalancer.run))
    rebalancer.request("request:mm-xbt", asset="ZUSD")   # a strategy's request_rebalance

A cycle, every `rebalancer.interval_s` or sooner when asked (a strategy's `request_rebalance`,
an operator's command, a balance a strategy saw leave its band):
1. reconcile: every journal entry not final is settled against the venue first (executor), so
   nothing is ever sent for an account and asset whose last move is still unknown;
2. read: every account's balances, one `BalanceEx` per account through the limiter (Kraken has
   no aggregate endpoint), held funds apart;
3. plan (pure, plan.py) against the bands, the caps and what moved today; then the treasury
   sweeps (withdrawals from the source account above `keep`, within the day's caps and the
   tier's daily withdrawal limit) and the futures margin top-ups (margin.py);
4. execute each move exactly once (executor.py: journalled before the call).
A cycle that fails (the venue or Redis away) is logged and counted; the next one starts over
from the venue's truth. Pausing (the control plane's `halt`) stops new moves, never
reconciliation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

import msgspec

from orchestrator.clock import Clock
from orchestrator.config import Config, RebalanceTarget
from orchestrator.config_rules import check_relations
from orchestrator.errors import OrchestratorError
from orchestrator.exchange.protocol import Balance
from orchestrator.logs import get_logger
from orchestrator.metrics import Registry
from orchestrator.rebalancer.transfers import PlannedTransfer, TransferRecord

log = get_logger(__name__)

RECENT_MOVES: Final = 20  # kept for the status screen


class Journal(Protocol):
    async def in_flight(self) -> set[tuple[str, str]]: ...


class Executor(Protocol):
    async def reconcile(self) -> list[TransferRecord]: ...

    async def execute(self, planned: PlannedTransfer, trigger: str) -> TransferRecord: ...


Planner = Callable[
    [Mapping[str, Mapping[str, Balance]], set[tuple[str, str]], float],
    Awaitable[Sequence[PlannedTransfer]],
]
"""(balances by account, (account, asset) in flight, now_s) -> the moves of one cycle
(wiring.py: the pure plans of plan.py and sweeps.py over what the journal and the venue say)."""


@dataclass(slots=True)
class CycleReport:
    trigger: str
    started_s: float
    planned: list[PlannedTransfer] = field(default_factory=list)
    records: list[TransferRecord] = field(default_factory=list)
    deferred: list[PlannedTransfer] = field(default_factory=list)  # an end still busy: next cycle
    error: str | None = None


class Rebalancer:
    def __init__(
        self,
        config: Config,
        *,
        read_balances: Callable[[str], Awaitable[Mapping[str, Balance]]],
        planner: Planner,
        executor: Executor,
        journal: Journal,
        clock: Clock,
        registry: Registry,
        watch: Callable[[], Sequence[str]] | None = None,
        watch_every_s: float = 1.0,
    ) -> None:
        """`read_balances(account)`: one account's balances (its reader, through the limiter);
        `planner`: what a cycle moves (plan.py, treasury sweeps and margin top-ups); `watch`:
        asked every `watch_every_s` between cycles for reasons to run one now (a balance the
        strategies' own feeds saw leave its band: wiring.BandWatch), costing no venue call."""
        self.config = config
        self.config_listeners: list[Callable[[Config], None]] = []  # told of set_targets
        self.accounts = [a.name for a in config.accounts]
        self.interval_s = config.rebalancer.interval_s
        self._read_balances = read_balances
        self._planner = planner
        self._executor = executor
        self._journal = journal
        self._watch = watch
        self.watch_every_s = watch_every_s
        self.clock = clock
        self._wake = asyncio.Event()
        self._stopping = False
        self._triggers: list[str] = []
        self.paused = False
        self.last: CycleReport | None = None
        self.recent: list[TransferRecord] = []  # newest first
        self._cycles = registry.counter(
            "orch_rebalancer_cycles_total", "Rebalancing cycles by outcome", ("outcome",)
        )

    # --- triggers ------------------------------------------------------------------------------
    def request(self, trigger: str) -> None:
        """Run a cycle now (a strategy's request, an operator's command)."""
        self._triggers.append(trigger)
        self._wake.set()

    def set_targets(self, targets: Sequence[RebalanceTarget]) -> None:
        """An operator's `set_targets`: each band given replaces the configured one of its
        account and asset (or is added), from the next cycle on. Checked whole against the
        config's rules first (`ConfigError` naming the band); nothing changes when refused."""
        given = {(t.account, t.asset): t for t in targets}
        kept = [t for t in self.config.rebalancer.targets if (t.account, t.asset) not in given]
        bands = kept + list(given.values())
        section = msgspec.structs.replace(self.config.rebalancer, targets=bands)
        config = msgspec.structs.replace(self.config, rebalancer=section)
        check_relations(config, source="set_targets")
        self.config = config
        for listener in self.config_listeners:
            listener(config)
        log.info("rebalancer.targets_set", bands=len(given))

    def stop(self) -> None:
        """Stop after the cycle under way (a move is never cut between its call and its
        journal entry by a clean stop; a crash there is what reconciliation is for)."""
        self._stopping = True
        self._wake.set()

    def _stopped(self) -> bool:
        return self._stopping

    async def run(self) -> None:
        clock = self.clock
        next_cycle_s = clock.monotonic() + self.interval_s
        while not self._stopped():
            wait_s = max(0.0, next_cycle_s - clock.monotonic())
            if self._watch is not None:
                wait_s = min(wait_s, self.watch_every_s)
            try:
                async with clock.timeout(wait_s):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            if self._stopped():
                return
            triggers, self._triggers = self._triggers, []
            if not triggers and self._watch is not None:
                triggers = list(self._watch())
            if not triggers and clock.monotonic() < next_cycle_s:
                continue
            await self.cycle(",".join(dict.fromkeys(triggers)) or "period")
            next_cycle_s = clock.monotonic() + self.interval_s

    # --- one cycle -----------------------------------------------------------------------------
    async def cycle(self, trigger: str) -> CycleReport:
        report = CycleReport(trigger=trigger, started_s=self.clock.time())
        try:
            self._remember(await self._executor.reconcile())
            if self.paused:
                report.error = "paused"
                self._cycles.inc("paused")
                return report
            balances = {name: await self._read_balances(name) for name in self.accounts}
            in_flight = await self._journal.in_flight()
            report.planned = list(await self._planner(balances, in_flight, report.started_s))
            busy = set(in_flight)
            for planned in report.planned:
                # One open move per account and asset, the hub's included: settling a lost
                # reply from the ledger needs one candidate entry. A move after one that ended
                # pending waits for the next cycle instead of being refused.
                ends = _ends(planned)
                # Stopping, or halted meanwhile (the kill switch): nothing new goes out.
                if ends & busy or self._stopped() or self.paused:
                    report.deferred.append(planned)
                    continue
                record = await self._executor.execute(planned, trigger)
                report.records.append(record)
                self._remember([record])
                if not record.is_final:
                    busy |= ends
        except OrchestratorError as exc:  # the venue or Redis away: the next cycle starts over
            report.error = str(exc)
            self._cycles.inc("failed")
            log.warning("rebalancer.cycle_failed", trigger=trigger, error=str(exc))
        else:
            self._cycles.inc("ok")
            if report.planned:
                log.info("rebalancer.cycle", trigger=trigger, moves=len(report.planned),
                         states=[r.state for r in report.records])  # fmt: skip
        finally:
            self.last = report
        return report

    def _remember(self, records: Sequence[TransferRecord]) -> None:
        for record in records:
            self.recent = [r for r in self.recent if r.id != record.id]
            self.recent.insert(0, record)
        del self.recent[RECENT_MOVES:]


def _ends(planned: PlannedTransfer) -> set[tuple[str, str]]:
    """The (account, asset) a move keeps busy until it is final (a withdrawal's target is a key,
    not an account)."""
    ends = {(planned.source, planned.asset)}
    if planned.kind != "withdrawal":
        ends.add((planned.target, planned.asset))
    return ends

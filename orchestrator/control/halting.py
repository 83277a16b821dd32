"""This process's side of the desk's switches: halted or trading, as the newest switch says.

    desk = DeskTrading(service, switch, cancel_timeout_s=5.0)
    await desk.follow_redis()             # at start, every second, and for a broadcast halt
    await desk.cancel_here(account=None)  # every order of this process's strategies

The trading state in Redis (trading.py) is the truth and carries a generation (the entry id of
the command that set it). The process applies a record only if it is at least as new as the
last one it applied, so neither a read that left before a halt was written nor a stale
broadcast copy can undo a newer switch here. Halted: the risk checks refuse every new intent,
queued places are refused, every order of the process's strategies is cancelled and the
rebalancer pauses. Resumed: each strategy's order manager is reopened and the rebalancer goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from orchestrator.clock import Backoff
from orchestrator.control.trading import Generation, TradingRecord, TradingSwitch
from orchestrator.errors import OrchestratorError
from orchestrator.logs import get_logger

if TYPE_CHECKING:
    from orchestrator.service import Service

log = get_logger(__name__)

SWEEP_ATTEMPTS: Final = 4
UNKNOWN: Final[Generation] = (-1, -1)  # nothing applied yet: any record is newer


class DeskTrading:
    def __init__(self, service: Service, switch: TradingSwitch, *, cancel_timeout_s: float) -> None:
        self.service = service
        self.switch = switch
        self.clock = switch.clock
        self.cancel_timeout_s = cancel_timeout_s
        self.applied: Generation = UNKNOWN

    @property
    def halted(self) -> bool:
        return self.service.trading_state.state == "HALTED"

    async def follow_redis(self) -> dict[str, Any]:
        """Read the record and follow it; what this process did ("state" and, once halted
        here, what its cancels left)."""
        return await self.follow(await self.switch.read())

    async def follow(self, record: TradingRecord) -> dict[str, Any]:
        if record.generation < self.applied:  # older than what this process applied
            return {"trading_state": self.service.trading_state.state, "stale": record.entry}
        self.applied = record.generation
        if record.state == "HALTED":
            if not self.halted:
                log.warning("control.halting", reason=record.reason, by=record.operator,
                            entry=record.entry)  # fmt: skip
            return await self.halt_here()  # again when halted: what was placed meanwhile goes
        if self.halted:
            self.resume_here()
        return {"trading_state": self.service.trading_state.state}

    def hold(self, why: str) -> None:
        """Halted until Redis says otherwise (its state could not be read at start)."""
        log.warning("control.held_halted", why=why)
        self.service.trading_state.state = "HALTED"
        if self.service.rebalancer is not None:
            self.service.rebalancer.paused = True

    async def halt_here(self) -> dict[str, Any]:
        service = self.service
        service.trading_state.state = "HALTED"  # from now on every new intent is refused
        if service.rebalancer is not None:
            service.rebalancer.paused = True
        done = await self.cancel_here(None)
        log.warning("control.halted", strategies=len(done["strategies"]),
                    open_orders_left=done["open_orders_left"])  # fmt: skip
        return {"trading_state": "HALTED", **done}

    def resume_here(self) -> None:
        service = self.service
        service.trading_state.state = "ACTIVE"
        if service.rebalancer is not None:
            service.rebalancer.paused = False
        for unit in service.units.values():
            unit.worker.resume_trading()
        log.info("control.trading_resumed", strategies=len(service.units))

    async def cancel_here(self, account: str | None) -> dict[str, Any]:
        """Every order of this process's live strategies (of `account`, when given)."""
        workers = [u.worker for u in self.service.units.values()
                   if u.worker.state in ("starting", "running", "paused")
                   and (account is None or u.worker.account == account)]  # fmt: skip
        timeout_s = self.cancel_timeout_s
        left = await asyncio.gather(*(w.cancel_all(timeout_s=timeout_s) for w in workers))
        return {"accounts": sorted({w.account for w in workers}),
                "strategies": [w.name for w in workers], "open_orders_left": sum(left)}  # fmt: skip

    async def sweep(self, accounts: Sequence[str]) -> dict[str, Any]:
        """A CancelAll on each account no process covered; per account, what it answered."""

        async def one(name: str) -> Any:
            trading = self.service.domain.accounts[name].trading
            backoff = Backoff(self.clock, initial_s=0.1, max_s=1.0)
            for _ in range(SWEEP_ATTEMPTS):
                try:
                    return await trading.cancel_all([])
                except OrchestratorError as exc:  # cancels must go through
                    log.warning("control.sweep_retry", account=name, error=str(exc))
                    await backoff.wait()
            return {"error": f"CancelAll failed {SWEEP_ATTEMPTS} times"}

        names = [a for a in accounts if a in self.service.domain.accounts]
        counts = await asyncio.gather(*(one(name) for name in names))
        return dict(zip(names, counts, strict=True))

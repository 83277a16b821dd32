"""Plain status lines of the running service: one per strategy, every `interval_s`.

Logged as `service.status` events always, and printed to `out` as readable lines (the demo's
view; a live terminal screen is built on the same figures).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, TextIO

from orchestrator.clock import Clock
from orchestrator.logs import get_logger

if TYPE_CHECKING:
    from orchestrator.service import Service

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class StrategyStatus:
    name: str
    state: str
    open_orders: int
    fills: int
    pnl: Decimal
    failure: str | None


def strategy_statuses(service: Service) -> list[StrategyStatus]:
    out = []
    for name, unit in service.units.items():
        worker = unit.worker
        out.append(StrategyStatus(name=name, state=worker.state,
                                  open_orders=len(worker.manager.open_orders()),
                                  fills=worker.fill_count, pnl=worker.pnl(),
                                  failure=worker.failure))  # fmt: skip
    for name, why in service.not_started.items():
        out.append(StrategyStatus(name=name, state="not_started", open_orders=0, fills=0,
                                  pnl=Decimal(0), failure=why))  # fmt: skip
    return out


def format_line(status: StrategyStatus) -> str:
    line = (f"{status.name:<16} {status.state:<11} open {status.open_orders:>3}  "
            f"fills {status.fills:>5}  pnl {status.pnl:>12.2f}")  # fmt: skip
    return line if status.failure is None else f"{line}  ({status.failure})"


class StatusReporter:
    def __init__(self, service: Service, clock: Clock, *, interval_s: float, out: TextIO) -> None:
        self.service = service
        self.clock = clock
        self.interval_s = interval_s
        self.out = out

    async def run(self) -> None:
        while True:
            await self.clock.sleep(self.interval_s)
            self.report()

    def report(self) -> None:
        statuses = strategy_statuses(self.service)
        for status in statuses:
            log.info(
                "service.status",
                strategy=status.name,
                state=status.state,
                open_orders=status.open_orders,
                fills=status.fills,
                pnl=str(status.pnl),
            )
        print("\n".join(format_line(s) for s in statuses), file=self.out, flush=True)

    def final(self, open_orders: int) -> None:
        print(f"stopped: {open_orders} open orders left at the venue", file=self.out, flush=True)

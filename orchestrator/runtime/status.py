"""The running service's status: one record per strategy, every `interval_s` and at the end.

Each record is logged (`service.status`), written to Redis (`Keys.strategy_status`, a hash of
JSON documents: what operators' tools and the status page read) and printed to `out` as a
readable line (the demo's view; a live terminal screen is built on the same records). A Redis
that does not answer costs the write, never the report.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, TextIO

import msgspec
import redis.asyncio as aioredis

from orchestrator.clock import Clock
from orchestrator.errors import StoreError
from orchestrator.logs import get_logger
from orchestrator.store.errors import redis_errors
from orchestrator.store.keys import Keys

if TYPE_CHECKING:
    from orchestrator.service import Service

log = get_logger(__name__)


class PositionStatus(msgspec.Struct, frozen=True, kw_only=True):
    qty: Decimal
    avg_price: Decimal | None
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees: Decimal
    mark: Decimal | None


class StrategyStatus(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    state: str
    open_orders: int
    fills: int
    pnl: Decimal
    failure: str | None
    positions: dict[str, PositionStatus] = {}
    time_s: float = 0.0


_encode = msgspec.json.Encoder(decimal_format="string").encode


def strategy_statuses(service: Service, now_s: float) -> list[StrategyStatus]:
    out = []
    for name, unit in service.units.items():
        worker = unit.worker
        positions = {}
        for pair in worker.positions.pairs():
            mark = worker.mark(pair)
            p = worker.positions.position(pair, mark)
            positions[pair] = PositionStatus(qty=p.qty, avg_price=p.avg_price,
                                             realized_pnl=p.realized_pnl,
                                             unrealized_pnl=p.unrealized_pnl, fees=p.fees,
                                             mark=mark)  # fmt: skip
        out.append(StrategyStatus(name=name, state=worker.state,
                                  open_orders=len(worker.manager.open_orders()),
                                  fills=worker.fill_count, pnl=worker.pnl(),
                                  failure=worker.failure, positions=positions,
                                  time_s=now_s))  # fmt: skip
    out.extend(StrategyStatus(name=name, state="disabled", open_orders=0, fills=0,
                              pnl=Decimal(0), failure=None, time_s=now_s)
               for name in service.disabled)  # fmt: skip
    for name, why in service.not_started.items():
        out.append(StrategyStatus(name=name, state="not_started", open_orders=0, fills=0,
                                  pnl=Decimal(0), failure=why, time_s=now_s))  # fmt: skip
    return out


def format_line(status: StrategyStatus) -> str:
    line = (f"{status.name:<16} {status.state:<11} open {status.open_orders:>3}  "
            f"fills {status.fills:>5}  pnl {status.pnl:>12.2f}")  # fmt: skip
    return line if status.failure is None else f"{line}  ({status.failure})"


class StatusReporter:
    def __init__(
        self, service: Service, clock: Clock, *, redis: aioredis.Redis, keys: Keys,
        interval_s: float, out: TextIO,
    ) -> None:  # fmt: skip
        self.service = service
        self.clock = clock
        self.redis = redis
        self.key = keys.strategy_status()
        self.interval_s = interval_s
        self.out = out

    async def run(self) -> None:
        while True:
            await self.clock.sleep(self.interval_s)
            await self.report()

    async def report(self) -> list[StrategyStatus]:
        statuses = strategy_statuses(self.service, self.clock.time())
        for status in statuses:
            log.info("service.status", strategy=status.name, state=status.state,
                     open_orders=status.open_orders, fills=status.fills,
                     pnl=str(status.pnl))  # fmt: skip
        if statuses:
            print("\n".join(format_line(s) for s in statuses), file=self.out, flush=True)
            await self._write(statuses)
        return statuses

    async def _write(self, statuses: list[StrategyStatus]) -> None:
        mapping = {s.name: _encode(s) for s in statuses}
        try:
            async with redis_errors(self.redis, "status.write"):
                await self.redis.hset(self.key, mapping=mapping)  # type: ignore[arg-type]
        except StoreError as exc:
            log.warning("service.status_not_written", error=str(exc))

    async def final(self, open_orders: int) -> None:
        await self.report()
        print(f"stopped: {open_orders} open orders left at the venue", file=self.out, flush=True)

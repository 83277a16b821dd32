"""The running service's status as data: one record per strategy and per domain pool.

`service_status` reads it from the live objects (no I/O but the pools' levels in Redis), so the
same snapshot feeds the live screen (runtime/screen.py), the plain status lines, the Redis hash
`Keys.strategy_status()` that operators' tools read, and the final summary.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

import msgspec

from orchestrator.errors import StoreError
from orchestrator.ratelimit.usage import UsageView

if TYPE_CHECKING:
    from orchestrator.service import Service


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
    account: str = ""
    placed: int = 0  # orders the venue accepted
    amended: int = 0  # amends the venue accepted
    positions: dict[str, PositionStatus] = {}
    balances: dict[str, Decimal] = {}  # the account's totals of its pairs' assets
    weight_share: float = 0.0  # what its weight entitles it to of the pools (0..1)
    pool_share: float = 0.0  # what it took of the pools lately, in this process (0..1)
    mean_wait_s: float = 0.0  # per permit, lately
    max_wait_s: float = 0.0
    time_s: float = 0.0


class PoolStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One domain pool: how full its counter is (all processes: Redis) and how much of its
    sustained rate this process was granted lately."""

    scope: str
    level_ratio: float | None  # level / threshold; None when Redis did not answer
    rate_ratio: float  # granted cost per second / decay per second


class MoveStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One of the rebalancer's recent moves."""

    id: str
    kind: str
    asset: str
    amount: Decimal
    source: str
    target: str
    reason: str
    state: str
    updated_s: float
    error: str | None = None


class RebalancerStatus(msgspec.Struct, frozen=True, kw_only=True):
    paused: bool
    last_cycle_s: float | None  # wall clock
    last_trigger: str | None
    last_error: str | None
    moves: list[MoveStatus]  # newest first


class ServiceStatus(msgspec.Struct, frozen=True, kw_only=True):
    time_s: float
    uptime_s: float
    trading_state: str
    redis_up: bool
    venue: str  # "simulator" or the REST URL
    strategies: list[StrategyStatus]
    pools: list[PoolStatus]
    venue_rejections: int | None  # rate-limit refusals the simulator counted (None: Kraken)
    rate_limit_errors: int  # rate-limit errors our clients were answered
    usage_window_s: float  # what `pool_share`, the waits and `rate_ratio` look back over
    loop_lag_p99_s: float | None = None  # the event loop's lag (runtime/loop_lag.py)
    rebalancer: RebalancerStatus | None = None  # None when it is not enabled
    status_page: str | None = None  # the endpoint's page (runtime/http.py), while it is served


def _strategy_statuses(service: Service, now_s: float, usage: UsageView) -> list[StrategyStatus]:
    limiter = service.domain.limiter
    total_weight = sum(limiter.weights.values()) or 1.0
    out = []
    for name, unit in service.units.items():
        worker = unit.worker
        positions = {}
        assets: set[str] = set()
        for pair in worker.pairs:
            instrument = worker.market_instrument(pair)
            assets.update((instrument.base, instrument.quote))
        for pair in worker.positions.pairs():
            mark = worker.mark(pair)
            p = worker.positions.position(pair, mark)
            positions[pair] = PositionStatus(qty=p.qty, avg_price=p.avg_price,
                                             realized_pnl=p.realized_pnl,
                                             unrealized_pnl=p.unrealized_pnl, fees=p.fees,
                                             mark=mark)  # fmt: skip
        totals = worker.balances.totals
        took = usage.strategies.get(name)
        out.append(StrategyStatus(
            name=name, state=worker.state, account=worker.account,
            open_orders=len(worker.manager.open_orders()), fills=worker.fill_count,
            placed=worker.manager.counted("place", "ok"),
            amended=worker.manager.counted("amend", "ok"),
            pnl=worker.pnl(), failure=worker.failure, positions=positions,
            balances={a: totals[a] for a in sorted(assets) if a in totals},
            weight_share=limiter.weights.get(name, 0.0) / total_weight,
            pool_share=took.share if took else 0.0,
            mean_wait_s=took.mean_wait_s if took else 0.0,
            max_wait_s=took.max_wait_s if took else 0.0, time_s=now_s,
        ))  # fmt: skip
    out.extend(StrategyStatus(name=name, state="disabled", open_orders=0, fills=0,
                              pnl=Decimal(0), failure=None, time_s=now_s)
               for name in service.disabled)  # fmt: skip
    out.extend(StrategyStatus(name=name, state=f"on replica {ordinal}", open_orders=0, fills=0,
                              pnl=Decimal(0), failure=None, time_s=now_s)
               for name, ordinal in service.elsewhere.items())  # fmt: skip
    for name, why in service.not_started.items():
        out.append(StrategyStatus(name=name, state="not_started", open_orders=0, fills=0,
                                  pnl=Decimal(0), failure=why, time_s=now_s))  # fmt: skip
    return out


async def _pool_statuses(service: Service, usage: UsageView) -> list[PoolStatus]:
    limiter = service.domain.limiter
    out = []
    for name, pool in sorted(usage.pools.items()):
        level: float | None
        try:
            level = await limiter.level(pool.scope) / pool.scope.threshold
        except StoreError:
            level = None
        out.append(PoolStatus(scope=name, level_ratio=level, rate_ratio=pool.rate_ratio))
    return out


def rebalancer_status(service: Service) -> RebalancerStatus | None:
    rebalancer = service.rebalancer
    if rebalancer is None:
        return None
    last = rebalancer.last
    moves = [MoveStatus(id=r.id, kind=r.planned.kind, asset=r.planned.asset,
                        amount=r.planned.amount, source=r.planned.source,
                        target=r.planned.target, reason=r.planned.reason, state=r.state,
                        updated_s=r.updated_s, error=r.error)
             for r in rebalancer.recent]  # fmt: skip
    return RebalancerStatus(paused=rebalancer.paused,
                            last_cycle_s=last.started_s if last else None,
                            last_trigger=last.trigger if last else None,
                            last_error=last.error if last else None, moves=moves)  # fmt: skip


def venue_rejections(service: Service) -> int | None:
    """Rate-limit refusals counted by the embedded simulator (Kraken does not tell)."""
    simulator = service.venue.simulator
    return None if simulator is None else sum(simulator.venue.limits.rejections().values())


async def service_status(service: Service, *, now_s: float, monotonic_s: float) -> ServiceStatus:
    limiter = service.domain.limiter
    usage = limiter.usage.view(monotonic_s)
    cooldowns = limiter.metrics.cooldowns.values
    return ServiceStatus(
        time_s=now_s,
        uptime_s=monotonic_s - service.started_s,
        trading_state=service.trading_state.state,
        redis_up=not limiter.health.is_down(),
        venue="simulator" if service.venue.simulator else service.config.venue.rest_url,
        strategies=_strategy_statuses(service, now_s, usage),
        pools=await _pool_statuses(service, usage),
        venue_rejections=venue_rejections(service),
        rate_limit_errors=int(sum(cooldowns.values())),
        usage_window_s=usage.window_s,
        loop_lag_p99_s=service.loop_lag.p99_s if service.loop_lag is not None else None,
        rebalancer=rebalancer_status(service),
        status_page=f"{service.http.url}/" if service.http is not None else None,
    )


def format_line(status: StrategyStatus) -> str:
    line = (f"{status.name:<16} {status.state:<11} open {status.open_orders:>3}  "
            f"placed {status.placed:>5}  amended {status.amended:>5}  fills {status.fills:>5}  "
            f"pnl {status.pnl:>12.2f}  "
            f"pool share {status.pool_share:>4.0%} (weight {status.weight_share:.0%})")  # fmt: skip
    return line if status.failure is None else f"{line}  ({status.failure})"


def format_pool_line(pool: PoolStatus) -> str:
    level = "unknown" if pool.level_ratio is None else f"{pool.level_ratio:.0%}"
    return f"pool {pool.scope:<20} level {level:>7}  rate {pool.rate_ratio:>4.0%} of decay"

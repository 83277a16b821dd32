"""What the read-only commands answer: status, strategies, transfers, approvals, limits.

Served by whichever process takes the command: what they show is in Redis (the processes'
heartbeats, the strategies' status hash, the trading state, the rebalancer's journal, the pools'
counters), plus this process's own live view of its strategies and its limiter. Results are
JSON builtins, one dict (key/value) or a list of rows, so `ctl` prints them as tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import msgspec
import redis.asyncio as aioredis

from orchestrator.control.peers import Heartbeat
from orchestrator.control.replies import to_builtins
from orchestrator.control.trading import TradingSwitch
from orchestrator.errors import StoreError
from orchestrator.rebalancer.journal import TransferJournal
from orchestrator.rebalancer.transfers import TransferRecord
from orchestrator.runtime.status import StrategyStatus
from orchestrator.store.errors import redis_errors

if TYPE_CHECKING:
    from orchestrator.service import Service

_status: Final = msgspec.json.Decoder(StrategyStatus)


async def strategy_statuses(redis: aioredis.Redis, status_key: str) -> dict[str, StrategyStatus]:
    """Every process's strategies as last written to the status hash."""
    async with redis_errors(redis, "control.status_read"):
        raw = await redis.hgetall(status_key)
    out: dict[str, StrategyStatus] = {}
    for name, value in raw.items():
        try:
            status = _status.decode(value)
        except msgspec.DecodeError:
            continue  # another version's record: shown by its own process
        out[_text(name)] = status
    return out


async def status(
    peers: Mapping[str, Heartbeat], switch: TradingSwitch, status_key: str
) -> dict[str, Any]:
    trading = await switch.read()
    now_s = switch.clock.time()
    statuses = await strategy_statuses(switch.redis, status_key)
    processes = [
        {"process": hb.process, "host": hb.host, "pid": hb.pid, "strategies": len(hb.strategies),
         "running": len(hb.running), "rebalancer": hb.rebalancer,
         "heartbeat_age_s": round(now_s - hb.time_s, 3)}
        for hb in sorted(peers.values(), key=lambda hb: hb.process)
    ]  # fmt: skip
    open_orders = sum(s.open_orders for s in statuses.values())
    return {
        "trading_state": trading.state,
        "halt_reason": trading.reason,
        "set_by": trading.operator,
        "processes": processes,
        "strategies": len(statuses),
        "open_orders": open_orders,
    }


async def list_strategies(
    service: Service, redis: aioredis.Redis, peers: Mapping[str, Heartbeat], status_key: str
) -> list[dict[str, Any]]:
    """Every strategy of every live process: this process's from its workers, the others'
    from the status hash (as fresh as their `service.status_interval_s`)."""
    statuses = await strategy_statuses(redis, status_key)
    rows = []
    for hb in sorted(peers.values(), key=lambda hb: hb.process):
        for name in hb.strategies:
            unit = service.units.get(name) if hb.process == service.process else None
            stored = statuses.get(name)
            state: str
            if unit is not None:
                state, open_orders = unit.worker.state, len(unit.worker.manager.open_orders())
            elif stored is not None and name in hb.running:
                state, open_orders = stored.state, stored.open_orders
            else:
                state, open_orders = "not running", 0
            rows.append({
                "strategy": name, "process": hb.process, "state": state,
                "open_orders": open_orders, "fills": stored.fills if stored else 0,
                "pnl": str(stored.pnl) if stored else "0",
            })  # fmt: skip
    return rows


def _transfer_row(record: TransferRecord) -> dict[str, Any]:
    p = record.planned
    return {
        "id": record.id, "state": record.state, "kind": p.kind, "asset": p.asset,
        "amount": str(p.amount), "source": p.source, "target": p.target, "reason": p.reason,
        "trigger": record.trigger, "updated_s": record.updated_s, "venue_id": record.venue_id,
        "approval_request_id": record.approval_request_id, "error": record.error,
    }  # fmt: skip


async def list_transfers(journal: TransferJournal, limit: int) -> list[dict[str, Any]]:
    open_records = await journal.open_records()
    finished = await journal.finished(count=limit)
    records = sorted(open_records + finished, key=lambda r: r.updated_s, reverse=True)
    return [_transfer_row(r) for r in records[:limit]]


async def approve_status(journal: TransferJournal) -> list[dict[str, Any]]:
    """Withdrawals waiting for an Organizations approval (Kraken's web UI grants it)."""
    records = await journal.open_records()
    return [_transfer_row(r) for r in records if r.state == "awaiting_approval"]


async def limits(service: Service) -> dict[str, Any]:
    """The pools' levels (every process: Redis), this process's strategies' take of them, and
    the fair-share weights in force."""
    limiter = service.domain.limiter
    usage = limiter.usage.view(limiter.clock.monotonic())
    scopes = []
    for name, scope in sorted(limiter.usage.pools.items()):
        try:
            level: float | None = await limiter.level(scope)
        except StoreError:
            level = None
        scopes.append({
            "scope": name, "level": level, "threshold": scope.threshold,
            "decay_per_s": scope.decay_per_s,
            "level_ratio": None if level is None else round(level / scope.threshold, 4),
            "granted_rate_ratio": round(usage.pools[name].rate_ratio, 4)
            if name in usage.pools else 0.0,
        })  # fmt: skip
    strategies = [
        {"strategy": u.strategy or "(service)", "permits": u.permits,
         "share": round(u.share, 4), "mean_wait_ms": round(u.mean_wait_s * 1000, 3),
         "max_wait_ms": round(u.max_wait_s * 1000, 3),
         "weight": limiter.weights.get(u.strategy, 0.0)}
        for u in sorted(usage.strategies.values(), key=lambda u: u.strategy)
    ]  # fmt: skip
    return {"scopes": scopes, "strategies": strategies,
            "weights": to_builtins(limiter.configured_weights),
            "effective_weights": to_builtins(dict(limiter.weights)),
            "window_s": usage.window_s}  # fmt: skip


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

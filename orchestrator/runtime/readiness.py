"""Whether the service can do its work now (`/readyz`), and what the status page shows.

`assess` is the rule, pure: Redis answers, every subscribed book is whole, every strategy runs
(paused by an operator counts as running: the process is fine). `ServiceProbes` reads the inputs
from the running service: one PING to Redis (bounded by `ping_timeout_s`), the hub, the workers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import msgspec
import redis.asyncio as aioredis

from orchestrator.clock import Clock
from orchestrator.control.audit import decode_rows
from orchestrator.errors import StoreError
from orchestrator.runtime.http import Check, Readiness
from orchestrator.runtime.status import service_status
from orchestrator.store.errors import redis_errors
from orchestrator.store.keys import Keys

if TYPE_CHECKING:
    from orchestrator.service import Service

_RUNNING: Final = frozenset({"running", "paused"})
AUDIT_SHOWN: Final = 20  # the latest audit entries on the status page


def assess(
    *,
    redis_error: str | None,
    books_whole: Mapping[str, bool],
    strategy_states: Mapping[str, str],
    not_started: Mapping[str, str],
) -> Readiness:
    """The readiness verdict from its inputs; each failing check names what fails."""
    broken = sorted(pair for pair, whole in books_whole.items() if not whole)
    stopped = sorted(f"{name} {state}" for name, state in strategy_states.items()
                     if state not in _RUNNING)  # fmt: skip
    stopped += sorted(f"{name} not started: {why}" for name, why in not_started.items())
    checks = [
        Check("redis", redis_error is None, redis_error or ""),
        Check("feeds", not broken, "not whole: " + ", ".join(broken) if broken else ""),
        Check("strategies", not stopped, "; ".join(stopped)),
    ]
    return Readiness(all(check.ok for check in checks), checks)


class ServiceProbes:
    """`/readyz` and `/status.json` of one running service."""

    def __init__(
        self,
        service: Service,
        *,
        redis: aioredis.Redis,
        keys: Keys,
        clock: Clock,
        ping_timeout_s: float = 0.5,
    ) -> None:
        self.service = service
        self.redis = redis
        self.keys = keys
        self.clock = clock
        self.ping_timeout_s = ping_timeout_s

    async def readiness(self) -> Readiness:
        service = self.service
        return assess(
            redis_error=await self._redis_error(),
            books_whole={pair: service.hub.is_whole(pair) for pair in service.hub.pairs},
            strategy_states={name: unit.worker.state for name, unit in service.units.items()},
            not_started=service.not_started,
        )

    async def _redis_error(self) -> str | None:
        redis = self.redis
        try:  # the timeout outside the edge: inside, its TimeoutError would read as an OSError
            async with asyncio.timeout(self.ping_timeout_s):
                async with redis_errors(redis, "readyz.ping"):
                    await redis.ping()
        except TimeoutError:
            return f"Redis did not answer a PING within {self.ping_timeout_s} s"
        except StoreError as exc:
            return str(exc)
        return None

    async def status(self) -> dict[str, Any]:
        service, clock = self.service, self.clock
        status = await service_status(service, now_s=clock.time(), monotonic_s=clock.monotonic())
        snapshot: dict[str, Any] = msgspec.to_builtins(status)  # Decimals as text
        snapshot["orders"] = _open_orders(service)
        snapshot["audit"] = await self._audit()
        return snapshot

    async def _audit(self) -> list[dict[str, Any]]:
        """The latest audit entries, newest first ([] when Redis cannot tell now)."""
        redis, keys = self.redis, self.keys
        try:
            async with redis_errors(redis, "status.audit"):
                rows = await redis.xrevrange(keys.audit(), count=AUDIT_SHOWN)
        except StoreError:
            return []
        entries: list[dict[str, Any]] = msgspec.to_builtins(decode_rows(rows))
        return entries


def _open_orders(service: Service) -> list[dict[str, str | None]]:
    return [
        {
            "strategy": name,
            "cl_ord_id": order.cl_ord_id,
            "pair": order.instrument.wsname,
            "side": order.side,
            "type": order.order_type,
            "volume": str(order.volume),
            "price": None if order.price is None else str(order.price),
            "filled": str(order.filled),
            "status": order.status,
        }
        for name, unit in sorted(service.units.items())
        for order in unit.worker.manager.open_orders()
    ]

"""The tick-to-order benchmark's client: the product's pipeline, one strategy, a process of its own.

Wired as `orchestrator run` wires it (service.py): `open_redis`, `open_kraken` (the shared
`Limiter` on Redis, REST clients), one `MarketHub`, and a `StrategyUnit` (private socket,
`WsOrderEntry`, worker, dead man's switch) running `_tick_strategy.BestBidFollower`, loaded by
its dotted path, and the service's event-loop lag sampler. The variant picks the event loop
(uvloop or asyncio's default) and the JSON codec at the WebSocket's edges (`codec.MSGSPEC`, or
`_tick_codec.stdlib_codec()` installed before anything is built). Limits are set so that every
permit is granted at once: the pro tier with a domain pool 1000x Kraken's, no per-account cap;
Redis still decides each one (EVALSHA).
"""

from __future__ import annotations

import asyncio
import traceback
from dataclasses import dataclass
from typing import Any, Final, Literal

import msgspec
import uvloop

from benchmarks._tick_codec import stdlib_codec
from benchmarks._tick_floor import run_floor
from benchmarks._tick_venue import ACCOUNT, PAIR, VenueAddress
from orchestrator.clock import RealClock
from orchestrator.config import Config
from orchestrator.exchange.kraken.account import open_kraken
from orchestrator.exchange.kraken.ws import codec
from orchestrator.exchange.kraken.ws.order_entry import WsOrderEntry
from orchestrator.feeds.hub import MarketHub
from orchestrator.logs import configure_logging
from orchestrator.metrics import Registry
from orchestrator.runtime.loop_lag import LoopLagMonitor
from orchestrator.runtime.supervisor import RestartPolicy, Supervisor
from orchestrator.runtime.unit import SharedParts, StrategyUnit
from orchestrator.secrets import ApiCredentials, Secret
from orchestrator.service_events import ServiceEvents
from orchestrator.store.connection import open_redis
from orchestrator.store.keys import Keys
from orchestrator.strategy_loader import load_strategy
from orchestrator.workers.deps import TradingStateHolder

Variant = Literal["uvloop+msgspec", "asyncio+json", "floor"]
VARIANTS: Final[tuple[Variant, Variant]] = ("uvloop+msgspec", "asyncio+json")  # the graded two
FLOOR: Final[Variant] = "floor"  # no product code (_tick_floor.py): context, not graded
STRATEGY: Final = "tick"
DOMAIN_MULTIPLIER: Final = 1000  # pro tier: a 180 000 pool decaying 3750/s; a tick costs 4


@dataclass(frozen=True, slots=True)
class ClientSpec:
    variant: Variant
    venue: VenueAddress
    redis_url: str
    namespace: str  # fresh per run: no journal or limiter state from an earlier one


def client_config(spec: ClientSpec) -> Config:
    venue = spec.venue
    return msgspec.convert(
        {
            "log_level": "warning",
            "redis": {"url": spec.redis_url, "namespace": spec.namespace},
            "venue": {
                "kind": "simulator",
                "embedded": False,
                "tier": "pro",
                "rest_url": venue.rest_url,
                "ws_public_url": venue.ws_public_url,
                "ws_private_url": venue.ws_private_url,
            },
            "accounts": [{"name": "master", "role": "master"}, {"name": ACCOUNT, "role": "sub"}],
            "strategies": [
                {
                    "name": STRATEGY,
                    "module": "benchmarks._tick_strategy",
                    "account": ACCOUNT,
                    "pairs": [PAIR],
                    "params": {"size": "0.001"},
                }
            ],
            "limits": {"domain_multiplier": DOMAIN_MULTIPLIER, "per_account_cap": False},
            "service": {"order_entry": "ws", "book_depth": 10},
        },
        Config,
    )


async def _run(spec: ClientSpec, stop: Any) -> dict[str, float]:
    config = client_config(spec)
    clock, registry = RealClock(), Registry()
    credentials = {
        name: ApiCredentials(key=Secret(key), secret=Secret(secret))
        for name, (key, secret) in spec.venue.keys.items()
    }
    async with (
        open_redis(config.redis) as redis,
        open_kraken(config, credentials, redis=redis, clock=clock, registry=registry) as domain,
    ):
        hub = MarketHub(
            config.venue.ws_public_url,
            clock=clock,
            instruments=domain.instruments,
            depth=config.service.book_depth,
            registry=registry,
        )
        keys = Keys(config.redis.namespace)
        health = domain.limiter.health
        events = ServiceEvents(redis, keys, registry=registry, clock=clock, health=health)
        shared = SharedParts(
            redis=redis,
            keys=keys,
            market=hub,
            clock=clock,
            registry=registry,
            events=events,
            trading_state=TradingStateHolder(),
            dependency_health=lambda: "Redis unreachable" if health.is_down() else None,
        )
        supervisor = Supervisor(clock, registry, RestartPolicy(budget=0))
        strategy = config.strategies[0]
        loaded = load_strategy(strategy, index=0)
        unit = StrategyUnit(
            config,
            strategy,
            loaded.cls,
            loaded.params,
            domain=domain,
            shared=shared,
            supervisor=supervisor,
        )
        loop_lag = LoopLagMonitor(clock, registry=registry)  # as the service samples it
        async with asyncio.TaskGroup() as tg:
            tg.create_task(hub.run())
            sampler = tg.create_task(loop_lag.run())
            running = tg.create_task(unit.run_contained())
            await asyncio.to_thread(stop.wait)
            unit.stop()
            await running
            sampler.cancel()
            await hub.close()
        report = _report(registry, domain.limiter.metrics, unit, hub)
        return report | {"loop_lag_p99_s": loop_lag.p99_s or 0.0}


def _report(
    registry: Registry, limiter: Any, unit: StrategyUnit, hub: MarketHub
) -> dict[str, float]:
    """What the client saw: the path was the one claimed (WS, Redis permits, no waits)."""
    sent = registry.counter("orch_order_requests_total", "", ("strategy", "kind", "outcome"))
    venue = unit.venue
    entry = venue.counters if isinstance(venue, WsOrderEntry) else {"ws": 0, "rest": -1}
    permits = limiter.wait_s
    return {
        "amends_ok": sent.get(STRATEGY, "amend", "ok"),
        "places_ok": sent.get(STRATEGY, "place", "ok"),
        "ws_calls": entry["ws"],
        "rest_calls": entry["rest"],
        "permits_redis": limiter.permits.get("new_risk", "redis"),
        "permits_local": limiter.permits.get("new_risk", "local"),
        "refusals": sum(limiter.refusals.get("new_risk", why) for why in ("share", "deadline")),
        "permit_s_sum": permits.sums.get(("new_risk",), 0.0),
        "permit_count": permits.count("new_risk"),
        "book_mismatches": hub.books.mismatches + hub.books.malformed,
        "reconnects": hub.ws.counters["reconnects"] + unit.ws.counters["reconnects"],
        "worker_failed": float(unit.worker.state == "failed"),
    }


def client_main(spec: ClientSpec, stop: Any, results: Any) -> None:
    """The child process: run until `stop` (an Event) is set; the report goes on `results`."""
    try:
        configure_logging("warning")
        if spec.variant == FLOOR:
            report = uvloop.run(run_floor(spec.venue, spec.redis_url, stop))
        elif spec.variant == "asyncio+json":
            codec.install(stdlib_codec())  # before any connection or book store exists
            report = asyncio.run(_run(spec, stop))
        else:
            report = uvloop.run(_run(spec, stop))
        results.put(("ok", report))
    except BaseException:
        results.put(("error", traceback.format_exc()))

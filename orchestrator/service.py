"""The trading service: `orchestrator run`. Wires everything and owns every task in one TaskGroup.

    code = await run_service(config, base_dir=Path("."), duration_s=60)

Start: Redis (embedded or the desk's), the venue (embedded simulator or Kraken), every Kraken
client through `open_kraken` (one limiter for the domain), one market-data hub, then one unit per
enabled strategy (its private socket, order entry, worker, dead man's switch). A strategy that
cannot start (unknown module, bad params, a pair the venue does not list) is reported, naming the
field, and the service runs the rest. Components are supervised: a crash is restarted with
backoff inside the restart budget, then stopped and reported.

Stop (SIGTERM/SIGINT, `--duration`, or `stop` set by the caller): every strategy is stopped and its
orders cancelled (per `cancel_on_stop`), dead man's switches disarmed, sockets closed, all within
`service.shutdown_timeout_s`; then exit 0. Past that bound the remaining tasks are cancelled and
the exit code is 1 (the dead man's switches were left armed, so the venue cancels what is left).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
from asyncio import FIRST_COMPLETED
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from orchestrator.clock import Clock, RealClock
from orchestrator.config import Config
from orchestrator.control.demo import (
    DEMO_OPERATOR,
    demo_secret,
    publish_redis_url,
    withdraw_redis_url,
)
from orchestrator.control.plane import ControlPlane, process_name
from orchestrator.exchange.kraken.account import KrakenDomain, open_kraken
from orchestrator.feeds.hub import MarketHub
from orchestrator.logs import get_logger
from orchestrator.metrics import Registry
from orchestrator.rebalancer.component import Rebalancer
from orchestrator.rebalancer.wiring import open_rebalancer
from orchestrator.runtime.http import ServiceHttp
from orchestrator.runtime.loop_lag import LoopLagMonitor
from orchestrator.runtime.readiness import ServiceProbes
from orchestrator.runtime.screen import StatusReporter, is_terminal
from orchestrator.runtime.service_metrics import register_service_metrics
from orchestrator.runtime.signals import install_stop_signals, run_until_stopped
from orchestrator.runtime.stuck import where_tasks_wait
from orchestrator.runtime.supervisor import RestartPolicy, Supervisor
from orchestrator.runtime.unit import SharedParts, StrategyUnit
from orchestrator.runtime.units import UnitRunner
from orchestrator.runtime.venue import VenueSetup, open_venue
from orchestrator.secrets import Secret, resolve_operator_secrets
from orchestrator.service_events import ServiceEvents
from orchestrator.store.connection import open_redis
from orchestrator.store.keys import Keys
from orchestrator.workers.deps import TradingStateHolder
from orchestrator.workers.turns import Turns

log = get_logger(__name__)

EXIT_OK: Final = 0
EXIT_UNCLEAN: Final = 1


@dataclass(slots=True)
class Service:
    """The running service, as tests and the status screen see it."""

    config: Config
    venue: VenueSetup
    domain: KrakenDomain
    hub: MarketHub
    registry: Registry
    trading_state: TradingStateHolder
    units: dict[str, StrategyUnit] = field(default_factory=dict)
    not_started: dict[str, str] = field(default_factory=dict)  # strategy -> why
    disabled: list[str] = field(default_factory=list)  # loaded and checked, not started
    elsewhere: dict[str, int] = field(default_factory=dict)  # run by the replica of that ordinal
    started_s: float = 0.0  # the clock's monotonic time at start
    loop_lag: LoopLagMonitor | None = None  # set while the service runs
    rebalancer: Rebalancer | None = None  # when `rebalancer.enabled`
    process: str = "orchestrator"  # this process's name among the service's (control plane)
    http: ServiceHttp | None = None  # the metrics, probes and status page, while served

    def live_available(self, account: str, asset: str) -> Decimal | None:
        """What the strategy trading from `account` sees available of `asset` now (its
        private feed, net of its orders' holds), or None without one in this process."""
        for unit in self.units.values():
            worker = unit.worker
            if worker.account == account and worker.state == "running":
                return worker.available().get(asset)
        return None


async def run_service(
    config: Config,
    *,
    base_dir: Path,
    duration_s: float | None = None,
    clock: Clock | None = None,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[Service], None] | None = None,
    handle_signals: bool = True,
    screen: bool | None = None,
) -> int:
    """Run until stopped; the exit code (0: a clean stop with every order cancelled).

    `screen`: the live status screen (None: when stdout is a terminal), else status lines."""
    clock = clock or RealClock()
    stop = stop or asyncio.Event()
    registry = Registry()
    force = asyncio.Event()  # a second signal: stop waiting for the clean shutdown
    uninstall = install_stop_signals(stop, force=force) if handle_signals else (lambda: None)
    try:
        async with contextlib.AsyncExitStack() as stack:
            redis = await stack.enter_async_context(open_redis(config.redis))
            if config.redis.url == "embedded":  # so that `orchestrator ctl` finds it
                where = redis.connection_pool.connection_kwargs
                publish_redis_url(base_dir, f"redis://{where['host']}:{where['port']}/0")
                stack.callback(withdraw_redis_url, base_dir)
            venue = await stack.enter_async_context(open_venue(config, base_dir=base_dir,
                                                               clock=clock))  # fmt: skip
            config = venue.config
            domain = await stack.enter_async_context(
                open_kraken(
                    config,
                    venue.credentials,
                    redis=redis,
                    clock=clock,
                    registry=registry,
                    futures_credentials=venue.futures_credentials,
                )
            )
            hub = MarketHub(config.venue.ws_public_url, clock=clock, instruments=domain.instruments,
                            depth=config.service.book_depth, registry=registry)  # fmt: skip
            keys = Keys(config.redis.namespace)
            events = ServiceEvents(
                redis, keys, registry=registry, clock=clock, health=domain.limiter.health
            )  # one verdict on Redis
            service = Service(config=config, venue=venue, domain=domain, hub=hub,
                              registry=registry, trading_state=TradingStateHolder(),
                              started_s=clock.monotonic(),
                              process=process_name(config.service.instance))  # fmt: skip
            health = domain.limiter.health
            shared = SharedParts(redis=redis, keys=keys, market=hub, clock=clock,
                                 registry=registry, events=events,
                                 trading_state=service.trading_state,
                                 dependency_health=lambda: "Redis unreachable"
                                 if health.is_down() else None,
                                 turns=Turns(config.service.deliveries_per_turn))  # fmt: skip
            policy = RestartPolicy(budget=config.service.restart_budget,
                                   window_s=config.service.restart_window_s)  # fmt: skip
            supervisor = Supervisor(clock, registry, policy)
            units = UnitRunner(service, shared=shared, supervisor=supervisor, events=events)
            return await _serve(
                service,
                units=units,
                secrets=_operator_secrets(config, base_dir),
                events=events,
                stop=stop,
                force=force,
                duration_s=duration_s,
                on_ready=on_ready,
                screen=is_terminal(sys.stdout) if screen is None else screen,
            )
    finally:
        uninstall()


async def _serve(
    service: Service,
    *,
    units: UnitRunner,
    secrets: Mapping[str, Secret],
    events: ServiceEvents,
    stop: asyncio.Event,
    force: asyncio.Event,
    duration_s: float | None,
    on_ready: Callable[[Service], None] | None,
    screen: bool,
) -> int:
    shared, supervisor = units.shared, units.supervisor
    config, clock = service.config, shared.clock
    await units.load_all()
    control = ControlPlane(service, units, secrets=secrets) if config.control.enabled else None
    if control is not None:
        await control.start()  # a halted desk starts halted, before any strategy runs
    async with asyncio.TaskGroup() as tg:

        async def gave_up(component: str, error: BaseException) -> None:
            await events.publish("component_failed", component=component, error=str(error))

        tg.create_task(supervisor.supervise("market_hub", service.hub.run, on_gave_up=gave_up))
        units.start_all(tg)
        components: list[asyncio.Task[None]] = []
        if config.rebalancer.enabled:
            service.rebalancer = open_rebalancer(
                config, service.domain, redis=shared.redis, keys=shared.keys, clock=clock,
                registry=service.registry, events=events, books=service.hub,
                live=service.live_available,
            )  # fmt: skip
            components.append(tg.create_task(
                supervisor.supervise("rebalancer", service.rebalancer.run, on_gave_up=gave_up)
            ))  # fmt: skip
            if service.trading_state.state == "HALTED":
                service.rebalancer.paused = True
        listener = None
        if control is not None:
            listener = tg.create_task(supervisor.supervise("control", control.run,
                                                           on_gave_up=gave_up))  # fmt: skip
        status = StatusReporter(service, clock, redis=shared.redis, keys=shared.keys,
                                interval_s=config.service.status_interval_s,
                                out=sys.stdout, screen=screen)  # fmt: skip
        reporter = tg.create_task(status.run())
        service.loop_lag = LoopLagMonitor(clock, registry=service.registry)
        lag_sampler = tg.create_task(service.loop_lag.run())
        service.http = await _open_http(service, shared)
        log.info("service.started", strategies=len(service.units),
                 not_started=len(service.not_started))  # fmt: skip
        # What start-up made (modules, config, clients, strategies) lives as long as the process:
        # out of the collector's generations, full collections walk only what the run makes.
        gc.freeze()
        if on_ready is not None:
            on_ready(service)
        reason = await run_until_stopped(stop, duration_s=duration_s, clock=clock)
        log.info("service.stopping", reason=reason)
        if listener is not None and control is not None:
            listener.cancel()  # no command starts anything while the service stops
            await control.close()
        clean = await _stop_all(service, units.tasks_list() + components, force, clock)
        reporter.cancel()
        lag_sampler.cancel()
        if service.http is not None:
            await service.http.close()
        await service.hub.close()
    # Orders a strategy keeps on purpose (`cancel_on_stop = false`) are not a failed stop.
    left = sum(len(u.worker.manager.open_orders()) for u in service.units.values()
               if u.worker.state == "failed" or u.worker.config.cancel_on_stop)  # fmt: skip
    await status.final(left)
    log.info("service.stopped", open_orders=left, clean=clean)
    return EXIT_OK if clean and left == 0 else EXIT_UNCLEAN


async def _open_http(service: Service, shared: SharedParts) -> ServiceHttp | None:
    """The metrics, probes and status page (`metrics`), when enabled. A port that cannot be
    bound is reported, naming the setting, and the service trades on without it."""
    settings = service.config.metrics
    if not settings.enabled:
        return None
    register_service_metrics(service, service.registry)
    probes = ServiceProbes(service, redis=shared.redis, keys=shared.keys, clock=shared.clock)
    http = ServiceHttp(service.registry, host=settings.host, port=settings.port,
                       readiness=probes.readiness, status=probes.status)  # fmt: skip
    try:
        await http.start()
    except OSError as exc:  # the reason is the message: a traceback would add nothing
        log.error("http.bind_failed", setting="metrics.port", host=settings.host,  # noqa: TRY400
                  port=settings.port, error=str(exc))  # fmt: skip
        return None
    return http


def _operator_secrets(config: Config, base_dir: Path) -> dict[str, Secret]:
    secrets = resolve_operator_secrets(config, base_dir=base_dir)
    if config.control.demo_operator:  # the embedded demo's admin, for `ctl` (control/demo.py)
        secret = demo_secret(base_dir, create=True)
        if secret is not None:
            secrets[DEMO_OPERATOR] = secret
    return secrets


async def _stop_all(
    service: Service, stopping: list[asyncio.Task[None]], force: asyncio.Event, clock: Clock
) -> bool:
    """Every strategy and component asked to stop and waited for, within the shutdown bound;
    True when all stopped in time without a second signal."""
    for unit in service.units.values():
        unit.stop()
    if service.rebalancer is not None:
        service.rebalancer.stop()  # after the cycle under way
    timeout_s = service.config.service.shutdown_timeout_s
    clean = False
    try:
        async with clock.timeout(timeout_s):
            await _units_or_force(stopping, force)
        clean = not force.is_set()  # a forced stop is not a clean one
    except TimeoutError:
        pass
    if not clean:
        log.error("service.shutdown_timeout", timeout_s=timeout_s, waiting=where_tasks_wait())
        for task in stopping:
            task.cancel()
    return clean


async def _units_or_force(units: list[asyncio.Task[None]], force: asyncio.Event) -> None:
    """Until every unit has stopped, or a second signal asks not to wait for them."""
    waiter: asyncio.Future[Any] = asyncio.ensure_future(force.wait())  # cancelled below
    try:
        pending: set[asyncio.Future[Any]] = set(units)
        while pending and not force.is_set():
            _, pending = await asyncio.wait(pending | {waiter}, return_when=FIRST_COMPLETED)
            pending.discard(waiter)
    finally:
        waiter.cancel()

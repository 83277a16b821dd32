"""The service's strategy units: loaded at start, started, stopped and restarted on command.

    runner = UnitRunner(service, shared=shared, supervisor=supervisor, events=events)
    await runner.load_all()          # a unit per enabled strategy; the others reported
    runner.start_all(tg)             # each unit's run is a task of the service's TaskGroup
    runner.start("mm1")              # an operator's start_strategy (CommandError when it cannot)
    await runner.stop("mm1", timeout_s=5)

A strategy that cannot start (unknown module, bad params, a pair the venue does not list) is
reported naming the field, and the service runs the rest. Params an operator set (`set_params`)
outlive a stop: the strategy starts again with them, not with the config's.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from orchestrator.config import StrategyConfig
from orchestrator.errors import CommandError, ConfigError, StrategyError
from orchestrator.logs import get_logger
from orchestrator.runtime.placement import place
from orchestrator.runtime.supervisor import Supervisor
from orchestrator.runtime.unit import SharedParts, StrategyUnit
from orchestrator.service_events import ServiceEvents
from orchestrator.strategy import StrategyParams
from orchestrator.strategy_loader import load_strategy

if TYPE_CHECKING:
    from orchestrator.service import Service

log = get_logger(__name__)

LIVE_STATES = frozenset({"starting", "running", "paused", "stopping"})


class UnitRunner:
    def __init__(
        self,
        service: Service,
        *,
        shared: SharedParts,
        supervisor: Supervisor,
        events: ServiceEvents,
    ) -> None:
        self.service = service
        self.shared = shared
        self.supervisor = supervisor
        self.events = events
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.params: dict[str, StrategyParams] = {}  # set by operators, kept across restarts
        self._group: asyncio.TaskGroup | None = None
        config = service.config
        self.placement = place(config.strategies, instance=service.process,
                               replicas=config.service.replicas)  # fmt: skip
        service.elsewhere = dict(self.placement.elsewhere)

    def configured(self) -> list[str]:
        """The strategies this process runs (its heartbeat's, so commands route here)."""
        return list(self.placement.here)

    def running(self) -> list[str]:
        return [n for n, u in self.service.units.items() if u.worker.state in LIVE_STATES]

    async def load_all(self) -> None:
        """A unit per enabled strategy that loads; the others reported, naming the field."""
        service = self.service
        for index, strategy in enumerate(service.config.strategies):
            if strategy.name in self.placement.elsewhere:
                continue  # another process's (runtime/placement.py)
            try:
                unit = self._build(index, strategy)
                if not strategy.enabled:
                    service.disabled.append(strategy.name)
                    continue
                service.units[strategy.name] = unit
            except (ConfigError, StrategyError) as exc:
                service.not_started[strategy.name] = str(exc)
            else:
                continue
            why = service.not_started[strategy.name]
            log.error("strategy.not_started", strategy=strategy.name, error=why)
            await self.events.publish("strategy_not_started", strategy=strategy.name, error=why)

    def _build(self, index: int, strategy: StrategyConfig) -> StrategyUnit:
        loaded = load_strategy(strategy, index=index)  # a disabled one is checked too
        for i, pair in enumerate(strategy.pairs):
            if pair not in self.service.domain.instruments:
                raise ConfigError(f"strategies[{index}].pairs[{i}]",
                                  f"the venue lists no pair {pair!r}")  # fmt: skip
        params = self.params.get(strategy.name, loaded.params)
        return StrategyUnit(self.service.config, strategy, loaded.cls, params,
                            domain=self.service.domain, shared=self.shared,
                            supervisor=self.supervisor)  # fmt: skip

    def start_all(self, group: asyncio.TaskGroup) -> None:
        self._group = group
        for name, unit in self.service.units.items():
            self.tasks[name] = group.create_task(unit.run_contained(), name=name)

    def start(self, name: str) -> None:
        """Start (again) a configured strategy that is not running."""
        config = self.service.config
        index = next((i for i, s in enumerate(config.strategies) if s.name == name), None)
        if index is None:
            raise CommandError(f"strategy {name!r} is not in this process's config")
        owner = self.placement.elsewhere.get(name)
        if owner is not None:
            raise CommandError(f"strategy {name!r} runs on replica {owner}, not on this "
                               f"process (replica {self.placement.ordinal})")  # fmt: skip
        unit = self.service.units.get(name)
        if unit is not None and unit.worker.state in LIVE_STATES:
            raise CommandError(f"strategy {name!r} is already {unit.worker.state}")
        task = self.tasks.get(name)
        if task is not None and not task.done():
            raise CommandError(f"strategy {name!r} is still shutting down; try again")
        if self._group is None:
            raise CommandError("the service is not running its strategies yet")
        try:
            unit = self._build(index, config.strategies[index])
        except (ConfigError, StrategyError) as exc:
            raise CommandError(f"strategy {name!r} cannot start: {exc}") from None
        self.service.units[name] = unit
        self.service.not_started.pop(name, None)
        if name in self.service.disabled:
            self.service.disabled.remove(name)
        self.tasks[name] = self._group.create_task(unit.run_contained(), name=name)
        log.info("strategy.started_by_operator", strategy=name)

    async def stop(self, name: str, *, timeout_s: float) -> int:
        """Stop a running strategy (its orders cancelled per `cancel_on_stop`); the orders it
        left open."""
        unit = self.unit(name)
        if unit.worker.state not in LIVE_STATES:
            raise CommandError(f"strategy {name!r} is not running ({unit.worker.state})")
        unit.stop()
        task = self.tasks.get(name)
        if task is not None:
            try:
                async with self.shared.clock.timeout(timeout_s):
                    await asyncio.shield(task)  # a stop that takes too long is not cut short
            except TimeoutError:
                why = f"strategy {name!r} did not stop within {timeout_s:g} s"
                raise CommandError(why) from None
        return len(unit.worker.manager.open_orders())

    def unit(self, name: str) -> StrategyUnit:
        unit = self.service.units.get(name)
        if unit is None:
            why = self.service.not_started.get(name)
            if why is not None:
                raise CommandError(f"strategy {name!r} did not start: {why}")
            raise CommandError(f"strategy {name!r} is not loaded in this process")
        return unit

    def tasks_list(self) -> list[asyncio.Task[None]]:
        return list(self.tasks.values())

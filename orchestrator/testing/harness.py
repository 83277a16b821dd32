"""The replay harness: strategies run by the live worker, order manager and risk checks against
the simulator's engine in-process, on a manual clock. No socket; the same seed gives the same run.

    async with ReplayHarness(SimSettings(accounts=...)) as replay:
        worker = replay.add(StrategyConfig(name="mm", module="strategies.market_maker",
                                           account="s0", pairs=["XBT/USD"],
                                           params={"size": "0.01"}))
        await replay.start()
        await replay.run_for(60.0)             # venue time; markets step every `step_s`
        assert worker.positions.position("XBT/USD", None).qty == ...

What differs from live is only below the `TradingVenue` / market-data interfaces: orders are
answered by the simulator's own WebSocket handlers (testing/venue.py), books come from its own
frames (testing/market.py), and the journal lives in fakeredis unless a Redis client is given.
Everything from the strategy's callbacks down to the order intents is the production code.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Final

import fakeredis  # the harness is for tests: fakeredis is a test dependency
import msgspec
import redis.asyncio as aioredis

from orchestrator.clock import ManualClock
from orchestrator.config import StrategyConfig
from orchestrator.exchange.instruments import Instruments
from orchestrator.exchange.protocol import TradingVenue
from orchestrator.metrics import Registry
from orchestrator.service_events import ServiceEvents
from orchestrator.simulator.errors import SimulatorBug
from orchestrator.simulator.settings import SimSettings
from orchestrator.simulator.venue import Venue
from orchestrator.store.keys import Keys
from orchestrator.strategy import Strategy, StrategyParams
from orchestrator.strategy_loader import load_strategy, parse_params
from orchestrator.testing.market import InProcessMarket
from orchestrator.testing.venue import InProcessVenue, build_inprocess_domain
from orchestrator.workers.deadman import DeadManSwitch
from orchestrator.workers.deps import TradingStateHolder, WorkerDeps
from orchestrator.workers.journal import OrderJournal
from orchestrator.workers.worker import StrategyWorker

STEP_S: Final = 0.25
STOP_BOUND_S: Final = 120.0  # venue time a stopping worker may take (cancels, retries)
_YIELDS_PER_STEP: Final = 20  # turns of the loop given to the tasks after every clock step


class ReplayHarness:
    def __init__(
        self,
        settings: SimSettings | None = None,
        *,
        clock: ManualClock | None = None,
        redis: aioredis.Redis | None = None,
        namespace: str = "replay",
        depth: int = 10,
        dead_man: bool = False,
        dead_man_timeout_s: int = 60,
        dead_man_refresh_s: float = 20.0,
        domain: tuple[Venue, Instruments] | None = None,
    ) -> None:
        """`dead_man`: each worker keeps Kraken's cancel-all-after armed from its health, as
        live (the simulator's engine fires it on venue time). `domain`: the simulated venue
        of an earlier harness (with its `clock`), to run a restart against what it left."""
        self.clock = clock or ManualClock()
        if domain is not None:
            self.venue, self.instruments = domain
            if self.venue.clock is not self.clock:
                raise ValueError("a harness on an existing domain needs that domain's clock")
        else:
            self.venue, self.instruments = build_inprocess_domain(settings or SimSettings(),
                                                                  self.clock)  # fmt: skip
        self.market = InProcessMarket(self.venue, self.instruments, depth=depth)
        self.registry = Registry()
        self.keys = Keys(namespace)
        self.trading_state = TradingStateHolder()
        self.workers: dict[str, StrategyWorker] = {}
        self.venues: dict[str, InProcessVenue] = {}
        self.switches: dict[str, DeadManSwitch] = {}
        self._redis = redis
        self._own_redis = redis is None
        self._dead_man = (dead_man_timeout_s, dead_man_refresh_s) if dead_man else None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._tg: asyncio.TaskGroup | None = None
        self._exit = contextlib.AsyncExitStack()

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            raise RuntimeError("enter the harness (`async with`) first")
        return self._redis

    async def __aenter__(self) -> ReplayHarness:
        if self._redis is None:
            self._redis = fakeredis.FakeAsyncRedis()
            self._exit.push_async_callback(self._redis.aclose)
        self.events = ServiceEvents(
            self._redis, self.keys, registry=self.registry, clock=self.clock
        )
        self._tg = await self._exit.enter_async_context(asyncio.TaskGroup())
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        if exc_type is None:
            await self.stop()
        else:
            for task in self._tasks.values():
                task.cancel()
        try:
            await self._exit.__aexit__(exc_type, exc, tb)
        finally:  # also when a worker's error ends the block: a dead process hears nothing
            self.market.close()
            for venue in self.venues.values():
                venue.close()
        if self.venue.internal_errors and exc_type is None:
            raise SimulatorBug(self.venue.internal_errors)

    # --- strategies ----------------------------------------------------------------------------
    def add(
        self,
        config: StrategyConfig | Mapping[str, Any],
        strategy_cls: type[Strategy[Any]] | None = None,
        *,
        wrap_venue: Callable[[InProcessVenue], TradingVenue] | None = None,
        wrap_journal: Callable[[OrderJournal], OrderJournal] | None = None,
    ) -> StrategyWorker:
        """A worker for `config` (a `StrategyConfig` or its TOML-shaped mapping). Without
        `strategy_cls` the module is loaded as the service loads it (dotted path or entry
        point); its params are checked against the strategy's Struct either way.
        `wrap_venue` / `wrap_journal` put a stand-in around the worker's venue or journal
        (fault and crash injection); the executions still come from the venue itself."""
        if not isinstance(config, StrategyConfig):
            config = msgspec.convert(dict(config), StrategyConfig)
        if strategy_cls is None:
            loaded = load_strategy(config, index=len(self.workers))
            strategy_cls, params = loaded.cls, loaded.params
        else:
            params = parse_params(strategy_cls, config.params, where="strategy")
        venue = InProcessVenue(self.venue, config.account, self.instruments)
        trading: TradingVenue = venue if wrap_venue is None else wrap_venue(venue)
        journal = OrderJournal(self.redis, self.keys, config.account)
        deps = WorkerDeps(
            market=self.market,
            venue=trading,
            reader=venue,
            journal=journal if wrap_journal is None else wrap_journal(journal),
            clock=self.clock,
            registry=self.registry,
            events=self.events,
            instruments=self.instruments,
            trading_state=self.trading_state,
        )
        worker = StrategyWorker(config, strategy_cls, params, deps)
        venue.subscribe_executions(worker.on_execution)
        venue.subscribe_balances(worker.on_balance)
        self.workers[config.name] = worker
        self.venues[config.name] = venue
        if self._dead_man is not None:
            timeout_s, refresh_s = self._dead_man
            self.switches[config.name] = DeadManSwitch(trading, self.clock, timeout_s=timeout_s,
                                                       refresh_s=refresh_s, healthy=worker.health,
                                                       name=config.name)  # fmt: skip
        return worker

    def params_of(self, name: str) -> StrategyParams:
        params: StrategyParams = self.workers[name].context.params
        return params

    async def start(self, *names: str) -> None:
        """Run the workers (all, or those named) and let them reconcile and start."""
        if self._tg is None:
            raise RuntimeError("enter the harness (`async with`) first")
        for name in names or tuple(self.workers):
            if name in self._tasks:
                continue
            self._tasks[name] = self._tg.create_task(self.workers[name].run(), name=name)
            switch = self.switches.get(name)
            if switch is not None:
                self._tasks[f"{name}.dead_man"] = self._tg.create_task(switch.run())
        await self.settle()

    async def settle(self) -> None:
        """Let every task run until it waits on the clock (no time passes)."""
        for _ in range(_YIELDS_PER_STEP):
            await asyncio.sleep(0)

    async def run_for(self, seconds: float, *, step_s: float = STEP_S) -> None:
        """Move venue time by `seconds` in steps: markets move, timers fire, tasks run."""
        left_s = seconds
        while left_s > 1e-9:
            dt_s = min(step_s, left_s)
            await self.clock.advance(dt_s)  # timers and waits come due: what they start runs
            await self.settle()
            self.market.step(dt_s)  # then the market moves, and its news is delivered
            await self.settle()
            left_s -= dt_s

    async def stop(self, *names: str) -> None:
        """Stop workers (all, or those named) as the service does: orders cancelled as
        configured, then their tasks awaited."""
        for name in names or tuple(self.workers):
            self.workers[name].stop()
        for name in names or tuple(self.workers):
            task = self._tasks.pop(name, None)
            waited_s = 0.0
            while task is not None and not task.done():
                if waited_s > STOP_BOUND_S:  # a worker that does not stop is a failure
                    task.cancel()
                    raise RuntimeError(f"worker {name} did not stop in {STOP_BOUND_S} s")
                await self.clock.advance(STEP_S)
                await self.settle()
                waited_s += STEP_S
            switch = self.switches.get(name)
            if switch is not None and not switch.stopped:
                with contextlib.suppress(Exception):
                    await switch.disarm()
                self._tasks.pop(f"{name}.dead_man", None)

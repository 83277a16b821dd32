"""One strategy's running parts on Kraken: private socket, order entry, worker, dead man's switch.

The unit owns the account's private WebSocket (executions, balances; order entry with REST as
the fallback), the worker that runs the strategy, and the dead man's switch kept armed from the
worker's health. `run()` ends when the worker does (stopped, or its strategy failed); the switch
is then disarmed when the worker stopped cleanly with its orders cancelled, and left to run out
when it could not cancel them (the venue then cancels what is left), and the socket is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import redis.asyncio as aioredis

from orchestrator.clock import Backoff, Clock
from orchestrator.config import Config, StrategyConfig
from orchestrator.errors import OrchestratorError
from orchestrator.exchange.kraken.account import KrakenDomain
from orchestrator.exchange.kraken.ws.order_entry import WsOrderEntry
from orchestrator.exchange.kraken.ws.private import open_private_ws
from orchestrator.exchange.kraken.ws.schemas import BalanceSnapshot, Execution, LedgerUpdate
from orchestrator.exchange.kraken.ws.trading import KrakenWsTrading
from orchestrator.exchange.protocol import TradingVenue
from orchestrator.logs import get_logger
from orchestrator.metrics import Registry
from orchestrator.ratelimit.venue_counter import VenueCounterSync
from orchestrator.runtime.supervisor import Supervisor
from orchestrator.store.keys import Keys
from orchestrator.strategy import Strategy, StrategyParams
from orchestrator.workers.deadman import DeadManSwitch
from orchestrator.workers.deps import EventSink, MarketData, TradingStateHolder, WorkerDeps
from orchestrator.workers.journal import OrderJournal
from orchestrator.workers.turns import Turns
from orchestrator.workers.worker import StrategyWorker

log = get_logger(__name__)

# Orders sent over WS carry a `deadline` this far ahead; a lost one is looked up after it.
ORDER_DEADLINE_S: Final = 5.0
PLACE_SLACK_S: Final = 5.0  # clock slack between us and the venue, and queueing at the venue
RECONNECT_POLL_S: Final = 1.0
PRIVATE_GAP_S: Final = 30.0  # the private socket away this long: the dead man's switch lapses
EMERGENCY_ATTEMPTS: Final = 4  # then the dead man's switch cancels what is left


@dataclass(frozen=True, slots=True)
class SharedParts:
    """What every unit of the process shares."""

    redis: aioredis.Redis
    keys: Keys
    market: MarketData
    clock: Clock
    registry: Registry
    events: EventSink
    trading_state: TradingStateHolder
    dependency_health: Callable[[], str | None]
    turns: Turns | None = None  # deliveries per turn of the loop, shared by the process's workers


class StrategyUnit:
    def __init__(
        self,
        config: Config,
        strategy: StrategyConfig,
        strategy_cls: type[Strategy[Any]],
        params: StrategyParams,
        *,
        domain: KrakenDomain,
        shared: SharedParts,
        supervisor: Supervisor,
    ) -> None:
        self.name = strategy.name
        self._service = config.service
        self._supervisor = supervisor
        self._clock = clock = shared.clock
        self._events = shared.events
        self._shared_health = shared.dependency_health
        self._socket_down_since_s: float | None = clock.monotonic()  # until the first connect
        account = domain.account(strategy.account)
        # The venue's own counter raises the account's limiter scopes (budget spent elsewhere).
        self.venue_counter = (
            VenueCounterSync(domain.limiter, account=account.name,
                             instruments=domain.instruments, registry=shared.registry)
            if config.limits.venue_counter_sync else None
        )  # fmt: skip
        on_ratecount = self.venue_counter.offer if self.venue_counter is not None else None
        self.ws = open_private_ws(account, config.venue.ws_private_url, clock=clock,
                                  on_execution=self._on_execution, on_balance=self._on_balance,
                                  on_ratecount=on_ratecount)  # fmt: skip
        venue: TradingVenue = account.trading
        if config.service.order_entry == "ws":
            trading = KrakenWsTrading(self.ws, permits=domain.limiter, account=account.name,
                                      strategy=strategy.name)  # fmt: skip
            venue = WsOrderEntry(self.ws, trading, account.trading, clock,
                                 order_deadline_s=ORDER_DEADLINE_S)  # fmt: skip
        self.venue = venue
        journal = OrderJournal(shared.redis, shared.keys, account.name)
        deps = WorkerDeps(market=shared.market, venue=venue, reader=account.reader,
                          journal=journal, clock=clock, registry=shared.registry,
                          events=shared.events, instruments=domain.instruments,
                          trading_state=shared.trading_state,
                          place_final_after_s=ORDER_DEADLINE_S + PLACE_SLACK_S,
                          dependency_health=self._health, turns=shared.turns,
                          stop_cancel_timeout_s=config.service.shutdown_timeout_s / 2)  # fmt: skip
        self.worker = StrategyWorker(strategy, strategy_cls, params, deps)
        self.dead_man = DeadManSwitch(venue, clock, timeout_s=config.service.dead_man_timeout_s,
                                      refresh_s=config.service.dead_man_refresh_s,
                                      healthy=self.worker.health)  # fmt: skip

    def _on_execution(self, execution: Execution) -> None:
        self.worker.on_execution(execution)

    def _on_balance(self, event: BalanceSnapshot | LedgerUpdate) -> None:
        self.worker.on_balance(event)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            socket = tg.create_task(self._supervisor.supervise(f"{self.name}.private_ws",
                                                               self.ws.run))  # fmt: skip
            with contextlib.suppress(TimeoutError):  # orders go over REST until it is up
                await self.ws.wait_connected(timeout_s=5.0)
            switch = tg.create_task(self._supervisor.supervise(f"{self.name}.dead_man",
                                                               self.dead_man.run))  # fmt: skip
            watchers = [tg.create_task(self._watch_reconnects())]
            if self.venue_counter is not None:
                watchers.append(tg.create_task(self.venue_counter.run()))
            try:
                await self.worker.run()
            finally:
                switch.cancel()
                for watcher in watchers:
                    watcher.cancel()
                await self._settle_dead_man()
                await self.ws.close()
                await socket

    async def _settle_dead_man(self) -> None:
        """Disarm the switch only when the venue itself shows nothing left to cancel (or the
        strategy keeps its orders on purpose); otherwise leave it to run out, so the venue
        cancels what this process could not."""
        worker = self.worker
        if worker.state == "stopped" and not worker.config.cancel_on_stop:
            with contextlib.suppress(OrchestratorError):
                await self.dead_man.disarm()
            return
        try:
            left = await self.venue.open_orders()
            if left:
                log.warning("unit.orders_still_open", strategy=self.name, open=len(left))
                await self.venue.cancel_all([])
                left = await self.venue.open_orders()
        except OrchestratorError as exc:
            log.warning("unit.stop_unconfirmed", strategy=self.name, error=str(exc))
            return
        if left:
            log.error("unit.orders_left_to_dead_man", strategy=self.name, open=len(left))
            return
        with contextlib.suppress(OrchestratorError):
            await self.dead_man.disarm()

    async def run_contained(self) -> None:
        """`run()`, and when it fails (a bug of ours, not the strategy's: that is contained
        inside the worker) the unit alone stops: its account's orders are cancelled in one
        request, the failure is published, and the rest of the service goes on."""
        try:
            await self.run()
        except Exception as exc:
            log.exception("unit.crashed", strategy=self.name)
            self.worker.state = "failed"
            self.worker.failure = f"the worker crashed: {type(exc).__name__}: {exc}"
            await self._emergency_cancel()
            await self._events.publish("strategy_failed", strategy=self.name,
                                       reason=self.worker.failure)  # fmt: skip

    async def _emergency_cancel(self) -> None:
        backoff = Backoff(self._clock, initial_s=0.2, max_s=0.2 * 2**EMERGENCY_ATTEMPTS)
        for attempt in range(EMERGENCY_ATTEMPTS):
            try:
                await self.venue.cancel_all([o.ref() for o in self.worker.manager.open_orders()
                                             if o.txid is not None])  # fmt: skip
            except OrchestratorError as exc:
                log.warning("unit.cancel_all_failed", strategy=self.name, attempt=attempt,
                            error=str(exc))  # fmt: skip
                await backoff.wait()
            else:
                return
        log.error("unit.orders_left_to_dead_man", strategy=self.name)

    def stop(self) -> None:
        self.worker.stop()

    def _health(self) -> str | None:
        """The worker's dependencies: Redis (shared), and this account's private socket, without
        which executions are missed (orders then go over REST, but the switch must lapse if the
        socket stays away)."""
        shared = self._shared_health()
        if shared is not None:
            return shared
        since_s = self._socket_down_since_s
        if since_s is not None and self._clock.monotonic() - since_s > PRIVATE_GAP_S:
            return f"private socket down for more than {PRIVATE_GAP_S:g} s"
        return None

    async def _watch_reconnects(self) -> None:
        """Tell the worker when its private socket (re)connected: executions sent meanwhile
        (including before the first connect, when orders went over REST) are not sent again."""
        seen = 0
        while True:
            connected = self.ws.connected
            if connected:
                self._socket_down_since_s = None
            elif self._socket_down_since_s is None:
                self._socket_down_since_s = self._clock.monotonic()
            connects = self.ws.counters["connects"]
            if connects > seen and (seen > 0 or self.worker.manager.orders):
                self.worker.on_private_reconnected()
            seen = connects
            await self._clock.sleep(RECONNECT_POLL_S)

"""The utilization workload of the limiter benchmark: 8 strategies on 8 sub-accounts in 4
worker processes, each approach's gate in front of real signed `KrakenRest` clients, against a
fresh metered simulator. `benchmarks/limiter.py` says what is measured and prints it.

Workload of a strategy: AddOrder of far-away limit orders (cost 1); once 10 rest, CancelOrder of
the oldest (Kraken's cancel cost by the order's age: 8 under 5 s ... 0 from 300 s), paced so that
the cost sent follows the strategy's demand rate (falling behind when throttled, catching up
later). After a venue rate-limit error every client backs off 1 s (ours also penalizes the scope).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, Final, Literal, Protocol

import aiohttp
import redis.asyncio as aioredis
import uvloop

from benchmarks._common import StartLine, run_workers
from benchmarks._limiter_meter import (
    ACCOUNT,
    LIMITS,
    PAIR,
    POOL,
    TIER,
    Event,
    GrantLog,
    PoolMeter,
    pool_budget,
    steady_state,
)
from benchmarks._limiter_peers import (
    AioGate,
    Gate,
    LimitsGate,
    OpenGate,
    PyrateGate,
    StaticGate,
    WindowGate,
)
from orchestrator.clock import RealClock
from orchestrator.errors import RateLimited, VenueRateLimited
from orchestrator.exchange.kraken.common.key_lock import LocalKeyLock
from orchestrator.exchange.kraken.common.methods import ADD_ORDER, CANCEL_ORDER
from orchestrator.exchange.kraken.common.nonce import LocalNonce
from orchestrator.exchange.kraken.common.transport import AiohttpTransport
from orchestrator.exchange.kraken.spot.rest import KrakenRest
from orchestrator.metrics import Registry
from orchestrator.ratelimit.permits import PermitSource, Unlimited
from orchestrator.ratelimit.policy import Policy, VenueRequest, trading_cost
from orchestrator.ratelimit.redis import Limiter
from orchestrator.secrets import ApiCredentials, Secret
from orchestrator.simulator.app import open_simulator
from orchestrator.simulator.settings import SimSettings, domain_accounts
from orchestrator.store.connection import redis_client
from orchestrator.store.keys import Keys

Approach = Literal["ours", "static", "window", "limits", "pyrate", "aiolimiter"]

ORDER: Final = {
    "pair": "XBTUSD",
    "type": "buy",
    "ordertype": "limit",
    "volume": "0.0001",
    "price": "30000.0",  # half the simulator's start price: rests, never fills
}
STRATEGIES: Final = 8
NAMES: Final = tuple(f"st{i}" for i in range(STRATEGIES))
DEMAND_WEIGHTS: Final = (4.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
# All strategies together ask for 4x the pool's budget (the two heavy ones are held to their
# accounts' 1x counters), so the pool's burst is spent within the first third of the window.
DEMAND_X_BUDGET: Final = 4.0
PLACEMENT: Final = ((0,), (1,), (2, 3, 4), (5, 6, 7))  # strategy indexes per worker process
RESTING_MAX: Final = 10  # per order loop; the open-order cap is 80 per account and pair
VENUE_BACKOFF_S: Final = 1.0
PERMIT_DEADLINE_S: Final = 5.0


class SignedStrategy(Protocol):
    """A strategy with its own sub-account key (both benchmarks' specs are)."""

    @property
    def name(self) -> str: ...
    @property
    def account(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def secret_b64(self) -> str: ...


def rest_clients(
    transport: AiohttpTransport,
    rest_url: str,
    strategies: Sequence[SignedStrategy],
    permits: PermitSource,
    deadline_s: float,
) -> list[KrakenRest]:
    """One signed REST client per strategy, its permits from `permits` (local nonces and key
    locks: each strategy has a key of its own)."""
    return [
        KrakenRest(
            transport,
            rest_url,
            account=s.account,
            credentials=ApiCredentials(key=Secret(s.key), secret=Secret(s.secret_b64)),
            nonce=LocalNonce(),
            key_lock=LocalKeyLock(),
            permits=permits,
            strategy=s.name,
            permit_deadline_s=deadline_s,
        )
        for s in strategies
    ]


@dataclass(frozen=True, slots=True)
class StrategySpec:
    name: str
    account: str
    key: str
    secret_b64: str
    demand_per_s: float  # trading cost per second it asks for
    tasks: int = 1  # concurrent order loops sharing the demand


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    approach: Approach
    redis_url: str
    rest_url: str
    namespace: str
    duration_s: float
    processes: int
    strategies: tuple[StrategySpec, ...]
    weights: tuple[tuple[str, float], ...]  # ours only: fair-share weights of every strategy


@dataclass(slots=True)
class StrategyStats:
    adds: int = 0
    cancels: int = 0
    venue_rejections: int = 0
    limiter_refusals: int = 0
    cost_sent: float = 0.0


# -- the worker process --------------------------------------------------------------------------


async def _order_loop(
    rest: KrakenRest,
    gate: Gate,
    strategy: StrategySpec,
    start_s: float,
    stop_at: float,
    stats: StrategyStats,
) -> None:
    """Place orders at the strategy's pace; cancel the oldest once RESTING_MAX rest."""
    resting: deque[tuple[str, float]] = deque()
    demand_per_s = strategy.demand_per_s / strategy.tasks
    cost_sent = 0.0
    while (now := time.time()) < stop_at:
        due = start_s + cost_sent / demand_per_s
        if due > now:
            await asyncio.sleep(min(due, stop_at) - now)
            continue
        if len(resting) >= RESTING_MAX:
            txid, placed_s = resting[0]
            age_s = time.monotonic() - placed_s  # from the reply: never older than the venue's
            cost = trading_cost("cancel", age_s)
            method, params = CANCEL_ORDER, {"txid": txid}
            request = VenueRequest(method=method, pair=PAIR, order_ages_s=(age_s,))
        else:
            cost, method, params = 1, ADD_ORDER, ORDER
            request = VenueRequest(method=method, pair=PAIR)
        if not await gate.admit(strategy.name, strategy.account, cost, stop_at):
            return
        deadline_s = min(PERMIT_DEADLINE_S, max(0.0, stop_at - time.time()))
        try:
            result = await rest.call(method, params, request=request, deadline_s=deadline_s)
        except RateLimited as exc:  # ours: cannot fit within the deadline; sleep as told
            stats.limiter_refusals += 1
            await asyncio.sleep(min(exc.wait_s, max(0.0, stop_at - time.time())))
            continue
        except VenueRateLimited:
            stats.venue_rejections += 1
            await asyncio.sleep(VENUE_BACKOFF_S)
            continue
        cost_sent += cost
        stats.cost_sent += cost
        if method is CANCEL_ORDER:
            resting.popleft()
            stats.cancels += 1
        else:
            resting.append((result["txid"][0], time.monotonic()))
            stats.adds += 1


def _gate(spec: WorkerSpec, redis: aioredis.Redis) -> tuple[Gate, PermitSource]:
    """The peer to call before each request, or our limiter to hand to `KrakenRest`. With a
    peer the client's own permit source is `Unlimited`: the peer's gate is the only limit."""
    match spec.approach:
        case "ours":
            limiter = Limiter(
                redis,
                Keys(spec.namespace),
                Policy(TIER, LIMITS),
                RealClock(),
                limits=LIMITS,
                weights=dict(spec.weights),
                pairs={name: [PAIR] for name, _ in spec.weights},  # all trade the one pair
                registry=Registry(),
            )
            return OpenGate(), limiter
        case "static":
            return StaticGate(spec.processes, pool=POOL, account=ACCOUNT), Unlimited()
        case "window":
            return WindowGate(spec.processes, pool=POOL, account=ACCOUNT), Unlimited()
        case "limits":
            return LimitsGate(
                spec.redis_url, spec.namespace, pool=POOL, account=ACCOUNT
            ), Unlimited()
        case "pyrate":
            return PyrateGate(redis, spec.namespace, pool=POOL, account=ACCOUNT), Unlimited()
        case "aiolimiter":
            return AioGate(spec.processes, pool=POOL, account=ACCOUNT), Unlimited()


async def _worker(spec: WorkerSpec, line: StartLine) -> dict[str, Any]:
    redis = redis_client(spec.redis_url)
    stats = {s.name: StrategyStats() for s in spec.strategies}
    try:
        gate, source = _gate(spec, redis)
        permits = GrantLog(source, Policy(TIER, LIMITS))
        async with aiohttp.ClientSession() as session:
            transport = AiohttpTransport(session, timeout_s=10.0)
            clients = rest_clients(
                transport, spec.rest_url, spec.strategies, permits, PERMIT_DEADLINE_S
            )
            start_s = await asyncio.to_thread(line.wait)
            await asyncio.sleep(max(0.0, start_s - time.time()))
            stop_at = start_s + spec.duration_s
            async with asyncio.TaskGroup() as group:
                for rest, strategy in zip(clients, spec.strategies, strict=True):
                    for _ in range(strategy.tasks):
                        loop = _order_loop(
                            rest, gate, strategy, start_s, stop_at, stats[strategy.name]
                        )
                        group.create_task(loop)
    finally:
        await redis.aclose()
    return {
        "strategies": {name: asdict(s) for name, s in stats.items()},
        "grants": permits.since(start_s),
    }


def worker_main(spec: WorkerSpec, line: StartLine) -> dict[str, Any]:
    """One worker process: its strategies' order loops for the run's duration."""
    logging.getLogger().setLevel(logging.ERROR)  # the report counts venue errors itself
    return uvloop.run(_worker(spec, line))


@dataclass(slots=True)
class RunResult:
    label: str
    duration_s: float
    events: list[Event]  # (seconds into the run, account, cost) admitted
    rejections: dict[str, int]  # per venue scope
    stats: dict[str, dict[str, float]]  # per strategy, as its worker counted
    accounts: dict[str, str] = field(default_factory=dict)  # strategy -> account
    # Per strategy, (seconds into the run, pool cost) of each request its limiter let through,
    # as its worker noted them (a grant the venue then refused is here, not in `events`).
    grants: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    @property
    def pool_cost(self) -> float:
        return sum(cost for _, _, cost in self.events)

    def admitted(self, strategy: str) -> float:
        account = self.accounts[strategy]
        return sum(cost for _, a, cost in self.events if a == account)

    def utilization(self, *, reserve: float = 0.0) -> float:
        """Cost admitted over the budget (the burst less `reserve`, plus the decay)."""
        return self.pool_cost / pool_budget(self.duration_s, reserve=reserve)

    def steady_state(self) -> float:
        return steady_state(self.events, self.duration_s)

    def total(self, stat: str) -> float:
        return sum(s[stat] for s in self.stats.values())

    @property
    def rejected(self) -> int:
        return sum(self.rejections.values())


async def run_workload(
    approach: Approach,
    label: str,
    *,
    redis_url: str,
    namespace: str,
    duration_s: float,
    demand: Sequence[float],  # cost per second, per strategy
    tasks: Sequence[int],
    weights: Mapping[str, float],
) -> RunResult:
    settings = SimSettings(accounts=domain_accounts(STRATEGIES, {"ZUSD": Decimal(20_000)}))
    async with open_simulator(settings) as sim:
        meter = PoolMeter(sim.venue.limits, PAIR)
        strategies = []
        for i in range(STRATEGIES):
            key = sim.venue.keys_of(f"s{i}")[0]
            strategies.append(
                StrategySpec(f"st{i}", f"s{i}", key.key, key.secret_b64, demand[i], tasks[i])
            )
        specs = [
            WorkerSpec(
                approach,
                redis_url,
                sim.rest_url,
                namespace,
                duration_s,
                len(PLACEMENT),
                tuple(strategies[i] for i in group),
                tuple(weights.items()),
            )
            for group in PLACEMENT
        ]

        def on_start(start_s: float) -> None:
            meter.window_s = (start_s, start_s + duration_s)

        replies = await run_workers(
            worker_main, specs, on_start=on_start, timeout_s=duration_s + 120
        )
        stats: dict[str, dict[str, float]] = {}
        grants: dict[str, list[tuple[float, float]]] = {}
        for reply in replies:
            stats.update(reply["strategies"])
            grants.update(reply["grants"])
        return RunResult(
            label,
            duration_s,
            list(meter.events),
            sim.venue.limits.rejections(),
            stats,
            {s.name: s.account for s in strategies},
            grants,
        )

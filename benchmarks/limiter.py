"""Our shared Redis limiter against peer libraries, side by side in one run.

    python -m benchmarks.limiter            # about 2 min: 20 s per approach
    python -m benchmarks.limiter --quick    # about 35 s: 5 s per approach
    python -m benchmarks.limiter --no-plots # the tables only, no figure

(a) Latency: one process, one Redis connection (redis.asyncio + hiredis, uvloop). `Limiter.acquire`
    calls that always grant at once (scopes with huge thresholds) are interleaved with raw EVALSHA
    calls of `return 1`; p50/p99 and their ratios. Diagnostic rows split our cost into wire
    (our keys and args sent to `return 1`), script (acquire.lua called directly) and Python.
(b) Utilization: 8 strategies on 8 sub-accounts in 4 worker processes (the two heavy ones alone,
    the light ones three to a process), skewed demand (weights 4:2:1:1:1:1:1:1, together twice the
    pool's budget over the run), all on one pair so the domain pool binds. Each approach drives
    the same workload against a fresh simulator for the same time; the simulator is metered: the
    trading cost it admitted on the pool in the window, over the theoretical budget
    `threshold + decay x duration` (and `threshold x (1 - reserve) + decay x duration`), and its
    rate-limit rejections. Workers are real signed `KrakenRest` clients; for the peers the client
    has no limiter and the peer is called before each request. The figure
    docs/images/limiter_utilization.png draws (b) over time: the pool cost each strategy was
    granted per second, one panel per approach, against the pool's decay.
(c) Fairness: our limiter with equal weights; one strategy at 10x demand (four concurrent order
    loops) and seven at 1x (each asking exactly its fair share of the budget).

Workload of a strategy: AddOrder of far-away limit orders (cost 1); once 10 rest, CancelOrder of
the oldest (Kraken's cancel cost by the order's age: 8 under 5 s ... 0 from 300 s), paced so that
the cost sent follows the strategy's demand rate (falling behind when throttled, catching up
later). After a venue rate-limit error every client backs off 1 s (ours also penalizes the scope).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, Final, Literal

import aiohttp
import redis.asyncio as aioredis
import uvloop

from benchmarks import plotting
from benchmarks._common import StartLine, percentile, run_workers, verdict, version
from benchmarks._limiter_peers import (
    AioGate,
    Counter,
    Gate,
    LimitsGate,
    OpenGate,
    PyrateGate,
    peer_notes,
)
from benchmarks._limiter_plots import UtilizationPanel, draw_utilization
from orchestrator.clock import RealClock
from orchestrator.config import LimitsConfig
from orchestrator.errors import RateLimited, VenueRateLimited
from orchestrator.exchange.kraken.common.errors import RateLimitKind
from orchestrator.exchange.kraken.common.key_lock import LocalKeyLock
from orchestrator.exchange.kraken.common.methods import ADD_ORDER, CANCEL_ORDER
from orchestrator.exchange.kraken.common.nonce import LocalNonce
from orchestrator.exchange.kraken.common.transport import AiohttpTransport
from orchestrator.exchange.kraken.spot.rest import KrakenRest
from orchestrator.metrics import Registry
from orchestrator.ratelimit.permits import Permit, PermitSource, Unlimited
from orchestrator.ratelimit.policy import TIERS, Charge, Policy, Scope, VenueRequest, trading_cost
from orchestrator.ratelimit.redis import ACQUIRE_LUA, Limiter
from orchestrator.secrets import ApiCredentials, Secret
from orchestrator.simulator.app import open_simulator
from orchestrator.simulator.limits import VenueLimits
from orchestrator.simulator.settings import SimSettings, domain_accounts
from orchestrator.store.connection import redis_client
from orchestrator.store.embedded import EmbeddedRedis, open_embedded_redis
from orchestrator.store.keys import Keys

Approach = Literal["ours", "limits", "pyrate", "aiolimiter"]

PAIR: Final = "XBT/USD"
ORDER: Final = {
    "pair": "XBTUSD",
    "type": "buy",
    "ordertype": "limit",
    "volume": "0.0001",
    "price": "30000.0",  # half the simulator's start price: rests, never fills
}
TIER: Final = "intermediate"
LIMITS: Final = LimitsConfig()  # domain pool per pair, 5x, per-account cap, 10% reserve
ACCOUNT_THRESHOLD: Final = TIERS[TIER].trade_threshold  # 125
ACCOUNT_DECAY_PER_S: Final = TIERS[TIER].trade_decay_per_s  # 2.34
POOL_THRESHOLD: Final = LIMITS.domain_multiplier * ACCOUNT_THRESHOLD  # 625
POOL_DECAY_PER_S: Final = LIMITS.domain_multiplier * ACCOUNT_DECAY_PER_S  # 11.7
RESERVE: Final = LIMITS.risk_reserve_fraction
POOL: Final = Counter(POOL_THRESHOLD, POOL_DECAY_PER_S)
ACCOUNT: Final = Counter(ACCOUNT_THRESHOLD, ACCOUNT_DECAY_PER_S)

STRATEGIES: Final = 8
NAMES: Final = tuple(f"st{i}" for i in range(STRATEGIES))
DEMAND_WEIGHTS: Final = (4.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
DEMAND_X_BUDGET: Final = 2.0  # all strategies together ask for twice the pool's budget
PLACEMENT: Final = ((0,), (1,), (2, 3, 4), (5, 6, 7))  # strategy indexes per worker process
HEAVY_X: Final = 10.0
HEAVY_TASKS: Final = 4
RESTING_MAX: Final = 10  # per order loop; the open-order cap is 80 per account and pair
VENUE_BACKOFF_S: Final = 1.0
PERMIT_DEADLINE_S: Final = 5.0
TARGET_RATIO: Final = 1.5
TARGET_UTILIZATION: Final = 0.97


# -- shared pieces ---------------------------------------------------------------------------


def pool_budget(duration_s: float, *, reserve: float = 0.0) -> float:
    """Cost the pool can admit in `duration_s` from empty: burst plus decay."""
    return POOL_THRESHOLD * (1 - reserve) + POOL_DECAY_PER_S * duration_s


def account_cap(duration_s: float) -> float:
    """Cost one account's own counter can admit in `duration_s` from empty."""
    return ACCOUNT_THRESHOLD + ACCOUNT_DECAY_PER_S * duration_s


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


class GrantLog:
    """The client's permit source, noting when each request on the pair was let through and
    the pool cost it carries: the figure's series, returned with the worker's stats. With a peer
    the source is `Unlimited`, so the note falls right after the peer's gate admitted it."""

    def __init__(self, permits: PermitSource, policy: Policy) -> None:
        self._permits = permits
        self._policy = policy
        self.grants: dict[str, list[tuple[float, float]]] = {}  # strategy -> (wall s, cost)

    async def acquire_for(
        self,
        request: VenueRequest,
        *,
        account: str,
        key_id: str,
        strategy: str | None = None,
        deadline_s: float = 5.0,
    ) -> Permit:
        permit = await self._permits.acquire_for(
            request, account=account, key_id=key_id, strategy=strategy, deadline_s=deadline_s
        )
        if strategy is not None and request.pair == PAIR:
            cost = self._policy.trading_cost_of(request)
            self.grants.setdefault(strategy, []).append((time.time(), cost))
        return permit

    async def feedback(self, permit: Permit, kind: RateLimitKind | None) -> None:
        await self._permits.feedback(permit, kind)

    def since(self, start_s: float) -> dict[str, list[tuple[float, float]]]:
        """The grants per strategy, in seconds from `start_s`."""
        return {s: [(t - start_s, c) for t, c in g] for s, g in self.grants.items()}


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
                registry=Registry(),
            )
            return OpenGate(), limiter
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
            clients = [
                KrakenRest(
                    transport,
                    spec.rest_url,
                    account=s.account,
                    credentials=ApiCredentials(key=Secret(s.key), secret=Secret(s.secret_b64)),
                    nonce=LocalNonce(),
                    key_lock=LocalKeyLock(),
                    permits=permits,
                    strategy=s.name,
                    permit_deadline_s=PERMIT_DEADLINE_S,
                )
                for s in spec.strategies
            ]
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


# -- one approach against a fresh simulator ---------------------------------------------------


class PoolMeter:
    """Wraps the simulator's `charge_trading` to record the cost it admitted on the pair (a
    refused charge raises and records nothing): (time, account, cost) inside the window."""

    def __init__(self, limits: VenueLimits, pair: str) -> None:
        self.pair = pair
        self.window_s = (math.inf, -math.inf)
        self.events: list[tuple[float, str, float]] = []
        original = limits.charge_trading

        def metered(account: str, pair: str, cost: float, now_s: float) -> None:
            original(account, pair, cost, now_s)
            start_s, end_s = self.window_s
            if pair == self.pair and start_s <= now_s <= end_s:
                self.events.append((now_s - start_s, account, cost))

        setattr(limits, "charge_trading", metered)  # noqa: B010 - metering, the logic is untouched


@dataclass(slots=True)
class RunResult:
    label: str
    duration_s: float
    events: list[tuple[float, str, float]]  # (seconds into the run, account, cost) admitted
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

    def second_half_rate(self) -> float:
        """Cost per second admitted in the second half of the run, over the pool's decay."""
        half_s = self.duration_s / 2
        late = sum(cost for t, _, cost in self.events if t >= half_s)
        return late / half_s / POOL_DECAY_PER_S

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


# -- (a) latency ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LatencyRow:
    name: str
    p50_us: float
    p99_us: float


async def measure_latency(
    redis_url: str, samples: int
) -> tuple[list[LatencyRow], dict[str, float]]:
    redis = redis_client(redis_url, single_connection_client=True)
    try:
        limiter = Limiter(
            redis,
            Keys("lat"),
            Policy(TIER, LIMITS),
            RealClock(),
            limits=LIMITS,
            weights=dict.fromkeys(NAMES, 1.0),
            registry=Registry(),
        )
        huge = 1e12, 1e9  # threshold, decay: every call grants at once
        add_order = [
            Charge(Scope(f"trade:s0:{PAIR}", *huge), 1.0),
            Charge(Scope(f"domain:{PAIR}", *huge), 1.0),
        ]
        one_scope = [Charge(Scope("domain:LAT/ONE", *huge), 1.0)]
        trivial_sha = await redis.script_load("return 1")
        acquire_sha = await redis.script_load(ACQUIRE_LUA)
        for name in NAMES:  # the pool's share hash holds all 8 strategies, as in production
            await limiter.acquire(add_order, lane="new_risk", deadline_s=5.0, strategy=name)
        keys, args = await _captured_call(limiter, add_order, "st0")
        one_keys, one_args = await _captured_call(limiter, one_scope, None)

        calls: dict[str, Callable[[], Any]] = {
            "raw EVALSHA `return 1` (baseline)": lambda: redis.evalsha(trivial_sha, 0),
            "ours: Limiter.acquire, AddOrder shape (account + pool + fair share)": lambda: (
                limiter.acquire(add_order, lane="new_risk", deadline_s=5.0, strategy="st0")
            ),
            "ours: Limiter.acquire, one scope, no fair share": lambda: limiter.acquire(
                one_scope, lane="new_risk", deadline_s=5.0
            ),
            f"diag: EVALSHA `return 1` sent our {len(keys)} keys + {len(args)} args": lambda: (
                redis.evalsha(trivial_sha, len(keys), *keys, *args)
            ),
            "diag: EVALSHA acquire.lua with those, no Limiter Python": lambda: redis.evalsha(
                acquire_sha, len(keys), *keys, *args
            ),
        }
        timings: dict[str, list[float]] = {name: [] for name in calls}
        clock = time.perf_counter
        for i in range(samples + samples // 10):  # the first tenth warms up
            for name, call in calls.items():
                t0 = clock()
                await call()
                if i >= samples // 10:
                    timings[name].append((clock() - t0) * 1e6)
        rows = [LatencyRow(n, percentile(t, 0.5), percentile(t, 0.99)) for n, t in timings.items()]
        server = {
            "acquire.lua, AddOrder shape": await _server_us(
                redis, acquire_sha, keys, args, samples
            ),
            "acquire.lua, one scope": await _server_us(
                redis, acquire_sha, one_keys, one_args, samples
            ),
            "`return 1`": await _server_us(redis, trivial_sha, [], [], samples),
        }
        return rows, server
    finally:
        await redis.aclose()


async def _captured_call(
    limiter: Limiter, charges: list[Charge], strategy: str | None
) -> tuple[list[Any], list[Any]]:
    """The exact keys and args the limiter sends for `charges` (for the diagnostic rows)."""
    await limiter.acquire(charges, lane="new_risk", deadline_s=5.0, strategy=strategy)
    keys, args = limiter._script_call(charges, "new_risk", 5.0, strategy)  # looks inside on purpose
    return list(keys), list(args)


async def _server_us(
    redis: aioredis.Redis, sha: str, keys: list[Any], args: list[Any], samples: int
) -> float:
    """Redis's own time per EVALSHA (INFO commandstats), with nothing else running."""
    await redis.config_resetstat()
    for _ in range(samples):
        await redis.evalsha(sha, len(keys), *keys, *args)
    stats = await redis.info("commandstats")
    return float(stats["cmdstat_evalsha"]["usec_per_call"])


# -- report ---------------------------------------------------------------------------------------


def print_latency(
    rows: list[LatencyRow], server: Mapping[str, float], samples: int
) -> tuple[float, float]:
    base = rows[0]
    print(f"(a) acquire latency: one process, one connection, {samples} calls each, interleaved")
    header = f"{'call':<68} {'p50 us':>7} {'p99 us':>7} {'p50 x':>6} {'p99 x':>6}"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row.name:<68} {row.p50_us:7.1f} {row.p99_us:7.1f} "
            f"{row.p50_us / base.p50_us:5.2f}x {row.p99_us / base.p99_us:5.2f}x"
        )
    shape = rows[1]
    wire, script = rows[3], rows[4]
    print(
        f"    where ours' {shape.p50_us - base.p50_us:.0f} us over baseline (p50) go: "
        f"sending our keys/args {wire.p50_us - base.p50_us:.0f} us, running acquire.lua "
        f"{script.p50_us - wire.p50_us:.0f} us, Limiter Python {shape.p50_us - script.p50_us:.0f}"
        f" us"
    )
    server_text = ", ".join(f"{name} {us:.1f} us" for name, us in server.items())
    print(f"    redis-side time per call (INFO commandstats): {server_text}")
    return shape.p50_us / base.p50_us, shape.p99_us / base.p99_us


def print_utilization(results: list[RunResult], notes: Sequence[str]) -> None:
    duration_s = results[0].duration_s
    full, reserved = pool_budget(duration_s), pool_budget(duration_s, reserve=RESERVE)
    print()
    print(
        f"(b) pool utilization over {duration_s:g} s: 8 strategies, demand 4:2:1:1:1:1:1:1 "
        f"(together {DEMAND_X_BUDGET:g}x the budget), worker processes {list(map(list, PLACEMENT))}"
    )
    print(
        f"    budget = {POOL_THRESHOLD:g} + {POOL_DECAY_PER_S:g}/s x {duration_s:g} s = {full:.1f}"
        f" ('util'); {reserved:.1f} without the {RESERVE:.0%} of the threshold ours keeps for"
        f" cancels ('util-res'; cancels may use it, so it can pass 100%)"
    )
    header = (
        f"{'approach':<36} {'admitted':>8} {'util':>6} {'util-res':>8} {'2nd half':>8} "
        f"{'rejected':>8} {'adds':>5} {'cancels':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.label:<36} {r.pool_cost:8.1f} {r.pool_cost / full:6.1%} "
            f"{r.pool_cost / reserved:8.1%} {r.second_half_rate():8.1%} {r.rejected:8d} "
            f"{r.total('adds'):5.0f} {r.total('cancels'):7.0f}"
        )
    print(
        "    '2nd half': cost admitted per second in the second half of the run / the pool's decay"
        " (steady state once the burst is spent; in --quick the burst spans both halves)"
    )
    cap = account_cap(duration_s)
    print(f"    admitted per strategy, st0..st7 (an account admits at most {cap:.1f}):")
    for r in results:
        cells = " ".join(f"{r.admitted(f'st{i}'):6.1f}" for i in range(STRATEGIES))
        print(f"      {r.label:<36} {cells}")
    for r in results:
        if r.rejections:
            print(f"    {r.label}: venue rejections by scope {r.rejections}")
    for note in notes:
        print(f"    {note}")


def print_fairness(result: RunResult, demand: Sequence[float]) -> list[float]:
    total = result.pool_cost
    weight_share = 1 / STRATEGIES
    print()
    print(
        f"(c) fairness, ours, equal weights, {result.duration_s:g} s: st0 asks {HEAVY_X:g}x "
        f"({HEAVY_TASKS} concurrent order loops), st1..st7 1x = 1/8 of the budget each"
    )
    header = (
        f"{'strategy':<8} {'asks':>9} {'weight sh':>9} {'admitted':>8} {'achieved sh':>11} "
        f"{'ach/weight':>10} {'got/asked':>9}"
    )
    print(header)
    print("-" * len(header))
    ratios = []
    for i in range(STRATEGIES):
        admitted = result.admitted(f"st{i}")
        share = admitted / total if total else 0.0
        ratios.append(share / weight_share)
        print(
            f"st{i:<6} {demand[i]:7.2f}/s {weight_share:9.1%} {admitted:8.1f} {share:11.1%} "
            f"{share / weight_share:9.2f}x {admitted / (demand[i] * result.duration_s):9.1%}"
        )
    sent = result.total("cost_sent")
    print(
        f"    pool admitted {total:.1f} of {pool_budget(result.duration_s):.1f}; st0's own account"
        f" admits at most {account_cap(result.duration_s):.1f}; venue rejections "
        f"{result.rejected}{f' {result.rejections}' if result.rejections else ''}"
    )
    print(
        f"    the fair shares saw all {sent:.0f} of cost sent: cancels count toward a share "
        f"but are never held back by it; beyond its share a strategy borrows idle capacity "
        f"or waits until its own share has room"
    )
    return ratios


def print_header(embedded: EmbeddedRedis, server_version: str, quick: bool) -> None:
    libs = ", ".join(
        f"{name} {version(name)}"
        for name in ("redis", "hiredis", "uvloop", "limits", "pyrate-limiter", "aiolimiter")
    )
    print(
        f"orchestrator limiter benchmark{' (--quick)' if quick else ''}: python "
        f"{sys.version.split()[0]}, {os.cpu_count()} cores, {embedded.backend} {server_version} "
        f"(private, port {embedded.port}); {libs}"
    )
    print()


# -- main -----------------------------------------------------------------------------------------


async def run(quick: bool, samples: int, *, plots: bool) -> None:
    duration_s = 5.0 if quick else 20.0
    async with open_embedded_redis() as embedded:
        url = embedded.url
        info = await _server_info(url)
        print_header(embedded, info, quick)
        rows, server = await measure_latency(url, samples)
        ratio_p50, ratio_p99 = print_latency(rows, server, samples)

        asked_per_s = DEMAND_X_BUDGET * pool_budget(duration_s) / duration_s
        demand = [asked_per_s * w / sum(DEMAND_WEIGHTS) for w in DEMAND_WEIGHTS]
        ones = [1] * STRATEGIES
        plan: list[tuple[Approach, str, Mapping[str, float]]] = [
            (
                "ours",
                "ours (weights 4:2:1:1.. = demand)",
                dict(zip(NAMES, DEMAND_WEIGHTS, strict=True)),
            ),
            ("limits", "limits (moving window, Redis)", {}),
            ("pyrate", "pyrate-limiter (GCRA, Redis)", {}),
            ("aiolimiter", "aiolimiter (1/4 pool per process)", {}),
        ]
        results = [
            await run_workload(
                approach,
                label,
                redis_url=url,
                namespace=f"b{n}{approach}",
                duration_s=duration_s,
                demand=demand,
                tasks=ones,
                weights=weights,
            )
            for n, (approach, label, weights) in enumerate(plan)
        ]
        print_utilization(results, peer_notes(pool=POOL, account=ACCOUNT, processes=len(PLACEMENT)))

        fair_per_s = pool_budget(duration_s) / STRATEGIES / duration_s
        fair_demand = [fair_per_s * (HEAVY_X if i == 0 else 1.0) for i in range(STRATEGIES)]
        fairness = await run_workload(
            "ours",
            "ours (fairness)",
            redis_url=url,
            namespace="c_ours",
            duration_s=duration_s,
            demand=fair_demand,
            tasks=[HEAVY_TASKS, *ones[1:]],
            weights=dict.fromkeys(NAMES, 1.0),
        )
        ratios = print_fairness(fairness, fair_demand)

    ours = results[0]
    util_res = ours.pool_cost / pool_budget(duration_s, reserve=RESERVE)
    util_full = ours.pool_cost / pool_budget(duration_s)
    print()
    print(
        f"targets (ours): (a) overhead p50 <= {TARGET_RATIO:g}x: "
        f"{verdict(ratio_p50 <= TARGET_RATIO)} ({ratio_p50:.2f}x; p99 {ratio_p99:.2f}x) | "
        f"(b) utilization >= {TARGET_UTILIZATION:.0%}: "
        f"{verdict(util_res >= TARGET_UTILIZATION)} vs the budget without the reserve "
        f"({util_res:.1%}), {verdict(util_full >= TARGET_UTILIZATION)} vs the full budget "
        f"({util_full:.1%}) | (b) 0 rejections: {verdict(ours.rejected == 0)} ({ours.rejected})"
        f" | (c) light strategies' share/weight min {min(ratios[1:]):.2f}x, heavy "
        f"{ratios[0]:.2f}x, venue rejections {fairness.rejected}"
    )
    if plots:
        runs = {approach: r for (approach, _, _), r in zip(plan, results, strict=True)}
        print(figure_line(runs, bin_s=0.5 if quick else 1.0))


FIGURE_ORDER: Final[tuple[Approach, ...]] = ("ours", "aiolimiter", "limits", "pyrate")


def figure_line(runs: Mapping[Approach, RunResult], *, bin_s: float) -> str:
    """Draw (b) over time, ours beside the static partition and the windows; say where."""
    if not plotting.available():
        return "figure: skipped (matplotlib absent: the `bench` extra)"
    duration_s = runs["ours"].duration_s
    panels = [
        UtilizationPanel(r.label, r.pool_cost / pool_budget(duration_s), r.rejected, r.grants)
        for r in (runs[a] for a in FIGURE_ORDER)
    ]
    weights = dict(zip(NAMES, DEMAND_WEIGHTS, strict=True))
    path = draw_utilization(
        panels,
        strategies={name: f"{name} (demand {weights[name]:g})" for name in NAMES},
        duration_s=duration_s,
        bin_s=bin_s,
        burst=POOL_THRESHOLD,
        decay_per_s=POOL_DECAY_PER_S,
    )
    return f"figure: {path.relative_to(plotting.IMAGES_DIR.parent.parent)}"


async def _server_info(url: str) -> str:
    client = redis_client(url)
    try:
        info = await client.info("server")
    finally:
        await client.aclose()
    return str(info.get("redis_version", "?"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.limiter", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="5 s per approach (smoke)")
    parser.add_argument("--samples", type=int, default=None, help="calls per latency row")
    parser.add_argument("--no-plots", action="store_true", help="print the tables only")
    args = parser.parse_args(argv)
    samples = args.samples or (1_000 if args.quick else 5_000)
    logging.getLogger().setLevel(logging.ERROR)
    uvloop.run(run(args.quick, samples, plots=not args.no_plots))
    return 0  # a measurement: a MISS is reported, not an error


if __name__ == "__main__":
    sys.exit(main())

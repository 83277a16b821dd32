"""The limiter benchmark's scale section: N greedy strategies over 4 processes on one pair.

Each strategy has a sub-account of its own (the simulator's `domain_accounts`), weight 1 or 2
(alternating), and one order loop asking permits back to back: an AddOrder of a limit IOC far
from the market (cost 1; the venue closes it at once, so nothing rests and nothing is
cancelled), with a permit deadline long enough to wait for its share (`DEADLINE_S`). All on one
pair, so the domain pool binds (the strategies' accounts together could take 2-40x it).

Measured over the window, per N: the pool cost the simulator admitted over its full budget;
Redis's script calls (`INFO commandstats` calls of evalsha + eval) per permit granted (a
permit counts when the script granted it, booked wait or not); Redis's CPU (`INFO cpu`
used_cpu_sys + used_cpu_user of the benchmark's own redis-server) per permit; Redis's time per
script call and per permit; the script's round trip as the limiter's caller sees it (the
EVALSHA inside `acquire`, not the booked sleep after it) p50/p99; fairness: each strategy's
share of the admitted pool cost over its weight's share, max and p95 of |that - 1|; the steady
state (last 2/3 of the window) over the pool's decay; the simulator's rate-limit rejections.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

import aiohttp
import uvloop

from benchmarks._common import StartLine, percentile, run_workers, verdict
from benchmarks._limiter_meter import (
    LIMITS,
    PAIR,
    POOL_DECAY_PER_S,
    RESERVE,
    TIER,
    GrantLog,
    PoolMeter,
    median,
    pool_budget,
    share_error_floor,
    share_errors,
    steady_state,
)
from benchmarks._limiter_workload import rest_clients
from orchestrator.clock import RealClock
from orchestrator.errors import RateLimited, VenueRateLimited
from orchestrator.exchange.kraken.common.methods import ADD_ORDER
from orchestrator.exchange.kraken.common.transport import AiohttpTransport
from orchestrator.exchange.kraken.spot.rest import KrakenRest
from orchestrator.metrics import Registry
from orchestrator.ratelimit.policy import Policy, VenueRequest
from orchestrator.ratelimit.redis import Limiter
from orchestrator.simulator.app import open_simulator
from orchestrator.simulator.settings import SimSettings, domain_accounts
from orchestrator.store.connection import redis_client
from orchestrator.store.keys import Keys

SIZES: Final = (10, 50, 200)
PROCESSES: Final = 4
DEADLINE_S: Final = 60.0  # a weight-1 strategy of 200 waits ~26 s for its next permit
WEIGHTS: Final = (1.0, 2.0)
IOC_ORDER: Final = {
    "pair": "XBTUSD", "type": "buy", "ordertype": "limit", "volume": "0.0001",
    "price": "30000.0", "timeinforce": "IOC",  # far below the market: closed at once, unfilled
}  # fmt: skip
REQUEST: Final = VenueRequest(method=ADD_ORDER, pair=PAIR)
VENUE_BACKOFF_S: Final = 1.0
TARGET_CALLS: Final = 1.2
TARGET_FLAT_X: Final = 2.0
TARGET_FAIRNESS: Final = 0.05
TARGET_STEADY: Final = 0.99
# The lightest share (weight 1) expects this many permits in a window: one whole request is
# then 5% of its take, the fairness target. At N = 200 over 60 s it expects 4.2 (one request
# 24% of it): no limiter could be graded at 5% there, so the window grows with N.
LIGHTEST_PERMITS: Final = 20.0


def scale_window_s(n: int, floor_s: float) -> float:
    """The window for N strategies: `floor_s`, or longer where the lightest share needs it to
    expect `LIGHTEST_PERMITS` permits of the new-risk budget (N = 50: 81 s, N = 200: 465 s)."""
    weight_sum = sum(WEIGHTS[i % len(WEIGHTS)] for i in range(n))
    lightest = min(WEIGHTS) / weight_sum
    needed_s = (LIGHTEST_PERMITS / lightest - pool_budget(0.0, reserve=RESERVE)) / POOL_DECAY_PER_S
    return max(floor_s, math.ceil(needed_s))


@dataclass(frozen=True, slots=True)
class Greedy:
    name: str
    account: str
    key: str
    secret_b64: str


@dataclass(frozen=True, slots=True)
class ScaleSpec:
    redis_url: str
    rest_url: str
    namespace: str
    duration_s: float
    strategies: tuple[Greedy, ...]
    weights: tuple[tuple[str, float], ...]


class TimedLimiter(Limiter):
    """The product's limiter, noting each script call's round trip and verdict as its caller
    sees them (the booked sleep comes after, in `acquire`)."""

    decisions: list[tuple[float, bool, float]]  # (wall s at the call, granted, round trip s)

    async def _decide(self, *args: Any, **kwargs: Any) -> Any:
        at_s, t0 = time.time(), time.perf_counter()
        result = await super()._decide(*args, **kwargs)
        self.decisions.append((at_s, bool(result[0]), time.perf_counter() - t0))
        return result


async def _greedy(rest: KrakenRest, stop_at: float, counts: dict[str, int]) -> None:
    while (now := time.time()) < stop_at:
        try:
            await rest.call(ADD_ORDER, IOC_ORDER, request=REQUEST, deadline_s=DEADLINE_S)
        except RateLimited as exc:  # past the deadline: sleep as told, then ask again
            counts["refusals"] += 1
            await asyncio.sleep(min(exc.wait_s, max(0.0, stop_at - now)))
        except VenueRateLimited:
            counts["venue_rejections"] += 1
            await asyncio.sleep(VENUE_BACKOFF_S)


async def _worker(spec: ScaleSpec, line: StartLine) -> dict[str, Any]:
    redis = redis_client(spec.redis_url)
    counts = {"refusals": 0, "venue_rejections": 0}
    limiter = TimedLimiter(
        redis, Keys(spec.namespace), Policy(TIER, LIMITS), RealClock(), limits=LIMITS,
        weights=dict(spec.weights), pairs={name: [PAIR] for name, _ in spec.weights},
        registry=Registry(),
    )  # fmt: skip
    limiter.decisions = []
    permits = GrantLog(limiter, Policy(TIER, LIMITS))
    try:
        async with aiohttp.ClientSession() as session:
            transport = AiohttpTransport(session, timeout_s=10.0)
            clients = rest_clients(transport, spec.rest_url, spec.strategies, permits, DEADLINE_S)
            start_s = await asyncio.to_thread(line.wait)
            await asyncio.sleep(max(0.0, start_s - time.time()))
            stop_at = start_s + spec.duration_s
            try:  # at the end, loops still sleeping for a booked slot are cancelled
                async with asyncio.timeout(spec.duration_s), asyncio.TaskGroup() as group:
                    for rest in clients:
                        group.create_task(_greedy(rest, stop_at, counts))
            except TimeoutError:
                pass
    finally:
        await redis.aclose()
    window = [(t - start_s, ok, rt) for t, ok, rt in limiter.decisions if t < stop_at]
    return {"counts": counts, "decisions": window}


def worker_main(spec: ScaleSpec, line: StartLine) -> dict[str, Any]:
    """One worker process: its greedy strategies for the run's duration."""
    logging.getLogger().setLevel(logging.ERROR)
    return uvloop.run(_worker(spec, line))


async def _redis_stats(url: str) -> dict[str, float]:
    client = redis_client(url)
    try:
        commands = await client.info("commandstats")
        cpu = await client.info("cpu")
    finally:
        await client.aclose()
    scripts = [commands.get(f"cmdstat_{c}", {}) for c in ("evalsha", "eval")]
    return {
        "calls": float(sum(s.get("calls", 0) for s in scripts)),
        "usec": float(sum(s.get("usec", 0) for s in scripts)),
        "cpu_s": float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]),
    }


async def _redis_window(url: str, started: asyncio.Future[float], duration_s: float) -> Any:
    """Redis's script calls, script time and CPU over the window: the deltas."""
    start_s = await started
    await asyncio.sleep(max(0.0, start_s - time.time()))
    before = await _redis_stats(url)
    await asyncio.sleep(max(0.0, start_s + duration_s - time.time()))
    after = await _redis_stats(url)
    return {k: after[k] - before[k] for k in before}


@dataclass(frozen=True, slots=True)
class ScaleRun:
    n: int
    admitted: float
    budget: float
    permits: int  # granted by the script in the window
    script_calls: float
    script_us: float
    cpu_us: float
    rt_us: list[float]
    errors: list[float]  # |share / weight share - 1| per strategy, largest first
    error_floor: float  # the least worst error whole requests allow (share_error_floor)
    steady: float
    refusals: int
    rejections: int

    def figures(self) -> dict[str, float]:
        p = max(1, self.permits)
        return {
            "permits/budget": self.admitted / self.budget,
            "calls/permit": self.script_calls / p,
            "us/call": self.script_us / max(1.0, self.script_calls),
            "us/permit": self.script_us / p,
            "cpu us/permit": self.cpu_us / p,
            "rt p50 ms": percentile(self.rt_us, 0.5) / 1e3 if self.rt_us else float("nan"),
            "rt p99 ms": percentile(self.rt_us, 0.99) / 1e3 if self.rt_us else float("nan"),
            "fair max": self.errors[0] if self.errors else float("nan"),
            "fair p95": percentile(self.errors, 0.95) if self.errors else float("nan"),
            "fair floor": self.error_floor,
            "steady": self.steady,
        }


async def run_scale(n: int, *, redis_url: str, namespace: str, duration_s: float) -> ScaleRun:
    settings = SimSettings(accounts=domain_accounts(n, {"ZUSD": Decimal(20_000)}))
    weights = {f"g{i}": WEIGHTS[i % len(WEIGHTS)] for i in range(n)}
    async with open_simulator(settings) as sim:
        meter = PoolMeter(sim.venue.limits, PAIR)
        greedy = []
        for i in range(n):
            key = sim.venue.keys_of(f"s{i}")[0]
            greedy.append(Greedy(f"g{i}", f"s{i}", key.key, key.secret_b64))
        specs = [
            ScaleSpec(redis_url, sim.rest_url, namespace, duration_s,
                      tuple(greedy[p::PROCESSES]), tuple(weights.items()))
            for p in range(PROCESSES)
        ]  # fmt: skip
        started: asyncio.Future[float] = asyncio.get_running_loop().create_future()

        def on_start(start_s: float) -> None:
            meter.window_s = (start_s, start_s + duration_s)
            started.set_result(start_s)

        async with asyncio.TaskGroup() as group:
            workers = group.create_task(
                run_workers(worker_main, specs, on_start=on_start, timeout_s=duration_s + 120)
            )
            window = group.create_task(_redis_window(redis_url, started, duration_s))
        replies, redis = workers.result(), window.result()
        events = list(meter.events)
        rejections = sum(sim.venue.limits.rejections().values())
    decisions = [d for r in replies for d in r["decisions"]]
    by_account = {f"s{i}": 0.0 for i in range(n)}
    for _, account, cost in events:
        by_account[account] = by_account.get(account, 0.0) + cost
    admitted = {f"g{i}": by_account[f"s{i}"] for i in range(n)}
    return ScaleRun(
        n=n,
        admitted=sum(cost for _, _, cost in events),
        budget=pool_budget(duration_s),
        permits=sum(1 for _, ok, _ in decisions if ok),
        script_calls=redis["calls"],
        script_us=redis["usec"],
        cpu_us=redis["cpu_s"] * 1e6,
        rt_us=[rt * 1e6 for _, _, rt in decisions],
        errors=share_errors(admitted, weights),
        error_floor=share_error_floor(sum(admitted.values()), weights),
        steady=steady_state(events, duration_s),
        refusals=sum(r["counts"]["refusals"] for r in replies),
        rejections=rejections,
    )


async def measure_scale(redis_url: str, floor_s: float, runs: int) -> list[ScaleRun]:
    """`runs` rounds over the sizes, in order one round and reversed the next; each N over
    `scale_window_s(N, floor_s)`."""
    out = []
    for r in range(runs):
        for n in SIZES[::-1] if r % 2 else SIZES:
            out.append(
                await run_scale(n, redis_url=redis_url, namespace=f"s{r}n{n}",
                                duration_s=scale_window_s(n, floor_s))
            )  # fmt: skip
            load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
            print(f"    scale run {r + 1}/{runs}, N = {n} done (load {load})", flush=True)
    return out


COLUMNS: Final = (
    ("permits/budget", "{:.1%}"), ("calls/permit", "{:.2f}"), ("us/call", "{:.1f}"),
    ("us/permit", "{:.1f}"), ("cpu us/permit", "{:.0f}"), ("rt p50 ms", "{:.2f}"),
    ("rt p99 ms", "{:.1f}"), ("fair max", "{:.1%}"), ("fair p95", "{:.1%}"),
    ("fair floor", "{:.1%}"), ("steady", "{:.1%}"),
)  # fmt: skip


def print_scale(runs: Sequence[ScaleRun], floor_s: float) -> list[str]:
    """The table of medians over the runs of each N; the PASS/MISS lines."""
    rounds = len(runs) // len(SIZES)
    print()
    print(
        f"(c) scale: N greedy strategies (weights 1, 2 alternating; each on its own sub-account;"
        f" one order loop each, permit deadline {DEADLINE_S:g} s) over {PROCESSES} processes on"
        f" {PAIR}; medians of {rounds} runs per N (N in order, then reversed); windows "
        + ", ".join(f"{scale_window_s(n, floor_s):g} s" for n in SIZES)
        + f" (at least {floor_s:g} s, and long enough for the lightest share to expect"
        f" {LIGHTEST_PERMITS:g} permits: one request is then 5% of its take)"
    )
    print(
        "    script calls = INFO commandstats evalsha+eval; us = Redis's script time; cpu = Redis"
        " used_cpu_sys+user; rt = the script's round trip in acquire (not the booked sleep);"
        " fair = |share/weight share - 1| over strategies (floor: the least worst error whole"
        " requests allow, a lower bound for any limiter); steady = last 2/3 / pool decay"
    )
    header = f"{'N':>4} " + " ".join(f"{name:>{len(name)}}" for name, _ in COLUMNS)
    header += f" {'refused':>7} {'rejected':>8}"
    print(header)
    print("-" * len(header))
    medians: dict[int, dict[str, float]] = {}
    rejected = 0
    for n in SIZES:
        mine = [r for r in runs if r.n == n]
        figures = [r.figures() for r in mine]
        medians[n] = {name: median([f[name] for f in figures]) for name, _ in COLUMNS}
        refused = sum(r.refusals for r in mine)
        rejected_n = sum(r.rejections for r in mine)
        rejected += rejected_n
        cells = " ".join(f"{fmt.format(medians[n][name]):>{len(name)}}" for name, fmt in COLUMNS)
        print(f"{n:>4} {cells} {refused:>7} {rejected_n:>8}")
    print("    refused / rejected: totals over all runs (limiter refusals past the deadline;")
    print("    the simulator's rate-limit rejections)")
    calls = max(m["calls/permit"] for m in medians.values())
    per_permit = [medians[n]["us/permit"] for n in SIZES]
    flat = max(per_permit) / min(per_permit)
    fair = max(m["fair max"] for m in medians.values())
    fair95 = max(m["fair p95"] for m in medians.values())
    floor = max(m["fair floor"] for m in medians.values())
    steady = min(m["steady"] for m in medians.values())
    return [
        f"scale: script calls per permit <= {TARGET_CALLS:g}: {verdict(calls <= TARGET_CALLS)}"
        f" (worst N {calls:.2f})",
        f"scale: Redis time per permit flat within {TARGET_FLAT_X:g}x from N = {SIZES[0]} to"
        f" {SIZES[-1]}: {verdict(flat <= TARGET_FLAT_X)} (max/min {flat:.2f}x: "
        + ", ".join(f"{x:.1f}" for x in per_permit)
        + " us)",
        f"scale: fairness within +-{TARGET_FAIRNESS:.0%} of weights: "
        f"{verdict(fair <= TARGET_FAIRNESS)} (worst max {fair:.1%}; worst p95 {fair95:.1%};"
        f" whole requests allow no better than {floor:.1%})",
        f"scale: steady-state utilization >= {TARGET_STEADY:.0%} of pool decay: "
        f"{verdict(steady >= TARGET_STEADY)} (worst N {steady:.1%})",
        f"scale: 0 simulator rejections: {verdict(rejected == 0)} ({rejected})",
    ]

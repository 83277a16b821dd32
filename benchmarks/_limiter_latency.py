"""The limiter benchmark's latency section: `Limiter.acquire` against a raw EVALSHA of
`return 1` on the same connection, and against the EVALSHA of acquire.lua itself with the keys
and args the limiter sends (taken from the limiter's own `_script_call`, never re-derived).

One process, one connection (redis.asyncio + hiredis, uvloop). A run interleaves the calls one
by one (the order of the calls reversed every other run), so the host's noise falls on all
rows alike; each run gives each row's p50/p99 and the ratios; the table is the median over the
runs of each figure, never the best run.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import redis.asyncio as aioredis

from benchmarks._common import percentile, verdict
from benchmarks._limiter_meter import LIMITS, PAIR, TIER, median
from orchestrator.clock import RealClock
from orchestrator.metrics import Registry
from orchestrator.ratelimit.policy import Charge, Policy, Scope
from orchestrator.ratelimit.redis import ACQUIRE_LUA, Limiter
from orchestrator.store.connection import redis_client
from orchestrator.store.keys import Keys

TARGET_VS_RAW: Final = 1.5
TARGET_VS_SCRIPT: Final = 1.2
NAMES: Final = tuple(f"st{i}" for i in range(8))
RAW: Final = "raw EVALSHA `return 1` (baseline)"
OURS: Final = "ours: Limiter.acquire, AddOrder shape (account + pool + fair share)"
ONE: Final = "ours: Limiter.acquire, one scope, no fair share"
SCRIPT: Final = "EVALSHA acquire.lua, the same keys/args, no Limiter Python"


@dataclass(frozen=True, slots=True)
class LatencyRun:
    p50_us: dict[str, float]
    p99_us: dict[str, float]
    server_us: float  # Redis's own time per acquire.lua call (INFO commandstats)

    def ratio(self, row: str, base: str) -> float:
        return self.p50_us[row] / self.p50_us[base]


async def _captured_call(
    limiter: Limiter, charges: list[Charge], strategy: str | None
) -> tuple[list[Any], list[Any]]:
    """The exact keys and args the limiter sends for `charges`, from its own `_script_call`."""
    await limiter.acquire(charges, lane="new_risk", deadline_s=5.0, strategy=strategy)
    keys, args = limiter._script_call(charges, "new_risk", 5.0, strategy)  # looks inside on purpose
    return list(keys), list(args)


async def _one_run(
    redis: aioredis.Redis, calls: dict[str, Callable[[], Awaitable[Any]]], samples: int, *,
    reverse: bool, script: tuple[str, list[Any], list[Any]],
) -> LatencyRun:  # fmt: skip
    clock = time.perf_counter
    order = list(calls.items())[::-1] if reverse else list(calls.items())
    timings: dict[str, list[float]] = {name: [] for name in calls}
    warm = samples // 10  # the first tenth warms up
    for i in range(samples + warm):
        for name, call in order:
            t0 = clock()
            await call()
            if i >= warm:
                timings[name].append((clock() - t0) * 1e6)
    sha, keys, args = script
    await redis.config_resetstat()
    for _ in range(samples):
        await redis.evalsha(sha, len(keys), *keys, *args)
    stats = await redis.info("commandstats")
    return LatencyRun(
        {n: percentile(t, 0.5) for n, t in timings.items()},
        {n: percentile(t, 0.99) for n, t in timings.items()},
        float(stats["cmdstat_evalsha"]["usec_per_call"]),
    )


async def measure_latency(redis_url: str, samples: int, runs: int) -> list[LatencyRun]:
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
        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            RAW: lambda: redis.evalsha(trivial_sha, 0),
            OURS: lambda: limiter.acquire(
                add_order, lane="new_risk", deadline_s=5.0, strategy="st0"
            ),
            ONE: lambda: limiter.acquire(one_scope, lane="new_risk", deadline_s=5.0),
            SCRIPT: lambda: redis.evalsha(acquire_sha, len(keys), *keys, *args),
        }
        return [
            await _one_run(
                redis, calls, samples, reverse=n % 2 == 1, script=(acquire_sha, keys, args)
            )
            for n in range(runs)
        ]
    finally:
        await redis.aclose()


def print_latency(runs: Sequence[LatencyRun], samples: int) -> list[str]:
    """The table of medians over the runs; the PASS/MISS lines."""
    print(
        f"(a) acquire latency: one process, one connection; {len(runs)} runs of {samples} calls"
        f" per row, interleaved call by call, order reversed every other run; medians over runs"
    )
    header = f"{'call':<68} {'p50 us':>7} {'p99 us':>7} {'p50 / raw':>9}"
    print(header)
    print("-" * len(header))
    for row in runs[0].p50_us:
        p50 = median([r.p50_us[row] for r in runs])
        p99 = median([r.p99_us[row] for r in runs])
        ratio = median([r.ratio(row, RAW) for r in runs])
        print(f"{row:<68} {p50:7.1f} {p99:7.1f} {ratio:8.2f}x")
    vs_raw = [r.ratio(OURS, RAW) for r in runs]
    vs_script = [r.ratio(OURS, SCRIPT) for r in runs]
    print(
        "    per run, acquire p50 / raw: "
        + " ".join(f"{x:.2f}x" for x in vs_raw)
        + "; / the script's EVALSHA: "
        + " ".join(f"{x:.2f}x" for x in vs_script)
    )
    server = median([r.server_us for r in runs])
    print(f"    Redis's own time per acquire.lua call (INFO commandstats): {server:.1f} us")
    raw_x, script_x = median(vs_raw), median(vs_script)
    return [
        f"latency: acquire p50 <= {TARGET_VS_RAW:g}x raw EVALSHA `return 1`: "
        f"{verdict(raw_x <= TARGET_VS_RAW)} ({raw_x:.2f}x, median of {len(runs)} runs)",
        f"latency: acquire p50 <= {TARGET_VS_SCRIPT:g}x EVALSHA of acquire.lua: "
        f"{verdict(script_x <= TARGET_VS_SCRIPT)} ({script_x:.2f}x, median of {len(runs)} runs)",
    ]

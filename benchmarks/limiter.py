"""Our shared Redis limiter against the baselines and peer libraries, side by side in one run.

    python -m benchmarks.limiter                    # about 90 min: 60 s windows, 5 runs each
    python -m benchmarks.limiter --quick            # about 60 min: 20 s windows (the scale
                                                    # section's N = 50 and 200 keep theirs)
    python -m benchmarks.limiter --only latency,scale --runs 5 --no-plots

Every figure is the median of `--runs` (default 5) runs that alternate between the things
compared (never the best run); the load average is printed at each section's start and end.

(a) Latency (`_limiter_latency.py`): `Limiter.acquire` against a raw EVALSHA of `return 1` on
    the same connection and against the EVALSHA of acquire.lua with the limiter's own keys and
    args; graded p50 <= 1.5x and <= 1.2x.
(b) Utilization (`_limiter_workload.py`): 8 strategies on 8 sub-accounts in 4 worker processes
    (the two heavy ones alone, the light ones three to a process), skewed demand (weights
    4:2:1:1:1:1:1:1, together 4x the pool's budget over the run), all on one pair so the
    domain pool binds, each approach against a fresh simulator for the same window. Columns:
    the pool cost the simulator admitted over the full budget `threshold + decay x T`, over
    the new-risk budget (the threshold less the 10% reserve kept for cancels), and the steady
    state: the cost admitted per second over the last 2/3 of the window over the pool's decay;
    the simulator's rate-limit rejections over all runs. Rows: ours; a static partition (an
    exact Kraken counter per process holding 1/4 of the pool); a per-process sliding window
    (1/4 of the pool each); `limits` (moving window in Redis, shared); `pyrate-limiter` (GCRA in
    Redis, shared); `aiolimiter` (a leaky bucket per process, 1/4 of the pool each).
    docs/images/limiter_utilization.png draws each row's median run over time.
(c) Scale (`_limiter_scale.py`): N = 10, 50, 200 greedy strategies over 4 processes on one pair,
    against the simulator: permits/budget, script calls and Redis time and CPU per permit,
    acquire's round trip, fairness, steady state, rejections; graded against issue 14's targets.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Final

import uvloop

from benchmarks import plotting
from benchmarks._common import verdict, version
from benchmarks._limiter_latency import measure_latency, print_latency
from benchmarks._limiter_meter import (
    ACCOUNT,
    POOL,
    POOL_DECAY_PER_S,
    POOL_THRESHOLD,
    RESERVE,
    STEADY_FROM,
    first_full_s,
    median,
    median_index,
    pool_budget,
)
from benchmarks._limiter_peers import peer_notes
from benchmarks._limiter_plots import UtilizationPanel, draw_utilization
from benchmarks._limiter_scale import measure_scale, print_scale
from benchmarks._limiter_workload import (
    DEMAND_WEIGHTS,
    DEMAND_X_BUDGET,
    NAMES,
    PLACEMENT,
    STRATEGIES,
    Approach,
    RunResult,
    run_workload,
)
from orchestrator.store.connection import redis_client
from orchestrator.store.embedded import EmbeddedRedis, open_embedded_redis

SECTIONS: Final = ("latency", "utilization", "scale")
PLAN: Final[tuple[tuple[Approach, str], ...]] = (
    ("ours", "ours (shared Redis, weights = demand)"),
    ("static", "static partition (1/4 pool per process)"),
    ("window", "per-process sliding window (1/4 each)"),
    ("limits", "limits (moving window, shared Redis)"),
    ("pyrate", "pyrate-limiter (GCRA, shared Redis)"),
    ("aiolimiter", "aiolimiter (leaky bucket, 1/4 each)"),
)
FIGURE_ORDER: Final[tuple[Approach, ...]] = (
    "ours", "static", "window", "aiolimiter", "limits", "pyrate",
)  # fmt: skip


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


async def measure_utilization(
    url: str, duration_s: float, runs: int
) -> dict[Approach, list[RunResult]]:
    """`runs` rounds of every approach, the order rotated by one each round."""
    asked_per_s = DEMAND_X_BUDGET * pool_budget(duration_s) / duration_s
    demand = [asked_per_s * w / sum(DEMAND_WEIGHTS) for w in DEMAND_WEIGHTS]
    weights = dict(zip(NAMES, DEMAND_WEIGHTS, strict=True))
    results: dict[Approach, list[RunResult]] = {a: [] for a, _ in PLAN}
    for r in range(runs):
        order = PLAN[r % len(PLAN) :] + PLAN[: r % len(PLAN)]
        for approach, label in order:
            result = await run_workload(
                approach, label, redis_url=url, namespace=f"b{r}{approach}",
                duration_s=duration_s, demand=demand, tasks=[1] * STRATEGIES,
                weights=weights if approach == "ours" else {},
            )  # fmt: skip
            results[approach].append(result)
        print(f"    utilization round {r + 1}/{runs} done ({load()})", flush=True)
    return results


def print_utilization(results: Mapping[Approach, list[RunResult]], duration_s: float) -> list[str]:
    full, new_risk = pool_budget(duration_s), pool_budget(duration_s, reserve=RESERVE)
    runs = len(results["ours"])
    print()
    print(
        f"(b) pool utilization, {duration_s:g} s windows, medians of {runs} runs per row (the"
        f" order rotated each round): {STRATEGIES} strategies, demand 4:2:1:1:1:1:1:1 (together"
        f" {DEMAND_X_BUDGET:g}x the budget), worker processes {list(map(list, PLACEMENT))}"
    )
    print(
        f"    full budget = {POOL_THRESHOLD:g} + {POOL_DECAY_PER_S:g}/s x {duration_s:g} s ="
        f" {full:.1f}; new-risk budget = {POOL_THRESHOLD * (1 - RESERVE):g} + decay x T ="
        f" {new_risk:.1f} (cancels may use the reserve, so it can pass 100%); steady = cost per s"
        f" admitted over the last {1 - STEADY_FROM:.0%} of the window / the pool's decay"
    )
    header = (
        f"{'approach':<42} {'admitted':>8} {'full':>6} {'new-risk':>8} {'steady':>7} "
        f"{'rejected':>8} {'runs with 0':>11}"
    )
    print(header)
    print("-" * len(header))
    for approach, label in PLAN:
        mine = results[approach]
        rejected = [r.rejected for r in mine]
        print(
            f"{label:<42} {median([r.pool_cost for r in mine]):8.1f} "
            f"{median([r.utilization() for r in mine]):6.1%} "
            f"{median([r.utilization(reserve=RESERVE) for r in mine]):8.1%} "
            f"{median([r.steady_state() for r in mine]):7.1%} {sum(rejected):8d} "
            f"{sum(1 for x in rejected if x == 0):>5}/{len(mine)}"
        )
    print("    rejected: the simulator's rate-limit rejections, summed over the row's runs")
    for approach, label in PLAN:
        scopes: dict[str, int] = {}
        for r in results[approach]:
            for scope, count in r.rejections.items():
                scopes[scope] = scopes.get(scope, 0) + count
        if scopes:
            print(f"      {label}: by venue scope {scopes}")
    full_at = [
        first_full_s(r.events, limit=POOL_THRESHOLD * (1 - RESERVE)) for r in results["ours"]
    ]
    print(
        "    ours' pool first at its new-risk limit (burst spent) at "
        + ", ".join("never" if t is None else f"{t:.1f} s" for t in full_at)
        + f" into the runs; the steady window starts at {duration_s * STEADY_FROM:.1f} s"
    )
    print("    admitted per strategy, st0..st7, medians (an account admits at most", end=" ")
    print(f"{ACCOUNT.threshold + ACCOUNT.decay_per_s * duration_s:.1f}):")
    for approach, label in PLAN:
        cells = " ".join(
            f"{median([r.admitted(n) for r in results[approach]]):6.1f}" for n in NAMES
        )
        print(f"      {label:<42} {cells}")
    for note in peer_notes(pool=POOL, account=ACCOUNT, processes=len(PLACEMENT)):
        print(f"    {note}")
    ours = results["ours"]
    util_full = median([r.utilization() for r in ours])
    steady = median([r.steady_state() for r in ours])
    ours_rejected = sum(r.rejected for r in ours)
    return [
        f"utilization (ours): {util_full:.1%} of the full budget, "
        f"{median([r.utilization(reserve=RESERVE) for r in ours]):.1%} of the new-risk budget,"
        f" steady state {steady:.1%} of the pool's decay",
        f"utilization (ours): 0 simulator rejections: {verdict(ours_rejected == 0)}"
        f" ({ours_rejected})",
    ]


def figure_line(results: Mapping[Approach, list[RunResult]], *, bin_s: float) -> str:
    """Draw (b) over time, each row's median run (by the full-budget column); say where."""
    if not plotting.available():
        return "figure: skipped (matplotlib absent: the `bench` extra)"
    chosen = {a: runs[median_index([r.utilization() for r in runs])] for a, runs in results.items()}
    duration_s = chosen["ours"].duration_s
    panels = [
        UtilizationPanel(r.label, r.utilization(), r.rejected, r.grants)
        for r in (chosen[a] for a in FIGURE_ORDER)
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
    return f"figure: {path.relative_to(plotting.IMAGES_DIR.parent.parent)} (each row's median run)"


def print_header(embedded: EmbeddedRedis, server_version: str, quick: bool) -> None:
    libs = ", ".join(
        f"{name} {version(name)}"
        for name in ("redis", "hiredis", "uvloop", "limits", "pyrate-limiter", "aiolimiter")
    )
    print(
        f"orchestrator limiter benchmark{' (--quick)' if quick else ''}: python "
        f"{sys.version.split()[0]}, {os.cpu_count()} cores, {embedded.backend} {server_version} "
        f"(private, port {embedded.port}); {libs}; {load()}"
    )
    print()


async def _server_info(url: str) -> str:
    client = redis_client(url)
    try:
        info = await client.info("server")
    finally:
        await client.aclose()
    return str(info.get("redis_version", "?"))


async def run(
    *,
    quick: bool,
    samples: int,
    runs: int,
    sections: Sequence[str],
    plots: bool,
    window_s: float | None,
) -> None:
    duration_s = window_s or (20.0 if quick else 60.0)
    verdicts: list[str] = []
    async with open_embedded_redis() as embedded:
        url = embedded.url
        print_header(embedded, await _server_info(url), quick)
        if "latency" in sections:
            latency = await measure_latency(url, samples, runs)
            verdicts += print_latency(latency, samples)
            print(f"    ({load()})")
        if "utilization" in sections:
            utilization = await measure_utilization(url, duration_s, runs)
            verdicts += print_utilization(utilization, duration_s)
            print(f"    ({load()})")
            if plots:
                print(figure_line(utilization, bin_s=0.5 if quick else 1.0))
        if "scale" in sections:
            scale = await measure_scale(url, duration_s, runs)
            verdicts += print_scale(scale, duration_s)
            print(f"    ({load()})")
    print()
    for line in verdicts:
        print(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.limiter", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20 s windows instead of 60 s")
    parser.add_argument("--samples", type=int, default=None, help="calls per latency row a run")
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (their median)")
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated sections of {SECTIONS}"
    )
    parser.add_argument("--window-s", type=float, default=None, help="window length, seconds")
    parser.add_argument("--no-plots", action="store_true", help="print the tables only")
    args = parser.parse_args(argv)
    sections = [s for s in args.only.split(",") if s]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown or args.runs < 1:
        parser.error(f"--only takes {SECTIONS}, got {unknown}; --runs >= 1")
    samples = args.samples or (1_000 if args.quick else 3_000)
    logging.getLogger().setLevel(logging.ERROR)
    uvloop.run(
        run(quick=args.quick, samples=samples, runs=args.runs, sections=sections,
            plots=not args.no_plots, window_s=args.window_s)
    )  # fmt: skip
    return 0  # a measurement: a MISS is reported, not an error


if __name__ == "__main__":
    sys.exit(main())

"""How many strategies one service process carries: N market makers on one event loop.

    python -m benchmarks.strategies_per_process            # N = 1, 10, 50, 100, 200; 20 s each
    python -m benchmarks.strategies_per_process --quick    # N = 1, 10, 50; 5 s each

For each N: the real service (`run_service` on uvloop, in this process) runs N copies of
strategies.market_maker, each on a sub-account of its own, spread over the simulator's four
pairs, with order entry over each account's private WebSocket, its dead man's switch and the
status reporter on, as in production; Redis is a redis-server of the benchmark's own on a free
loopback port; the venue is the simulator in a child process (its CPU is not this process's),
its books stepping every `--step-s` on every pair. After every strategy quotes and a warm-up,
a steady-state window measures in this process:
- event-loop lag p50/p99/max (`orchestrator.runtime.loop_lag`: how late the loop ran a task
  that was due, to the microsecond);
- tick-to-order p50/p99 (benchmarks/_spp_probe.py: from the hub's book change to the order or
  amend frame handed to the private socket, limiter permit included);
- CPU of this process (user + sys seconds per wall second: 100 % is one core);
- what the venue saw: orders and amends received in the window, strategies that traded, and its
  rate-limit rejections over the whole run (must be 0).

The idle row is the lag monitor alone on this loop: the floor of the lag and the monitor's own
CPU (its hops keep the loop turning for ~1.5 ms per sample), which every other row includes.
Goal: the largest N whose lag p99 stays under 1 ms is at least 100.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import uvloop

from benchmarks import plotting
from benchmarks._common import verdict
from benchmarks._spp_run import RunResult, RunSettings, idle_baseline, measure
from orchestrator.store.embedded import open_embedded_redis

FULL_NS: Final = (1, 10, 50, 100, 200)
QUICK_NS: Final = (1, 10, 50)
LAG_GOAL_S: Final = 0.001
GOAL_N: Final = 100
FIGURE: Final = "loop_lag_vs_strategies"


def _ms(value_s: float | None) -> str:
    return f"{value_s * 1e3:8.3f}" if value_s is not None else f"{'-':>8}"


def print_table(idle: RunResult, rows: Sequence[RunResult]) -> None:
    header = (
        f"{'N':>4} {'lag p50':>8} {'lag p99':>8} {'lag max':>8} {'t2o p50':>8} {'t2o p99':>8} "
        f"{'cpu':>6} {'quoting':>8} {'traded':>7} {'frames':>7} {'orders':>7} {'amends':>7} "
        f"{'rejects':>7} {'exit':>4}"
    )
    print("lag, tick-to-order (t2o): ms; cpu: % of one core; frames: order+amend frames sent")
    print(header)
    print("-" * len(header))
    print(f"{'idle':>4} {_ms(idle.lag_p50_s)} {_ms(idle.lag_p99_s)} {_ms(idle.lag_max_s)} "
          f"{_ms(None)} {_ms(None)} {idle.stats.cpu_per_s * 100:5.1f}%")  # fmt: skip
    for r in rows:
        print(
            f"{r.n:4d} {_ms(r.lag_p50_s)} {_ms(r.lag_p99_s)} {_ms(r.lag_max_s)} "
            f"{_ms(r.tick_p50_s)} {_ms(r.tick_p99_s)} {r.stats.cpu_per_s * 100:5.1f}% "
            f"{r.quoting:4d}/{r.n:<3d} {r.traded:3d}/{r.n:<3d} {r.frames:7d} {r.orders:7d} "
            f"{r.amends:7d} {r.rejections:7d} {r.exit_code:4d}"
        )
    print(f"samples per row: lag {min(r.lag_samples for r in rows)}-"
          f"{max(r.lag_samples for r in rows)}, tick-to-order "
          f"{min(r.tick_samples for r in rows)}-{max(r.tick_samples for r in rows)}; "
          f"coarse sleeps past due (their samples may hold timer lateness too) "
          f"{sum(r.late_wakes for r in rows)}")  # fmt: skip


def print_diagnostics(idle: RunResult, rows: Sequence[RunResult]) -> None:
    """What else happened in each window (benchmarks/_spp_diag.py)."""
    print("in the same windows: GC pauses of this process, its involuntary context switches "
          "(the OS ran something else), the simulator's CPU, the machine's load, and the "
          "limiter's permits (mean wait; share waiting > 0.1 s: the pools were full)")  # fmt: skip
    header = f"{'N':>4} {'gc n':>5} {'gc max ms':>9} {'gc ms/s':>7} {'switch/s':>8} " \
             f"{'sim cpu':>7} {'load':>5} {'permits':>7} {'wait ms':>8} {'>0.1 s':>6}"  # fmt: skip
    print(header)
    print("-" * len(header))
    for r in (idle, *rows):
        st = r.stats
        sim = f"{st.sim_cpu_per_s * 100:6.1f}%" if st.sim_cpu_per_s is not None else f"{'-':>7}"
        waits = r.permits
        slow = f"{waits.over_100ms / waits.count:6.0%}" if waits.count else f"{'-':>6}"
        print(f"{r.n if r.n else 'idle':>4} {st.gc_pauses:5d} {st.gc_max_s * 1e3:9.2f} "
              f"{st.gc_total_s / st.wall_s * 1e3:7.2f} {st.switches_per_s:8.1f} {sim} "
              f"{st.load:5.2f} {waits.count:7d} {waits.mean_s * 1e3:8.1f} {slow}")  # fmt: skip


def largest_within_goal(rows: Sequence[RunResult]) -> int | None:
    """The largest N of the runs (in increasing N) before the first whose lag p99 misses."""
    best = None
    for r in sorted(rows, key=lambda r: r.n):
        if r.lag_p99_s >= LAG_GOAL_S:
            break
        best = r.n
    return best


def draw(idle: RunResult, rows: Sequence[RunResult]) -> Path:
    fig = plotting.new_figure(width_in=10.0, height_in=4.2, ncols=2)
    lag_ax, cpu_ax = fig.axes
    ns = [r.n for r in rows]
    lag_ax.plot(ns, [r.lag_p50_s * 1e3 for r in rows], "o-", label="loop lag p50")
    lag_ax.plot(ns, [r.lag_p99_s * 1e3 for r in rows], "s-", label="loop lag p99")
    lag_ax.axhline(LAG_GOAL_S * 1e3, color="grey", linestyle="--", label="goal: p99 < 1 ms")
    lag_ax.axhline(idle.lag_p99_s * 1e3, color="grey", linestyle=":", label="idle loop p99")
    lag_ax.set_xlabel("market makers in the process")
    lag_ax.set_ylabel("event-loop lag (ms)")
    lag_ax.set_yscale("log")
    lag_ax.legend(fontsize="small")
    lag_ax.set_title("Event-loop lag")
    cpu_ax.plot(ns, [r.stats.cpu_per_s * 100 for r in rows], "o-", color="tab:red", label="service")
    cpu_ax.axhline(
        idle.stats.cpu_per_s * 100, color="grey", linestyle=":", label="lag monitor alone"
    )
    cpu_ax.set_xlabel("market makers in the process")
    cpu_ax.set_ylabel("CPU (% of one core)")
    cpu_ax.set_ylim(bottom=0)
    cpu_ax.legend(fontsize="small")
    cpu_ax.set_title("CPU of the service process")
    return plotting.save(fig, FIGURE)


async def _run(ns: Sequence[int], run: RunSettings, workdir: Path) -> list[RunResult]:
    rows = []
    async with open_embedded_redis() as redis:  # a redis-server child on a free loopback port
        for n in ns:
            print(f"N={n}: starting", flush=True)
            result = await measure(n, run, redis_url=redis.url, workdir=workdir)
            print(f"N={n}: lag p99 {result.lag_p99_s * 1e3:.3f} ms, cpu "
                  f"{result.stats.cpu_per_s * 100:.1f}%", flush=True)  # fmt: skip
            rows.append(result)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.strategies_per_process",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="N = 1, 10, 50; 5 s windows")
    parser.add_argument("--ns", type=int, nargs="+", default=None, help="the Ns to run")
    parser.add_argument("--window-s", type=float, default=None, help="steady-state window")
    parser.add_argument("--warmup-s", type=float, default=None, help="after all quote")
    parser.add_argument("--step-s", type=float, default=0.25, help="the markets' step")
    parser.add_argument("--lag-interval-s", type=float, default=0.05, help="lag sampling")
    parser.add_argument("--no-plots", action="store_true", help="print the table only")
    parser.add_argument("--keep", action="store_true", help="keep the runs' logs, print where")
    args = parser.parse_args(argv)
    if shutil.which("redis-server") is None:
        print("redis-server is not installed: this benchmark needs a real one", file=sys.stderr)
        return 1
    ns = args.ns or (QUICK_NS if args.quick else FULL_NS)
    run = RunSettings(
        window_s=args.window_s or (5.0 if args.quick else 20.0),
        warmup_s=args.warmup_s if args.warmup_s is not None else (2.0 if args.quick else 5.0),
        step_s=args.step_s,
        lag_interval_s=args.lag_interval_s,
    )
    workdir = Path(tempfile.mkdtemp(prefix="orch-spp-"))
    try:
        idle = uvloop.run(idle_baseline(run.window_s, run.lag_interval_s))
        rows = uvloop.run(_run(ns, run, workdir))
    finally:
        if args.keep:
            print(f"logs, status lines and secrets of the runs: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"strategies per process: {len(ns)} runs, window {run.window_s:g} s after "
          f"{run.warmup_s:g} s of warm-up, markets step {run.step_s:g} s")  # fmt: skip
    print_table(idle, rows)
    print_diagnostics(idle, rows)
    best = largest_within_goal(rows)
    judged = max(ns) >= GOAL_N
    goal_text = verdict(best is not None and best >= GOAL_N)
    if not judged:
        goal_text = f"not judged, the largest N run is {max(ns)}"
    print(f"largest N with loop lag p99 < {LAG_GOAL_S * 1e3:g} ms: {best or 'none'} "
          f"(goal >= {GOAL_N}: {goal_text})")  # fmt: skip
    failed = [r.n for r in rows if not r.ok]
    if failed:
        print(
            f"FAILED at N={failed}: venue rejections, a strategy that never traded, or an "
            "unclean stop (see the table)"
        )
    if not args.no_plots and plotting.available():
        print(f"figure: {draw(idle, rows)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""The tick-to-order report: the table, the goals, the checks that the path was the one claimed,
and the figure."""

from __future__ import annotations

import os
import statistics
import sys
from dataclasses import dataclass
from typing import Final

from benchmarks import plotting
from benchmarks._common import percentile, verdict, version
from benchmarks._tick_client import FLOOR, VARIANTS, Variant
from benchmarks._tick_venue import TickResult

GOAL_P50_US: Final = 300.0
GOAL_P99_US: Final = 1000.0
GOAL_RATIO: Final = 1.5
FAST, BASELINE = VARIANTS


@dataclass(frozen=True, slots=True)
class Round:
    variant: Variant
    index: int
    result: TickResult
    report: dict[str, float]  # the client's counters (`_tick_client._report`, `_tick_floor`)

    @property
    def latencies_us(self) -> list[float]:
        return [ns / 1000 for ns in self.result.latencies_ns]


@dataclass(frozen=True, slots=True)
class Summary:
    variant: Variant
    ticks: int
    missed: int
    p50_us: float  # median over rounds of the round's p50
    p99_us: float
    round_p50s_us: list[float]
    max_us: float
    permit_us: float | None  # mean time of one Limiter permit (its EVALSHA round trip)
    loop_lag_p99_us: float | None  # the service's loop-lag sampler, median over rounds


def summarize(rounds: list[Round], variant: Variant) -> Summary:
    mine = [r for r in rounds if r.variant == variant]
    p50s = [percentile(r.latencies_us, 0.50) for r in mine]
    permits = sum(r.report.get("permit_count", 0.0) for r in mine)
    permit_s = sum(r.report.get("permit_s_sum", 0.0) for r in mine)
    return Summary(
        variant=variant,
        ticks=sum(len(r.result.latencies_ns) for r in mine),
        missed=sum(r.result.missed for r in mine),
        p50_us=statistics.median(p50s),
        p99_us=statistics.median(percentile(r.latencies_us, 0.99) for r in mine),
        round_p50s_us=p50s,
        max_us=max(max(r.latencies_us) for r in mine),
        permit_us=permit_s / permits * 1e6 if permits else None,
        loop_lag_p99_us=statistics.median(lags) * 1e6 if (lags := _lags(mine)) else None,
    )


def _lags(rounds: list[Round]) -> list[float]:
    return [r.report["loop_lag_p99_s"] for r in rounds if "loop_lag_p99_s" in r.report]


def path_problems(rounds: list[Round], warmup: int) -> list[str]:
    """What would make the numbers not those of the claimed path; empty for a valid run."""
    problems = []
    for r in rounds:
        rep, res = r.report, r.result
        where = f"round {r.index} {r.variant}"
        ticks = warmup + len(res.latencies_ns) + res.missed
        if res.missed or res.stray:
            problems.append(f"{where}: {res.missed} ticks without their order, {res.stray} stray")
        if r.variant == FLOOR:
            continue
        if rep["amends_ok"] < ticks or rep["rest_calls"] != 0:
            problems.append(
                f"{where}: {rep['amends_ok']:.0f} amends ok for {ticks} ticks, "
                f"{rep['rest_calls']:.0f} calls over REST"
            )
        if rep["permits_local"] or rep["refusals"] or rep["permits_redis"] < ticks:
            problems.append(
                f"{where}: permits {rep['permits_redis']:.0f} from Redis, "
                f"{rep['permits_local']:.0f} local, {rep['refusals']:.0f} refused"
            )
        if rep["book_mismatches"] or rep["reconnects"] or rep["worker_failed"]:
            problems.append(
                f"{where}: book mismatches {rep['book_mismatches']:.0f}, "
                f"reconnects {rep['reconnects']:.0f}, failed {rep['worker_failed']:.0f}"
            )
    return problems


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min), {os.cpu_count()} cores"


def print_header(redis: str, *, rounds: int, samples: int, warmup: int, gap_ms: str) -> None:
    print("tick-to-order: a `book` frame written by the venue -> the order frame it reads back")
    print("  path (product code, one client process): websockets -> KrakenWs + BookStore (decode,")
    print("    CRC32) -> MarketHub -> StrategyWorker -> strategy.on_book -> risk.check_amend ->")
    print(f"    OrderManager -> WsOrderEntry.amend -> Limiter permit (EVALSHA, {redis}) ->")
    print("    encode -> websockets send; one amend_order per tick, every permit granted at once")
    print(
        f"  venue: a process of its own (simulator REST, WS v2 book and order servers, uvloop); "
        f"{rounds} rounds x {samples} ticks a variant after {warmup} warm-up ticks, one tick at "
        f"a time ({gap_ms} ms after the last order), variants alternating, a fresh client "
        f"process each"
    )
    print(
        f"  python {sys.version.split()[0]}, uvloop {version('uvloop')}, msgspec "
        f"{version('msgspec')}, websockets {version('websockets')}, redis {version('redis')}; "
        f"{_load()} at the start"
    )


def _row(s: Summary) -> str:
    permit = "-" if s.permit_us is None else f"{s.permit_us:.1f}"
    lag = "-" if s.loop_lag_p99_us is None else f"{s.loop_lag_p99_us:.0f}"
    per_round = " ".join(f"{v:.0f}" for v in s.round_p50s_us)
    return (
        f"  {s.variant:<15} {s.ticks:6d} {s.missed:6d} {s.p50_us:8.1f} {s.p99_us:8.1f} "
        f"{s.max_us:8.0f} {permit:>9} {lag:>8}  {per_round}"
    )


def print_report(rounds: list[Round], warmup: int) -> list[str]:
    """The table and the goals; the path problems found (none for a valid run)."""
    fast, base = summarize(rounds, FAST), summarize(rounds, BASELINE)
    floor = summarize(rounds, FLOOR) if any(r.variant == FLOOR for r in rounds) else None
    header = (
        f"  {'variant':<15} {'ticks':>6} {'missed':>6} {'p50 us':>8} {'p99 us':>8} "
        f"{'max us':>8} {'permit us':>9} {'lag p99':>8}  per-round p50 us"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    for s in (fast, base) if floor is None else (fast, base, floor):
        print(_row(s))
    print("  p50, p99: medians over the rounds; permit: mean time of one Limiter permit (EVALSHA);")
    print("  lag p99: the client's event-loop lag (the service's sampler), us, median over rounds")
    if floor is not None:
        print(
            f"  floor: no product code, the same hops (websockets, msgspec, one EVALSHA `return "
            f"1`, uvloop); above it at p50: {FAST} {fast.p50_us - floor.p50_us:.0f} us, "
            f"{BASELINE} {base.p50_us - floor.p50_us:.0f} us"
        )
    ratio_p50, ratio_p99 = base.p50_us / fast.p50_us, base.p99_us / fast.p99_us
    print(f"  goals ({FAST}, the permit in the path):")
    print(
        f"    p50 <= {GOAL_P50_US:g} us: {verdict(fast.p50_us <= GOAL_P50_US)} ({fast.p50_us:.1f})"
    )
    print(
        f"    p99 <= {GOAL_P99_US:g} us: {verdict(fast.p99_us <= GOAL_P99_US)} ({fast.p99_us:.1f})"
    )
    print(
        f"    {BASELINE} / {FAST} at p50 >= {GOAL_RATIO:g}x: "
        f"{verdict(ratio_p50 >= GOAL_RATIO)} ({ratio_p50:.2f}x; p99 {ratio_p99:.2f}x)"
    )
    problems = path_problems(rounds, warmup)
    print(f"  path checks: {'ok' if not problems else 'FAILED'}; {_load()} at the end")
    for problem in problems:
        print(f"    {problem}")
    return problems


def figure_line(rounds: list[Round], redis: str) -> str:
    if not plotting.available():
        return "  figure: skipped (matplotlib absent: the `bench` extra)"
    from benchmarks._tick_figure import draw_latencies  # noqa: PLC0415 - draws only when asked

    server = redis.partition(",")[0]
    shown = [v for v in (*VARIANTS, FLOOR) if any(r.variant == v for r in rounds)]
    latencies: dict[str, list[float]] = {}
    for variant in shown:
        s = summarize(rounds, variant)
        label = f"{variant}: p50 {s.p50_us:.0f} us, p99 {s.p99_us:.0f} us"
        latencies[label] = [x for r in rounds if r.variant == variant for x in r.latencies_us]
    path = draw_latencies(
        latencies,
        goals_us={
            f"p50 goal {GOAL_P50_US:g} us": GOAL_P50_US,
            f"p99 goal {GOAL_P99_US:g} us": GOAL_P99_US,
        },
        title=f"Tick to order through the product's path, Limiter permit on {server}"
        f" (floor: the same hops, no product code); every measured tick of every round",
    )
    return f"  figure: {path.relative_to(plotting.IMAGES_DIR.parent.parent)}"

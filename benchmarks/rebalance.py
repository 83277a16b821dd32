"""Rebalancing plan time: 100 sub-accounts x 20 assets, from balances to the list of transfers.

    python -m benchmarks.rebalance            # 5 rounds x 200 plans a variant
    python -m benchmarks.rebalance --quick    # 2 rounds x 30

Each round draws a fresh domain (seeded): a master and 100 sub-accounts holding 20 assets, a band
for every (sub-account, asset) pair, half of the assets' targets weights of the domain total and
half amounts, a tenth of them ramping, floors; balances drawn around the targets (0.5 x to 1.6 x,
up to a fifth of each held by orders), so many pairs are out of band; caps on some assets
(minimum size, per transfer, per day with some already moved today), 2% of the pairs in flight,
assets rounded to their decimals. The master funds the deficits from above its floor.

Two variants alternate plan by plan, so both meet the same noise:
- `cycle`: what the rebalancer does per cycle once balances are read: `portfolio_from` (the
  reader's `Balance`s), `resolve_bands` (weights, fractions, ramps) and `plan_transfers`;
- `plan`: `plan_transfers` alone, on the same portfolio and bands.
The table gives, per variant, the median over rounds of each round's p50 and p99, of wall time
and of the process's CPU time (when the two agree, a slow tail is not a wait for a core: on a
virtual machine, time the host takes from it still counts as ours). The goal,
< 10 ms, is graded on `cycle` (it contains `plan`). Every plan is checked (hub on one side, one
transfer per pair at most, never more than the sender's available): a wrong plan is an error,
a MISS only a measurement.
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

from benchmarks._common import percentile, verdict, version
from orchestrator.config import AssetTransferLimits, RampStep, RebalanceTarget
from orchestrator.exchange.protocol import Balance
from orchestrator.rebalancer.plan import Band, plan_transfers, resolve_bands
from orchestrator.rebalancer.portfolio import Portfolio, portfolio_from
from orchestrator.rebalancer.transfers import PlannedTransfer

GOAL_MS: Final = 10.0
HUB: Final = "master"
SUBS: Final = 100
ASSETS: Final = (
    "ZUSD", "ZEUR", "XXBT", "XETH", "SOL", "DOT", "ADA", "XXRP", "XLTC", "LINK",
    "ATOM", "AVAX", "UNI", "XXLM", "ALGO", "FIL", "NEAR", "TRX", "XXDG", "USDT",
)  # fmt: skip
FIAT: Final = frozenset({"ZUSD", "ZEUR", "USDT"})


@dataclass(frozen=True)
class Domain:
    balances: dict[str, dict[str, Balance]]
    targets: list[RebalanceTarget]
    limits: dict[str, AssetTransferLimits]
    in_flight: frozenset[tuple[str, str]]
    moved_today: dict[str, Decimal]
    elapsed_s: dict[tuple[str, str], float]
    decimals: dict[str, int]


def _amount(rng: random.Random, mean: float, places: int) -> Decimal:
    return Decimal(f"{mean * rng.uniform(0.5, 1.6):.{places}f}")


def _weights(rng: random.Random, n: int) -> list[Decimal]:
    """n weights on a 1e-6 grid summing to exactly 1."""
    raw = [rng.randint(1, 1000) for _ in range(n)]
    scale = sum(raw)
    weights = [Decimal(r * 10**6 // scale) / 10**6 for r in raw]
    weights[-1] += 1 - sum(weights)
    return weights


def make_domain(seed: int, subs: int = SUBS) -> Domain:
    rng = random.Random(seed)
    names = [f"sub-{i:03d}" for i in range(subs)]
    targets: list[RebalanceTarget] = []
    balances: dict[str, dict[str, Balance]] = {name: {} for name in [HUB, *names]}
    decimals = {asset: 4 if asset in FIAT else 8 for asset in ASSETS}
    for index, asset in enumerate(ASSETS):
        unit = 10 ** rng.uniform(0, 4)  # a typical holding, in units of the asset
        places = decimals[asset]
        balances[HUB][asset] = Balance(asset=asset, total=Decimal(f"{unit * subs:.{places}f}"),
                                       held=Decimal(0))  # fmt: skip
        weights = _weights(rng, subs) if index % 2 else None
        for i, name in enumerate(names):
            ramp = []
            if rng.random() < 0.1:
                ramp = [RampStep(after_s=0, fraction=Decimal("0.25")),
                        RampStep(after_s=3600, fraction=Decimal(1))]  # fmt: skip
            band = Decimal(rng.choice(("0.1", "0.2", "0.3")))
            floor = Decimal(f"{unit * 0.05:.{places}f}") if rng.random() < 0.3 else Decimal(0)
            if weights is None:
                target = Decimal(f"{unit:.{places}f}")
                targets.append(RebalanceTarget(account=name, asset=asset, target=target, band=band,
                                               floor=floor, ramp=ramp))  # fmt: skip
                mean = unit
            else:
                targets.append(RebalanceTarget(account=name, asset=asset, weight=weights[i],
                                               band=band, ramp=ramp))  # fmt: skip
                mean = float(weights[i]) * unit * subs / 2
            total = _amount(rng, mean, places)
            held = Decimal(f"{float(total) * rng.uniform(0, 0.2):.{places}f}")
            balances[name][asset] = Balance(asset=asset, total=total, held=held)
    limits = {}
    for asset in ASSETS[::3]:
        unit = float(balances[HUB][asset].total) / subs
        limits[asset] = AssetTransferLimits(
            asset=asset,
            min_transfer=Decimal(f"{unit * 0.01:.4f}"),
            max_per_transfer=Decimal(f"{unit * 0.5:.4f}"),
            max_per_day=Decimal(f"{unit * subs * 0.3:.4f}"),
        )
    pairs = [(name, asset) for name in names for asset in ASSETS]
    in_flight = frozenset(rng.sample(pairs, len(pairs) // 50))
    moved = {a: limits[a].max_per_day or Decimal(0) for a in rng.sample(sorted(limits), 2)}
    elapsed = {pair: rng.choice((0.0, 7200.0)) for pair in pairs}
    return Domain(balances, targets, limits, in_flight, {a: m / 3 for a, m in moved.items()},
                  elapsed, decimals)  # fmt: skip


def _plan(domain: Domain, portfolio: Portfolio, bands: list[Band]) -> list[PlannedTransfer]:
    return plan_transfers(portfolio, bands, hub=HUB, limits=domain.limits, senders=None,
                          receivers=None, in_flight=domain.in_flight,
                          moved_today=domain.moved_today, decimals=domain.decimals)  # fmt: skip


def cycle(domain: Domain) -> list[PlannedTransfer]:
    portfolio = portfolio_from(domain.balances)
    bands = resolve_bands(domain.targets, portfolio, elapsed_s=domain.elapsed_s)
    return _plan(domain, portfolio, bands)


def check(domain: Domain, plan: list[PlannedTransfer], portfolio: Portfolio) -> list[str]:
    """What would make the timing meaningless: a plan that is wrong or empty."""
    problems = []
    if not plan:
        problems.append("the plan is empty: nothing was out of band")
    pairs = Counter((m.target if m.source == HUB else m.source, m.asset) for m in plan)
    for move in plan:
        if (move.source == HUB) == (move.target == HUB):
            problems.append(f"hub not on exactly one side: {move}")
        if move.amount > portfolio.available(move.source, move.asset):
            problems.append(f"more than available: {move}")
    if pairs and max(pairs.values()) > 1:
        problems.append("two transfers for one (account, asset)")
    if any(pair in domain.in_flight for pair in pairs):
        problems.append("a transfer for a pair in flight")
    return problems


@dataclass
class Summary:
    """Per round: p50 and p99 of wall time, p50 and p99 of the process's CPU time."""

    variant: str
    p50s_ms: list[float] = field(default_factory=list)
    p99s_ms: list[float] = field(default_factory=list)
    cpu_p50s_ms: list[float] = field(default_factory=list)
    cpu_p99s_ms: list[float] = field(default_factory=list)

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.p50s_ms)

    @property
    def p99_ms(self) -> float:
        return statistics.median(self.p99s_ms)

    @property
    def cpu_ms(self) -> tuple[float, float]:
        return statistics.median(self.cpu_p50s_ms), statistics.median(self.cpu_p99s_ms)


def measure(rounds: int, runs: int, subs: int) -> tuple[dict[str, Summary], list[str], str, float]:
    """Summaries by variant, problems, the first domain's shape, and the share of a core the
    process had while timing (CPU time / wall time: below 1 when the host was busy)."""
    summaries = {v: Summary(v) for v in ("cycle", "plan")}
    wall_ns = cpu_ns = 0
    problems: list[str] = []
    shape = ""
    for round_index in range(rounds):
        domain = make_domain(seed=round_index + 1, subs=subs)
        portfolio = portfolio_from(domain.balances)
        bands = resolve_bands(domain.targets, portfolio, elapsed_s=domain.elapsed_s)
        plan = cycle(domain)
        problems += check(domain, plan, portfolio)
        if round_index == 0:
            out = sum(not b.low <= portfolio.available(b.account, b.asset) <= b.high for b in bands)
            shape = f"round 1: {len(bands)} bands, {out} out of band, {len(plan)} transfers"
        variants: dict[str, Callable[[], list[PlannedTransfer]]] = {
            "cycle": functools.partial(cycle, domain),
            "plan": functools.partial(_plan, domain, portfolio, bands),
        }
        samples: dict[str, list[float]] = {v: [] for v in variants}
        cpu_samples: dict[str, list[float]] = {v: [] for v in variants}
        order = list(variants)
        gc.collect()
        for run in range(runs + 3):  # the first 3 warm up
            for name in order if run % 2 == 0 else order[::-1]:
                start_ns, start_cpu_ns = time.perf_counter_ns(), time.process_time_ns()
                variants[name]()
                took_ns = time.perf_counter_ns() - start_ns
                took_cpu_ns = time.process_time_ns() - start_cpu_ns
                if run >= 3:
                    samples[name].append(took_ns / 1e6)
                    cpu_samples[name].append(took_cpu_ns / 1e6)
                    wall_ns, cpu_ns = wall_ns + took_ns, cpu_ns + took_cpu_ns
        for name, values in samples.items():
            summary = summaries[name]
            summary.p50s_ms.append(percentile(values, 0.5))
            summary.p99s_ms.append(percentile(values, 0.99))
            summary.cpu_p50s_ms.append(percentile(cpu_samples[name], 0.5))
            summary.cpu_p99s_ms.append(percentile(cpu_samples[name], 0.99))
    return summaries, problems, shape, cpu_ns / max(wall_ns, 1)


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min), {os.cpu_count()} cores"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.rebalance",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="2 rounds x 30 plans (smoke)")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--runs", type=int, default=None, help="timed plans per round and variant")
    parser.add_argument("--subs", type=int, default=SUBS, help="sub-accounts (default 100)")
    parser.add_argument("--no-plots", action="store_true", help="accepted; draws nothing anyway")
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 5)
    runs = args.runs or (30 if args.quick else 200)
    print(f"rebalance: plan time, {args.subs} sub-accounts x {len(ASSETS)} assets, from balances "
          "to transfers")  # fmt: skip
    print(f"  {rounds} rounds (a fresh domain each) x {runs} plans a variant, variants "
          f"alternating; python {sys.version.split()[0]}, msgspec {version('msgspec')}; "
          f"{_load()} at the start", flush=True)  # fmt: skip
    summaries, problems, shape, core_share = measure(rounds, runs, args.subs)
    print(f"  {shape}; the process had {core_share:.0%} of a core while timed (CPU / wall)")
    print(f"  {'variant':<8} {'p50 ms':>8} {'p99 ms':>8} {'cpu p50':>8} {'cpu p99':>8}  "
          "per-round p50s")  # fmt: skip
    for s in summaries.values():
        per_round = " ".join(f"{v:.2f}" for v in s.p50s_ms)
        cpu_p50, cpu_p99 = s.cpu_ms
        print(f"  {s.variant:<8} {s.p50_ms:8.2f} {s.p99_ms:8.2f} {cpu_p50:8.2f} {cpu_p99:8.2f}  "
              f"{per_round}")  # fmt: skip
    whole = summaries["cycle"]
    print(f"  goal: a cycle's plan < {GOAL_MS:g} ms: p50 {verdict(whole.p50_ms < GOAL_MS)} "
          f"({whole.p50_ms:.2f}), p99 {verdict(whole.p99_ms < GOAL_MS)} "
          f"({whole.p99_ms:.2f})")  # fmt: skip
    for problem in dict.fromkeys(problems):
        print(f"  PROBLEM: {problem}")
    return 1 if problems else 0  # a MISS is a measurement; a wrong plan is an error


if __name__ == "__main__":
    sys.exit(main())

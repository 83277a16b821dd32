"""Several processes hammer shared scopes through one real redis-server; replaying Kraken's
counter over the permits they actually used must never exceed any threshold.

Each worker records the wall-clock moment it got each permit (after sleeping for its reserved
slot) and the costs; the parent merges them per scope and replays the venue's rule: the level
decays linearly and a request is refused if level + cost > threshold.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import random
import time
from pathlib import Path

import redis.asyncio as aioredis
import uvloop

from orchestrator.clock import RealClock
from orchestrator.config import LimitsConfig
from orchestrator.errors import RateLimited
from orchestrator.ratelimit.policy import Charge, Policy, Scope
from orchestrator.ratelimit.redis import Limiter
from orchestrator.store.keys import Keys

PROCESSES = 4
RUN_S = 2.0
SHARED = Scope("domain:TEST", 30.0, 40.0)  # small and fast, so 2 s see thousands of decisions
ACCOUNTS = [Scope(f"trade:p{i}:TEST", 12.0, 16.0) for i in range(PROCESSES)]
# Timers may fire up to ~1 ms early on some loops; allow that much decay, nothing more.
SLACK_S = 0.002


def _worker(url: str, namespace: str, index: int, out_path: str) -> None:
    async def main() -> dict[str, object]:
        client = aioredis.Redis.from_url(url)
        limits = LimitsConfig(risk_reserve_fraction=0.1)
        limiter = Limiter(
            client, Keys(namespace), Policy("intermediate", limits), RealClock(), limits=limits
        )
        rng = random.Random(index)
        grants: list[tuple[float, str, float]] = []
        refused = 0

        async def one_caller() -> None:
            nonlocal refused
            deadline = time.monotonic() + RUN_S
            while time.monotonic() < deadline:
                cost = rng.choice([1.0, 1.0, 2.0, 4.0])
                lane = "risk_reducing" if rng.random() < 0.2 else "new_risk"
                charges = [Charge(ACCOUNTS[index], cost), Charge(SHARED, cost)]
                try:
                    await limiter.acquire(charges, lane=lane, deadline_s=0.5)  # type: ignore[arg-type]
                except RateLimited:
                    refused += 1
                    continue
                sent = time.time()
                grants.extend([(sent, ACCOUNTS[index].name, cost), (sent, SHARED.name, cost)])

        await asyncio.gather(*(one_caller() for _ in range(8)))
        await client.aclose()
        return {"grants": grants, "refused": refused}

    Path(out_path).write_text(json.dumps(uvloop.run(main())))


def replay_max_excess(events: list[tuple[float, float]], scope: Scope) -> float:
    """Largest (level + cost - threshold) Kraken's counter would see, with SLACK_S of decay."""
    level, last_s, worst = 0.0, None, float("-inf")
    for sent_s, cost in sorted(events):
        if last_s is not None:
            level = max(0.0, level - scope.decay_per_s * (sent_s - last_s + SLACK_S))
        level += cost
        worst = max(worst, level - scope.threshold)
        last_s = sent_s
    return worst


def test_processes_never_exceed_any_counter(redis_server: str, tmp_path: Path) -> None:
    namespace = f"mp{random.randrange(10**9)}"
    ctx = multiprocessing.get_context("spawn")
    outs = [tmp_path / f"w{i}.json" for i in range(PROCESSES)]
    procs = [
        ctx.Process(target=_worker, args=(redis_server, namespace, i, str(outs[i])))
        for i in range(PROCESSES)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    by_scope: dict[str, list[tuple[float, float]]] = {}
    total = 0
    for out in outs:
        data = json.loads(out.read_text())
        for sent_s, scope, cost in data["grants"]:
            by_scope.setdefault(scope, []).append((sent_s, cost))
        total += len(data["grants"]) // 2
    assert total > 100, "the run admitted too little to mean anything"
    for scope in (SHARED, *ACCOUNTS):
        assert replay_max_excess(by_scope[scope.name], scope) <= 1e-6, scope.name
    # The shared pool was the bottleneck and was used: close to its rate over the run.
    shared_cost = sum(cost for _, cost in by_scope[SHARED.name])
    capacity = SHARED.threshold + SHARED.decay_per_s * RUN_S
    assert shared_cost >= 0.6 * capacity

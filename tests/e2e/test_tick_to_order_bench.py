"""`benchmarks/tick_to_order.py` in miniature: one round of 50 ticks of each variant through the
product's whole path (a real redis-server; the venue and each client in processes of their own),
and of the floor. Every tick is answered by exactly one order, and the path is the one claimed."""

from __future__ import annotations

import shutil

import pytest

from benchmarks._tick_client import FLOOR, VARIANTS
from benchmarks._tick_report import path_problems
from benchmarks.tick_to_order import measure

TICKS = 50
WARMUP = 10


async def test_every_tick_gets_its_one_order_in_both_variants() -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    rounds, redis = await measure(rounds=1, samples=TICKS, warmup=WARMUP)
    assert redis.startswith("redis-server ")
    assert [r.variant for r in rounds] == [*VARIANTS, FLOOR]
    for r in rounds:
        latencies = r.result.latencies_ns
        assert len(latencies) == TICKS
        assert all(0 < ns < 1_000_000_000 for ns in latencies)  # positive, and under the timeout
        assert (r.result.missed, r.result.stray) == (0, 0)  # one order per tick, each its own
        assert r.result.methods["add_order"] == 1
        assert r.result.methods["amend_order"] == TICKS + WARMUP
    for r in rounds[:2]:  # the product's own count: every amend answered, none over REST
        assert r.report["amends_ok"] == TICKS + WARMUP
        assert r.report["rest_calls"] == 0
    assert path_problems(rounds, WARMUP) == []

"""The manual clock: time moves only on `advance`, sleepers wake in deadline order."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.clock import Clock, ManualClock, RealClock


async def test_sleepers_wake_in_deadline_order_at_their_deadline(clock: ManualClock) -> None:
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, delay_s: float) -> None:
        await clock.sleep(delay_s)
        woke.append((name, clock.monotonic()))

    start = clock.monotonic()
    tasks = [asyncio.create_task(sleeper(n, d)) for n, d in (("c", 3.0), ("a", 1.0), ("b", 2.0))]
    await asyncio.sleep(0)
    assert clock.sleepers == 3
    await clock.advance(1.5)
    assert woke == [("a", start + 1.0)]
    await clock.advance(10)
    assert woke == [("a", start + 1.0), ("b", start + 2.0), ("c", start + 3.0)]
    assert clock.monotonic() == start + 11.5
    await asyncio.gather(*tasks)


async def test_cancelled_sleep_is_forgotten(clock: ManualClock) -> None:
    task = asyncio.create_task(clock.sleep(5))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.sleepers == 0
    await clock.advance(10)  # waking a cancelled sleeper must not raise


async def test_zero_sleep_returns_without_advancing(clock: ManualClock) -> None:
    before = clock.time()
    await clock.sleep(0)
    await clock.sleep(-1)
    assert clock.time() == before


async def test_advance_never_goes_back(clock: ManualClock) -> None:
    with pytest.raises(ValueError, match="never goes back"):
        await clock.advance(-1)


async def test_real_clock_satisfies_the_protocol() -> None:
    real: Clock = RealClock()
    before = real.monotonic()
    await real.sleep(0)
    assert real.monotonic() >= before
    assert real.time() > 1_600_000_000

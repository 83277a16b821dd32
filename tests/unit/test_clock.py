"""The manual clock: time moves only on `advance`, sleepers wake in deadline order."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.clock import Backoff, Clock, ManualClock, RealClock


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


async def test_manual_timeout_fires_when_advance_passes_its_deadline(clock: ManualClock) -> None:
    reached: list[str] = []

    async def waiter() -> None:
        try:
            async with clock.timeout(3.0):
                await asyncio.Event().wait()  # never set: only the deadline ends the block
        except TimeoutError:
            reached.append(f"timed out at +{clock.monotonic() - start}")

    start = clock.monotonic()
    task = asyncio.create_task(waiter())
    await asyncio.sleep(0)
    assert clock.timeouts == 1
    await clock.advance(2.75)
    assert reached == []
    await clock.advance(0.25)
    assert reached == ["timed out at +3.0"]
    assert clock.timeouts == 0
    await task


async def test_manual_timeout_left_in_time_is_forgotten(clock: ManualClock) -> None:
    done = asyncio.Event()

    async def timed() -> str:
        async with clock.timeout(1.0):
            await done.wait()
        await clock.sleep(5.0)  # past the old deadline: must not be cut by it
        return "slept"

    task = asyncio.create_task(timed())
    await asyncio.sleep(0)
    done.set()
    await asyncio.sleep(0)
    assert clock.timeouts == 0
    await clock.advance(10)
    assert await task == "slept"


async def test_manual_timeout_wakes_in_deadline_order_with_sleepers(clock: ManualClock) -> None:
    order: list[str] = []

    async def sleeper() -> None:
        await clock.sleep(2.0)
        order.append("sleep")

    async def timed() -> None:
        with pytest.raises(TimeoutError):
            async with clock.timeout(1.0):
                await clock.sleep(5.0)
        order.append("timeout")

    tasks = [asyncio.create_task(sleeper()), asyncio.create_task(timed())]
    await asyncio.sleep(0)
    await clock.advance(3.0)
    assert order == ["timeout", "sleep"]
    await asyncio.gather(*tasks)
    assert clock.sleepers == 0  # the cancelled 5 s sleep is gone too


async def test_manual_timeout_leaves_an_outer_cancellation_alone(clock: ManualClock) -> None:
    async def timed() -> None:
        async with clock.timeout(5.0):
            await asyncio.Event().wait()

    task = asyncio.create_task(timed())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task  # not turned into TimeoutError: the deadline was not what cancelled it
    assert clock.timeouts == 0


async def test_manual_timeout_of_zero_fires_at_the_first_wait(clock: ManualClock) -> None:
    with pytest.raises(TimeoutError):
        async with clock.timeout(0):
            await asyncio.Event().wait()
    async with clock.timeout(0):
        pass  # a block that never waits is not cut short


async def test_real_clock_timeout_is_asyncios() -> None:
    real: Clock = RealClock()
    with pytest.raises(TimeoutError):
        async with real.timeout(0):
            await asyncio.Event().wait()
    async with real.timeout(5):
        await real.sleep(0)


async def test_autojump_moves_the_clock_to_each_sleep_deadline() -> None:
    clock = ManualClock(start_s=100.0, autojump=True)
    await clock.sleep(6.0)
    await clock.sleep(0.5)
    assert clock.time() == 106.5
    assert clock.sleepers == 0


async def test_a_backoff_doubles_up_to_its_cap_on_the_clock() -> None:
    clock = ManualClock(0.0, autojump=True)  # small numbers: exact sums
    backoff = Backoff(clock, initial_s=0.25, max_s=1.0)
    started_s = clock.time()
    waits = []
    for _ in range(5):
        before_s = clock.time()
        await backoff.wait()
        waits.append(round(clock.time() - before_s, 9))
    assert waits == [0.25, 0.5, 1.0, 1.0, 1.0]
    assert clock.time() - started_s == 3.75

"""The loop-lag monitor: its window's order statistics (pure), its sampling on a manual clock
(a late turn of the loop is time the clock moved past the due time before the task ran again),
and one short real-time check that a blocked loop shows up."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from orchestrator.clock import ManualClock, RealClock
from orchestrator.metrics import Registry
from orchestrator.runtime.loop_lag import METRIC_NAME, LagWindow, LoopLagMonitor


def test_quantiles_are_nearest_rank_over_the_window() -> None:
    window = LagWindow(100)
    assert window.quantile_s(0.99) is None
    for i in range(1, 101):  # 1 ms .. 100 ms
        window.add(i / 1000)
    assert window.quantile_s(0.5) == pytest.approx(0.050)
    assert window.quantile_s(0.99) == pytest.approx(0.099)
    assert window.quantile_s(1.0) == pytest.approx(0.100)
    assert window.quantile_s(0.0) == pytest.approx(0.001)


def test_the_window_keeps_the_newest_samples_and_counts_all() -> None:
    window = LagWindow(3)
    for lag_s in (0.5, 0.001, 0.002, 0.003):
        window.add(lag_s)
    assert window.samples() == [0.001, 0.002, 0.003]
    assert window.quantile_s(1.0) == 0.003  # the old outlier left the window
    assert window.count == 4
    assert len(window) == 3


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one sample"):
        LagWindow(0)
    with pytest.raises(ValueError, match="quantile"):
        LagWindow(1).quantile_s(1.5)
    clock = ManualClock()
    with pytest.raises(ValueError, match="guard_s"):
        LoopLagMonitor(clock, interval_s=0.01, guard_s=0.006, jitter=0.5)
    with pytest.raises(ValueError, match="jitter"):
        LoopLagMonitor(clock, jitter=1.0)
    with pytest.raises(ValueError, match="interval_s"):
        LoopLagMonitor(clock, interval_s=0.0)


@contextlib.asynccontextmanager
async def running(monitor: LoopLagMonitor) -> AsyncIterator[None]:
    task = asyncio.create_task(monitor.run())
    await asyncio.sleep(0)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def until_sampled(monitor: LoopLagMonitor, count: int) -> None:
    """Let the loop turn (an autojump clock moves meanwhile) until `count` samples exist."""
    for _ in range(100_000):
        if monitor.count >= count:
            return
        await asyncio.sleep(0)
    pytest.fail(f"{monitor.count} samples, not {count}")


async def test_a_turn_of_the_loop_that_ends_past_the_due_time_is_the_sample() -> None:
    clock = ManualClock(start_s=0.0)
    registry = Registry()
    monitor = LoopLagMonitor(clock, interval_s=0.1, guard_s=0.002, jitter=0.0,
                             registry=registry)  # fmt: skip
    async with running(monitor):
        await clock.advance(0.1)  # due at 0.1; the loop gets there on time
        await settle()
        assert monitor.samples() == [0.0]
        # Due at 0.2: the monitor wakes at 0.198 and hops; the loop's next turn ends at 0.203.
        await clock.advance(0.103)
        await settle()
        assert monitor.count == 2
        assert monitor.max_s == pytest.approx(0.003)
        assert monitor.p50_s == 0.0
        assert monitor.late_wakes == 0
    assert registry.histogram(METRIC_NAME, "").count() == 2


async def test_no_sample_before_the_due_time() -> None:
    clock = ManualClock(start_s=0.0)
    monitor = LoopLagMonitor(clock, interval_s=0.1, guard_s=0.002, jitter=0.0)
    async with running(monitor):
        await clock.advance(0.099)  # awake since 0.098, hopping, not due yet
        await settle()
        assert monitor.count == 0
        assert monitor.p99_s is None


class OversleepingClock(ManualClock):
    """A manual clock (jumping to each deadline) whose timers wake `overshoot_s` late, as a
    coarse poller's do."""

    def __init__(self, overshoot_s: float) -> None:
        super().__init__(start_s=0.0, autojump=True)
        self.overshoot_s = overshoot_s

    async def sleep(self, delay_s: float) -> None:
        await super().sleep(delay_s + self.overshoot_s if delay_s > 0 else delay_s)


async def test_a_coarse_sleep_past_the_due_time_is_counted_and_kept_in_the_sample() -> None:
    clock = OversleepingClock(overshoot_s=0.004)
    monitor = LoopLagMonitor(clock, interval_s=0.1, guard_s=0.0015, jitter=0.0)
    async with running(monitor):
        await until_sampled(monitor, 3)
    assert monitor.late_wakes == monitor.count
    assert monitor.p50_s == pytest.approx(0.0025)  # 4 ms late, 1.5 ms of it before the due time


async def test_jittered_intervals_stay_in_their_band() -> None:
    clock = ManualClock(start_s=0.0, autojump=True)
    monitor = LoopLagMonitor(clock, interval_s=0.1, guard_s=0.0, jitter=0.5, seed=7)
    started_s = clock.monotonic()
    async with running(monitor):
        await until_sampled(monitor, 50)
        elapsed_s = clock.monotonic() - started_s
    assert 50 * 0.05 <= elapsed_s <= 51 * 0.15
    assert monitor.max_s == 0.0  # autojump: every wake exactly on time


async def test_a_blocked_real_loop_shows_up() -> None:
    """Real time, about 0.1 s: the loop blocked for 30 ms makes a sample due inside the block
    wait for its end."""
    monitor = LoopLagMonitor(RealClock(), interval_s=0.01, guard_s=0.002, jitter=0.0)
    async with running(monitor):
        await asyncio.sleep(0.03)
        time.sleep(0.03)  # noqa: ASYNC251 - blocking the loop is the point
        await asyncio.sleep(0.03)
    assert monitor.count >= 3
    assert monitor.max_s is not None
    assert monitor.max_s >= 0.015

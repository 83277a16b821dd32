"""The dead man's switch on a manual clock against a venue stand-in that records every arm: it is
re-armed every `refresh_s` only while the worker is healthy, withheld (logged once, counted)
while it is not, re-armed within `retry_s` once it is well again, retried sooner after a failed
refresh, and disarmed at shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from orchestrator.clock import ManualClock
from orchestrator.errors import VenueUnavailable
from orchestrator.workers.deadman import DeadManSwitch

START_S = 1_700_000_000.0


class RecordingVenue:
    """Answers `dead_man_switch` at once, recording (time, timeout); fails while `failing`."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.calls: list[tuple[float, int]] = []
        self.failing = 0  # the next N calls fail (not taken by the venue)

    async def dead_man_switch(self, timeout_s: int) -> str:
        if self.failing:
            self.failing -= 1
            raise VenueUnavailable("EService:Unavailable")
        self.calls.append((self.clock.time() - START_S, timeout_s))
        return "0" if timeout_s == 0 else f"trigger@{self.clock.time() + timeout_s}"


class Health:
    def __init__(self) -> None:
        self.reason: str | None = None

    def __call__(self) -> str | None:
        return self.reason


async def settle() -> None:
    """Let the switch's task run to its next wait (the stand-in venue never suspends it)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def elapse(clock: ManualClock, total_s: float, step_s: float = 1.0) -> None:
    for _ in range(round(total_s / step_s)):
        await clock.advance(step_s)
        await settle()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START_S)


@pytest.fixture
def venue(clock: ManualClock) -> RecordingVenue:
    return RecordingVenue(clock)


@pytest.fixture
def health() -> Health:
    return Health()


@pytest.fixture
async def switch(
    clock: ManualClock, venue: RecordingVenue, health: Health
) -> AsyncIterator[DeadManSwitch]:
    dead_man = DeadManSwitch(venue, clock, timeout_s=60, refresh_s=20.0, healthy=health, name="st")
    task = asyncio.create_task(dead_man.run())
    await settle()
    yield dead_man
    if not dead_man.stopped:
        await dead_man.disarm()
    await asyncio.wait_for(task, 1.0)


async def test_armed_at_once_and_refreshed_every_refresh_s_while_healthy(
    clock: ManualClock, venue: RecordingVenue, switch: DeadManSwitch
) -> None:
    assert venue.calls == [(0.0, 60)]
    assert switch.last_armed_s == START_S
    await elapse(clock, 65)
    assert venue.calls == [(0.0, 60), (20.0, 60), (40.0, 60), (60.0, 60)]
    assert (switch.refreshes, switch.misses, switch.failures) == (4, 0, 0)
    assert switch.last_armed_s == START_S + 60
    assert switch.trigger_time == f"trigger@{START_S + 120}"


async def test_unhealthy_withholds_refreshes_logged_once_then_rearms_when_well(
    clock: ManualClock,
    venue: RecordingVenue,
    health: Health,
    switch: DeadManSwitch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="orchestrator.workers.deadman"):
        await elapse(clock, 10)
        health.reason = "loop stalled"
        await elapse(clock, 35)  # t = 45: the refreshes of t = 20 and 40 withheld
        assert venue.calls == [(0.0, 60)]
        assert (switch.misses, switch.unhealthy_reason) == (2, "loop stalled")
        health.reason = None
        await elapse(clock, 5)  # asked again every retry_s (5 s): re-armed at t = 50
        assert venue.calls == [(0.0, 60), (50.0, 60)]
        assert switch.unhealthy_reason is None
        await elapse(clock, 20)
        assert venue.calls[-1] == (70.0, 60)  # and refreshed on the usual rhythm from there
    events = [r.getMessage() for r in caplog.records]
    assert events.count("deadman.withheld") == 1
    assert events.count("deadman.healthy_again") == 1
    withheld = next(r for r in caplog.records if r.getMessage() == "deadman.withheld")
    assert withheld.fields == {  # type: ignore[attr-defined]
        "name": "st", "reason": "loop stalled", "venue_cancels_by_s": START_S + 60,
    }  # fmt: skip


async def test_a_failed_refresh_is_retried_sooner_and_counted(
    clock: ManualClock, venue: RecordingVenue, switch: DeadManSwitch
) -> None:
    venue.failing = 2
    await elapse(clock, 20)  # t = 20 fails
    assert (venue.calls, switch.failures) == ([(0.0, 60)], 1)
    await elapse(clock, 5)  # t = 25 fails again
    assert switch.failures == 2
    await elapse(clock, 5)  # t = 30 taken; the rhythm restarts from it
    await elapse(clock, 20)
    assert venue.calls == [(0.0, 60), (30.0, 60), (50.0, 60)]
    assert (switch.refreshes, switch.failures, switch.misses) == (3, 2, 0)


async def test_a_first_arm_that_fails_is_retried(clock: ManualClock, health: Health) -> None:
    venue = RecordingVenue(clock)
    venue.failing = 1
    switch = DeadManSwitch(venue, clock, healthy=health)
    task = asyncio.create_task(switch.run())
    await settle()
    assert (venue.calls, switch.last_armed_s) == ([], None)
    await elapse(clock, 5)
    assert venue.calls == [(5.0, 60)]
    await switch.disarm()
    await asyncio.wait_for(task, 1.0)


async def test_disarm_sends_zero_and_ends_run(
    clock: ManualClock, venue: RecordingVenue, switch: DeadManSwitch
) -> None:
    await elapse(clock, 3)
    await switch.disarm()
    await settle()
    assert venue.calls == [(0.0, 60), (3.0, 0)]
    assert switch.stopped
    await elapse(clock, 40)  # nothing re-arms it
    assert venue.calls[-1] == (3.0, 0)


async def test_never_armed_while_unhealthy_from_the_start(
    clock: ManualClock, venue: RecordingVenue, health: Health
) -> None:
    health.reason = "feed not whole"
    switch = DeadManSwitch(venue, clock, healthy=health)
    task = asyncio.create_task(switch.run())
    await elapse(clock, 30)
    assert venue.calls == []
    assert switch.misses == 2  # due at t = 0 and t = 20
    await switch.disarm()
    await asyncio.wait_for(task, 1.0)


@pytest.mark.parametrize(("timeout_s", "refresh_s"), [(60, 21.0), (60, 0.0), (0, 1.0)])
def test_a_refresh_slower_than_a_third_of_the_countdown_is_refused(
    clock: ManualClock, venue: RecordingVenue, timeout_s: int, refresh_s: float
) -> None:
    with pytest.raises(ValueError, match=r"timeout_s|refresh_s"):
        DeadManSwitch(venue, clock, timeout_s=timeout_s, refresh_s=refresh_s, healthy=Health())

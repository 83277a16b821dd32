"""Stop signals: real SIGTERM/SIGINT sent to this process set `stop`, a second one `force`; the
uninstaller gives the signals back; `run_until_stopped` says why it returned."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable

import pytest
import uvloop

from orchestrator.clock import ManualClock
from orchestrator.runtime.signals import install_stop_signals, run_until_stopped


async def wait_set(event: asyncio.Event) -> None:
    """A real signal is handled on a later loop turn: wait for it, briefly."""
    async with asyncio.timeout(5.0):
        await event.wait()


async def test_first_signal_stops_second_forces() -> None:
    stop, force = asyncio.Event(), asyncio.Event()
    uninstall = install_stop_signals(stop, force=force)
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        await wait_set(stop)
        assert not force.is_set()

        os.kill(os.getpid(), signal.SIGINT)
        await wait_set(force)
    finally:
        uninstall()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


async def test_sigint_alone_stops_and_a_second_signal_without_force_is_harmless() -> None:
    stop = asyncio.Event()
    uninstall = install_stop_signals(stop)
    try:
        os.kill(os.getpid(), signal.SIGINT)
        await wait_set(stop)
        os.kill(os.getpid(), signal.SIGTERM)  # handled (logged), neither raised nor fatal
        await asyncio.sleep(0.05)
    finally:
        uninstall()
    assert stop.is_set()


def test_signals_under_uvloop() -> None:
    """The service runs on uvloop: its signal handling must route the same way."""

    async def scenario() -> str:
        stop = asyncio.Event()
        uninstall = install_stop_signals(stop)
        try:
            waiting = asyncio.create_task(
                run_until_stopped(stop, duration_s=30.0, clock=ManualClock())
            )
            await asyncio.sleep(0)
            os.kill(os.getpid(), signal.SIGTERM)
            async with asyncio.timeout(5.0):
                return await waiting
        finally:
            uninstall()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(scenario()) == "signal"


async def test_run_until_stopped_by_a_real_signal() -> None:
    clock = ManualClock()
    stop = asyncio.Event()
    uninstall = install_stop_signals(stop)
    try:
        waiting = asyncio.create_task(run_until_stopped(stop, duration_s=60.0, clock=clock))
        await asyncio.sleep(0)
        assert clock.timeouts == 1
        os.kill(os.getpid(), signal.SIGTERM)
        async with asyncio.timeout(5.0):
            assert await waiting == "signal"
    finally:
        uninstall()
    assert clock.timeouts == 0  # the duration's deadline was dropped


async def test_run_until_stopped_by_duration() -> None:
    clock = ManualClock()
    stop = asyncio.Event()
    waiting = asyncio.create_task(run_until_stopped(stop, duration_s=5.0, clock=clock))
    await asyncio.sleep(0)  # the task arms its deadline now, not after the clock moved
    await clock.advance(4.9)
    assert not waiting.done()
    await clock.advance(0.1)
    assert await within(waiting) == "duration"
    assert not stop.is_set()


@pytest.mark.parametrize(
    ("duration_s", "preset", "expected"),
    [(0.0, True, "signal"), (0.0, False, "duration"), (None, True, "signal")],
)
async def test_run_until_stopped_edges(
    duration_s: float | None, preset: bool, expected: str
) -> None:
    stop = asyncio.Event()
    if preset:
        stop.set()
    result = run_until_stopped(stop, duration_s=duration_s, clock=ManualClock())
    assert await within(result) == expected


async def test_run_until_stopped_without_duration_waits_for_stop() -> None:
    clock = ManualClock()
    stop = asyncio.Event()
    waiting = asyncio.create_task(run_until_stopped(stop, duration_s=None, clock=clock))
    await clock.advance(10_000.0)
    assert not waiting.done()
    stop.set()
    assert await within(waiting) == "signal"


async def within(awaitable: Awaitable[str]) -> str:
    async with asyncio.timeout(5.0):
        return await awaitable

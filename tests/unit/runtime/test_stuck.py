"""where_tasks_wait: each unfinished task named with the await it is held at, ours first."""

from __future__ import annotations

import asyncio

from orchestrator.clock import RealClock
from orchestrator.runtime.signals import run_until_stopped
from orchestrator.runtime.stuck import where_tasks_wait


async def _held_at_an_event(event: asyncio.Event) -> None:
    await event.wait()


async def test_names_each_waiting_task_at_its_innermost_await() -> None:
    event = asyncio.Event()
    held = asyncio.create_task(_held_at_an_event(event), name="component-a")
    sleeping = asyncio.create_task(asyncio.sleep(10), name="component-b")
    done = asyncio.create_task(asyncio.sleep(0), name="component-c")
    await asyncio.sleep(0.01)
    try:
        found = where_tasks_wait({held, sleeping, done})
    finally:
        held.cancel()
        sleeping.cancel()
    assert len(found) == 2, found  # the finished task is not listed
    a, b = found
    # Our own frame first (this test file is not in the package, so the innermost alone).
    assert a.startswith("component-a: locks.py:"), a
    assert a.endswith(" in wait"), a
    assert b.startswith("component-b: tasks.py:"), b
    assert b.endswith(" in sleep"), b


async def test_leaves_out_the_calling_task() -> None:
    me = asyncio.current_task()
    assert me is not None
    assert where_tasks_wait({me}) == []


async def test_our_own_frame_comes_first_with_the_library_await_beside_it() -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(run_until_stopped(stop, duration_s=None, clock=RealClock()),
                               name="service-wait")  # fmt: skip
    await asyncio.sleep(0.01)
    try:
        (found,) = where_tasks_wait({task})
    finally:
        stop.set()
        await task
    assert found.startswith("service-wait: signals.py:"), found
    assert " in run_until_stopped (locks.py:" in found, found

"""Clocks. Code that waits or stamps time takes a `Clock`, so that tests never sleep for real.

`RealClock` reads the system. `ManualClock` only moves when a test calls `advance`, waking the
sleepers whose deadline has come, in deadline order.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    """Wall time for stamps, monotonic time for intervals, and a sleep that honours the clock."""

    def time(self) -> float:
        """Seconds since the Unix epoch (may jump when the system clock is set)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back; only differences mean anything."""
        ...

    async def sleep(self, delay_s: float) -> None:
        """Suspend the caller for `delay_s` seconds of this clock."""
        ...


class RealClock:
    """The system's clocks and asyncio's sleep."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, delay_s: float) -> None:
        await asyncio.sleep(max(0.0, delay_s))


class ManualClock:
    """A clock that moves only when told to. Sleepers wake on `advance` past their deadline."""

    def __init__(self, start_s: float = 1_700_000_000.0) -> None:
        self._now_s = start_s
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()  # ties wake in the order they went to sleep

    def time(self) -> float:
        return self._now_s

    def monotonic(self) -> float:
        return self._now_s

    @property
    def sleepers(self) -> int:
        """How many sleeps are still waiting (cancelled ones excluded)."""
        return sum(1 for _, _, fut in self._sleepers if not fut.done())

    async def sleep(self, delay_s: float) -> None:
        if delay_s <= 0:
            await asyncio.sleep(0)  # still a scheduling point, as with a real clock
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now_s + delay_s, next(self._order), fut))
        await fut

    async def advance(self, delta_s: float) -> None:
        """Move time forward by `delta_s`, waking due sleepers and letting them run."""
        if delta_s < 0:
            raise ValueError(f"a clock never goes back (delta_s={delta_s})")
        target_s = self._now_s + delta_s
        while self._sleepers and self._sleepers[0][0] <= target_s:
            deadline_s, _, fut = heapq.heappop(self._sleepers)
            self._now_s = max(self._now_s, deadline_s)
            if not fut.done():
                fut.set_result(None)
                # Let the woken task run before later deadlines, as real time would.
                for _ in range(3):
                    await asyncio.sleep(0)
        self._now_s = target_s
        await asyncio.sleep(0)

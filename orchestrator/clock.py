"""Clocks. Code that waits or stamps time takes a `Clock`, so that tests never sleep for real.

`RealClock` reads the system. `ManualClock` only moves when a test calls `advance`, waking the
sleepers and expiring the timeouts whose deadline has come, in deadline order.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol


class Clock(Protocol):
    """Wall time for stamps, monotonic time for intervals, a sleep and a timeout on this clock."""

    def time(self) -> float:
        """Seconds since the Unix epoch (may jump when the system clock is set)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back; only differences mean anything."""
        ...

    async def sleep(self, delay_s: float) -> None:
        """Suspend the caller for `delay_s` seconds of this clock."""
        ...

    def timeout(self, delay_s: float) -> AbstractAsyncContextManager[object]:
        """A deadline `delay_s` seconds of this clock from now for an `async with` block.

        As `asyncio.timeout`: at the deadline the block is cancelled and `TimeoutError` raised
        out of it; a cancellation from elsewhere stays a `CancelledError`.
        """
        ...


class RealClock:
    """The system's clocks, asyncio's sleep and asyncio's timeout."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, delay_s: float) -> None:
        await asyncio.sleep(max(0.0, delay_s))

    def timeout(self, delay_s: float) -> AbstractAsyncContextManager[object]:
        return asyncio.timeout(max(0.0, delay_s))


class _Deadline:
    """One pending deadline: a sleep's future, or a timeout's (then `expire` cuts its block)."""

    __slots__ = ("expire", "future")

    def __init__(self, future: asyncio.Future[None], expire: Callable[[], None] | None) -> None:
        self.future = future
        self.expire = expire


class ManualClock:
    """A clock that moves only when told to. On `advance` past their deadline sleepers wake and
    timeouts expire, in deadline order."""

    def __init__(self, start_s: float = 1_700_000_000.0, *, autojump: bool = False) -> None:
        """`autojump`: a sleep moves the clock to its own deadline at once (like trio's
        autojump clock), for tests of code that waits but whose waiting is not the point."""
        self.autojump = autojump
        self._now_s = start_s
        self._deadlines: list[tuple[float, int, _Deadline]] = []
        self._order = itertools.count()  # ties come due in the order they were set

    def time(self) -> float:
        return self._now_s

    def monotonic(self) -> float:
        return self._now_s

    @property
    def sleepers(self) -> int:
        """How many sleeps are still waiting (cancelled ones excluded)."""
        return sum(1 for _, _, d in self._deadlines if d.expire is None and not d.future.done())

    @property
    def timeouts(self) -> int:
        """How many timeouts are still armed (blocks left or expired excluded)."""
        return sum(1 for _, _, d in self._deadlines if d.expire is not None and not d.future.done())

    async def sleep(self, delay_s: float) -> None:
        if delay_s <= 0:
            await asyncio.sleep(0)  # still a scheduling point, as with a real clock
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._push(delay_s, _Deadline(fut, None))
        if self.autojump:
            await self.advance(delay_s)
        await fut

    @contextlib.asynccontextmanager
    async def timeout(self, delay_s: float) -> AsyncIterator[None]:
        # asyncio's own Timeout, armed with no deadline and expired by `advance`: its cancel and
        # uncancel bookkeeping (a cancellation from elsewhere stays one) is asyncio's, not ours.
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(None) as cut:
            armed = _Deadline(loop.create_future(), lambda: cut.reschedule(loop.time()))
            if delay_s <= 0:
                armed.future.set_result(None)
                cut.reschedule(loop.time())  # as asyncio.timeout(0): cut at the first wait
            else:
                self._push(delay_s, armed)
            try:
                yield
            finally:
                armed.future.cancel()  # left (or expired): forget the deadline

    def _push(self, delay_s: float, deadline: _Deadline) -> None:
        heapq.heappush(self._deadlines, (self._now_s + delay_s, next(self._order), deadline))

    async def advance(self, delta_s: float) -> None:
        """Move time forward by `delta_s`: due sleepers wake and due timeouts expire, in deadline
        order, each let run before the next deadline, as real time would."""
        if delta_s < 0:
            raise ValueError(f"a clock never goes back (delta_s={delta_s})")
        target_s = self._now_s + delta_s
        while self._deadlines and self._deadlines[0][0] <= target_s:
            deadline_s, _, deadline = heapq.heappop(self._deadlines)
            self._now_s = max(self._now_s, deadline_s)
            if not deadline.future.done():
                deadline.future.set_result(None)
                if deadline.expire is not None:
                    deadline.expire()
                # Let the woken task run before later deadlines, as real time would.
                for _ in range(3):
                    await asyncio.sleep(0)
        self._now_s = target_s
        await asyncio.sleep(0)


class Backoff:
    """The pacing of a retry loop: waits that double from `initial_s` up to `max_s`.

    backoff = Backoff(clock, initial_s=0.2, max_s=5.0)
    while not done():
        ...
        await backoff.wait()
    """

    __slots__ = ("_delay_s", "clock", "max_s")

    def __init__(self, clock: Clock, *, initial_s: float, max_s: float) -> None:
        self.clock = clock
        self.max_s = max_s
        self._delay_s = initial_s

    def next_s(self) -> float:
        """The wait due now; the one after it doubles (up to `max_s`)."""
        delay_s = self._delay_s
        self._delay_s = min(self.max_s, delay_s * 2)
        return delay_s

    async def wait(self) -> None:
        await self.clock.sleep(self.next_s())

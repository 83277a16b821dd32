"""Turns of the event loop shared by the workers of a process: at most `per_turn` deliveries each.

Every strategy on a pair wakes on the same book frame, and the loop runs every ready task
before it looks at its timers again: a hundred workers at ~60 us each make a 6 ms turn, and any
task due meanwhile (another pair's frame, a dead man's switch refresh, a cancel's retry) waits
that long. Before delivering a batch a worker takes a turn; past `per_turn` deliveries in this
turn of the loop it waits for the next one, in arrival order. So one turn holds at most
`per_turn` deliveries (the loop's lag stays near `per_turn` x a delivery) and the last of a burst
is delivered `ceil(n / per_turn)` turns after the first: the same work, spread, none skipped.
The inbox keeps conflating while a worker waits, so it delivers the newest book, not a backlog.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Final

DEFAULT_PER_TURN: Final = 8


class Turns:
    def __init__(self, per_turn: int = DEFAULT_PER_TURN) -> None:
        if per_turn < 1:
            raise ValueError(f"per_turn must be at least 1, got {per_turn}")
        self.per_turn = per_turn
        self._used = 0
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._reset_armed = False

    async def take(self) -> None:
        """Return in this turn of the loop if it has room, else in a later one, in order."""
        if not self._waiting and self._used < self.per_turn:
            self._used += 1
            self._arm()
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        self._arm()
        await waiter

    def _arm(self) -> None:
        """Once per turn: at its end the count starts over and the next waiters are let go."""
        if not self._reset_armed:
            self._reset_armed = True
            asyncio.get_running_loop().call_soon(self._next_turn)

    def _next_turn(self) -> None:
        self._reset_armed = False
        self._used = 0
        while self._waiting and self._used < self.per_turn:
            waiter = self._waiting.popleft()
            if not waiter.done():  # a cancelled waiter (its worker stopped) takes no turn
                waiter.set_result(None)
                self._used += 1
        if self._used:
            self._arm()  # the ones let go run in the next turn: count them there

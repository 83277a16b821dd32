"""A worker's inbox of "this pair's book changed": the latest book, never a queue.

The hub tells a listener of each change synchronously, on its reader; the worker marks the pair
here and returns at once. Its loop then drains the marks and reads each pair's book as it is by
then. However many changes came in between, a pair is in the inbox once: a slow strategy skips
the books it had no time for and reads the newest, and the inbox never holds more entries than
there are pairs.
"""

from __future__ import annotations

import asyncio


class LatestByPair:
    """Dirty marks by pair, in first-marked order; one consumer drains them with `wait`."""

    __slots__ = ("_dirty", "_ready")

    def __init__(self) -> None:
        self._dirty: dict[str, None] = {}  # insertion-ordered set
        self._ready = asyncio.Event()

    def mark(self, pair: str) -> None:
        """Note that `pair` changed: O(1), and a no-op while it is marked and not drained."""
        dirty = self._dirty
        if pair not in dirty:
            dirty[pair] = None
            self._ready.set()

    def discard(self, pair: str) -> None:
        """Forget a mark (its book went stale: there is nothing new to read)."""
        self._dirty.pop(pair, None)

    def drain(self) -> list[str]:
        """The marked pairs, first-marked first, now unmarked; empty when none is."""
        pairs = list(self._dirty)
        self._dirty.clear()
        self._ready.clear()
        return pairs

    async def wait(self) -> list[str]:
        """Until a pair is marked, then `drain()`: never an empty list."""
        while not self._dirty:
            self._ready.clear()
            await self._ready.wait()
        return self.drain()

    def __len__(self) -> int:
        return len(self._dirty)

    def marked(self) -> list[str]:
        """The marked pairs, first-marked first, left marked (for inspection)."""
        return list(self._dirty)

    def __contains__(self, pair: object) -> bool:
        return pair in self._dirty

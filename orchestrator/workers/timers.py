"""A strategy's named timers on the service clock (monotonic), pure: the worker asks what is due.

A bad delay (not a finite number >= 0, a bool included; 0 for a repeating timer) raises
`ValueError` at `set`: called from a strategy's callback, uncaught, it stops that strategy as
any exception of its callback does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

MAX_TIMERS: Final = 1_000
MIN_REPEAT_S: Final = 0.001


@dataclass(slots=True)
class _Timer:
    due_s: float
    every_s: float | None


class Timers:
    def __init__(self, now_s: Callable[[], float], *, on_change: Callable[[], None]) -> None:
        self._now_s = now_s
        self._on_change = on_change  # wakes the worker: the next deadline may be earlier
        self._timers: dict[str, _Timer] = {}

    def set(self, name: str, delay_s: float, *, repeat: bool = False) -> None:
        if (
            isinstance(delay_s, bool)
            or not isinstance(delay_s, int | float)
            or not math.isfinite(delay_s)
            or delay_s < 0
        ):
            raise ValueError(
                f"timer {name!r}: delay_s must be a finite number >= 0, got {delay_s!r}"
            )
        if repeat and delay_s < MIN_REPEAT_S:
            raise ValueError(
                f"timer {name!r}: a repeating timer needs delay_s >= {MIN_REPEAT_S} "
                f"(got {delay_s!r}): a tighter one would spin the loop"
            )
        if name not in self._timers and len(self._timers) >= MAX_TIMERS:
            raise ValueError(f"timer {name!r}: more than {MAX_TIMERS} timers")
        self._timers[name] = _Timer(self._now_s() + delay_s, delay_s if repeat else None)
        self._on_change()

    def cancel(self, name: str) -> None:
        self._timers.pop(name, None)

    def clear(self) -> None:
        self._timers.clear()

    def next_due_s(self) -> float | None:
        return min((t.due_s for t in self._timers.values()), default=None)

    def pop_due(self) -> Iterator[str]:
        """The names due now, earliest first, each taken as it is handed out: a timer that the
        callback of one before it cancelled or set anew is skipped (it was stopped, or is due
        later). One-shot timers are removed; repeating ones re-armed on their own grid (no
        drift): once for however many periods a held-up loop missed, never a backlog."""
        now_s = self._now_s()
        # Ties in the order they were set (a stable sort on the time alone: names are the
        # strategy's and need not compare).
        due = sorted(((t.due_s, name, t) for name, t in self._timers.items() if t.due_s <= now_s),
                     key=lambda item: item[0])  # fmt: skip
        for _, name, timer in due:
            if self._timers.get(name) is not timer:
                continue
            if timer.every_s is None:
                del self._timers[name]
            else:
                timer.due_s = _next_due_s(timer.due_s, timer.every_s, now_s)
            yield name


def _next_due_s(due_s: float, every_s: float, now_s: float) -> float:
    """The first time after `now_s` on the grid `due_s + k * every_s`."""
    periods = max(1, math.floor((now_s - due_s) / every_s) + 1)
    next_s = due_s + periods * every_s
    return next_s if next_s > now_s else next_s + every_s  # a rounding edge

"""A strategy's named timers on the service clock (monotonic), pure: the worker asks what is due."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

MAX_TIMERS: Final = 1_000


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
        if not isinstance(delay_s, int | float) or not math.isfinite(delay_s) or delay_s < 0:
            raise ValueError(
                f"timer {name!r}: delay_s must be a finite number >= 0, got {delay_s!r}"
            )
        if repeat and delay_s <= 0:
            raise ValueError(f"timer {name!r}: a repeating timer needs delay_s > 0")
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

    def pop_due(self) -> list[str]:
        """The names due now, earliest first; repeating timers are re-armed from their due time
        (no drift), one-shot ones removed."""
        now_s = self._now_s()
        due = sorted((t.due_s, name) for name, t in self._timers.items() if t.due_s <= now_s)
        for _, name in due:
            timer = self._timers[name]
            if timer.every_s is None:
                del self._timers[name]
            else:
                timer.due_s = max(timer.due_s + timer.every_s, now_s)
        return [name for _, name in due]

"""Event-loop lag: how late the loop lets a task run once it is due, sampled all the time.

    monitor = LoopLagMonitor(clock, registry=registry)
    tg.create_task(monitor.run())          # runs until cancelled
    monitor.p99_s                          # seconds, over the last `window` samples

One sample: the monitor waits a jittered `interval_s`, then records how long after its due time
the loop let it run. The loop's timers are only as fine as its poller (epoll waits in whole
milliseconds; uvloop's clock ticks in milliseconds), so a plain `sleep(interval_s)` wakes 0-1 ms
late on an idle loop, and that noise would drown the sub-millisecond lag worth knowing about.
So the monitor sleeps until `guard_s` before the due time, then hops through the loop with zero
sleeps until it is due: each hop is one turn of the loop, and the sample is how late the turn
that straddles the due time ended. That is the time the loop's other work (a long callback, a
batch of ready tasks run back to back) made a due task wait, to the microsecond.

Cost: the hops keep the loop turning for about `guard_s` per sample (1.5 ms every 100 ms, about
1.5 % of a core); `interval_s` trades samples for that. A coarse sleep that overshoots the due
time anyway is counted in `late_wakes`, its sample then holding the timer's own lateness too
(an over-estimate, never an under-estimate); many of them mean `guard_s` is too small.

Jitter: each interval is drawn from `[1 - jitter, 1 + jitter] x interval_s`, so the samples do
not lock onto a periodic load (the market's steps) and see the same phase of it every time.
"""

from __future__ import annotations

import math
import random
from collections import deque
from typing import Final

from orchestrator.clock import Clock
from orchestrator.metrics import DEFAULT_BUCKETS_S, Histogram, Registry

METRIC_NAME: Final = "orch_event_loop_lag_seconds"
DEFAULT_INTERVAL_S: Final = 0.1
DEFAULT_GUARD_S: Final = 0.0015  # above the poller's 1 ms granularity, with some room
DEFAULT_WINDOW: Final = 600  # samples: about a minute at the default interval
DEFAULT_JITTER: Final = 0.5
# The registry's default buckets from 0.5 ms to 1 s, and two finer ones: lag worth knowing
# about starts well under a millisecond.
LAG_BUCKETS_S: Final = (0.0001, 0.00025, *(b for b in DEFAULT_BUCKETS_S if b <= 1.0))


class LagWindow:
    """The last `size` samples and their order statistics. Pure: no clock, no loop."""

    __slots__ = ("_samples", "count")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a window holds at least one sample, not {size}")
        self._samples: deque[float] = deque(maxlen=size)
        self.count = 0  # every sample ever added, including those the window dropped

    def add(self, lag_s: float) -> None:
        self._samples.append(lag_s)
        self.count += 1

    def quantile_s(self, q: float) -> float | None:
        """The nearest-rank `q` quantile (the smallest sample with at least `q` of the window
        at or below it); None while the window is empty."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"a quantile lies in [0, 1], not {q}")
        if not self._samples:
            return None
        ordered = sorted(self._samples)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    def samples(self) -> list[float]:
        """The window's samples, oldest first (a copy)."""
        return list(self._samples)

    def __len__(self) -> int:
        return len(self._samples)


class LoopLagMonitor:
    """Samples the lag of the loop it runs on (see the module docstring)."""

    def __init__(
        self,
        clock: Clock,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        guard_s: float = DEFAULT_GUARD_S,
        window: int = DEFAULT_WINDOW,
        jitter: float = DEFAULT_JITTER,
        registry: Registry | None = None,
        seed: int | None = None,
    ) -> None:
        """`registry`: also observe every sample in its `orch_event_loop_lag_seconds`
        histogram. `seed`: the jitter's, for a replayable schedule (tests)."""
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        if not 0.0 <= jitter < 1.0:
            raise ValueError(f"jitter must lie in [0, 1), got {jitter}")
        if not 0.0 <= guard_s < interval_s * (1.0 - jitter):
            raise ValueError(
                f"guard_s must lie in [0, {interval_s * (1.0 - jitter):g}) (the shortest "
                f"interval), got {guard_s}"
            )
        self._clock = clock
        self.interval_s = interval_s
        self.guard_s = guard_s
        self.jitter = jitter
        self._lags = LagWindow(window)
        self._rng = random.Random(seed)  # noqa: S311 - a sampling schedule, not a secret
        self.late_wakes = 0
        self._histogram: Histogram | None = None
        if registry is not None:
            self._histogram = registry.histogram(
                METRIC_NAME,
                "How late the event loop ran a task that was due",
                buckets=LAG_BUCKETS_S,
            )

    async def run(self) -> None:
        """Sample until cancelled."""
        clock = self._clock
        while True:
            due_s = clock.monotonic() + self._next_interval_s()
            await clock.sleep(due_s - self.guard_s - clock.monotonic())
            now_s = clock.monotonic()
            if now_s > due_s:
                self.late_wakes += 1
            while now_s < due_s:
                await clock.sleep(0)  # one turn of the loop
                now_s = clock.monotonic()
            self.record(now_s - due_s)

    def _next_interval_s(self) -> float:
        if self.jitter == 0.0:
            return self.interval_s
        return self.interval_s * self._rng.uniform(1.0 - self.jitter, 1.0 + self.jitter)

    def record(self, lag_s: float) -> None:
        """One sample (`run` takes them; public for whoever measures lag another way)."""
        self._lags.add(lag_s)
        if self._histogram is not None:
            self._histogram.observe(lag_s)

    # --- reads ---------------------------------------------------------------------------------
    @property
    def p50_s(self) -> float | None:
        return self._lags.quantile_s(0.5)

    @property
    def p99_s(self) -> float | None:
        return self._lags.quantile_s(0.99)

    @property
    def max_s(self) -> float | None:
        return self._lags.quantile_s(1.0)

    @property
    def count(self) -> int:
        """Samples taken since the start (the window keeps the last `window` of them)."""
        return self._lags.count

    def samples(self) -> list[float]:
        """The window's samples in seconds, oldest first."""
        return self._lags.samples()

"""Containment of a strategy's callbacks: its bugs and its slowness stop it, never the service.

A callback that raises, or that overruns its time budget `OVERRUNS_ALLOWED` times within
`OVERRUN_WINDOW_S`, is reported through `on_failure(kind, reason)` (the worker then stops the
strategy and cancels its orders). The budget is measured on the wall clock: a callback's own
duration, whatever the service clock says. A callback cannot be interrupted (it is synchronous
on the shared loop); one that never returns blocks the process, and the dead man's switch
then cancels the orders at the venue.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any, Final

from orchestrator.logs import get_logger
from orchestrator.metrics import Registry

log = get_logger(__name__)

OVERRUNS_ALLOWED: Final = 3
OVERRUN_WINDOW_S: Final = 60.0


class CallbackGuard:
    def __init__(
        self, strategy: str, budget_s: float, registry: Registry, *,
        on_failure: Callable[[str, str], None],
    ) -> None:  # fmt: skip
        self.strategy = strategy
        self.budget_s = budget_s
        self._on_failure = on_failure
        self._overruns: list[float] = []  # wall-clock times of recent overruns
        self._duration_s = registry.histogram(
            "orch_callback_seconds", "Strategy callback duration", ("strategy",)
        )

    def call(self, callback: str, fn: Callable[..., object], *args: Any) -> bool:
        """Run `fn(*args)`; whether it returned in good standing."""
        started = time.perf_counter()
        try:
            result = fn(*args)
        except BaseException as exc:
            # A synchronous callback cannot be cancelled from outside, so even SystemExit or
            # CancelledError raised here is the strategy's own doing: contained like the rest.
            log.exception("strategy.callback_raised", strategy=self.strategy, callback=callback)
            self._on_failure("raised", f"{callback} raised {type(exc).__name__}: {exc}")
            return False
        if inspect.isawaitable(result):  # an `async def` callback: it would never run
            if inspect.iscoroutine(result):
                result.close()
            self._on_failure("raised", f"{callback} returned an awaitable: callbacks are "
                             "synchronous (use intents and timers, not await)")  # fmt: skip
            return False
        elapsed_s = time.perf_counter() - started
        self._duration_s.observe(elapsed_s, self.strategy)
        if elapsed_s <= self.budget_s:
            return True
        now_s = time.monotonic()
        self._overruns = [t for t in self._overruns if now_s - t < OVERRUN_WINDOW_S]
        self._overruns.append(now_s)
        log.warning(
            "strategy.over_budget",
            strategy=self.strategy,
            callback=callback,
            elapsed_ms=round(elapsed_s * 1000, 3),
            budget_ms=self.budget_s * 1000,
        )
        if len(self._overruns) < OVERRUNS_ALLOWED:
            return True
        self._on_failure("over_budget", f"{callback} overran its {self.budget_s * 1000:g} ms "
                         f"budget {OVERRUNS_ALLOWED} times in {OVERRUN_WINDOW_S:g} s")  # fmt: skip
        return False

"""Kraken's dead man's switch, kept armed only while the worker is healthy.

`cancel_all_orders_after(timeout)` starts a countdown at the venue; when it runs out the venue
cancels every order of the account. A worker that is well re-arms it every `refresh_s`, so it
never runs out. One that is not (its loop stalled, a feed not whole, Redis down: `healthy()`
names the reason) stops re-arming and lets the venue cancel its orders within `timeout_s`,
whatever else goes wrong meanwhile, including the process hanging or dying. This switch is the
last line of defence, so it asks nothing of the worker but the verdict, and it cannot be
stopped by the trouble it guards against (a hung worker simply never refreshes it).

A refresh the venue did not take (venue or limiter trouble) is retried after `retry_s`, a
quarter of `refresh_s`, well before the countdown could run out. An unhealthy worker's verdict
is asked again as often, so a recovered worker re-arms within `retry_s`. `disarm()` turns the
countdown off on a clean shutdown (after the worker cancelled its orders itself).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Protocol

from orchestrator.clock import Clock
from orchestrator.errors import OrchestratorError
from orchestrator.logs import get_logger

log = get_logger(__name__)

Health = Callable[[], str | None]  # None when healthy, else the reason it is not


class DeadManVenue(Protocol):
    """What the switch needs of a `TradingVenue`."""

    async def dead_man_switch(self, timeout_s: int) -> str: ...


class DeadManSwitch:
    def __init__(
        self,
        venue: DeadManVenue,
        clock: Clock,
        *,
        timeout_s: int = 60,
        refresh_s: float = 20.0,
        healthy: Health,
        name: str = "",
    ) -> None:
        """`name` labels the logs (the strategy or account)."""
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        if not 0 < refresh_s <= timeout_s / 3:
            raise ValueError(f"refresh_s must be within 0 and a third of timeout_s "
                             f"({timeout_s} s), got {refresh_s}")  # fmt: skip
        self.venue = venue
        self.clock = clock
        self.timeout_s = timeout_s
        self.refresh_s = refresh_s
        self.retry_s = refresh_s / 4
        self.name = name
        self._healthy = healthy
        self.last_armed_s: float | None = None  # sent then (the countdown ends after + timeout)
        self.trigger_time: str | None = None  # as the venue said when it last armed
        self.unhealthy_reason: str | None = None  # while refreshes are withheld
        self.refreshes = 0  # arms the venue took
        self.misses = 0  # refreshes withheld because the worker was unhealthy
        self.failures = 0  # refreshes the venue did not take
        self._stop = asyncio.Event()
        self._sending = asyncio.Lock()  # a disarm goes out after any arm in flight

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    async def run(self) -> None:
        """Arm now, then keep the switch as the worker's health says, until `disarm()`."""
        due_s = self.clock.monotonic()
        while not self.stopped:
            now_s = self.clock.monotonic()
            reason = self._healthy()
            if reason is not None:
                self._withhold(reason)
                if now_s >= due_s:
                    self.misses += 1
                    due_s = now_s + self.refresh_s
                wait_s = self.retry_s
            else:
                if self.unhealthy_reason is not None:
                    log.info("deadman.healthy_again", name=self.name, was=self.unhealthy_reason)
                    self.unhealthy_reason = None
                    due_s = now_s  # re-arm at once: the countdown may be nearly out
                if now_s >= due_s:
                    armed = await self._arm()
                    due_s = now_s + (self.refresh_s if armed else self.retry_s)
                wait_s = due_s - self.clock.monotonic()
            await self._wait(wait_s)

    async def disarm(self) -> None:
        """Turn the countdown off and end `run()` (clean shutdown). A venue error is raised:
        the caller must know the switch may still be armed."""
        self._stop.set()
        async with self._sending:
            await self.venue.dead_man_switch(0)
        log.info("deadman.disarmed", name=self.name)

    async def _arm(self) -> bool:
        """One refresh; whether the venue took it."""
        async with self._sending:
            if self.stopped:
                return True  # disarmed meanwhile: nothing more to send
            sent_s = self.clock.time()
            try:
                trigger_time = await self.venue.dead_man_switch(self.timeout_s)
            except OrchestratorError as exc:
                self.failures += 1
                log.warning("deadman.refresh_failed", name=self.name, error=str(exc),
                            retry_in_s=self.retry_s, failures=self.failures)  # fmt: skip
                return False
        self.last_armed_s = sent_s
        self.trigger_time = trigger_time
        self.refreshes += 1
        return True

    def _withhold(self, reason: str) -> None:
        """Logged once per spell of ill health: it is the one thing to know about it."""
        if self.unhealthy_reason is None:
            cancels_at_s = None if self.last_armed_s is None else self.last_armed_s + self.timeout_s
            log.warning("deadman.withheld", name=self.name, reason=reason,
                        venue_cancels_by_s=cancels_at_s)  # fmt: skip
        self.unhealthy_reason = reason

    async def _wait(self, wait_s: float) -> None:
        """Until `wait_s` has passed on the clock, or `disarm()`."""
        with contextlib.suppress(TimeoutError):
            async with self.clock.timeout(wait_s):
                await self._stop.wait()

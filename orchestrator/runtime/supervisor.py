"""Supervision: a component that fails is restarted after a backoff, within a restart budget.

Every long-running component of the service (a worker, the market-data hub, the event flusher)
runs under `Supervisor.supervise`, itself a task of the runtime's one `TaskGroup`:

    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(supervisor.supervise("hub", hub.run))
        tasks.create_task(supervisor.supervise("worker:mm1", worker.run, on_gave_up=report))

- `run()` returning normally is a clean stop: the component is `stopped`, `supervise` returns.
- `run()` raising an `Exception` is logged, counted (`orch_component_restarts_total`) and, while
  the restarts of the last `window_s` stay within `budget`, retried after an exponential backoff
  with jitter (on the clock, so tests never sleep). Past the budget the component is `failed`,
  `on_gave_up` is told, and `supervise` *returns*: the TaskGroup and every other component go on.
  One failing component never takes the process down.
- `CancelledError`, `KeyboardInterrupt` and `SystemExit` are not failures: they propagate at once,
  from the run or from the backoff, so shutdown is never delayed by a restart.

The backoff grows with the restarts still inside the window (a component that failed once an
hour ago starts over from `backoff_initial_s`), and the budget slides with the window: restarts
older than `window_s` no longer count.
"""

from __future__ import annotations

import inspect
import random
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Literal

import msgspec

from orchestrator.clock import Clock
from orchestrator.config import ServiceConfig
from orchestrator.logs import get_logger
from orchestrator.metrics import Registry

log = get_logger(__name__)

ComponentStatus = Literal["running", "restarting", "stopped", "failed"]
GaveUp = Callable[[str, BaseException], Awaitable[None] | None]


class RestartPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How often and how fast a failed component is restarted."""

    budget: int = 5  # restarts allowed within `window_s`; 0: the first failure is final
    window_s: float = 300.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0

    @classmethod
    def from_config(cls, service: ServiceConfig) -> RestartPolicy:
        return cls(budget=service.restart_budget, window_s=service.restart_window_s)


class ComponentState(msgspec.Struct, frozen=True, kw_only=True):
    """What the supervisor knows of one component, as a snapshot (replaced on each change)."""

    name: str
    status: ComponentStatus
    restarts: int = 0  # since it was first started
    last_error: str | None = None  # "TypeName: message" of the last failure


def backoff_s(policy: RestartPolicy, restarts_in_window: int, jitter: float) -> float:
    """The wait before restart number `restarts_in_window` (1 for the first) of the window.

    `jitter` in [0, 1) takes the delay down to half at most ("equal jitter"): components that
    failed together (Redis went away under all of them) do not all come back in the same tick,
    and below the cap the delay still never shrinks from one restart to the next.
    """
    exponent = max(0, restarts_in_window - 1)
    ceiling_s = min(policy.backoff_max_s, policy.backoff_initial_s * 2.0**exponent)
    return ceiling_s * (1.0 - 0.5 * jitter)


class _RestartWindow:
    """The monotonic times of the restarts of one component still inside the policy's window."""

    __slots__ = ("policy", "times_s")

    def __init__(self, policy: RestartPolicy) -> None:
        self.policy = policy
        self.times_s: deque[float] = deque()

    def allow(self, now_s: float) -> bool:
        """Record a restart at `now_s` if the budget allows one; False when it is spent."""
        while self.times_s and self.times_s[0] <= now_s - self.policy.window_s:
            self.times_s.popleft()
        if len(self.times_s) >= self.policy.budget:
            return False
        self.times_s.append(now_s)
        return True


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Supervisor:
    """Runs components under a restart policy and keeps their states (for status and tests)."""

    def __init__(
        self,
        clock: Clock,
        registry: Registry,
        policy: RestartPolicy,
        *,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.clock = clock
        self.policy = policy
        self._jitter = jitter
        self._states: dict[str, ComponentState] = {}
        self.restart_counter = registry.counter(
            "orch_component_restarts", "Restarts of a failed component", ["component"]
        )
        self.failed_gauge = registry.gauge(
            "orch_component_failed",
            "1 once a component spent its restart budget and was stopped",
            ["component"],
        )

    def state(self, name: str) -> ComponentState:
        """The state of a supervised component; `KeyError` for a name never supervised."""
        return self._states[name]

    @property
    def states(self) -> Mapping[str, ComponentState]:
        """Every component's state, by name (a copy)."""
        return dict(self._states)

    async def supervise(
        self,
        name: str,
        run: Callable[[], Awaitable[None]],
        *,
        on_gave_up: GaveUp | None = None,
    ) -> None:
        """Run `run()` until it returns, restarting it on failure (see the module docstring).

        Returns when the component stops cleanly or is given up on; never raises an
        `Exception` of the component's. A name may be supervised again once it is not running.
        """
        current = self._states.get(name)
        if current is not None and current.status in ("running", "restarting"):
            raise ValueError(f"component {name!r} is already supervised")
        window = _RestartWindow(self.policy)
        restarts = 0
        self._set(name, "running", restarts, None)
        self.failed_gauge.set(0, name)
        while True:
            try:
                await run()
            except Exception as exc:
                error = _describe(exc)
                if not window.allow(self.clock.monotonic()):
                    log.exception(
                        "component.gave_up",
                        component=name,
                        error_type=type(exc).__name__,
                        restarts=restarts,
                        budget=self.policy.budget,
                        window_s=self.policy.window_s,
                    )
                    self._set(name, "failed", restarts, error)
                    self.failed_gauge.set(1, name)
                    await self._report_gave_up(name, exc, on_gave_up)
                    return
                restarts += 1
                delay_s = backoff_s(self.policy, len(window.times_s), self._jitter())
                log.exception(
                    "component.restarting",
                    component=name,
                    error_type=type(exc).__name__,
                    restart=restarts,
                    in_window=len(window.times_s),
                    backoff_s=round(delay_s, 3),
                )
                self.restart_counter.inc(name)
                self._set(name, "restarting", restarts, error)
                try:
                    await self.clock.sleep(delay_s)
                except BaseException:
                    self._set(name, "stopped", restarts, error)
                    raise
                self._set(name, "running", restarts, error)
            except BaseException:  # cancelled, KeyboardInterrupt, SystemExit: not a failure
                self._set(name, "stopped", restarts, self._states[name].last_error)
                raise
            else:
                self._set(name, "stopped", restarts, self._states[name].last_error)
                log.info("component.stopped", component=name, restarts=restarts)
                return

    def _set(
        self, name: str, status: ComponentStatus, restarts: int, last_error: str | None
    ) -> None:
        self._states[name] = ComponentState(
            name=name, status=status, restarts=restarts, last_error=last_error
        )

    @staticmethod
    async def _report_gave_up(name: str, exc: BaseException, on_gave_up: GaveUp | None) -> None:
        """Tell the owner; a failing report is logged, never allowed to stop the others."""
        if on_gave_up is None:
            return
        try:
            result = on_gave_up(name, exc)
            if inspect.isawaitable(result):
                await result
        except Exception as report_exc:
            log.exception(
                "component.gave_up_report_failed",
                component=name,
                error_type=type(report_exc).__name__,
            )

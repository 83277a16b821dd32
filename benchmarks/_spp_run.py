"""One run of `strategies_per_process`: N market makers in one service, measured in steady state.

The service is the real one (`run_service`, uvloop, this process): its own Redis client on the
benchmark's redis-server, the simulator in its child process, the dead man's switches and the
status reporter on as in production (status lines and JSON logs go to files of the run, not to
the terminal). After every strategy quotes (an order the venue acknowledged) and a warm-up, the
window opens: the loop-lag monitor starts, CPU and the venue's counters are read; when it closes
they are read again, and the service is stopped as an operator would (every order cancelled).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

from benchmarks._common import percentile
from benchmarks._spp_diag import WindowDiagnostics, WindowStats
from benchmarks._spp_probe import TickProbe
from benchmarks._spp_venue import (
    PAIRS,
    SimProcess,
    build_config,
    open_sim_process,
    venue_orders,
    venue_state,
)
from orchestrator.clock import RealClock
from orchestrator.logs import configure_logging
from orchestrator.metrics import Registry
from orchestrator.runtime.loop_lag import LoopLagMonitor
from orchestrator.service import Service, run_service

_QUOTING_POLL_S: Final = 0.25
WAIT_METRIC: Final = "orch_limiter_wait_seconds"
_AMEND_REQUESTS: Final = ("ws:amend_order", "private:AmendOrder")


@dataclass(frozen=True, slots=True)
class RunSettings:
    window_s: float  # the steady-state window measured
    warmup_s: float  # after every strategy quotes, before the window
    step_s: float  # the simulator's market step: every pair's book moves this often
    lag_interval_s: float  # the loop-lag monitor's mean sampling interval


@dataclass(frozen=True, slots=True)
class RunResult:
    n: int
    lag_p50_s: float
    lag_p99_s: float
    lag_max_s: float
    lag_samples: int
    late_wakes: int
    tick_p50_s: float | None
    tick_p99_s: float | None
    tick_samples: int
    tick_samples_all: int  # over the whole run, the first quotes included
    stats: WindowStats  # CPU, GC pauses, context switches, the simulator's CPU
    permits: Waits  # the limiter's permits granted in the window, and their waits
    quoting: int  # strategies with an acknowledged order when the window opened
    frames: int  # order and amend frames the service sent in the window
    orders: int  # orders the venue received in the window (WS and REST)
    amends: int  # amends the venue received in the window
    traded: int  # strategies whose account holds at least one order at the venue
    rejections: int  # the venue's rate-limit rejections over the whole run
    exit_code: int  # the service's (0: a clean stop, every order cancelled)

    @property
    def ok(self) -> bool:
        return self.rejections == 0 and self.traded == self.n and self.exit_code == 0


@dataclass(frozen=True, slots=True)
class Waits:
    """Permits the limiter granted, from its `orch_limiter_wait_seconds` histogram."""

    count: int = 0
    total_s: float = 0.0
    over_100ms: int = 0  # waited more than 0.1 s: the pools were full

    def since(self, earlier: Waits) -> Waits:
        return Waits(count=self.count - earlier.count, total_s=self.total_s - earlier.total_s,
                     over_100ms=self.over_100ms - earlier.over_100ms)  # fmt: skip

    @property
    def mean_s(self) -> float:
        return self.total_s / self.count if self.count else 0.0


def permit_waits(registry: Registry) -> Waits:
    """Every lane's permits so far (the histogram's family, shared by name)."""
    waits = registry.histogram(WAIT_METRIC, "Wait per permit", ["lane"])
    slow_from = bisect.bisect_left(waits.buckets, 0.1) + 1  # buckets of waits above 0.1 s
    counts = list(waits.counts.values())
    return Waits(count=sum(sum(c) for c in counts), total_s=sum(waits.sums.values()),
                 over_100ms=sum(sum(c[slow_from:]) for c in counts))  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Window:
    """What a steady-state window measured."""

    monitor: LoopLagMonitor
    ticks_s: list[float]
    stats: WindowStats
    permits: Waits = Waits()
    ticks_all: int = 0
    quoting: int = 0
    frames: int = 0
    counts: dict[str, int] = field(default_factory=dict)


async def idle_baseline(window_s: float, lag_interval_s: float) -> RunResult:
    """The monitor alone on this process's loop: the floor of the lag and its own CPU."""
    monitor = _monitor(window_s, lag_interval_s)
    diagnostics = WindowDiagnostics(sim_pid=None)
    diagnostics.start()
    await _sample(monitor, window_s)
    window = _Window(monitor=monitor, ticks_s=[], stats=diagnostics.stop())
    return _result(0, window, traded=0, rejections=0, exit_code=0)


async def measure(n: int, run: RunSettings, *, redis_url: str, workdir: Path) -> RunResult:
    """Run `n` market makers and measure them (see the module docstring); the run's logs,
    status lines and key files go under `workdir/n<n>`."""
    workdir = workdir / f"n{n}"
    workdir.mkdir(parents=True, exist_ok=True)
    async with open_sim_process(n, step_s=run.step_s, log_path=workdir / "sim.log") as sim:
        namespace = f"spp{n}-{uuid.uuid4().hex[:8]}"  # a run of its own, whatever the Redis
        config = build_config(sim, strategies=n, redis_url=redis_url, namespace=namespace,
                              secrets_dir=workdir / "secrets")  # fmt: skip
        probe = TickProbe()
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[Service] = loop.create_future()

        def on_ready(service: Service) -> None:
            for unit in service.units.values():
                probe.attach(unit)
            ready.set_result(service)

        stop = asyncio.Event()
        with contextlib.ExitStack() as files:
            status_file = files.enter_context((workdir / "status.log").open("w", encoding="utf-8"))
            log_file = files.enter_context((workdir / "service.log").open("w", encoding="utf-8"))
            files.enter_context(contextlib.redirect_stdout(status_file))
            files.enter_context(_logging_to(log_file))
            async with asyncio.TaskGroup() as tg:
                service_run = run_service(config, base_dir=workdir, stop=stop, on_ready=on_ready,
                                          handle_signals=False)  # fmt: skip
                serving = tg.create_task(service_run)
                try:
                    measured = await _drive(n, sim, probe, ready, serving, run)
                finally:
                    stop.set()
        orders = await venue_orders(sim)
        traded = len({o["account"] for o in orders})
        rejections = int((await venue_state(sim))["rate_limit_rejections"])
    measured = dataclasses.replace(measured, ticks_all=len(probe.samples))
    return _result(n, measured, traded=traded, rejections=rejections,
                   exit_code=serving.result())  # fmt: skip


async def _drive(
    n: int,
    sim: SimProcess,
    probe: TickProbe,
    ready: asyncio.Future[Service],
    serving: asyncio.Task[int],
    run: RunSettings,
) -> _Window:
    either: set[asyncio.Future[Any]] = {ready, serving}
    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        raise RuntimeError(f"the service stopped before it was ready (exit {serving.result()})")
    service = ready.result()
    instruments = service.domain.instruments
    await service.hub.subscribe([instruments.get(pair) for pair in PAIRS], probe)
    await _until_quoting(service, n, timeout_s=60.0 + 0.3 * n)
    await asyncio.sleep(run.warmup_s)
    monitor = _monitor(run.window_s, run.lag_interval_s)
    before = await venue_state(sim)
    frames0 = sum(probe.frames.values())
    quoting = _quoting(service)
    diagnostics = WindowDiagnostics(sim_pid=sim.pid)
    diagnostics.start()
    waits0 = permit_waits(service.registry)
    start_s = time.perf_counter()
    await _sample(monitor, run.window_s)
    end_s = time.perf_counter()
    stats = diagnostics.stop()
    waits = permit_waits(service.registry).since(waits0)
    frames = sum(probe.frames.values()) - frames0
    after = await venue_state(sim)
    counts = {
        "orders": int(after["orders"]) - int(before["orders"]),
        "amends": _requests(after, _AMEND_REQUESTS) - _requests(before, _AMEND_REQUESTS),
    }
    return _Window(monitor=monitor, ticks_s=probe.latencies_s(start_s, end_s), stats=stats,
                   permits=waits, quoting=quoting, frames=frames, counts=counts)  # fmt: skip


def _requests(state: dict[str, Any], names: tuple[str, ...]) -> int:
    return sum(int(state["requests"].get(name, 0)) for name in names)


def _quoting(service: Service) -> int:
    return sum(1 for unit in service.units.values()
               if any(o.txid is not None for o in unit.worker.manager.open_orders()))  # fmt: skip


async def _until_quoting(service: Service, n: int, *, timeout_s: float) -> None:
    """Until every strategy has an order the venue acknowledged (or the timeout: the window
    then opens anyway and the table shows how many quoted)."""
    deadline_s = time.monotonic() + timeout_s
    while True:
        if _quoting(service) >= n or time.monotonic() > deadline_s:
            return
        await asyncio.sleep(_QUOTING_POLL_S)


def _monitor(window_s: float, lag_interval_s: float) -> LoopLagMonitor:
    window = int(window_s / (lag_interval_s * 0.5)) + 16  # every sample of the window
    return LoopLagMonitor(RealClock(), interval_s=lag_interval_s, window=window)


async def _sample(monitor: LoopLagMonitor, window_s: float) -> None:
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(monitor.run())
        await asyncio.sleep(window_s)
        task.cancel()


@contextlib.contextmanager
def _logging_to(stream: IO[str]) -> Iterator[None]:
    """The service's JSON logs to `stream` for the block; the root logger restored after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure_logging("info", stream=stream)
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


def _result(n: int, window: _Window, *, traded: int, rejections: int, exit_code: int) -> RunResult:
    monitor, ticks_s = window.monitor, window.ticks_s
    return RunResult(
        n=n,
        lag_p50_s=monitor.p50_s or 0.0,
        lag_p99_s=monitor.p99_s or 0.0,
        lag_max_s=monitor.max_s or 0.0,
        lag_samples=monitor.count,
        late_wakes=monitor.late_wakes,
        tick_p50_s=percentile(ticks_s, 0.5) if ticks_s else None,
        tick_p99_s=percentile(ticks_s, 0.99) if ticks_s else None,
        tick_samples=len(ticks_s),
        tick_samples_all=window.ticks_all,
        stats=window.stats,
        permits=window.permits,
        quoting=window.quoting,
        frames=window.frames,
        orders=window.counts.get("orders", 0),
        amends=window.counts.get("amends", 0),
        traded=traded,
        rejections=rejections,
        exit_code=exit_code,
    )

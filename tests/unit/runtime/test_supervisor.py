"""Supervisor: restarts with growing backoff inside a sliding budget, then gives up alone;
cancellation and interrupts are never taken for failures."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from orchestrator.clock import ManualClock
from orchestrator.config import ServiceConfig
from orchestrator.logs import JsonFormatter, register_secret
from orchestrator.metrics import Registry
from orchestrator.runtime.supervisor import (
    RestartPolicy,
    Supervisor,
    backoff_s,
)


class Boom(Exception):
    pass


class Flaky:
    """A component that fails its first `failures` runs (then returns), noting when it ran."""

    def __init__(self, clock: ManualClock, failures: int) -> None:
        self.clock = clock
        self.failures = failures
        self.started_s: list[float] = []

    async def run(self) -> None:
        self.started_s.append(self.clock.monotonic())
        if len(self.started_s) <= self.failures:
            raise Boom(f"run {len(self.started_s)} failed")


def no_jitter() -> float:
    return 0.0


def make(clock: ManualClock, policy: RestartPolicy) -> tuple[Supervisor, Registry]:
    registry = Registry()
    return Supervisor(clock, registry, policy, jitter=no_jitter), registry


async def test_restarts_with_growing_backoff_then_stops_cleanly() -> None:
    clock = ManualClock(autojump=True)
    policy = RestartPolicy(budget=5, window_s=300.0, backoff_initial_s=0.5, backoff_max_s=3.0)
    supervisor, registry = make(clock, policy)
    component = Flaky(clock, failures=4)

    await supervisor.supervise("hub", component.run)

    waits_s = [b - a for a, b in zip(component.started_s, component.started_s[1:], strict=False)]
    assert waits_s == pytest.approx([0.5, 1.0, 2.0, 3.0])  # doubling, capped at backoff_max_s
    state = supervisor.state("hub")
    assert state.status == "stopped"
    assert state.restarts == 4
    assert state.last_error == "Boom: run 4 failed"
    assert registry.render().count('orch_component_restarts_total{component="hub"} 4.0') == 1


def test_backoff_jitter_stays_within_half_and_never_shrinks() -> None:
    policy = RestartPolicy(backoff_initial_s=1.0, backoff_max_s=60.0)
    for n in range(1, 8):
        ceiling_s = min(60.0, 2.0 ** (n - 1))
        assert backoff_s(policy, n, 0.0) == ceiling_s
        assert backoff_s(policy, n, 0.999) == pytest.approx(ceiling_s * 0.5005)
        if 2.0**n <= 60.0:  # below the cap the shortest wait is never under the last's longest
            assert backoff_s(policy, n + 1, 0.999) >= backoff_s(policy, n, 0.0) * 0.999


async def test_budget_spent_marks_failed_and_reports_once() -> None:
    clock = ManualClock(autojump=True)
    supervisor, registry = make(clock, RestartPolicy(budget=3, window_s=100.0))
    component = Flaky(clock, failures=1_000)
    reports: list[tuple[str, BaseException]] = []

    await supervisor.supervise("worker:mm", component.run, on_gave_up=lambda n, e: reports.append((n, e)))  # fmt: skip

    assert len(component.started_s) == 4  # the first run and its 3 restarts
    assert [name for name, _ in reports] == ["worker:mm"]
    assert str(reports[0][1]) == "run 4 failed"
    state = supervisor.state("worker:mm")
    assert (state.status, state.restarts) == ("failed", 3)
    assert 'orch_component_failed{component="worker:mm"} 1.0' in registry.render()


async def test_zero_budget_gives_up_at_the_first_failure_with_an_async_report() -> None:
    clock = ManualClock(autojump=True)
    supervisor, _ = make(clock, RestartPolicy(budget=0))
    component = Flaky(clock, failures=1)
    reported = asyncio.Event()

    async def report(name: str, exc: BaseException) -> None:
        await asyncio.sleep(0)
        reported.set()

    await supervisor.supervise("feeds", component.run, on_gave_up=report)

    assert len(component.started_s) == 1
    assert reported.is_set()
    assert supervisor.state("feeds").status == "failed"


async def test_window_slides_so_old_restarts_stop_counting() -> None:
    clock = ManualClock(autojump=True)
    supervisor, _ = make(clock, RestartPolicy(budget=2, window_s=10.0, backoff_initial_s=1.0,
                                              backoff_max_s=1.0))  # fmt: skip
    runs = 0

    async def run() -> None:
        nonlocal runs
        runs += 1
        if runs == 3:
            await clock.sleep(20.0)  # healthy long enough for both earlier restarts to age out
        raise Boom(f"run {runs}")

    await supervisor.supervise("hub", run)

    # Runs 1 and 2 spend the budget; run 3 fails after the window slid, so two more restarts
    # are allowed (runs 4 and 5); run 5's failure finds the budget spent again.
    assert runs == 5
    assert supervisor.state("hub").restarts == 4
    assert supervisor.state("hub").status == "failed"


async def test_cancellation_during_backoff_propagates_and_restarts_nothing() -> None:
    clock = ManualClock()
    supervisor, _ = make(clock, RestartPolicy(backoff_initial_s=5.0))
    component = Flaky(clock, failures=1_000)
    task = asyncio.create_task(supervisor.supervise("hub", component.run))
    for _ in range(100):  # a few loop turns: the run fails, the backoff starts
        if clock.sleepers:
            break
        await asyncio.sleep(0)
    assert supervisor.state("hub").status == "restarting"

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await clock.advance(60.0)

    assert len(component.started_s) == 1
    assert supervisor.state("hub").status == "stopped"


async def test_cancellation_of_a_running_component_is_not_a_failure() -> None:
    clock = ManualClock()
    supervisor, registry = make(clock, RestartPolicy())
    started = asyncio.Event()

    async def run() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(supervisor.supervise("hub", run))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert supervisor.state("hub").status == "stopped"
    assert supervisor.state("hub").restarts == 0
    assert "orch_component_restarts_total{" not in registry.render()  # no sample


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
async def test_interrupts_propagate_at_once(interrupt: type[BaseException]) -> None:
    clock = ManualClock(autojump=True)
    supervisor, _ = make(clock, RestartPolicy())
    runs = 0

    async def run() -> None:
        nonlocal runs
        runs += 1
        raise interrupt

    with pytest.raises(interrupt):
        await supervisor.supervise("hub", run)
    assert runs == 1


async def test_one_failing_component_never_takes_down_the_task_group() -> None:
    clock = ManualClock(autojump=True)
    supervisor, _ = make(clock, RestartPolicy(budget=1))
    healthy_done = asyncio.Event()
    gave_up: list[str] = []

    async def failing() -> None:
        raise Boom("always")

    async def healthy() -> None:
        await clock.sleep(100.0)  # still running long after the other one was given up on
        assert supervisor.state("bad").status == "failed"
        healthy_done.set()

    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(supervisor.supervise("bad", failing, on_gave_up=lambda n, e: gave_up.append(n)))  # fmt: skip
        tasks.create_task(supervisor.supervise("good", healthy))

    assert healthy_done.is_set()
    assert gave_up == ["bad"]
    assert {n: s.status for n, s in supervisor.states.items()} == {"bad": "failed", "good": "stopped"}  # fmt: skip


async def test_a_failing_report_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock(autojump=True)
    supervisor, _ = make(clock, RestartPolicy(budget=0))

    def report(name: str, exc: BaseException) -> None:
        raise RuntimeError("control plane away")

    with caplog.at_level(logging.ERROR):
        await supervisor.supervise("hub", Flaky(clock, failures=1).run, on_gave_up=report)
    assert "component.gave_up_report_failed" in [r.getMessage() for r in caplog.records]
    assert supervisor.state("hub").status == "failed"


async def test_a_running_name_cannot_be_supervised_twice() -> None:
    clock = ManualClock()
    supervisor, _ = make(clock, RestartPolicy())
    task = asyncio.create_task(supervisor.supervise("hub", asyncio.Event().wait))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    with pytest.raises(ValueError, match="already supervised"):
        await supervisor.supervise("hub", asyncio.Event().wait)  # type: ignore[arg-type]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(KeyError):
        supervisor.state("never")


async def test_failure_logs_name_type_and_message_never_a_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    register_secret("s3cr3t-api-value")
    clock = ManualClock(autojump=True)
    supervisor, _ = make(clock, RestartPolicy(budget=1))

    async def run() -> None:
        raise Boom("signing with s3cr3t-api-value failed")

    with caplog.at_level(logging.INFO):
        await supervisor.supervise("worker:mm", run)

    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records]
    events = {line["event"]: line for line in lines}
    assert events["component.restarting"]["component"] == "worker:mm"
    assert events["component.restarting"]["error_type"] == "Boom"
    assert events["component.gave_up"]["error"] == "Boom: signing with *** failed"
    assert all("s3cr3t-api-value" not in json.dumps(line) for line in lines)


def test_policy_from_the_service_config() -> None:
    service = ServiceConfig(restart_budget=2, restart_window_s=60.0)
    policy = RestartPolicy.from_config(service)
    assert (policy.budget, policy.window_s) == (2, 60.0)

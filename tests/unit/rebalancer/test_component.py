"""The rebalancer's cycle, with stand-ins for the venue and the journal: reconcile first, read
every account, plan, move each planned amount once; pause stops moves but not reconciliation;
a failed cycle is counted and the next one starts over; a request runs a cycle before the period."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from decimal import Decimal

import msgspec
import pytest

from orchestrator.clock import ManualClock
from orchestrator.config import Config, parse_config
from orchestrator.errors import VenueUnavailable
from orchestrator.exchange.protocol import Balance
from orchestrator.metrics import Registry
from orchestrator.rebalancer.component import Rebalancer
from orchestrator.rebalancer.transfers import PlannedTransfer, TransferRecord, utc_day

CONFIG = parse_config(
    {
        "accounts": [{"name": "master", "role": "master"}, {"name": "sub1", "role": "sub"}],
        "rebalancer": {"interval_s": 30},
    }
)


class Venue:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.balances = {"master": {"ZUSD": Balance(asset="ZUSD", total=Decimal(900), held=Decimal(0))},
                         "sub1": {"ZUSD": Balance(asset="ZUSD", total=Decimal(10), held=Decimal(0))}}  # fmt: skip
        self.down = False

    async def read(self, account: str) -> Mapping[str, Balance]:
        self.calls.append(f"read:{account}")
        if self.down:
            raise VenueUnavailable("venue away")
        return self.balances[account]


class Journal:
    def __init__(self, venue: Venue) -> None:
        self.venue = venue

    async def in_flight(self) -> set[tuple[str, str]]:
        self.venue.calls.append("in_flight")
        return set()


class Executor:
    def __init__(self, venue: Venue, clock: ManualClock) -> None:
        self.venue = venue
        self.clock = clock
        self.executed: list[tuple[PlannedTransfer, str]] = []

    async def reconcile(self) -> list[TransferRecord]:
        self.venue.calls.append("reconcile")
        return []

    async def execute(self, planned: PlannedTransfer, trigger: str) -> TransferRecord:
        self.venue.calls.append(f"execute:{planned.target}")
        self.executed.append((planned, trigger))
        now_s = self.clock.time()
        return TransferRecord(id=f"t{len(self.executed)}", planned=planned, state="complete",
                              trigger=trigger, created_s=now_s, updated_s=now_s,
                              day=utc_day(now_s))  # fmt: skip


async def top_up_sub1(balances: Mapping[str, Mapping[str, Balance]],
                      in_flight: set[tuple[str, str]], now_s: float) -> Sequence[PlannedTransfer]:  # fmt: skip
    have = balances["sub1"]["ZUSD"].available
    if have >= 100:
        return []
    return [PlannedTransfer(asset="ZUSD", amount=100 - have, source="master", target="sub1",
                            reason="band_low")]  # fmt: skip


def build(config: Config = CONFIG) -> tuple[Rebalancer, Venue, Executor, ManualClock, Registry]:
    clock = ManualClock()
    venue = Venue()
    executor = Executor(venue, clock)
    registry = Registry()
    rebalancer = Rebalancer(config, read_balances=venue.read, planner=top_up_sub1,
                            executor=executor, journal=Journal(venue), clock=clock,
                            registry=registry)  # fmt: skip
    return rebalancer, venue, executor, clock, registry


async def test_a_cycle_reconciles_before_reading_and_moves_what_was_planned_once() -> None:
    rebalancer, venue, executor, _, registry = build()
    report = await rebalancer.cycle("period")
    assert venue.calls == ["reconcile", "read:master", "read:sub1", "in_flight", "execute:sub1"]
    assert [(p.amount, p.target, t) for p, t in executor.executed] == [
        (Decimal(90), "sub1", "period")
    ]
    assert [r.state for r in report.records] == ["complete"]
    assert [r.id for r in rebalancer.recent] == ["t1"]
    assert registry.counter("orch_rebalancer_cycles_total", "", ("outcome",)).get("ok") == 1


async def test_paused_it_still_reconciles_but_moves_nothing() -> None:
    rebalancer, venue, executor, _, _ = build()
    rebalancer.paused = True
    report = await rebalancer.cycle("period")
    assert venue.calls == ["reconcile"]
    assert executor.executed == []
    assert report.error == "paused"


async def test_a_failed_cycle_is_counted_and_the_next_starts_over() -> None:
    rebalancer, venue, executor, _, registry = build()
    venue.down = True
    report = await rebalancer.cycle("period")
    assert report.error == "venue away"
    assert executor.executed == []
    venue.down = False
    await rebalancer.cycle("period")
    assert len(executor.executed) == 1
    cycles = registry.counter("orch_rebalancer_cycles_total", "", ("outcome",))
    assert (cycles.get("failed"), cycles.get("ok")) == (1, 1)


async def test_a_request_runs_a_cycle_before_the_period_and_names_its_trigger() -> None:
    rebalancer, _, executor, clock, _ = build()
    task = asyncio.create_task(rebalancer.run())
    try:
        await clock.advance(1.0)
        rebalancer.request("request:mm-xbt")
        rebalancer.request("request:mm-xbt")  # the same trigger twice: named once
        for _ in range(10):
            await asyncio.sleep(0)
        assert [t for _, t in executor.executed] == ["request:mm-xbt"]
        await clock.advance(30.0)  # then the period
        for _ in range(10):
            await asyncio.sleep(0)
        assert rebalancer.last is not None
        assert rebalancer.last.trigger == "period"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_watched_band_exit_runs_a_cycle_before_the_period() -> None:
    clock = ManualClock()
    venue = Venue()
    executor = Executor(venue, clock)
    exits: list[list[str]] = [[], ["band:sub1:ZUSD"]]
    rebalancer = Rebalancer(CONFIG, read_balances=venue.read, planner=top_up_sub1,
                            executor=executor, journal=Journal(venue), clock=clock,
                            registry=Registry(), watch=lambda: exits.pop(0) if exits else [],
                            watch_every_s=1.0)  # fmt: skip
    task = asyncio.create_task(rebalancer.run())
    try:
        for _ in range(5):  # the loop arms its first wait
            await asyncio.sleep(0)
        await clock.advance(1.0)  # first look: in band
        for _ in range(10):
            await asyncio.sleep(0)
        assert executor.executed == []
        await clock.advance(1.0)  # second look: out of band -> a cycle at 2 s, not 30 s
        for _ in range(10):
            await asyncio.sleep(0)
        assert [t for _, t in executor.executed] == ["band:sub1:ZUSD"]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_move_after_one_left_pending_on_the_same_end_waits_for_the_next_cycle() -> None:
    clock = ManualClock()
    venue = Venue()

    class PendingFirst(Executor):
        async def execute(self, planned: PlannedTransfer, trigger: str) -> TransferRecord:
            record = await super().execute(planned, trigger)
            if len(self.executed) == 1:
                return msgspec.structs.replace(record, state="pending")
            return record

    executor = PendingFirst(venue, clock)

    async def two_top_ups(balances: Mapping[str, Mapping[str, Balance]],
                          in_flight: set[tuple[str, str]],
                          now_s: float) -> Sequence[PlannedTransfer]:  # fmt: skip
        return [PlannedTransfer(asset="ZUSD", amount=Decimal(n), source="master", target=t,
                                reason="band_low") for n, t in ((10, "sub1"), (20, "sub2"))]  # fmt: skip

    rebalancer = Rebalancer(CONFIG, read_balances=venue.read, planner=two_top_ups,
                            executor=executor, journal=Journal(venue), clock=clock,
                            registry=Registry())  # fmt: skip
    report = await rebalancer.cycle("period")
    assert [p.target for p, _ in executor.executed] == ["sub1"]  # the hub's ZUSD is busy now
    assert [p.target for p in report.deferred] == ["sub2"]
    assert [r.state for r in report.records] == ["pending"]

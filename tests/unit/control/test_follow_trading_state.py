"""Each process follows the trading state in Redis, newest switch first: a record carries the
stream entry id of the command that set it (its generation), Redis takes a switch only over an
older one, and a process applies a record only if it is at least as new as the last it applied.
So a read that left before a halt was written, a resume claimed late from a dead process, or a
stale broadcast copy never undoes a newer switch."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import fakeredis

from orchestrator.clock import ManualClock
from orchestrator.control.halting import DeskTrading
from orchestrator.control.trading import TradingRecord, TradingSwitch
from orchestrator.store.keys import Keys
from orchestrator.workers.deps import TradingStateHolder

OLD, NEW = "1700000000000-0", "1700000000500-3"


class SlowSwitch:
    """A TradingSwitch whose read answers `record` only once `release` is set."""

    def __init__(self, record: TradingRecord) -> None:
        self.record = record
        self.clock = ManualClock()
        self.reading = asyncio.Event()
        self.release = asyncio.Event()

    async def read(self) -> TradingRecord:
        record = self.record  # what Redis held when the read reached it
        self.reading.set()
        await self.release.wait()
        return record


def desk_with(switch: Any) -> tuple[DeskTrading, Any]:
    service = SimpleNamespace(trading_state=TradingStateHolder(), rebalancer=None, units={},
                              domain=SimpleNamespace(accounts={}))  # fmt: skip
    return DeskTrading(cast(Any, service), switch, cancel_timeout_s=1.0), service


async def test_a_read_older_than_a_halt_does_not_lift_it() -> None:
    switch = SlowSwitch(TradingRecord(state="ACTIVE", entry=OLD))
    desk, service = desk_with(switch)
    following = asyncio.create_task(desk.follow_redis())
    await switch.reading.wait()  # the read left before the halt was written
    await desk.follow(TradingRecord(state="HALTED", entry=NEW))  # the broadcast halts here
    assert service.trading_state.state == "HALTED"
    switch.release.set()  # the stale ACTIVE arrives now
    await following
    assert service.trading_state.state == "HALTED"


async def test_a_read_older_than_a_resume_does_not_halt_again() -> None:
    switch = SlowSwitch(TradingRecord(state="HALTED", entry=OLD))
    desk, service = desk_with(switch)
    await desk.follow(TradingRecord(state="HALTED", entry=OLD))
    following = asyncio.create_task(desk.follow_redis())
    await switch.reading.wait()
    await desk.follow(TradingRecord(state="ACTIVE", entry=NEW))
    switch.release.set()
    await following
    assert service.trading_state.state == "ACTIVE"


async def test_a_newer_record_is_followed() -> None:
    switch = SlowSwitch(TradingRecord(state="HALTED", reason="drill", entry=NEW))
    switch.release.set()
    desk, service = desk_with(switch)
    await desk.follow(TradingRecord(state="ACTIVE", entry=OLD))
    result = await desk.follow_redis()  # a halt whose broadcast this process missed
    assert service.trading_state.state == "HALTED"
    assert result["trading_state"] == "HALTED"


async def test_held_halted_until_redis_says_otherwise() -> None:
    switch = SlowSwitch(TradingRecord())  # never set: ACTIVE, no generation
    switch.release.set()
    desk, service = desk_with(switch)
    desk.hold("Redis did not answer at start")
    assert service.trading_state.state == "HALTED"
    await desk.follow_redis()
    assert service.trading_state.state == "ACTIVE"


async def test_redis_takes_a_switch_only_over_an_older_one() -> None:
    redis = fakeredis.FakeAsyncRedis()
    switch = TradingSwitch(redis, Keys("tswitch"), ManualClock())
    newer = await switch.set("HALTED", reason="drill", operator="alice", entry=NEW)
    assert isinstance(newer, TradingRecord)
    late = await switch.set("ACTIVE", reason="resumed", operator="bob", entry=OLD)
    assert late == NEW  # a resume claimed late from a dead process changes nothing
    record = await switch.read()
    assert (record.state, record.operator, record.entry) == ("HALTED", "alice", NEW)
    again = await switch.set("HALTED", reason="drill", operator="alice", entry=NEW)
    assert again == NEW  # the same entry twice: written once

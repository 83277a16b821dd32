"""Each process follows the trading state in Redis (a halt whose broadcast it missed reaches it
within a second), and a read of it that was on its way while the process halted or resumed on a
command is not followed: it may predate the command, which wrote Redis before telling the
processes, and following it would undo the command here until the next read (a halt lifted,
strategies free to send orders, or a resume cancelled again)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import fakeredis

from orchestrator.clock import ManualClock
from orchestrator.control.actions import ServiceActions
from orchestrator.control.commands import Halt, ResumeTrading
from orchestrator.control.trading import TradingRecord
from orchestrator.store.keys import Keys
from orchestrator.workers.deps import TradingStateHolder


class SlowSwitch:
    """A TradingSwitch whose read answers `record` only once `release` is set."""

    def __init__(self, record: TradingRecord) -> None:
        self.record = record
        self.reading = asyncio.Event()
        self.release = asyncio.Event()

    async def read(self) -> TradingRecord:
        record = self.record  # what Redis held when the read reached it
        self.reading.set()
        await self.release.wait()
        return record


def actions_with(switch: SlowSwitch) -> tuple[ServiceActions, Any]:
    service = SimpleNamespace(trading_state=TradingStateHolder(), rebalancer=None, units={})
    shared = SimpleNamespace(redis=fakeredis.FakeAsyncRedis(), keys=Keys("tfollow"),
                             clock=ManualClock())  # fmt: skip
    actions = ServiceActions(cast(Any, service), cast(Any, SimpleNamespace(shared=shared)),
                             cast(Any, switch), cancel_timeout_s=1.0)  # fmt: skip
    return actions, service


def command(kind: type[Halt] | type[ResumeTrading]) -> Halt | ResumeTrading:
    fields: dict[str, Any] = {"id": "cmd-00000001", "operator": "alice", "time_s": 1.0}
    return Halt(reason="drill", **fields) if kind is Halt else ResumeTrading(**fields)


async def test_a_read_older_than_a_halt_does_not_lift_it() -> None:
    switch = SlowSwitch(TradingRecord(state="ACTIVE"))
    actions, service = actions_with(switch)
    following = asyncio.create_task(actions.follow_redis())
    await switch.reading.wait()  # the read left before the halt was written
    await actions.part(command(Halt))  # the broadcast: this process halts
    assert service.trading_state.state == "HALTED"
    switch.release.set()  # the stale ACTIVE arrives now
    await following
    assert service.trading_state.state == "HALTED"


async def test_a_read_older_than_a_resume_does_not_halt_again() -> None:
    switch = SlowSwitch(TradingRecord(state="HALTED"))
    actions, service = actions_with(switch)
    service.trading_state.state = "HALTED"
    following = asyncio.create_task(actions.follow_redis())
    await switch.reading.wait()
    await actions.part(command(ResumeTrading))
    switch.release.set()
    await following
    assert service.trading_state.state == "ACTIVE"


async def test_a_read_with_no_command_meanwhile_is_followed() -> None:
    switch = SlowSwitch(TradingRecord(state="HALTED", reason="drill", operator="alice"))
    switch.release.set()
    actions, service = actions_with(switch)
    await actions.follow_redis()  # a halt whose broadcast this process missed
    assert service.trading_state.state == "HALTED"
    switch.record = TradingRecord(state="ACTIVE")
    await actions.follow_redis()
    assert service.trading_state.state == "ACTIVE"

"""The domain's trading state as the desk set it: one Redis hash every process follows.

    switch = TradingSwitch(redis, keys, clock)
    await switch.set("HALTED", reason="fat finger on mm3", operator="alice")
    record = await switch.read()        # TradingRecord(state="HALTED", ...), ACTIVE when unset

The kill switch writes HALTED here *before* it tells the processes, so a process that misses
the broadcast (starting, restarting, partitioned for a moment) still halts: each reads the
record at start and keeps in step with it while it runs (`ControlPlane`).
"""

from __future__ import annotations

from typing import Final, get_args

import msgspec
import redis.asyncio as aioredis

from orchestrator.clock import Clock
from orchestrator.store.errors import redis_errors
from orchestrator.store.keys import Keys
from orchestrator.strategy import TradingState

STATES: Final[tuple[str, ...]] = get_args(TradingState)


class TradingRecord(msgspec.Struct, frozen=True, kw_only=True):
    state: TradingState = "ACTIVE"
    reason: str | None = None
    operator: str | None = None
    since_s: float | None = None  # wall clock when it was set


class TradingSwitch:
    def __init__(self, redis: aioredis.Redis, keys: Keys, clock: Clock) -> None:
        self.redis = redis
        self.key = keys.trading_state()
        self.clock = clock

    async def read(self) -> TradingRecord:
        """The record; ACTIVE when none was ever set. A state this version does not know is
        read as HALTED: an unknown word must never let trading go on."""
        async with redis_errors(self.redis, "control.trading_state"):
            raw = await self.redis.hgetall(self.key)
        fields = {_text(k): _text(v) for k, v in raw.items()}
        if not fields:
            return TradingRecord()
        state = fields.get("state", "HALTED")
        since = fields.get("since_s")
        return TradingRecord(
            state=state if state in STATES else "HALTED",  # type: ignore[arg-type]
            reason=fields.get("reason") or None,
            operator=fields.get("operator") or None,
            since_s=float(since) if since else None,
        )

    async def set(self, state: TradingState, *, reason: str, operator: str) -> TradingRecord:
        record = TradingRecord(state=state, reason=reason, operator=operator,
                               since_s=self.clock.time())  # fmt: skip
        mapping = {"state": state, "reason": reason, "operator": operator,
                   "since_s": repr(record.since_s)}  # fmt: skip
        async with redis_errors(self.redis, "control.trading_state"):
            await self.redis.hset(self.key, mapping=mapping)  # type: ignore[arg-type]
        return record


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

"""The domain's trading state as the desk set it: one Redis hash every process follows.

    switch = TradingSwitch(redis, keys, clock)
    await switch.set("HALTED", reason="fat finger on mm3", operator="alice")
    record = await switch.read()        # TradingRecord(state="HALTED", ...), ACTIVE when unset

The kill switch writes HALTED here *before* it tells the processes, so a process that misses
the broadcast (starting, restarting, partitioned for a moment) still halts: each reads the
record at start and keeps in step with it while it runs (`ControlPlane`).

Each record carries the stream entry id of the command that wrote it, its *generation*: a switch
is written only over an older one (compare-and-set in Redis), so a halt or resume that comes in
late (claimed from a dead process, taken back after a restart) never undoes a newer one, and a
process applies a record only if it is at least as new as the last it applied.
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


Generation = tuple[int, int]  # a stream entry id "<ms>-<seq>", as numbers
NO_GENERATION: Final[Generation] = (0, 0)  # no switch ever written (or written by hand)

# KEYS[1] the record; ARGV: state, reason, operator, since_s, entry, ms, seq. Written only when
# the stored generation is older; answers 1 when written, else the stored entry id.
_SET_LUA: Final = """
local stored = redis.call('HGET', KEYS[1], 'entry')
if stored then
  local ms, seq = string.match(stored, '^(%d+)-(%d+)$')
  if ms then
    ms, seq = tonumber(ms), tonumber(seq)
    local new_ms, new_seq = tonumber(ARGV[6]), tonumber(ARGV[7])
    if ms > new_ms or (ms == new_ms and seq >= new_seq) then return stored end
  end
end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'reason', ARGV[2], 'operator', ARGV[3],
           'since_s', ARGV[4], 'entry', ARGV[5])
return 1
"""


def generation_of(entry: str | None) -> Generation:
    if not entry:
        return NO_GENERATION
    ms, _, seq = entry.partition("-")
    if not (ms.isascii() and ms.isdigit() and seq.isascii() and seq.isdigit()):
        return NO_GENERATION
    return int(ms), int(seq)


class TradingRecord(msgspec.Struct, frozen=True, kw_only=True):
    state: TradingState = "ACTIVE"
    reason: str | None = None
    operator: str | None = None
    since_s: float | None = None  # wall clock when it was set
    entry: str | None = None  # the command's stream entry id: the record's generation

    @property
    def generation(self) -> Generation:
        return generation_of(self.entry)


class TradingSwitch:
    def __init__(self, redis: aioredis.Redis, keys: Keys, clock: Clock) -> None:
        self.redis = redis
        self.key = keys.trading_state()
        self.clock = clock
        self._set = redis.register_script(_SET_LUA)

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
            entry=fields.get("entry") or None,
        )

    async def set(
        self, state: TradingState, *, reason: str, operator: str, entry: str
    ) -> TradingRecord | str:
        """Write the switch of command entry `entry`; the record, or the newer entry id that
        holds the state already (nothing is written then)."""
        ms, seq = generation_of(entry)
        since_s = self.clock.time()
        record = TradingRecord(state=state, reason=reason, operator=operator,
                               since_s=since_s, entry=entry)  # fmt: skip
        args: list[str | int] = [state, reason, operator, repr(since_s), entry, ms, seq]
        async with redis_errors(self.redis, "control.trading_state"):
            answer = await self._set(keys=[self.key], args=args)
        return record if answer == 1 else _text(answer)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

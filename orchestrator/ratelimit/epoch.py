"""Redis losing the limiter's state is noticed by every process and made safe.

A restart without persistence (or with a stale snapshot) and a failover to a replica that lags
both leave Redis with counters emptier than the venue's. Every limiter script call names the
epoch its caller holds (`lua/epoch.lua`: the fields {id, lost_s, seq} of the state hash); Redis
answers -1 when it holds another one or none. Then, and when the grants' sequence number goes
back within an epoch (a replica behind the primary it replaced), this guard:

- adopts the new epoch, or creates it (`lost_s` = now) when the hash is gone; one atomic script,
  so processes that notice together agree on one epoch, and a bump only replaces the id its
  caller saw, so two that both notice bump once;
- hands back at once every floor this process holds (`lua/restore.lua`: raise, never lower);
- refuses new risk for `restore_grace_s` after the loss, so that every live process (each polls
  the epoch every `poll_s`, busy or idle) has handed its floors back before anyone trusts them;
- has a scope absent from Redis treated as full at the loss (`missing_tat`) until that has
  decayed: a scope nobody knows. Cancels assume the level new risk may leave a counter at (the
  local budget's rule), so they keep the reserve that is theirs.

A process that has never held an epoch and finds none is a cold start of the desk: `lost_s` 0,
nothing assumed. (One that starts on a just-emptied Redis before any live process noticed
therefore trusts it for up to `poll_s`; the live ones then bump the epoch and it adopts.)
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import redis.asyncio as aioredis

from orchestrator.clock import Clock
from orchestrator.errors import StoreError
from orchestrator.logs import get_logger
from orchestrator.metrics import Registry
from orchestrator.ratelimit.policy import Lane, Scope
from orchestrator.ratelimit.scripts import now_arg, script
from orchestrator.store.errors import redis_errors
from orchestrator.store.keys import Keys

log = get_logger(__name__)

EPOCH_LUA: Final = script("epoch.lua")
RESTORE_LUA: Final = script("restore.lua")
RESTORE_BATCH: Final = 256  # keys per restore call: one script does not hold Redis for long


@dataclass(frozen=True, slots=True)
class Epoch:
    """One incarnation of Redis's limiter state: `lost_s` when it began after a loss (0 at a
    cold start), `seq` the grants counted in it."""

    id: str
    lost_s: float
    seq: int


class Mark(NamedTuple):
    """What this process had seen before it sent a call: a reply in the same epoch with a lower
    `seq` comes from a Redis that has forgotten grants (replies are made in order). A tuple:
    one is made per permit."""

    epoch_id: str
    seq: int


class EpochGuard:
    """The epoch this process holds, and what to do when Redis holds another."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        clock: Clock,
        *,
        floors: Callable[[], Mapping[str, float]],
        reserve_fraction: float,
        transit_s: float,
        restore_grace_s: float = 1.0,
        poll_s: float = 0.25,
        script_time: Callable[[], float] | None = None,
        registry: Registry | None = None,
    ) -> None:
        """`floors`: the tat floor per scope name this process holds (on Redis's clock), read
        when they are handed back. `script_time` is for tests only (instead of Redis TIME)."""
        self.redis = redis
        self.keys = keys
        self.clock = clock
        self.floors = floors
        self.reserve_fraction = reserve_fraction
        self.transit_s = transit_s
        self.restore_grace_s = restore_grace_s
        self.poll_s = poll_s
        self.script_time = script_time
        self.losses = (registry or Registry()).counter(
            "orch_limiter_state_losses", "Losses of Redis's limiter state noticed", ["reason"]
        )
        self.epoch: Epoch | None = None
        self.lost_s = 0.0  # the held epoch's, read on the hot path
        self._max_seq = 0  # highest seq seen in the held epoch
        self._confirmed_s = 0.0  # when Redis last answered in the held epoch (Redis's clock)
        self._offset_s = 0.0  # Redis's clock minus ours
        self._read_s = 0.0  # Redis's clock at the last epoch script
        self._epoch = redis.register_script(EPOCH_LUA)
        self._restore = redis.register_script(RESTORE_LUA)
        self._lock = asyncio.Lock()  # one recovery at a time in this process
        self._watcher: asyncio.Task[None] | None = None

    @property
    def id(self) -> str:
        """The held epoch's id ("" before `ensure`)."""
        return self.epoch.id if self.epoch else ""

    def now_s(self) -> float:
        """Redis's clock as last measured (for decisions made without it, too)."""
        return self.script_time() if self.script_time else self.clock.time() + self._offset_s

    def observe_clock(self, redis_now_s: float) -> None:
        """Redis's clock as a reply gave it: the offset `now_s` works from."""
        self._offset_s = redis_now_s - self.clock.time()

    def mark(self) -> Mark:
        return Mark(self.id, self._max_seq)

    # --- pure decisions --------------------------------------------------------------------
    def missing_tat(self, scope: Scope, now_s: float, lane: Lane) -> float:
        """The tat to assume for `scope` when Redis has no key for it: full at the loss (new
        risk), or as full as new risk may leave it (cancels), until that has decayed; else 0."""
        lost_s = self.lost_s
        if lost_s <= 0:
            return 0.0
        if lane == "risk_reducing":
            level = scope.threshold * (1 - self.reserve_fraction)
            tat_s = lost_s + level / scope.decay_per_s + self.transit_s
        else:
            tat_s = lost_s + scope.threshold / scope.decay_per_s
        return tat_s if now_s < tat_s else 0.0

    def new_risk_blocked(self, now_s: float) -> bool:
        """Within the grace after a loss: live processes may not all have handed back yet."""
        return self.lost_s > 0 and now_s < self.lost_s + self.restore_grace_s

    def on_seq(self, seq: int, now_s: float, mark: Mark) -> bool:
        """A grant's reply: True when its `seq` went back (the caller then `recover`s)."""
        if mark.epoch_id != self.id:
            return False  # the epoch changed while the call was out: nothing to compare
        self._confirmed_s = max(self._confirmed_s, now_s)
        if seq <= mark.seq:
            return True
        self._max_seq = max(self._max_seq, seq)
        return False

    def _stale(self, seen: Epoch) -> bool:
        """Redis holds `seen` where we held another: is it older than what we held? (A cold
        start's epoch, or a replica's, begun before Redis last answered us in ours.)"""
        return self.epoch is not None and seen.lost_s < self._confirmed_s

    # --- I/O -------------------------------------------------------------------------------
    async def ensure(self) -> str:
        """The epoch id to send, read (or created, at a cold start) on first use."""
        if self.epoch is None:
            async with self._lock:
                if self.epoch is None:
                    self._adopt(await self._script("read", "0"))
        return self.id

    async def on_mismatch(self, sent_id: str) -> str:
        """Redis answered -1 to a call that named `sent_id`: settle on Redis's epoch (bumping
        one older than ours), hand back the floors; returns the id to retry with."""
        async with self._lock:
            if self.id == sent_id:
                await self._settle(await self._script("read", "1" if sent_id else "0"), "changed")
        return self.id

    async def recover(self, mark: Mark) -> None:
        """A seq went back in epoch `mark.epoch_id`: a new epoch, the floors handed back."""
        async with self._lock:
            if self.id == mark.epoch_id:
                await self._settle(await self._script("bump", mark.epoch_id), "seq")

    async def _settle(self, seen: Epoch, reason: str) -> None:
        if seen.id != self.id and self._stale(seen):
            seen = await self._script("bump", seen.id)
            reason = "stale"
        if seen.id == self.id:
            return
        self.losses.inc(reason)
        log.warning("limiter.state_lost", reason=reason, epoch=seen.id, lost_s=seen.lost_s)
        self._adopt(seen)
        await self._hand_back()

    def _adopt(self, epoch: Epoch) -> None:
        self.epoch = epoch
        self.lost_s = epoch.lost_s
        self._max_seq = epoch.seq
        self._confirmed_s = self._read_s  # Redis held it when the script read or wrote it

    async def _script(self, mode: str, arg: str) -> Epoch:
        time_arg = now_arg(self.script_time)
        async with redis_errors(self.redis, f"limiter.epoch_{mode}"):
            reply: list[Any] = await self._epoch(
                keys=[self.keys.limiter_state()], args=[mode, secrets.token_hex(6), arg, time_arg]
            )
        self._read_s = float(reply[3])
        self.observe_clock(self._read_s)
        return Epoch(_text(reply[0]), float(reply[1]), int(reply[2]))

    async def _hand_back(self) -> None:
        """Every floor still ahead of now, into Redis at once (not lazily on next use)."""
        now_s = self.now_s()
        ahead = [(name, tat) for name, tat in self.floors().items() if tat > now_s]
        raised = 0
        for start in range(0, len(ahead), RESTORE_BATCH):
            batch = ahead[start : start + RESTORE_BATCH]
            args = [now_arg(self.script_time)]
            for name, tat in batch:
                args += (self.keys.limiter_scope_field(name), repr(tat))
            async with redis_errors(self.redis, "limiter.restore"):
                raised += int(await self._restore(keys=[self.keys.limiter_state()], args=args))
        log.info("limiter.floors_restored", scopes=len(ahead), raised=raised, epoch=self.id)

    async def poll(self) -> None:
        """One look at Redis's epoch (the watcher's step): a loss noticed by an idle process
        too, and its floors handed back within `poll_s`."""
        if self.epoch is None:
            return  # nothing held yet: the first decision reads the epoch
        mark = self.mark()
        async with self._lock:
            if self.id != mark.epoch_id:
                return
            seen = await self._script("read", "1")
            if seen.id != self.id:
                await self._settle(seen, "changed")
            elif seen.seq < mark.seq:
                await self._settle(await self._script("bump", seen.id), "seq")
            else:
                self._max_seq = max(self._max_seq, seen.seq)
                self._confirmed_s = max(self._confirmed_s, self._read_s)

    # --- the watcher -----------------------------------------------------------------------
    def start(self) -> None:
        """Poll the epoch every `poll_s` until `stop` (owned here, never fire-and-forget)."""
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch(), name="limiter-epoch-watcher")

    async def stop(self) -> None:
        task, self._watcher = self._watcher, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _watch(self) -> None:
        while True:
            await self.clock.sleep(self.poll_s)
            try:
                await self.poll()
            except StoreError as exc:  # Redis down: the limiter's health verdict handles it
                log.debug("limiter.epoch_poll_failed", error=str(exc))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

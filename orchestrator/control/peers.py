"""Which service processes are alive, and what each runs: heartbeats in one Redis hash.

    peers = Peers(redis, keys, clock, timeout_s=3.0)
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(peers.run(make_heartbeat))      # beat every second
        live = await peers.live()                         # process -> Heartbeat
    await peers.leave("host-a")                           # clean stop: gone at once

`keys.processes()` maps each process name to its JSON `Heartbeat`, stamped with the wall clock
of the process that wrote it. A process is live while its stamp is within `timeout_s` of our
clock (either way: hosts' clocks differ a little), which is how commands are routed to the
process that runs a strategy and broadcasts reach every process. A process that died without
`leave` leaves its heartbeat behind; `live` drops those older than `GARBAGE_TIMEOUTS` times
`timeout_s`, each only if it is still the value it read (one script), so a process that beat
meanwhile is never erased. A heartbeat that does not decode is skipped and logged, not dropped:
it may be a newer version's.

Heartbeats must never stop the service: `run` logs a Redis error (once per outage) and goes on.
The other calls raise `StoreUnavailable` / `StoreError` (translated at this edge).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Final

import msgspec
import redis.asyncio as aioredis

from orchestrator.clock import Clock
from orchestrator.errors import StoreError
from orchestrator.logs import get_logger
from orchestrator.store.errors import redis_errors
from orchestrator.store.keys import Keys

log = get_logger(__name__)

GARBAGE_TIMEOUTS: Final = 10  # a heartbeat this many timeouts old is a dead process's leftover


class Heartbeat(msgspec.Struct, frozen=True, kw_only=True):
    process: str
    pid: int
    host: str
    strategies: list[str]  # configured in that process
    running: list[str]
    accounts: list[str]
    rebalancer: bool
    time_s: float  # the writer's wall clock when it beat


_encode: Final = msgspec.json.Encoder().encode
_decoder: Final = msgspec.json.Decoder(Heartbeat)
_PRUNE_LUA: Final = (
    resources.files("orchestrator.control").joinpath("lua/prune_peers.lua").read_text("utf-8")
)


class Peers:
    """The processes' heartbeats (see the module)."""

    def __init__(
        self, redis: aioredis.Redis, keys: Keys, clock: Clock, *, timeout_s: float = 3.0
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, not {timeout_s}")
        self.redis = redis
        self.key: Final = keys.processes()
        self.clock = clock
        self.timeout_s = timeout_s
        self._prune = redis.register_script(_PRUNE_LUA)

    async def beat(self, heartbeat: Heartbeat) -> None:
        async with redis_errors(self.redis, "peers.beat"):
            await self.redis.hset(self.key, heartbeat.process, _encode(heartbeat))

    async def live(self) -> dict[str, Heartbeat]:
        """Process -> heartbeat of every process that beat within `timeout_s` of now."""
        async with redis_errors(self.redis, "peers.live"):
            raw = await self.redis.hgetall(self.key)
        now_s = self.clock.time()
        live: dict[str, Heartbeat] = {}
        stale: list[bytes | str] = []
        for name, value in raw.items():
            process = name.decode(errors="replace") if isinstance(name, bytes) else name
            try:
                heartbeat = _decoder.decode(value)
            except msgspec.DecodeError as exc:
                log.warning("peers.unreadable_heartbeat", process=process, error=str(exc))
                continue
            age_s = now_s - heartbeat.time_s
            if abs(age_s) <= self.timeout_s:
                live[process] = heartbeat
            elif age_s > GARBAGE_TIMEOUTS * self.timeout_s:
                stale += [name, value]
        if stale:
            async with redis_errors(self.redis, "peers.prune"):
                dropped = await self._prune(keys=[self.key], args=stale)
            log.info("peers.pruned", dropped=int(dropped))
        return live

    async def leave(self, process: str) -> None:
        """Forget `process` at once (a clean stop), rather than after `timeout_s`."""
        async with redis_errors(self.redis, "peers.leave"):
            await self.redis.hdel(self.key, process)

    async def run(self, make: Callable[[], Heartbeat], interval_s: float = 1.0) -> None:
        """Beat every `interval_s` until cancelled. A Redis error is logged (once until Redis
        takes a beat again), never raised: the service goes on without Redis."""
        failing = False
        while True:
            try:
                await self.beat(make())
            except StoreError as exc:
                if not failing:
                    log.warning("peers.beat_failed", error=str(exc))
                failing = True
            else:
                if failing:
                    log.info("peers.beat_resumed")
                failing = False
            await self.clock.sleep(interval_s)

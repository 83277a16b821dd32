"""The service's event stream: what happened to strategies and components, for the control plane.

    events = ServiceEvents(redis, keys, clock=clock, registry=registry)
    await events.publish("strategy_failed", strategy="mm1", reason="on_book raised KeyError")

Each event is one entry of the capped stream `keys.service_events()` (`XADD ... MAXLEN ~`) with
`event_id`, `kind`, `time_s` (the clock's wall time when it happened) and the caller's fields, as
text; `None` fields are left out, booleans are `true`/`false`. Every event is logged too.

Publishing never raises for Redis's sake: it is called on failure paths (a strategy just blew
up, Redis may be why), which must go on to cancel orders. An event Redis cannot take now (down,
hung past `timeout_s`, or refusing) waits in a bounded in-memory backlog, oldest dropped first
(counted), and goes out, in order, ahead of the next event that finds Redis back (or on
`flush()`). Delivery is at least once: an XADD cut by the timeout may have landed, and is then
sent again on the flush; `event_id` lets a reader drop the copy.

One task sends at a time: a publish that finds another publish sending leaves its event in the
backlog, which that sender drains before it returns, so publishers never queue behind a hung
Redis one after the other.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable, Mapping
from typing import Final

import redis.asyncio as aioredis
from redis.typing import EncodableT, FieldT

from orchestrator.clock import Clock
from orchestrator.errors import StoreError, StoreUnavailable
from orchestrator.logs import get_logger, redact
from orchestrator.metrics import Registry
from orchestrator.store.errors import redis_errors
from orchestrator.store.health import RedisHealth
from orchestrator.store.keys import Keys

log = get_logger(__name__)

FieldValue = str | int | float | None
Listener = Callable[[Mapping[str, str]], None]
RESERVED_FIELDS: Final = frozenset({"event_id", "kind", "time_s"})


class ServiceEvents:
    """Publishes service events to the Redis stream, keeping them while Redis is away."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        clock: Clock,
        registry: Registry,
        maxlen: int = 10_000,
        backlog_max: int = 1_000,
        timeout_s: float = 1.0,
        health: RedisHealth | None = None,
    ) -> None:
        """`health`, when given, is the process's shared Redis verdict: while it says down,
        events go straight to the backlog without a try each."""
        if backlog_max < 1:
            raise ValueError(f"backlog_max must be at least 1 (got {backlog_max})")
        self.redis = redis
        self.key = keys.service_events()
        self.clock = clock
        self.maxlen = maxlen
        self.backlog_max = backlog_max
        self.timeout_s = timeout_s
        self.health = health
        self._backlog: deque[dict[str, str]] = deque()
        self._listeners: dict[str, list[Listener]] = {}
        self._sending = False
        self._failing = False
        self.dropped = registry.counter(
            "orch_service_events_dropped", "Service events dropped from a full backlog"
        )
        self.backlog_gauge = registry.gauge(
            "orch_service_events_backlog", "Service events waiting for Redis"
        )

    @property
    def backlog(self) -> int:
        """Events not in Redis yet."""
        return len(self._backlog)

    def listen(self, kind: str, listener: Listener) -> None:
        """Call `listener(fields)` in this process for every event of `kind` published here
        (before Redis has it: the rebalancer hears a strategy's request even with Redis away).
        A listener must be quick and must not raise; one that raises is logged and skipped."""
        self._listeners.setdefault(kind, []).append(listener)

    async def publish(self, kind: str, **fields: FieldValue) -> None:
        """Record one event: logged now, in Redis now or after the backlog's flush. Never
        raises for Redis's sake (see the module)."""
        clash = RESERVED_FIELDS.intersection(fields)
        if clash:
            raise ValueError(f"event fields {sorted(clash)} are reserved")
        given = {name: redact(_text(v), name) for name, v in fields.items() if v is not None}
        for listener in self._listeners.get(kind, ()):
            try:
                listener(given)
            except Exception:  # a listener's bug must not stop the event or its publisher
                log.exception("service_events.listener_failed", kind=kind)
        entry = {"event_id": uuid.uuid4().hex, "kind": kind, "time_s": repr(self.clock.time())}
        log.info("service.event", kind=kind, event_id=entry["event_id"], fields=given)
        self._keep(entry | given)
        await self.flush()

    async def flush(self) -> bool:
        """Send the backlog, oldest first; True when nothing is left waiting. Another task
        already sending will send it: then this returns at once."""
        if self._sending:
            return False
        self._sending = True
        try:
            flushed = 0
            while self._backlog:
                entry = self._backlog[0]
                if not await self._send(entry):
                    return False
                if self._backlog and self._backlog[0] is entry:  # not dropped while sending
                    self._backlog.popleft()
                flushed += 1
            if self._failing:
                self._failing = False
                log.info("service_events.resumed", flushed=flushed)
            return True
        finally:
            self._sending = False
            self.backlog_gauge.set(len(self._backlog))

    async def recent(self, count: int = 100) -> list[dict[str, str]]:
        """The last `count` events in Redis, oldest first (for status and tests). Raises
        `StoreUnavailable` / `StoreError`: a reader, unlike a publisher, wants to know."""
        async with redis_errors(self.redis, "service_events.recent"):
            entries = await self.redis.xrevrange(self.key, count=count)
        return [
            {_decode(name): _decode(value) for name, value in fields.items()}
            for _, fields in reversed(entries or [])
            if fields is not None
        ]

    def _keep(self, entry: dict[str, str]) -> None:
        if len(self._backlog) >= self.backlog_max:
            lost = self._backlog.popleft()
            self.dropped.inc()
            log.warning(
                "service_events.dropped",
                kind=lost["kind"],
                event_id=lost["event_id"],
                backlog_max=self.backlog_max,
            )
        self._backlog.append(entry)
        self.backlog_gauge.set(len(self._backlog))

    async def _send(self, entry: dict[str, str]) -> bool:
        """XADD one entry; False (logged once per outage) when Redis did not take it."""
        if self.health is not None and self.health.is_down():
            return False
        fields: dict[FieldT, EncodableT] = dict(entry.items())
        try:
            async with (
                self.clock.timeout(self.timeout_s),
                redis_errors(self.redis, "service_events.publish"),
            ):
                await self.redis.xadd(self.key, fields, maxlen=self.maxlen, approximate=True)
        except (StoreError, TimeoutError) as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if self.health is not None and isinstance(exc, StoreUnavailable | TimeoutError):
                self.health.mark_down("service_events.publish", reason)
            if not self._failing:
                self._failing = True
                log.warning("service_events.not_sent", reason=reason, backlog=len(self._backlog))
            return False
        if self.health is not None:
            self.health.mark_up()
        return True


def _text(value: str | int | float) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else repr(value)


def _decode(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

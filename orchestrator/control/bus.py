"""The control plane's Redis transport: commands in through a consumer group, answered once.

    bus = CommandBus(redis, keys, group="orchestrator", process="host-a", clock=clock)
    await bus.open()
    for delivery in await bus.next_batch():
        match await bus.take(command.id, delivery):
            case "new" | "again": await bus.finish(delivery, reply, audit)  # or route/broadcast
            case "duplicate": await bus.finish(delivery, refusal, audit)    # a replay: refused
            case "done": pass                                               # acked by take

Every process reads the main stream `keys.commands()` in one consumer group, as the consumer
named after itself (stable across restarts: what it read and never answered is its own again),
and its own inbox `keys.inbox(process)`, where other processes route what it must run.
`next_batch` gives, in turn: its own pending entries (once, after `open`), entries another
consumer left unanswered for `claim_idle_s` (a dead process: XAUTOCLAIM, every `claim_idle_s`),
then new entries of both streams (one XREADGROUP, blocking up to `block_s`). An entry handed out
and not answered yet is never handed out again by this process's own claims.

Exactly once: a command id's record (`keys.command_record`) is created by `take` and moved to
done by `finish` in the script that writes the reply, acks the entry and appends the audit
entry: a crash leaves nothing done (the entry comes back, `take` says "again") or everything.
`finish`, `route` and `ack_broadcast` ack first and write nothing when the entry was no longer
pending (whoever acked it answered it): a sender gets one reply. A command id reused by another
entry is a "duplicate" and changes nothing.

All control keys share the hash tag `keys.control_tag` and every key a script touches is passed
in KEYS, so the scripts (`lua/*.lua`) and the two-stream read run on Redis Cluster. Redis errors
leave every public call as `StoreUnavailable` / `StoreError` (`store.errors.redis_errors`). A
group lost with its stream (Redis restarted without persistence) is made again. Blocking calls
stay below half the client's socket timeout (else redis-py takes the wait for a dead server).
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Awaitable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final, Literal, cast

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from orchestrator.clock import Clock
from orchestrator.control.replies import Ack, Reply, decode_ack, encode
from orchestrator.errors import CommandError, StoreError
from orchestrator.logs import get_logger
from orchestrator.store.connection import socket_timeout_s
from orchestrator.store.errors import redis_errors
from orchestrator.store.keys import Keys

log = get_logger(__name__)

TakeOutcome = Literal["new", "again", "done", "duplicate"]
INBOX_MAX_LEN: Final = 10_000  # as the main stream's MAXLEN ~ (its senders cap it)
WAIT_SLICE_S: Final = 0.25  # one BLPOP of `wait_acks`: well below any socket timeout we use
_ENTRY_ID: Final = re.compile(r"^(\d+)-\d+$")
_SCRIPTS: Final = ("take", "finish", "route", "broadcast", "ack_broadcast")
_json: Final = msgspec.json.Encoder(decimal_format="string")
_Arg = bytes | str | int | float  # one Lua ARGV
_Entries = list[tuple[str, dict[str, bytes] | None]]  # id, fields (None: deleted)


def _lua(name: str) -> str:
    return resources.files("orchestrator.control").joinpath(f"lua/{name}.lua").read_text("utf-8")


@dataclass(frozen=True, slots=True)
class Delivery:
    stream: str  # the key it was read from (main stream or this process's inbox)
    entry: str  # its entry id in `stream`
    reply_to: str  # the main-stream entry id replies and acks are keyed by
    wire: bytes  # the signed bytes (b"" when the entry had no `wire` field)
    routed_from: str | None
    broadcast: bool
    queued_s: float  # wall time Redis took the command: the ms part of reply_to / 1000


class CommandBus:
    """One process's end of the command streams (see the module)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        group: str,
        process: str,
        claim_idle_s: float = 5.0,
        reply_ttl_s: float = 300.0,
        record_ttl_s: float = 3600.0,
        audit_max_len: int = 100_000,
        block_s: float = 1.0,
        clock: Clock,
    ) -> None:
        timeout_s = socket_timeout_s(redis)
        if min(claim_idle_s, reply_ttl_s, record_ttl_s, block_s, audit_max_len) <= 0:
            raise ValueError("claim_idle_s, reply_ttl_s, record_ttl_s, block_s, audit_max_len "
                             "must be positive")  # fmt: skip
        self.redis = redis
        self.keys = keys
        self.group = group
        self.process = process
        self.claim_idle_s = claim_idle_s
        self.reply_ttl_ms = math.ceil(reply_ttl_s * 1000)
        self.record_ttl_ms = math.ceil(record_ttl_s * 1000)
        self.audit_max_len = audit_max_len
        # A block as long as the socket timeout would read as a dead server: half of it at most.
        self.block_ms = max(1, round(min(block_s, (timeout_s or math.inf) / 2) * 1000))
        self.clock = clock
        self.stream: Final = keys.commands()
        self.inbox: Final = keys.inbox(process)
        self._wait_slice_s = min(WAIT_SLICE_S, (timeout_s or 1.0) / 2)
        self._scripts = {name: redis.register_script(_lua(name)) for name in _SCRIPTS}
        self._opened = False
        self._pending_after: dict[str, str] = {}  # stream -> last own pending id read
        self._claim_at_s = 0.0  # monotonic time of the next XAUTOCLAIM
        self._claim_cursor = "0-0"
        self._in_flight: set[tuple[str, str]] = set()  # (stream, entry) handed out, unanswered

    # --- reading -------------------------------------------------------------------------------
    async def open(self) -> None:
        """Create the group on the main stream and this process's inbox (kept if it exists);
        the next `next_batch` calls start with this consumer's own pending entries."""
        async with redis_errors(self.redis, "control_bus.open"):
            for stream in (self.stream, self.inbox):
                try:
                    await self.redis.xgroup_create(stream, self.group, id="0", mkstream=True)
                except ResponseError as exc:
                    if "BUSYGROUP" not in str(exc):
                        raise
        self._opened = True
        self._pending_after = {self.stream: "0", self.inbox: "0"}
        self._claim_at_s = self.clock.monotonic()
        self._claim_cursor = "0-0"

    async def next_batch(self, count: int = 32) -> list[Delivery]:
        """Up to `count` deliveries per stream: own pending ones, then claims, then new ones
        (see the module); [] when nothing came within `block_s`. A deleted (trimmed) entry met
        on the way is acked and skipped."""
        if count < 1:
            raise ValueError(f"count must be >= 1, not {count}")
        if not self._opened:
            raise RuntimeError("CommandBus.open() first")
        batch: list[Delivery] = []
        if self._pending_after:
            streams = dict(self._pending_after)
            found = await self._xreadgroup(streams, count, None)
            for stream in streams:  # one page of each; a short page is the end
                entries = found.get(stream, [])
                if len(entries) < count:
                    self._pending_after.pop(stream, None)
                elif stream in self._pending_after:
                    self._pending_after[stream] = entries[-1][0]
                batch += await self._deliveries(stream, entries)
        if not batch and self.clock.monotonic() >= self._claim_at_s:
            batch = await self._claim(count)
        if not batch:
            found = await self._xreadgroup(
                {self.stream: ">", self.inbox: ">"}, count, self.block_ms
            )
            for stream, entries in found.items():
                batch += await self._deliveries(stream, entries)
        return batch

    async def _claim(self, count: int) -> list[Delivery]:
        """Take over main-stream entries other consumers left idle over `claim_idle_s`."""
        idle_ms = round(self.claim_idle_s * 1000)
        response = await self._grouped("control_bus.claim", self.redis.xautoclaim(
            self.stream, self.group, self.process, idle_ms, self._claim_cursor, count))  # fmt: skip
        if response is None:
            return []
        self._claim_cursor = _text(response[0])
        if self._claim_cursor == "0-0":  # the whole pending list scanned: again in claim_idle_s
            self._claim_at_s = self.clock.monotonic() + self.claim_idle_s
        if len(response) > 2 and response[2]:  # Redis 7: deleted, dropped from the pending list
            await self._ack_deleted(self.stream, [_text(i) for i in response[2]])
        batch = await self._deliveries(self.stream, _entries(response[1]))
        if batch:
            log.info("control_bus.claimed", entries=[d.entry for d in batch])
        return batch

    async def _xreadgroup(
        self, streams: dict[str, str], count: int, block_ms: int | None
    ) -> dict[str, _Entries]:
        response = await self._grouped("control_bus.read", self.redis.xreadgroup(
            self.group, self.process, cast(Any, streams), count=count, block=block_ms))  # fmt: skip
        pairs = response.items() if isinstance(response, dict) else (response or [])
        return {_text(stream): _entries(entries) for stream, entries in pairs}

    async def _deliveries(self, stream: str, entries: _Entries) -> list[Delivery]:
        batch: list[Delivery] = []
        deleted = [entry for entry, fields in entries if not fields]  # pending, but trimmed
        for entry, fields in entries:
            if fields and (stream, entry) not in self._in_flight:
                batch.append(self._delivery(stream, entry, fields))
                self._in_flight.add((stream, entry))
        if deleted:
            await self._ack_deleted(stream, deleted)
        return batch

    def _delivery(self, stream: str, entry: str, fields: dict[str, bytes]) -> Delivery:
        routed = stream == self.inbox  # fields naming an origin count only in our own inbox
        reply_to = _text(fields.get("entry", b"")) if routed else ""
        if not _ENTRY_ID.match(reply_to):
            if routed:
                log.warning("control_bus.bad_entry_field", stream=stream, entry=entry)
            reply_to = entry
        origin = fields.get("from") if routed else None
        return Delivery(
            stream=stream, entry=entry, reply_to=reply_to, wire=fields.get("wire", b""),
            routed_from=None if origin is None else _text(origin),
            broadcast=routed and fields.get("broadcast") == b"1", queued_s=_queued_s(reply_to),
        )  # fmt: skip

    async def _ack_deleted(self, stream: str, entries: list[str]) -> None:
        async with redis_errors(self.redis, "control_bus.ack_deleted"):
            await self.redis.xack(stream, self.group, *entries)
        log.warning("control_bus.deleted_entries", stream=stream, entries=entries)

    async def _grouped(self, what: str, call: Awaitable[Any]) -> Any:
        """`await call`, errors translated; None when the group was gone (NOGROUP: it went with
        its stream), after making it again."""
        async with redis_errors(self.redis, what):
            try:
                return await call
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
        log.warning("control_bus.group_lost", group=self.group, process=self.process)
        await self.open()
        return None

    # --- answering -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _answering(self, delivery: Delivery) -> Iterator[None]:
        """However the answer goes, `delivery` is no longer in flight here: answered, or given
        up by its handler (a failed answer leaves it pending, and a claim hands it out again)."""
        try:
            yield
        finally:
            self._in_flight.discard((delivery.stream, delivery.entry))

    async def _run(self, name: str, what: str, keys: list[str], args: list[_Arg]) -> str:
        async with redis_errors(self.redis, f"control_bus.{name} {what}"):
            answer = await self._scripts[name](keys=keys, args=args)
        return _text(answer) if isinstance(answer, bytes | str) else str(answer)

    async def take(self, command_id: str, delivery: Delivery) -> TakeOutcome:
        """Claim `command_id` for `delivery.reply_to` (see `lua/take.lua`); on "done" the
        delivery is acked here, so the caller has nothing left to do."""
        keys = [self.keys.command_record(command_id), delivery.stream]
        args: list[_Arg] = [delivery.reply_to, self.process, self.record_ttl_ms, self.group,
                            delivery.entry]  # fmt: skip
        outcome = ""
        try:
            outcome = await self._run("take", command_id, keys, args)
        finally:
            if outcome in ("", "done"):  # failed (its handler gives up on it) or answered
                self._in_flight.discard((delivery.stream, delivery.entry))
        if outcome not in ("new", "again", "done", "duplicate"):
            raise StoreError(f"control_bus.take {command_id}: take.lua answered {outcome!r}")
        return cast(TakeOutcome, outcome)

    def release(self, delivery: Delivery) -> None:
        """Its handler gave up on `delivery` without answering (cancelled, or a bug): a later
        claim may hand it out again, here too."""
        self._in_flight.discard((delivery.stream, delivery.entry))

    async def keep(self, delivery: Delivery) -> None:
        """Still working on `delivery`: its idle time starts over, so no other process claims
        it (and runs it again) while a long command (a stop waiting on its cancels) runs."""
        async with redis_errors(self.redis, "control_bus.keep"):
            await self.redis.xclaim(delivery.stream, self.group, self.process, 0,
                                    [delivery.entry], justid=True)  # fmt: skip

    async def finish(self, delivery: Delivery, reply: Reply, audit: Mapping[str, Any]) -> bool:
        """Answer `delivery` once, atomically: its command record (if `reply.command_id`) done,
        the reply on `keys.reply(delivery.reply_to)`, the entry acked, the audit entry (kind
        "command", `record` = JSON of `audit`) appended. A broadcast copy takes `ack_broadcast`.
        False when it was answered already (nothing written)."""
        if delivery.broadcast:
            raise ValueError("a broadcast copy is answered with ack_broadcast, not finish")
        keys = [self.keys.reply(delivery.reply_to), delivery.stream, self.keys.audit()]
        if reply.command_id is not None:
            keys.append(self.keys.command_record(reply.command_id))
        args: list[_Arg] = [
            encode(reply), self.reply_ttl_ms, self.group, delivery.entry, self.audit_max_len,
            repr(self.clock.time()), _json.encode(dict(audit)), delivery.reply_to, self.process,
        ]  # fmt: skip
        with self._answering(delivery):
            if await self._run("finish", delivery.entry, keys, args) == "0":
                log.info("control_bus.answered_already", stream=delivery.stream,
                         entry=delivery.entry)  # fmt: skip
                return False
        return True

    async def route(self, delivery: Delivery, command_id: str, target: str) -> None:
        """Hand `delivery` to `target`'s inbox, atomically: the record routed (by target), the
        copy in the inbox (its replies still keyed by `delivery.reply_to`), the entry acked.
        `CommandError` if another entry holds this command id (take said "duplicate")."""
        keys = [self.keys.command_record(command_id), self.keys.inbox(target), delivery.stream]
        args: list[_Arg] = [
            self.group, delivery.entry, delivery.reply_to, target, delivery.wire, self.process,
            INBOX_MAX_LEN, self.record_ttl_ms,
        ]  # fmt: skip
        with self._answering(delivery):
            outcome = await self._run("route", delivery.entry, keys, args)
        if outcome == "duplicate":
            raise CommandError(f"command {command_id!r} belongs to another entry; not routed")
        if outcome == "acked":
            log.info("control_bus.answered_already", stream=delivery.stream, entry=delivery.entry)

    async def broadcast(self, delivery: Delivery, targets: Sequence[str]) -> None:
        """Copy `delivery` into every target's inbox (`broadcast 1`), all or none. `delivery`
        stays unacked: `finish` it once the acks are in (`wait_acks`)."""
        if targets:
            keys = [self.keys.inbox(target) for target in dict.fromkeys(targets)]
            args: list[_Arg] = [delivery.wire, delivery.reply_to, self.process, INBOX_MAX_LEN]
            await self._run("broadcast", delivery.entry, keys, args)

    async def ack_broadcast(self, delivery: Delivery, ack: Ack) -> None:
        """This process's answer to a broadcast copy: the ack on `keys.acks(reply_to)`, the copy
        acked, atomically (no second ack if it was acked already)."""
        keys = [self.keys.acks(delivery.reply_to), delivery.stream]
        args: list[_Arg] = [encode(ack), self.reply_ttl_ms, self.group, delivery.entry]
        with self._answering(delivery):
            await self._run("ack_broadcast", delivery.entry, keys, args)

    async def wait_acks(self, reply_to: str, count: int, timeout_s: float) -> list[Ack]:
        """The acks to a broadcast, the first of each process, until `count` came or `timeout_s`
        passed. BLPOP in slices (`WAIT_SLICE_S`): each holds a pooled connection only that long
        and stays below the socket timeout. The empty slices are counted too, so the wait ends
        on a manual clock as well. An unreadable ack is logged and skipped."""
        key = self.keys.acks(reply_to)
        deadline_s = self.clock.monotonic() + timeout_s
        empty_left = max(1, math.ceil(timeout_s / self._wait_slice_s))
        acks: dict[str, Ack] = {}
        while len(acks) < count and empty_left > 0:
            left_s = deadline_s - self.clock.monotonic()
            if left_s <= 0:
                break
            async with redis_errors(self.redis, f"control_bus.wait_acks {reply_to}"):
                popped = await self.redis.blpop([key], max(0.01, min(self._wait_slice_s, left_s)))
            if popped is None:
                empty_left -= 1
                continue
            try:
                ack = decode_ack(_bytes(popped[1]))
            except CommandError as exc:
                log.warning("control_bus.unreadable_ack", reply_to=reply_to, error=str(exc))
                continue
            acks.setdefault(ack.process, ack)
        return list(acks.values())

    async def pending_count(self) -> int:
        """Entries of the group delivered and not acked, on the main stream and our inbox."""
        total = 0
        async with redis_errors(self.redis, "control_bus.pending_count"):
            for stream in (self.stream, self.inbox):
                total += int((await self.redis.xpending(stream, self.group))["pending"])
        return total


def _entries(raw: Any) -> _Entries:
    """redis-py's parsed stream entries: ids and field names as text, values as bytes."""
    return [
        (_text(entry), {_text(k): _bytes(v) for k, v in fields.items()} if fields else None)
        for entry, fields in raw or []
        if entry is not None  # Redis < 7: deleted, and already gone from the pending list
    ]


def _queued_s(entry: str) -> float:
    match = _ENTRY_ID.match(entry)
    return int(match.group(1)) / 1000 if match else 0.0


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value

"""Operator commands, handled: read from the bus, checked, run where they belong, answered once.

For each delivery (bus.py) of the main stream or of this process's inbox:
1. verify (auth.py): the signature, the operator's role, and the time window *against the
   moment Redis took the command* (the entry id), so a command sent while every process was
   down is still run when one comes back, while a replayed copy (a new entry) is not; a command
   that waited longer than `control.max_pending_s` is refused rather than run late;
2. take its id (exactly once): a second entry with the same id is refused as a replay, a
   redelivery of the same entry (a restart, a claim after a crash) is handled again, which every
   command bears (each one's effect is idempotent: halted twice is halted);
3. route it (routing.py): here, to the process that runs its strategy, or to every process;
4. answer: one reply on the entry's reply list, an audit record, the entry acknowledged, in one
   atomic step (bus.finish).
Anything that goes wrong becomes an error reply naming it; nothing a sender writes can stop the
listener. Each delivery is handled in its own task (at most `MAX_IN_FLIGHT`), so a slow command
(a stop waiting for its cancels) never holds up a halt behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Mapping
from typing import Any, Final

from orchestrator.clock import Clock
from orchestrator.config import ControlConfig
from orchestrator.control.actions import ServiceActions
from orchestrator.control.audit import AuditLog
from orchestrator.control.auth import OperatorKey, verify
from orchestrator.control.bus import CommandBus, Delivery
from orchestrator.control.commands import Command, Halt, ResumeTrading, type_of
from orchestrator.control.peers import Heartbeat, Peers
from orchestrator.control.replies import Ack, Reply, to_builtins
from orchestrator.control.routing import Everywhere, Here, Nowhere, RouteTo, route
from orchestrator.control.trading import generation_of
from orchestrator.errors import CommandError, StoreError
from orchestrator.logs import get_logger
from orchestrator.metrics import Registry

log = get_logger(__name__)

MAX_IN_FLIGHT: Final = 16
MAX_SWITCHES: Final = 4
MAX_READ_AHEAD: Final = 256
FUTURE_SLACK_S: Final = 5.0  # an entry stamped further ahead of our clock than this is odd
RETRY_S: Final = 1.0  # after Redis failed under the loop


class CommandListener:
    def __init__(
        self,
        bus: CommandBus,
        peers: Peers,
        actions: ServiceActions,
        audit: AuditLog,
        *,
        process: str,
        operators: Mapping[str, OperatorKey],
        config: ControlConfig,
        clock: Clock,
        registry: Registry,
    ) -> None:
        self.bus = bus
        self.peers = peers
        self.actions = actions
        self.audit = audit
        self.process = process
        self.operators = operators
        self.config = config
        self.clock = clock
        # Ordinary commands share MAX_IN_FLIGHT slots; halts and resumes have their own, so a
        # kill switch never waits behind slow commands; the reader stops at MAX_READ_AHEAD.
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._switch_slots = asyncio.Semaphore(MAX_SWITCHES)
        self._read_ahead = asyncio.Semaphore(MAX_READ_AHEAD)
        self.keep_every_s = config.claim_idle_s / 3
        self._commands = registry.counter(
            "orch_commands_total", "Operator commands handled, by type and outcome",
            ("type", "outcome"),
        )  # fmt: skip

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            while True:
                try:
                    batch = await self.bus.next_batch()
                except StoreError as exc:
                    log.warning("control.read_failed", error=str(exc))
                    await self.clock.sleep(RETRY_S)
                    continue
                for delivery in batch:
                    await self._read_ahead.acquire()
                    tg.create_task(self._guarded(delivery))

    async def _guarded(self, delivery: Delivery) -> None:
        try:
            await self.handle(delivery)
        except StoreError as exc:  # unanswered: the entry stays pending and is claimed again
            log.warning("control.answer_failed", entry=delivery.entry, error=str(exc))
        except Exception:  # a bug of ours must not take the listener down
            log.exception("control.handler_crashed", entry=delivery.entry)
        finally:
            self.bus.release(delivery)  # unanswered (cancelled, a bug): a claim retries it
            self._read_ahead.release()

    async def handle(self, delivery: Delivery) -> None:
        try:
            command = self._verified(delivery)
        except CommandError as exc:
            await self._refuse(delivery, str(exc))
            return
        switching = isinstance(command, Halt | ResumeTrading)
        async with self._switch_slots if switching else self._slots:
            await self._kept(delivery, self._handle(delivery, command))

    async def _kept(self, delivery: Delivery, work: Coroutine[Any, Any, None]) -> None:
        """`work`, with the entry's idle time reset every `keep_every_s` meanwhile: a command
        that takes long (a stop waiting for its cancels) is never claimed and run again by
        another process while this one is on it."""
        task = asyncio.ensure_future(work)
        try:
            while not task.done():
                with contextlib.suppress(TimeoutError):
                    async with self.clock.timeout(self.keep_every_s):
                        await asyncio.shield(task)
                if not task.done():
                    try:
                        await self.bus.keep(delivery)
                    except StoreError as exc:
                        log.warning("control.keep_failed", entry=delivery.entry, error=str(exc))
            task.result()
        finally:
            task.cancel()

    async def _refuse(self, delivery: Delivery, error: str) -> None:
        if delivery.broadcast:
            await self.bus.ack_broadcast(delivery, Ack(process=self.process, ok=False,
                                                       error=error))  # fmt: skip
        else:
            await self._answer(delivery, None, error=error)

    async def _handle(self, delivery: Delivery, command: Command) -> None:
        if delivery.broadcast:  # our part of a command another process took
            await self.bus.ack_broadcast(delivery, await self._part(command))
            return
        outcome = await self.bus.take(command.id, delivery)
        if outcome == "done":
            return  # answered already; the redelivery only needs no second answer
        if outcome == "duplicate":
            await self._answer(delivery, command, error=f"command id {command.id} was already "
                               "used: a replay is refused")  # fmt: skip
            return
        try:
            result = await self._serve(delivery, command)
        except CommandError as exc:
            await self._answer(delivery, command, error=str(exc))
        except StoreError as exc:  # answered, so it is not left pending; the sender may retry
            await self._answer(delivery, command, error=f"Redis did not answer: {exc}")
        except Exception as exc:
            log.exception("control.command_failed", command=command.id, type=type_of(command))
            await self._answer(delivery, command, error=f"internal error: {type(exc).__name__}")
        else:
            if result is not _ROUTED:
                await self._answer(delivery, command, result=result)

    def _verified(self, delivery: Delivery) -> Command:
        if not delivery.wire:
            raise CommandError("stream entry without a `wire` field")
        now_s = self.clock.time()
        if delivery.queued_s > now_s + FUTURE_SLACK_S:
            # Its id was set by hand into the future (every later entry then sorts after it):
            # the window is checked against our clock, so one such entry cannot make every
            # command look signed in the past.
            log.warning("control.entry_from_the_future", entry=delivery.reply_to,
                        ahead_s=round(delivery.queued_s - now_s, 1))  # fmt: skip
        taken_s = min(delivery.queued_s, now_s)
        waited_s = now_s - taken_s
        if waited_s > self.config.max_pending_s:
            limit_s = self.config.max_pending_s
            raise CommandError(f"command waited {waited_s:.0f} s in the stream, longer than "
                               f"control.max_pending_s ({limit_s:g} s)")  # fmt: skip
        if delivery.routed_from is not None:
            # Routing is immediate: a copy that sat in this process's inbox this long was sent
            # while the process was away, and its sender stopped waiting long ago.
            routed_s = now_s - generation_of(delivery.entry)[0] / 1000
            if routed_s > self.config.max_command_age_s:
                raise CommandError(f"routed here by {delivery.routed_from} {routed_s:.0f} s ago "
                                   "while this process was away; send it again")  # fmt: skip
        return verify(delivery.wire, self.operators, now_s=taken_s,
                      max_age_s=self.config.max_command_age_s)  # fmt: skip

    async def _serve(self, delivery: Delivery, command: Command) -> Any:
        peers = await self.peers.live()
        where = route(command, me=self.process, peers=peers)
        match where:
            case Here():
                return await self.actions.here(command, peers)
            case RouteTo(process=target) if target == self.process:
                return await self.actions.here(command, peers)
            case RouteTo(process=target):
                if delivery.routed_from is not None:
                    raise CommandError(f"routed here by {delivery.routed_from} but served by "
                                       f"{target}: the processes disagree, try again")  # fmt: skip
                await self.bus.route(delivery, command.id, target)
                log.info("control.routed", command=command.id, to=target)
                return _ROUTED
            case Everywhere():
                return await self._everywhere(delivery, command, peers)
            case Nowhere(why=why):
                raise CommandError(why)
        raise AssertionError(where)

    async def _everywhere(
        self, delivery: Delivery, command: Command, peers: Mapping[str, Heartbeat]
    ) -> Any:
        await self.actions.prepare(command, peers, delivery.reply_to)
        others = sorted(p for p in peers if p != self.process)
        if others:
            await self.bus.broadcast(delivery, others)
        mine = await self._part(command)
        acks = [mine]
        if others:
            acks += await self.bus.wait_acks(delivery.reply_to, len(others),
                                             self.config.broadcast_timeout_s)  # fmt: skip
        answered = {a.process for a in acks}
        missing = [p for p in others if p not in answered]
        return await self.actions.conclude(command, acks, missing)

    async def _part(self, command: Command) -> Ack:
        try:
            result = await self.actions.part(command)
        except CommandError as exc:
            return Ack(process=self.process, ok=False, error=str(exc))
        except StoreError as exc:
            return Ack(process=self.process, ok=False, error=f"Redis: {exc}")
        return Ack(process=self.process, ok=True, result=to_builtins(result))

    async def _answer(
        self, delivery: Delivery, command: Command | None, *, result: Any = None,
        error: str | None = None,
    ) -> None:  # fmt: skip
        kind = type_of(command) if command is not None else None
        reply = Reply(entry=delivery.reply_to, command_id=command.id if command else None,
                      type=kind, ok=error is None, result=to_builtins(result), error=error,
                      process=self.process, time_s=self.clock.time())  # fmt: skip
        record = {"operator": command.operator if command else None,
                  "command_id": reply.command_id, "type": kind, "ok": reply.ok,
                  "error": error, "process": self.process, "entry": delivery.reply_to}  # fmt: skip
        if not await self.bus.finish(delivery, reply, record):
            return  # answered already (a second copy): nothing more is recorded
        self.audit.mirror("command", record)
        if isinstance(command, Halt) and reply.ok:
            await self.audit.append("halt", {"operator": command.operator,
                                             "reason": command.reason, "command_id": command.id,
                                             "result": reply.result})  # fmt: skip
        self._commands.inc(kind or "unreadable", "ok" if reply.ok else "error")
        log.info("control.answered", command=reply.command_id, type=kind, ok=reply.ok,
                 error=error)  # fmt: skip


class _Routed:
    """The command went to another process, which answers it."""


_ROUTED: Final = _Routed()

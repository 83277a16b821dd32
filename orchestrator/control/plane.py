"""The control plane of one service process: its heartbeat, its command listener, the trading
state it follows, and the audit trail of what happens to strategies and transfers.

    plane = open_control_plane(service, units, config=config, ...)
    await plane.start()        # before the strategies run: a halted desk starts halted
    tg.create_task(plane.run())
    ...
    await plane.close()        # the heartbeat leaves: commands stop routing here

`start()` reads the trading state and the operators' limit shares before any strategy places an
order, and joins the consumer group. While running, the process beats every second (the
routing table of every process), follows the trading state in Redis every `FOLLOW_S` (a halt
whose broadcast it missed still reaches it within that), and serves commands.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Final

from orchestrator.control.actions import ServiceActions
from orchestrator.control.audit import AuditLog
from orchestrator.control.auth import OperatorKey
from orchestrator.control.bus import CommandBus
from orchestrator.control.demo import DEMO_OPERATOR
from orchestrator.control.listener import CommandListener
from orchestrator.control.peers import Heartbeat, Peers
from orchestrator.control.trading import TradingSwitch
from orchestrator.errors import StoreError
from orchestrator.logs import get_logger
from orchestrator.secrets import Secret

if TYPE_CHECKING:
    from orchestrator.runtime.units import UnitRunner
    from orchestrator.service import Service

log = get_logger(__name__)

FOLLOW_S: Final = 1.0
AUDIT_BACKLOG: Final = 10_000
AUDITED_EVENTS: Final = (
    "strategy_failed", "strategy_not_started", "strategy_paused", "component_failed",
    "transfer_intent", "transfer_sent", "transfer_complete", "transfer_pending",
    "transfer_awaiting_approval", "transfer_failed",
)  # fmt: skip


def process_name(instance: str | None) -> str:
    """This process's name among the service's: the configured one, else the host's."""
    if instance:
        return instance
    host = "".join(c if c.isalnum() or c in "_.-" else "-" for c in socket.gethostname())
    return host[:64] or "orchestrator"


class ControlPlane:
    def __init__(
        self, service: Service, units: UnitRunner, *, secrets: Mapping[str, Secret],
    ) -> None:  # fmt: skip
        config = service.config
        shared = units.shared
        self.service = service
        self.units = units
        self.clock = clock = shared.clock
        self.process = service.process
        control = config.control
        self.switch = TradingSwitch(shared.redis, shared.keys, clock)
        self.peers = Peers(shared.redis, shared.keys, clock)
        mirror = Path(control.audit_file) if control.audit_file else None
        self.audit = AuditLog(shared.redis, shared.keys, clock, max_len=control.audit_max_len,
                              mirror=mirror)  # fmt: skip
        record_ttl_s = max(3600.0, 2 * control.max_command_age_s + control.max_pending_s)
        self.bus = CommandBus(shared.redis, shared.keys, group=control.consumer_group,
                              process=self.process, claim_idle_s=control.claim_idle_s,
                              reply_ttl_s=control.reply_ttl_s, record_ttl_s=record_ttl_s,
                              audit_max_len=control.audit_max_len, clock=clock)  # fmt: skip
        cancel_timeout_s = config.service.shutdown_timeout_s / 2
        self.actions = ServiceActions(service, units, self.switch,
                                      cancel_timeout_s=cancel_timeout_s)  # fmt: skip
        operators = {op.name: OperatorKey(secret=secrets[op.name], role=op.role)
                     for op in control.operators if op.name in secrets}  # fmt: skip
        if control.demo_operator and DEMO_OPERATOR in secrets:  # the embedded demo's admin
            operators[DEMO_OPERATOR] = OperatorKey(secret=secrets[DEMO_OPERATOR], role="admin")
        self.listener = CommandListener(self.bus, self.peers, self.actions, self.audit,
                                        process=self.process, operators=operators,
                                        config=control, clock=clock,
                                        registry=shared.registry)  # fmt: skip
        # Events come from synchronous listeners; they reach the audit stream from one task,
        # in order, kept (bounded) while Redis is away.
        self._pending_audit: deque[tuple[str, dict[str, str]]] = deque(maxlen=AUDIT_BACKLOG)
        self._audit_wake = asyncio.Event()
        for kind in AUDITED_EVENTS:
            units.events.listen(kind, self._audit_event(kind))

    def _audit_event(self, kind: str) -> Callable[[Mapping[str, str]], None]:
        def record(fields: Mapping[str, str]) -> None:
            self._pending_audit.append((kind, dict(fields)))
            self._audit_wake.set()

        return record

    def heartbeat(self) -> Heartbeat:
        units = self.service.units
        running = self.units.running()
        return Heartbeat(process=self.process, pid=os.getpid(), host=socket.gethostname(),
                         strategies=self.units.configured(), running=running,
                         accounts=sorted({units[n].worker.account for n in running}),
                         rebalancer=self.service.rebalancer is not None,
                         time_s=self.clock.time())  # fmt: skip

    async def start(self) -> None:
        """Before any strategy runs: the desk's trading state and limit shares, the group."""
        try:
            await self.actions.desk.follow_redis()
        except StoreError as exc:  # a halted desk must not trade because Redis was slow
            self.actions.desk.hold(f"the trading state in Redis could not be read: {exc}")
        await self.actions.load_shares()
        try:
            await self.bus.open()
            await self.peers.beat(self.heartbeat())
        except StoreError as exc:
            log.warning("control.not_joined", error=str(exc))

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.peers.run(self.heartbeat))
            tg.create_task(self._follow())
            tg.create_task(self._audit_events())
            tg.create_task(self._listen())

    async def _listen(self) -> None:
        while True:
            try:
                await self.bus.open()
                break
            except StoreError as exc:
                log.warning("control.not_joined", error=str(exc))
                await self.clock.sleep(FOLLOW_S)
        await self.listener.run()

    async def _follow(self) -> None:
        while True:
            await self.clock.sleep(FOLLOW_S)
            try:
                await self.actions.desk.follow_redis()
            except StoreError as exc:
                log.warning("control.trading_state_unread", error=str(exc))

    async def _audit_events(self) -> None:
        while True:
            await self._audit_wake.wait()
            self._audit_wake.clear()
            while self._pending_audit:
                kind, fields = self._pending_audit[0]
                try:
                    await self.audit.append(kind, fields)
                except StoreError as exc:
                    log.warning("control.audit_failed", kind=kind, error=str(exc))
                    await self.clock.sleep(FOLLOW_S)
                    continue
                self._pending_audit.popleft()

    async def close(self) -> None:
        try:
            await self.peers.leave(self.process)
        except StoreError as exc:
            log.warning("control.leave_failed", error=str(exc))

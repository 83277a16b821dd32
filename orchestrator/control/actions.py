"""What the commands do to this process: its strategies, its trading state, its rebalancer and
its limiter. The listener (listener.py) decides where a command runs (routing.py); this module
does it here.

Three kinds of calls:
- `here(command)`: a command served by this process alone (reads, and commands naming one of
  its strategies or its rebalancer);
- for the desk's switches, served by every process (halt, resume_trading, cancel_all of an
  account or of everything, set_limit_shares): `prepare` runs once, where the command arrived,
  before the others are told (the kill switch writes HALTED to Redis first, so a process that
  misses the broadcast still halts); `part` runs in every process; `conclude` runs where it
  arrived, over every process's answer (the kill switch's last sweep cancels what no process
  covered: accounts without a strategy, a process that did not answer in time);
- `follow(record)`: keep this process in step with the trading state in Redis.
Refusals are `CommandError`s naming what is wrong; nothing is changed by a refused command.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from orchestrator.config import RebalanceTarget
from orchestrator.control import reads
from orchestrator.control.commands import (
    ApproveStatus,
    CancelAll,
    Command,
    Halt,
    Limits,
    ListStrategies,
    ListTransfers,
    PauseStrategy,
    RebalanceNow,
    ResumeStrategy,
    ResumeTrading,
    SetLimitShares,
    SetParams,
    SetTargets,
    StartStrategy,
    Status,
    StopStrategy,
)
from orchestrator.control.halting import DeskTrading
from orchestrator.control.peers import Heartbeat
from orchestrator.control.replies import Ack, to_builtins
from orchestrator.control.trading import TradingSwitch
from orchestrator.errors import CommandError, ConfigError, StoreError
from orchestrator.logs import get_logger
from orchestrator.rebalancer.journal import TransferJournal
from orchestrator.store.errors import redis_errors
from orchestrator.strategy import TradingState
from orchestrator.strategy_loader import parse_params

if TYPE_CHECKING:
    from orchestrator.runtime.units import UnitRunner
    from orchestrator.service import Service
    from orchestrator.workers.worker import StrategyWorker

log = get_logger(__name__)

START_POLL_S: Final = 0.05  # a pause of a strategy still starting looks this often


class ServiceActions:
    def __init__(
        self, service: Service, units: UnitRunner, switch: TradingSwitch, *,
        cancel_timeout_s: float,
    ) -> None:  # fmt: skip
        self.service = service
        self.units = units
        self.switch = switch
        self.redis = units.shared.redis
        self.keys = units.shared.keys
        self.clock = units.shared.clock
        self.cancel_timeout_s = cancel_timeout_s
        self.journal = TransferJournal(self.redis, self.keys, self.clock)
        self.desk = DeskTrading(service, switch, cancel_timeout_s=cancel_timeout_s)

    # --- served here ---------------------------------------------------------------------------
    async def here(self, command: Command, peers: Mapping[str, Heartbeat]) -> Any:
        match command:
            case Status() | ListStrategies() | ListTransfers() | ApproveStatus() | Limits():
                return await self._read(command, peers)
            case SetTargets() | RebalanceNow():
                return self._rebalance(command)
        return await self._strategy(command)

    async def _read(self, command: Command, peers: Mapping[str, Heartbeat]) -> Any:
        status_key = self.keys.strategy_status()
        match command:
            case Status():
                return await reads.status(peers, self.switch, status_key)
            case ListStrategies():
                return await reads.list_strategies(self.service, self.redis, peers, status_key)
            case ListTransfers(limit=limit):
                return await reads.list_transfers(self.journal, limit)
            case ApproveStatus():
                return await reads.approve_status(self.journal)
            case Limits():
                return await reads.limits(self.service)
        raise AssertionError(type(command).__name__)

    async def _strategy(self, command: Command) -> Any:
        match command:
            case StartStrategy(strategy=name):
                self.units.start(name)
                return {"strategy": name, "state": self.units.unit(name).worker.state}
            case StopStrategy(strategy=name):
                left = await self.units.stop(name, timeout_s=self.cancel_timeout_s * 2)
                unit = self.units.unit(name)
                return {"strategy": name, "state": unit.worker.state, "open_orders_left": left}
            case PauseStrategy(strategy=name, operator=operator):
                worker = await self._past_start(name)
                if not worker.pause(f"paused by {operator}"):
                    raise CommandError(f"strategy {name!r} is {worker.state}, not running")
                return {"strategy": name, "state": worker.state}
            case ResumeStrategy(strategy=name):
                worker = self.units.unit(name).worker
                if not worker.resume():
                    raise CommandError(f"strategy {name!r} is {worker.state}, not paused")
                return {"strategy": name, "state": worker.state}
            case SetParams(strategy=name, params=raw):
                return self._set_params(name, raw)
            case CancelAll(strategy=str(name)):
                worker = self.units.unit(name).worker
                left = await worker.cancel_all(timeout_s=self.cancel_timeout_s)
                return {"strategy": name, "open_orders_left": left}
        raise CommandError(f"{type(command).__name__} is not served by one process")

    def _rebalance(self, command: Command) -> Any:
        match command:
            case SetTargets(targets=targets):
                rebalancer = self._rebalancer()
                # A band keeps its configured floor and ramp; its level and edges are replaced.
                configured = {(t.account, t.asset): t for t in rebalancer.config.rebalancer.targets}
                bands = []
                for t in targets:
                    was = configured.get((t.account, t.asset))
                    bands.append(RebalanceTarget(
                        account=t.account, asset=t.asset, target=t.target, low=t.low,
                        high=t.high, floor=was.floor if was else Decimal(0),
                        ramp=was.ramp if was else [],
                    ))  # fmt: skip
                try:
                    rebalancer.set_targets(bands)
                except ConfigError as exc:
                    raise CommandError(f"targets refused: {exc}") from None
                return [to_builtins(t) for t in rebalancer.config.rebalancer.targets]
            case RebalanceNow(operator=operator):
                self._rebalancer().request(f"operator:{operator}")
                return {"requested": True}
        raise AssertionError(type(command).__name__)

    async def _past_start(self, name: str) -> StrategyWorker:
        """The strategy's worker once it is past "starting" (or after the stop bound): a command
        sent while the service was down is read as the service starts, before its strategies
        run, and a pause must not fail for that."""
        worker = self.units.unit(name).worker
        deadline_s = self.clock.monotonic() + self.cancel_timeout_s * 2
        while worker.state == "starting" and self.clock.monotonic() < deadline_s:
            await self.clock.sleep(START_POLL_S)
        return worker

    def _set_params(self, name: str, raw: Mapping[str, Any]) -> Any:
        worker = self.units.unit(name).worker
        try:
            params = parse_params(type(worker.strategy), raw, where=f"strategy {name}")
        except ConfigError as exc:
            raise CommandError(str(exc)) from None
        worker.set_params(params)  # whole, between two callbacks
        self.units.params[name] = params
        return {"strategy": name, "params": to_builtins(params)}

    def _rebalancer(self) -> Any:
        if self.service.rebalancer is None:
            raise CommandError("this process runs no rebalancer")
        return self.service.rebalancer

    # --- served everywhere ---------------------------------------------------------------------
    async def prepare(self, command: Command, peers: Mapping[str, Heartbeat], entry: str) -> None:
        """Once, where the command arrived (its stream entry `entry`), before any process acts
        on it. A halt or resume older than the switch in Redis is refused: it came in late."""
        match command:
            case Halt(reason=reason, operator=operator):
                await self._switch("HALTED", reason, operator, entry)
            case ResumeTrading(operator=operator):
                await self._switch("ACTIVE", "resumed", operator, entry)
            case SetLimitShares(weights=weights):
                known = {name for hb in peers.values() for name in hb.strategies}
                unknown = sorted(set(weights) - known)
                if unknown:
                    raise CommandError(f"unknown strategies {unknown}: no live process runs "
                                       "them")  # fmt: skip
                stored = {name: repr(weight) for name, weight in weights.items()}
                async with redis_errors(self.redis, "control.limit_shares"):
                    await self.redis.hset(self.keys.limit_shares(), mapping=stored)  # type: ignore[arg-type]
            case CancelAll(account=str(account)) if account not in self.service.domain.accounts:
                raise CommandError(f"unknown account {account!r}")

    async def _switch(self, state: TradingState, reason: str, operator: str, entry: str) -> None:
        written = await self.switch.set(state, reason=reason, operator=operator, entry=entry)
        if isinstance(written, str):
            raise CommandError(f"superseded: a newer halt or resume (entry {written}) already "
                               "set the trading state; nothing changed")  # fmt: skip

    async def part(self, command: Command) -> Any:
        """This process's part of a command every process serves. A halt or resume follows
        the newest switch in Redis, not the copy it came with (which may be stale); when Redis
        cannot be read, a halt halts here all the same and a resume is refused."""
        match command:
            case Halt():
                try:
                    return await self.desk.follow_redis()
                except StoreError:
                    return await self.desk.halt_here()
            case ResumeTrading():
                return await self.desk.follow_redis()
            case SetLimitShares():
                return await self._apply_shares()
            case CancelAll(account=account):
                return await self.desk.cancel_here(account)
        raise CommandError(f"{type(command).__name__} is served by one process")

    async def conclude(self, command: Command, acks: Sequence[Ack], missing: Sequence[str]) -> Any:
        """The result, where the command arrived, from every process's answer."""
        by_process = {a.process: (a.result if a.ok else {"error": a.error}) for a in acks}
        result: dict[str, Any] = {"processes": by_process, "no_answer": list(missing)}
        if isinstance(command, Halt | CancelAll):
            covered = {acct for a in acks if a.ok and isinstance(a.result, dict)
                       for acct in a.result.get("accounts", ())}  # fmt: skip
            wanted = set(self.service.domain.accounts)
            if isinstance(command, CancelAll) and command.account is not None:
                wanted = {command.account}
            result["swept"] = await self.desk.sweep(sorted(set(wanted) - covered))
        if isinstance(command, Halt | ResumeTrading):
            result["trading_state"] = (await self.switch.read()).state
        return result

    async def _apply_shares(self) -> dict[str, Any]:
        async with redis_errors(self.redis, "control.limit_shares"):
            stored = await self.redis.hgetall(self.keys.limit_shares())
        weights = {s.name: s.weight for s in self.service.config.strategies if s.enabled}
        weights.update({_text(k): float(_text(v)) for k, v in stored.items()})
        self.service.domain.limiter.set_weights(weights)
        return {"weights": weights}

    async def load_shares(self) -> None:
        """At start: the limit shares operators set, over the config's weights."""
        try:
            await self._apply_shares()
        except StoreError as exc:
            log.warning("control.shares_not_loaded", error=str(exc))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

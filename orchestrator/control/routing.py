"""Which service process serves a command: pure, over the processes' heartbeats.

    match route(command, me="host-a", peers=live):
        case Here(): ...                      # this process runs it
        case RouteTo(process=other): ...      # the process that runs its strategy does
        case Everywhere(): ...                # every process does its part (halt, ...)
        case Nowhere(why=why): ...            # refused, saying why

Reads (status, transfers, limits) are served where they arrive: what they show lives in Redis.
A command naming a strategy goes to the process whose config holds it (this one first). The
desk's switches (halt, resume_trading, set_limit_shares, cancel_all of an account or of
everything) act in every live process. The rebalancer's commands go to the process that runs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

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
from orchestrator.control.peers import Heartbeat


@dataclass(frozen=True, slots=True)
class Here:
    pass


@dataclass(frozen=True, slots=True)
class RouteTo:
    process: str


@dataclass(frozen=True, slots=True)
class Everywhere:
    pass


@dataclass(frozen=True, slots=True)
class Nowhere:
    why: str


Where = Here | RouteTo | Everywhere | Nowhere


def route(command: Command, *, me: str, peers: Mapping[str, Heartbeat]) -> Where:
    """Where `command` runs, given the live processes (`peers`, this one included)."""
    match command:
        case Status() | ListStrategies() | ListTransfers() | ApproveStatus() | Limits():
            return Here()
        case StartStrategy() | StopStrategy() | PauseStrategy() | ResumeStrategy() | SetParams():
            return _owner(command.strategy, me=me, peers=peers)
        case CancelAll(strategy=str(strategy)):
            return _owner(strategy, me=me, peers=peers)
        case CancelAll() | Halt() | ResumeTrading() | SetLimitShares():
            return Everywhere()
        case SetTargets() | RebalanceNow():
            return _rebalancer(me=me, peers=peers)
    raise AssertionError(f"no route for {type(command).__name__}")  # every type is matched


def _owner(strategy: str, *, me: str, peers: Mapping[str, Heartbeat]) -> Where:
    mine = peers.get(me)
    if mine is not None and strategy in mine.strategies:
        return Here()
    for name in sorted(peers):
        if strategy in peers[name].strategies:
            return RouteTo(name)
    return Nowhere(f"no running service process has strategy {strategy!r} in its config")


def _rebalancer(*, me: str, peers: Mapping[str, Heartbeat]) -> Where:
    mine = peers.get(me)
    if mine is not None and mine.rebalancer:
        return Here()
    for name in sorted(peers):
        if peers[name].rebalancer:
            return RouteTo(name)
    return Nowhere("no running service process runs the rebalancer (rebalancer.enabled)")

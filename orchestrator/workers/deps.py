"""What a worker is built from: its market data, venue, reader, journal, clock and the shared
parts of the process. The service wires the live ones (runtime/unit.py), the replay harness the
in-process ones (testing/harness.py); the worker cannot tell them apart."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from orchestrator.clock import Clock
from orchestrator.exchange.instruments import Instrument, Instruments
from orchestrator.exchange.protocol import AccountReader, TradingVenue
from orchestrator.feeds.hub import MarketListener
from orchestrator.metrics import Registry
from orchestrator.strategy import BookView, TradingState
from orchestrator.workers.journal import OrderJournal
from orchestrator.workers.turns import Turns


class MarketData(Protocol):
    """The live hub (feeds/hub.py) or the replay market (testing/market.py)."""

    async def subscribe(self, pairs: Sequence[Instrument], listener: MarketListener) -> None: ...

    async def unsubscribe(self, pairs: Sequence[Instrument], listener: MarketListener) -> None: ...

    def book(self, pair: str) -> BookView | None: ...

    def is_whole(self, pair: str) -> bool: ...


class EventSink(Protocol):
    async def publish(self, kind: str, **fields: str | int | float | None) -> None: ...


class TradingStateHolder:
    """The domain's trading state, shared by every worker of the process (set by control)."""

    def __init__(self, state: TradingState = "ACTIVE") -> None:
        self.state: TradingState = state


@dataclass(frozen=True, slots=True)
class WorkerDeps:
    """What a worker is built from; the service (or the replay harness) provides it."""

    market: MarketData
    venue: TradingVenue
    reader: AccountReader
    journal: OrderJournal
    clock: Clock
    registry: Registry
    events: EventSink
    instruments: Instruments
    trading_state: TradingStateHolder
    place_final_after_s: float = 10.0
    stop_cancel_timeout_s: float = 5.0  # how long a stop may take to cancel the orders
    dependency_health: Callable[[], str | None] = lambda: None
    turns: Turns | None = None  # the process's shared turns (turns.py); None: deliver at once

"""Crash injection for the order manager: a process killed -9 at one chosen I/O call.

A `CrashPlan` counts every call a worker makes to the venue and to its journal (through the
stand-ins `CrashingVenue` and `CrashingJournal`) and, at the one `CrashPoint` it was given,
kills the "process": BEFORE forwarding (the request never left) or AFTER (the venue or Redis
acted, the process died before it heard the answer). From then on every call through either
stand-in raises `SimulatedCrash` at once, and so does every answer still on its way: a killed
process does no more I/O, so the worker's own clean-up (cancel on stop, settle) cannot help.

`SimulatedCrash` is a `BaseException`, so no `except Exception` of the product code swallows
it; the harness's TaskGroup carries it out of the `async with` block (`except* SimulatedCrash`).
Without a point the plan only counts (a census of what a run calls, to choose points from).
A plan may also lose the venue's reply to given calls (`lost`): the venue acts, the worker
hears `AmbiguousOutcome`, as over a dropped socket; it is not a crash.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, TypeVar

from orchestrator.errors import VenueError
from orchestrator.exchange.protocol import OrderRef, OrderSpec, OrderState
from orchestrator.testing.venue import InProcessVenue
from orchestrator.workers.journal import JournalEntry, OrderJournal, Outcome, SettledEntry

T = TypeVar("T")
When = Literal["before", "after"]

VENUE_CALLS = ("place", "place_batch", "amend", "cancel", "cancel_all", "dead_man_switch",
               "open_orders", "find_order")  # fmt: skip
# The in-process venue's method behind each call whose reply a plan may lose.
_METHODS = {"place": "add_order", "place_batch": "batch_add", "amend": "amend_order",
            "cancel": "cancel_order", "cancel_all": "cancel_all"}  # fmt: skip
JOURNAL_CALLS = ("record", "settle", "pending", "settled")


class SimulatedCrash(BaseException):
    """The process was killed (-9): nothing after it runs, nothing is heard."""


@dataclass(frozen=True, slots=True)
class CrashPoint:
    call: str  # one of VENUE_CALLS or JOURNAL_CALLS
    nth: int  # the nth call of that name (1-based) in the run
    when: When

    def __str__(self) -> str:
        return f"{self.when} {self.call} #{self.nth}"


@dataclass(slots=True)
class CrashPlan:
    point: CrashPoint | None = None
    lost: frozenset[tuple[str, int]] = frozenset()  # (call, nth): the venue acts, reply lost
    calls: Counter[str] = field(default_factory=Counter)
    struck: CrashPoint | None = None  # where the process died, once it did
    killed: bool = False  # died (at the point, or by `kill()`)
    recorded: set[str] = field(default_factory=set)  # cl_ord_ids Redis journalled
    sent: list[str] = field(default_factory=list)  # cl_ord_ids of places that left
    unjournalled_sends: list[str] = field(default_factory=list)  # must stay empty
    batched: int = 0  # places that left in batches (each one order of a `place_batch` call)

    def kill(self) -> None:
        """Kill the process now (at no I/O call: an idle moment)."""
        self.killed = True

    def _dead(self, what: str) -> SimulatedCrash:
        return SimulatedCrash(f"{what}: the process is dead ({self.struck or 'killed'})")

    async def call(self, name: str, forward: Callable[[], Awaitable[T]]) -> T:
        """One I/O call `name`, forwarded unless the process is (or dies here) dead."""
        if self.killed:
            raise self._dead(name)
        self.calls[name] += 1
        point = self.point
        strikes = point is not None and point.call == name and point.nth == self.calls[name]
        if strikes and point is not None and point.when == "before":
            self.struck, self.killed = point, True
            raise SimulatedCrash(f"killed before {point}")
        try:
            result = await forward()
        except Exception as exc:
            if strikes or self.killed:  # whatever was answered, no one heard it
                self._strike_after(point, strikes)
                raise self._dead(name) from exc
            raise
        if strikes or self.killed:
            self._strike_after(point, strikes)
            raise self._dead(name)
        return result

    def _strike_after(self, point: CrashPoint | None, strikes: bool) -> None:
        if strikes and not self.killed:
            self.struck, self.killed = point, True


class CrashingVenue:
    """The worker's `TradingVenue` (the harness's in-process venue), every call through the
    plan; a call the plan marks lost reaches the venue, which acts and loses its reply."""

    def __init__(self, inner: InProcessVenue, plan: CrashPlan) -> None:
        self._inner = inner
        self._plan = plan

    def _forward(self, name: str, call: Callable[[], Awaitable[T]]) -> Awaitable[T]:
        def forward() -> Awaitable[T]:
            if (name, self._plan.calls[name]) in self._plan.lost:
                self._inner.fail_next(_METHODS[name], "lost")
            return call()

        return self._plan.call(name, forward)

    async def place(self, spec: OrderSpec) -> OrderRef:
        plan = self._plan

        async def send() -> OrderRef:
            plan.sent.append(spec.cl_ord_id)
            if spec.cl_ord_id not in plan.recorded:
                plan.unjournalled_sends.append(spec.cl_ord_id)
            return await self._inner.place(spec)

        return await self._forward("place", send)

    async def place_batch(self, specs: Sequence[OrderSpec]) -> list[OrderRef | VenueError]:
        plan = self._plan

        async def send() -> list[OrderRef | VenueError]:
            for spec in specs:
                plan.sent.append(spec.cl_ord_id)
                if spec.cl_ord_id not in plan.recorded:
                    plan.unjournalled_sends.append(spec.cl_ord_id)
            plan.batched += len(specs)
            return await self._inner.place_batch(specs)

        return await self._forward("place_batch", send)

    async def amend(
        self, ref: OrderRef, *, volume: Decimal | None = None, price: Decimal | None = None
    ) -> OrderRef:
        return await self._forward(
            "amend", lambda: self._inner.amend(ref, volume=volume, price=price)
        )

    async def cancel(self, ref: OrderRef) -> bool:
        return await self._forward("cancel", lambda: self._inner.cancel(ref))

    async def cancel_all(self, resting: Sequence[OrderRef]) -> int:
        return await self._forward("cancel_all", lambda: self._inner.cancel_all(resting))

    async def dead_man_switch(self, timeout_s: int) -> str:
        return await self._plan.call(
            "dead_man_switch", lambda: self._inner.dead_man_switch(timeout_s)
        )

    async def open_orders(self) -> list[OrderState]:
        return await self._plan.call("open_orders", self._inner.open_orders)

    async def find_order(self, cl_ord_id: str) -> OrderState | None:
        return await self._plan.call("find_order", lambda: self._inner.find_order(cl_ord_id))


class CrashingJournal(OrderJournal):
    """The worker's `OrderJournal`, every call through the plan (attributes read through)."""

    def __init__(self, inner: OrderJournal, plan: CrashPlan) -> None:  # no super(): a view
        self._inner = inner
        self._plan = plan

    def __getattr__(self, name: str) -> Any:  # account, pending_key, ...: the inner journal's
        return getattr(self._inner, name)

    async def record(self, entry: JournalEntry) -> None:
        plan = self._plan

        async def forward() -> None:
            await self._inner.record(entry)
            plan.recorded.add(entry.cl_ord_id)  # Redis has it (heard or not)

        await plan.call("record", forward)

    async def settle(
        self, cl_ord_id: str, outcome: Outcome, *, txid: str | None = None,
        reason: str | None = None,
    ) -> bool:  # fmt: skip
        return await self._plan.call(
            "settle", lambda: self._inner.settle(cl_ord_id, outcome, txid=txid, reason=reason)
        )

    async def pending(self) -> list[JournalEntry]:
        return await self._plan.call("pending", self._inner.pending)

    async def settled(self, count: int = 100) -> list[SettledEntry]:
        return await self._plan.call("settled", lambda: self._inner.settled(count))

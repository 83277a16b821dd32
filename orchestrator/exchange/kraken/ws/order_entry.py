"""Kraken's `TradingVenue` over the account's private WebSocket v2, REST when the socket is down.

The same calls and guarantees as `KrakenTrading` (spot/trading.py), which it falls back to:
- every request takes its limiter permit through `KrakenWsTrading`, described as REST describes
  it (the pair, the ages of the orders a cancel or amend touches, CancelAll's orders), so the
  trading counters are charged alike and the key's REST counter not at all;
- every acting call goes through `act_once`; an ambiguous one (a reply lost, cut by a dropped
  link, unreadable) is reconciled by the REST lookups `KrakenTrading` uses, after the request's
  `deadline` (stamped just before sending) has passed, and only then sent again;
- a socket that is down (`connected` false, or `VenueUnavailable`: nothing was executed) sends
  the call over REST instead. Cancels and the dead man's switch must reach the venue, so any
  failure of theirs over WS that is not ambiguous goes to REST too (a second cancel, or arming
  the switch twice, does no harm).
Prices and volumes leave as JSON numbers written from the instrument's exact text
(`Instrument.price_text` / `qty_text`), never through a float.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any, Final, TypeVar

import msgspec

from orchestrator.clock import Clock
from orchestrator.errors import (
    AmbiguousOutcome,
    OrchestratorError,
    UnknownOrder,
    VenueError,
    VenueUnavailable,
)
from orchestrator.exchange.kraken.common import methods as m
from orchestrator.exchange.kraken.common.errors import to_exception
from orchestrator.exchange.kraken.common.reconcile import act_once
from orchestrator.exchange.kraken.spot.trading import (
    MAX_DEADLINE_AHEAD_S,
    Deadline,
    KrakenTrading,
    place_request,
)
from orchestrator.exchange.kraken.ws.client import KrakenWs
from orchestrator.exchange.kraken.ws.order_params import (
    add_order_params,
    amend_order_params,
    batch_add_params,
)
from orchestrator.exchange.kraken.ws.trading import KrakenWsTrading
from orchestrator.exchange.protocol import OrderRef, OrderSpec, OrderState
from orchestrator.logs import get_logger
from orchestrator.ratelimit.policy import VenueRequest

log = get_logger(__name__)

MIN_WS_DEADLINE_AHEAD_S: Final = 0.5  # Kraken: a WS `deadline` lies 500 ms to 60 s ahead
_GONE: Final = frozenset({"closed", "canceled", "expired"})
T = TypeVar("T")


class _Added(msgspec.Struct):
    order_id: str


class _BatchSlot(msgspec.Struct):
    """One order of a `batch_add` reply: its id, or the error that order alone met."""

    order_id: str | None = None
    error: str | None = None


class _Amended(msgspec.Struct):
    amend_id: str


class _Count(msgspec.Struct):
    count: int


class _DeadMan(msgspec.Struct):
    triggerTime: str  # Kraken writes this reply in camelCase


def _result(into: type[T], reply: dict[str, Any], call: str) -> T:
    """The reply's `result` as `into`. The venue accepted the request, so a result we cannot
    read leaves what it did unknown: ambiguous, reconciled like a lost reply."""
    try:
        return msgspec.convert(reply.get("result"), into)
    except msgspec.ValidationError as exc:
        raise AmbiguousOutcome(f"{call}: unexpected result shape: {exc}") from exc


class WsOrderEntry:
    """`TradingVenue` for one Kraken account: WebSocket first, REST when the socket is down."""

    def __init__(
        self,
        ws: KrakenWs,
        trading: KrakenWsTrading,
        rest: KrakenTrading,
        clock: Clock,
        *,
        order_deadline_s: float = 5.0,
        confirm_delay_s: float = 0.5,
    ) -> None:
        """`ws` is the account's private connection (ws/private.py) that `trading` sends on;
        `rest` the same account's REST venue: the lookups, and the fallback.
        `order_deadline_s`: the `deadline` of orders and amends sent over WS (0.5 to 60 s
        ahead); one lost in transit is re-sent only after it has passed."""
        if trading.ws is not ws:
            raise ValueError("trading must send on the same connection as ws")
        if not MIN_WS_DEADLINE_AHEAD_S <= order_deadline_s <= MAX_DEADLINE_AHEAD_S:
            raise ValueError(f"order_deadline_s must be within {MIN_WS_DEADLINE_AHEAD_S} to "
                             f"{MAX_DEADLINE_AHEAD_S} s, got {order_deadline_s}")  # fmt: skip
        self._ws = ws
        self._trading = trading
        self._rest = rest
        self.clock = clock
        self.instruments = rest.instruments
        self.order_deadline_s = order_deadline_s
        self.confirm_delay_s = confirm_delay_s
        self.counters = {"ws": 0, "rest": 0}  # calls sent over each (a fallback counts in both)

    @property
    def connected(self) -> bool:
        """Whether calls go over the socket now (else over REST)."""
        return self._ws.connected

    # --- acting calls ----------------------------------------------------------------------------
    async def place(self, spec: OrderSpec) -> OrderRef:
        params = add_order_params(spec)  # a bad number is refused here, before any permit
        if not self._use_ws("add_order"):
            return await self._rest.place(spec)
        request = place_request(spec)
        deadline = Deadline(self.clock, self.order_deadline_s)

        async def send() -> str:
            reply = await self._trading.trade(request, params, stamp=deadline.stamp)
            return _result(_Added, reply, f"add_order {spec.cl_ord_id}").order_id

        lookup = self._rest.placed_lookup(spec.cl_ord_id, deadline)
        try:
            txid = await self._act(f"add_order {spec.cl_ord_id}", send, lookup)
        except VenueUnavailable as exc:  # the socket went down, or the deadline refused it
            self._fell_back("add_order", exc)
            return await self._rest.place(spec)
        rested_s = self.clock.time() if spec.rests else None  # the acknowledgement's time
        return OrderRef(txid=txid, cl_ord_id=spec.cl_ord_id, instrument=spec.instrument,
                        rested_s=rested_s)  # fmt: skip

    async def place_batch(self, specs: Sequence[OrderSpec]) -> list[OrderRef | VenueError]:
        """`batch_add` (n orders of one pair at n/2); over REST, one by one."""
        params = batch_add_params(specs)  # bad numbers or a mixed batch refused here
        if not self._use_ws("batch_add"):
            return await self._rest.place_batch(specs)
        request = VenueRequest(method=m.ADD_ORDER_BATCH, pair=specs[0].instrument.wsname,
                               batch_size=len(specs))  # fmt: skip
        deadline = Deadline(self.clock, self.order_deadline_s)
        what = f"batch_add {specs[0].cl_ord_id}+{len(specs) - 1}"

        async def send() -> list[OrderRef | VenueError]:
            reply = await self._trading.trade(request, params, stamp=deadline.stamp)
            slots = _result(list[_BatchSlot], reply, what)
            if len(slots) != len(specs):
                raise AmbiguousOutcome(f"{what}: {len(slots)} results for {len(specs)} orders")
            return [self._slot(spec, slot) for spec, slot in zip(specs, slots, strict=True)]

        async def lookup() -> list[OrderRef | VenueError] | None:
            found = [await self._rest.find_order(spec.cl_ord_id) for spec in specs]
            if not any(found) and await deadline.wait_out():  # some may still be queued
                found = [await self._rest.find_order(spec.cl_ord_id) for spec in specs]
            if not any(found):
                return None  # the venue took none of them: the batch may go again
            return [
                self._found(spec, state, what) for spec, state in zip(specs, found, strict=True)
            ]

        try:
            return await self._act(what, send, lookup)
        except VenueUnavailable as exc:  # the socket went down, or the deadline refused it
            self._fell_back("batch_add", exc)
            return await self._rest.place_batch(specs)

    def _slot(self, spec: OrderSpec, slot: _BatchSlot) -> OrderRef | VenueError:
        if slot.order_id is None:
            return to_exception([slot.error or "EGeneral:Unknown error"], acting=True,
                                method=f"batch_add {spec.cl_ord_id}")  # fmt: skip
        rested_s = self.clock.time() if spec.rests else None
        return OrderRef(txid=slot.order_id, cl_ord_id=spec.cl_ord_id, instrument=spec.instrument,
                        rested_s=rested_s)  # fmt: skip

    def _found(self, spec: OrderSpec, state: OrderState | None, what: str) -> OrderRef | VenueError:
        """A batch's order as reconciliation found it: its reference, or (past the deadline,
        while others of the batch were placed) not placed."""
        if state is None:
            return VenueUnavailable(f"{what}: {spec.cl_ord_id} not placed (reconciled)")
        rested_s = self.clock.time() if spec.rests else None
        return OrderRef(txid=state.txid, cl_ord_id=spec.cl_ord_id, instrument=spec.instrument,
                        rested_s=rested_s)  # fmt: skip

    async def amend(
        self, ref: OrderRef, *, volume: Decimal | None = None, price: Decimal | None = None
    ) -> OrderRef:
        params = amend_order_params(ref, volume=volume, price=price)
        if not self._use_ws("amend_order"):
            return await self._rest.amend(ref, volume=volume, price=price)
        request = self._rest.amend_request(ref)
        deadline = Deadline(self.clock, self.order_deadline_s)

        async def send() -> str:
            reply = await self._trading.trade(request, params, stamp=deadline.stamp)
            return _result(_Amended, reply, f"amend_order {ref.txid}").amend_id

        lookup = self._rest.amended_lookup(ref, volume=volume, price=price, deadline=deadline)

        try:
            await self._act(f"amend_order {ref.txid}", send, lookup)
        except VenueUnavailable as exc:
            self._fell_back("amend_order", exc)
            return await self._rest.amend(ref, volume=volume, price=price)
        # Kraken prices the next amend or cancel from this amend: the order rests anew.
        return OrderRef(txid=ref.txid, cl_ord_id=ref.cl_ord_id, instrument=ref.instrument,
                        rested_s=self.clock.time())  # fmt: skip

    async def cancel(self, ref: OrderRef) -> bool:
        if not self._use_ws("cancel_order"):
            return await self._rest.cancel(ref)
        request = self._rest.cancel_request(ref)

        async def send() -> bool:
            try:
                await self._trading.trade(request, {"order_id": [ref.txid]})
            except UnknownOrder:
                return False  # already closed (filled, expired or cancelled)
            return True

        lookup = self._rest.cancelled_lookup(ref)

        try:
            return await self._act(f"cancel_order {ref.txid}", send, lookup)
        except AmbiguousOutcome:
            raise
        except OrchestratorError as exc:  # a cancel must reach the venue
            self._fell_back("cancel_order", exc)
            return await self._rest.cancel(ref)

    async def cancel_all(self, resting: Sequence[OrderRef]) -> int:
        if not self._use_ws("cancel_all"):
            return await self._rest.cancel_all(resting)
        request = self._rest.cancel_all_request(resting)

        async def send() -> int:
            return _result(_Count, await self._trading.trade(request, {}), "cancel_all").count

        lookup = self._rest.cancelled_all_lookup(resting)

        try:
            return await self._act("cancel_all", send, lookup)
        except AmbiguousOutcome:
            raise
        except OrchestratorError as exc:
            self._fell_back("cancel_all", exc)
            return await self._rest.cancel_all(resting)

    async def dead_man_switch(self, timeout_s: int) -> str:
        """Arming (or disarming) twice has the effect of once: no lookup is needed, and any
        failure over WS, ambiguous or not, is sent again over REST."""
        if not self._use_ws("cancel_all_orders_after"):
            return await self._rest.dead_man_switch(timeout_s)
        request = VenueRequest(method=m.CANCEL_ALL_AFTER)
        try:
            reply = await self._trading.trade(request, {"timeout": timeout_s})
            return _result(_DeadMan, reply, "cancel_all_orders_after").triggerTime
        except OrchestratorError as exc:
            self._fell_back("cancel_all_orders_after", exc)
            return await self._rest.dead_man_switch(timeout_s)

    # --- queries: REST -----------------------------------------------------------------------
    async def open_orders(self) -> list[OrderState]:
        return await self._rest.open_orders()

    async def find_order(self, cl_ord_id: str) -> OrderState | None:
        return await self._rest.find_order(cl_ord_id)

    # --- helpers -----------------------------------------------------------------------------
    async def _act(
        self,
        what: str,
        send: Callable[[], Awaitable[T]],
        lookup: Callable[[], Awaitable[T | None]],
    ) -> T:
        return await act_once(what, send, lookup, clock=self.clock,
                              confirm_delay_s=self.confirm_delay_s)  # fmt: skip

    def _use_ws(self, call: str) -> bool:
        """Whether `call` goes over the socket; counted either way."""
        if self._ws.connected:
            self.counters["ws"] += 1
            return True
        self.counters["rest"] += 1
        log.info("ws_order_entry.rest", call=call, account=self._trading.account,
                 reason="not connected")  # fmt: skip
        return False

    def _fell_back(self, call: str, exc: OrchestratorError) -> None:
        self.counters["rest"] += 1
        log.warning("ws_order_entry.fallback", call=call, account=self._trading.account,
                    error=str(exc))  # fmt: skip

"""Kraken's `TradingVenue` for one account: order entry over the signed REST client.

Each request is described to the limiter from what the caller holds, with no call to the venue to
price itself: the pair from the order's `Instrument`, cancel and amend costs from the time the
order last rested (placed or amended, `OrderRef.rested_s`). Every acting call goes through
`act_once` (common/reconcile.py) with the lookup that tells what the venue did.
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any, Final, TypeVar

from orchestrator.clock import Clock
from orchestrator.errors import AmbiguousOutcome, UnknownOrder, VenueError
from orchestrator.exchange.instruments import Instruments
from orchestrator.exchange.kraken.common import methods as m
from orchestrator.exchange.kraken.common.reconcile import act_once
from orchestrator.exchange.kraken.spot import schemas as s
from orchestrator.exchange.kraken.spot.orders import add_order_params, order_state
from orchestrator.exchange.kraken.spot.reconcile import find_order
from orchestrator.exchange.kraken.spot.rest import KrakenRest
from orchestrator.exchange.protocol import OrderRef, OrderSpec, OrderState
from orchestrator.ratelimit.policy import VenueRequest

_GONE = frozenset({"closed", "canceled", "expired"})
# Kraken's range for `deadline` on REST order entry, and the slack we allow between our clock and
# the venue's before a miss after the deadline counts as "never executed".
MIN_DEADLINE_AHEAD_S: Final = 2.0
MAX_DEADLINE_AHEAD_S: Final = 60.0
DEADLINE_MARGIN_S: Final = 1.0


# The queries that settle a cancel ride the cancel's lane: never refused as new risk.
_SETTLING_A_CANCEL: Final = {
    method: VenueRequest(method=method, for_risk_reducing=True)
    for method in (m.QUERY_ORDERS, m.OPEN_ORDERS)
}


class Deadline:
    """Kraken's `deadline` for one order request: stamped when the request is signed (after
    every wait), so it arrives well within Kraken's 2-60 s (0.5-60 s over WebSocket, stamped
    just before sending); once it (and our clock slack) has passed, the engine can no longer
    execute the request, so a lookup miss is final."""

    def __init__(self, clock: Clock, ahead_s: float) -> None:
        self.clock = clock
        self.ahead_s = ahead_s
        self.at_s: float | None = None

    def stamp(self) -> dict[str, str]:
        self.at_s = self.clock.time() + self.ahead_s
        return {"deadline": rfc3339(self.at_s)}

    async def wait_out(self) -> bool:
        """Sleep until the request can no longer execute; whether there was anything to wait."""
        if self.at_s is None:
            return False  # never signed: never sent
        late_s = self.at_s + DEADLINE_MARGIN_S - self.clock.time()
        if late_s <= 0:
            return False
        await self.clock.sleep(late_s)
        return True


T = TypeVar("T")
Lookup = Callable[[], Awaitable[T | None]]


def place_request(spec: OrderSpec) -> VenueRequest:
    return VenueRequest(method=m.ADD_ORDER, pair=spec.instrument.wsname)


def rfc3339(time_s: float) -> str:
    """`2026-12-01T20:15:12.345Z`: the form Kraken's `deadline` takes."""
    moment = datetime.datetime.fromtimestamp(time_s, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class KrakenTrading:
    """`TradingVenue` for one Kraken account."""

    def __init__(
        self,
        rest: KrakenRest,
        clock: Clock,
        instruments: Instruments,
        *,
        confirm_delay_s: float = 0.5,
        order_deadline_s: float = 5.0,
    ) -> None:
        """`order_deadline_s`: how long after sending Kraken may still execute an order (its
        `deadline`, 2 to 60 s ahead); an order lost in transit is re-sent only after it."""
        if not MIN_DEADLINE_AHEAD_S <= order_deadline_s <= MAX_DEADLINE_AHEAD_S:
            raise ValueError(f"order_deadline_s must be within {MIN_DEADLINE_AHEAD_S} to "
                             f"{MAX_DEADLINE_AHEAD_S} s, got {order_deadline_s}")  # fmt: skip
        self._rest = rest
        self.clock = clock
        self.instruments = instruments
        self.confirm_delay_s = confirm_delay_s
        self.order_deadline_s = order_deadline_s

    async def place(self, spec: OrderSpec) -> OrderRef:
        params = add_order_params(spec)
        request = place_request(spec)
        deadline = Deadline(self.clock, self.order_deadline_s)

        async def send() -> str:
            result = await self._rest.call_as(s.AddOrderResult, m.ADD_ORDER, params,
                                             request=request, stamp=deadline.stamp)  # fmt: skip
            if len(result.txid) != 1:
                raise AmbiguousOutcome(f"AddOrder {spec.cl_ord_id}: reply has no single txid")
            return result.txid[0]

        lookup = self.placed_lookup(spec.cl_ord_id, deadline)
        txid = await act_once(f"AddOrder {spec.cl_ord_id}", send, lookup, clock=self.clock,
                              confirm_delay_s=self.confirm_delay_s)  # fmt: skip
        rested_s = self.clock.time() if spec.rests else None
        return OrderRef(txid=txid, cl_ord_id=spec.cl_ord_id, instrument=spec.instrument,
                        rested_s=rested_s)  # fmt: skip

    async def place_batch(self, specs: Sequence[OrderSpec]) -> list[OrderRef | VenueError]:
        """Over REST the orders go one by one (each with its own exactly-once `place`): the
        fallback of WebSocket `batch_add`, which is where batches pay n/2."""
        out: list[OrderRef | VenueError] = []
        for spec in specs:
            try:
                out.append(await self.place(spec))
            except VenueError as exc:
                out.append(exc)
        return out

    async def amend(
        self, ref: OrderRef, *, volume: Decimal | None = None, price: Decimal | None = None
    ) -> OrderRef:
        if volume is None and price is None:
            raise ValueError("an amend changes the volume, the price or both")
        params: dict[str, Any] = {"txid": ref.txid}
        if volume is not None:
            params["order_qty"] = ref.instrument.qty_text(volume)
        if price is not None:
            params["limit_price"] = ref.instrument.price_text(price)
        request = self.amend_request(ref)
        deadline = Deadline(self.clock, self.order_deadline_s)

        async def send() -> str:
            result = await self._rest.call_as(s.AmendResult, m.AMEND_ORDER, params,
                                             request=request, stamp=deadline.stamp)  # fmt: skip
            return result.amend_id

        lookup = self.amended_lookup(ref, volume=volume, price=price, deadline=deadline)
        await act_once(f"AmendOrder {ref.txid}", send, lookup, clock=self.clock,
                       confirm_delay_s=self.confirm_delay_s)  # fmt: skip
        # Kraken prices the next amend or cancel from this amend: the order rests anew.
        return OrderRef(txid=ref.txid, cl_ord_id=ref.cl_ord_id, instrument=ref.instrument,
                        rested_s=self.clock.time())  # fmt: skip

    async def cancel(self, ref: OrderRef) -> bool:
        request = self.cancel_request(ref)

        async def send() -> bool:
            try:
                result = await self._rest.call_as(
                    s.CancelResult, m.CANCEL_ORDER, {"txid": ref.txid}, request=request
                )
            except UnknownOrder:
                return False  # already closed (filled, expired or cancelled)
            return result.count > 0

        lookup = self.cancelled_lookup(ref)
        return await act_once(f"CancelOrder {ref.txid}", send, lookup, clock=self.clock,
                              confirm_delay_s=self.confirm_delay_s)  # fmt: skip

    async def cancel_all(self, resting: Sequence[OrderRef]) -> int:
        request = self.cancel_all_request(resting)

        async def send() -> int:
            return (await self._rest.call_as(s.CancelResult, m.CANCEL_ALL, request=request)).count

        lookup = self.cancelled_all_lookup(resting)
        return await act_once("CancelAll", send, lookup, clock=self.clock,
                              confirm_delay_s=self.confirm_delay_s)  # fmt: skip

    # --- shared with WebSocket order entry: how each request is priced and looked up ---------
    def amend_request(self, ref: OrderRef) -> VenueRequest:
        """Priced from the age since the order last rested (placed or amended)."""
        return VenueRequest(method=m.AMEND_ORDER, pair=ref.instrument.wsname,
                            order_ages_s=(ref.age_s(self.clock.time()),))  # fmt: skip

    def cancel_request(self, ref: OrderRef) -> VenueRequest:
        return VenueRequest(method=m.CANCEL_ORDER, pair=ref.instrument.wsname,
                            order_ages_s=(ref.age_s(self.clock.time()),))  # fmt: skip

    def cancel_all_request(self, resting: Sequence[OrderRef]) -> VenueRequest:
        now_s = self.clock.time()
        ages = tuple((ref.instrument.wsname, ref.age_s(now_s)) for ref in resting)
        return VenueRequest(method=m.CANCEL_ALL, cancel_all=ages)

    def placed_lookup(self, cl_ord_id: str, deadline: Deadline) -> Lookup[str]:
        """The txid of the order with `cl_ord_id`, or None once its deadline has passed."""

        async def lookup() -> str | None:
            found = await self.find_order(cl_ord_id)
            if found is None and await deadline.wait_out():  # it may still have been queued
                found = await self.find_order(cl_ord_id)
            return None if found is None else found.txid

        return lookup

    def amended_lookup(
        self, ref: OrderRef, *, volume: Decimal | None, price: Decimal | None, deadline: Deadline
    ) -> Lookup[str]:
        """ "reconciled" when the order shows the new terms, None once the deadline passed
        without them; `UnknownOrder` when it closed meanwhile (whether ours came first is
        unknown)."""

        def amended(order: OrderState) -> bool:
            if order.status in _GONE:
                raise UnknownOrder(f"amend {ref.txid}: the order is {order.status}")
            return (volume is None or order.volume == volume) and (
                price is None or order.price == price
            )

        async def lookup() -> str | None:
            if amended(await self.order(ref.txid)):
                return "reconciled"
            if await deadline.wait_out() and amended(await self.order(ref.txid)):
                return "reconciled"
            return None

        return lookup

    def cancelled_lookup(self, ref: OrderRef) -> Lookup[bool]:
        """True if cancelled, False if it closed otherwise, None while still open."""

        async def lookup() -> bool | None:
            order = await self.order(ref.txid, for_cancel=True)
            if order.status == "canceled":
                return True
            return False if order.status in _GONE else None

        return lookup

    def cancelled_all_lookup(self, resting: Sequence[OrderRef]) -> Lookup[int]:
        async def lookup() -> int | None:
            still_open = await self.open_orders(for_cancel=True)
            return len(resting) if not still_open else None

        return lookup

    async def dead_man_switch(self, timeout_s: int) -> str:
        result = await self._rest.call_as(
            s.DeadManResult, m.CANCEL_ALL_AFTER, {"timeout": timeout_s}
        )
        return result.triggerTime

    async def open_orders(self, *, for_cancel: bool = False) -> list[OrderState]:
        """`for_cancel`: settling a cancel, on the cancel's lane."""
        request = _SETTLING_A_CANCEL[m.OPEN_ORDERS] if for_cancel else None
        result = await self._rest.call_as(s.OpenOrders, m.OPEN_ORDERS, request=request)
        return [order_state(txid, o, self.instruments) for txid, o in result.open.items()]

    async def find_order(self, cl_ord_id: str) -> OrderState | None:
        found = await find_order(self._rest, cl_ord_id)
        return None if found is None else order_state(*found, self.instruments)

    async def order(self, txid: str, *, for_cancel: bool = False) -> OrderState:
        """The order's state now (the lookup of amends and cancels, also over WebSocket);
        `for_cancel`: settling a cancel, on the cancel's lane."""
        request = _SETTLING_A_CANCEL[m.QUERY_ORDERS] if for_cancel else None
        result = await self._rest.call_as(
            dict[str, s.KrakenOrder], m.QUERY_ORDERS, {"txid": txid}, request=request
        )
        if txid not in result:
            raise UnknownOrder(f"QueryOrders: no order {txid}")
        return order_state(txid, result[txid], self.instruments)

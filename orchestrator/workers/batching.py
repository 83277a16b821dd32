"""Places of one pair asked for together go to the venue as one batch.

Kraken prices a batch of n orders of one pair at n/2 on the trading counter (a single order
costs 1), so a market maker's two quotes cost one unit instead of two. Every place the strategy
asks for during one turn of the loop (a callback, typically) is collected; at the end of the
turn they are grouped by pair: a pair with one order sends it alone, a pair with several sends
them in batches of at most 15. Each order keeps its own journal entry, outcome and lane: what
was queued after its place (a cancel, an amend) runs once the batch has answered.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from orchestrator.errors import OrchestratorError
from orchestrator.exchange.kraken.ws.order_params import MAX_BATCH
from orchestrator.exchange.protocol import OrderRef
from orchestrator.workers.order_states import TrackedOrder

if TYPE_CHECKING:
    from orchestrator.workers.orders import OrderManager


class PlaceBatcher:
    def __init__(self, manager: OrderManager) -> None:
        self._manager = manager
        self._fresh: list[TrackedOrder] = []
        self._flush_due = False

    def add(self, order: TrackedOrder) -> None:
        """Send `order` with the others of its pair asked for in this turn of the loop."""
        self._fresh.append(order)
        if not self._flush_due:
            self._flush_due = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_due = False
        fresh, self._fresh = self._fresh, []
        by_pair: dict[str, list[TrackedOrder]] = {}
        for order in fresh:
            by_pair.setdefault(order.instrument.wsname, []).append(order)
        for orders in by_pair.values():
            for start in range(0, len(orders), MAX_BATCH):
                self._manager.spawn_lane_work(self._send(orders[start : start + MAX_BATCH]))

    async def _send(self, orders: list[TrackedOrder]) -> None:
        manager = self._manager
        # An order whose place was dropped meanwhile (the strategy stopping) is not sent.
        taken = [order for order in orders if manager.take_place(order.cl_ord_id)]
        try:
            ready = [order for order in taken if await manager.ready_to_send(order)]
            if len(ready) == 1:
                await manager.send_place(ready[0])
            elif ready:
                await self._send_batch(ready)
        except BaseException:
            for order in orders:
                manager.release_lane(order.cl_ord_id)
            raise
        for order in orders:
            manager.continue_lane(order.cl_ord_id)

    async def _send_batch(self, ready: list[TrackedOrder]) -> None:
        manager = self._manager
        outcomes: list[OrderRef | OrchestratorError]
        try:
            outcomes = list(await manager.venue.place_batch([order.spec() for order in ready]))
        except manager.place_outcomes as exc:  # the whole batch: each order hears it
            outcomes = [exc] * len(ready)
        async with asyncio.TaskGroup() as each:  # one outcome each, concurrently (lookups)
            for order, outcome in zip(ready, outcomes, strict=True):
                each.create_task(manager.placed(order, outcome))

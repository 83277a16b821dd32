"""Exactly-once order entry over an unreliable link: reconcile by `cl_ord_id` before any retry.

An AddOrder whose reply is lost (timeout, dropped connection, `EService:Unavailable` on order
entry) may or may not have reached the book. Kraken has no idempotency key for AddOrder, but a
`cl_ord_id` is unique among open orders and filterable in OpenOrders and ClosedOrders: look it up,
and only when the venue has certainly not got it, send again. Kraken notes a just-placed order can
be briefly missing from OpenOrders, so a miss is confirmed once more after `confirm_delay_s`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.clock import Clock
from orchestrator.errors import AmbiguousOutcome, VenueUnavailable
from orchestrator.exchange.kraken.spot.rest import KrakenRest
from orchestrator.exchange.kraken.spot.schemas import ClosedOrders, KrakenOrder, OpenOrders
from orchestrator.logs import get_logger
from orchestrator.ratelimit.policy import VenueRequest

log = get_logger(__name__)


async def find_order(rest: KrakenRest, cl_ord_id: str) -> tuple[str, KrakenOrder] | None:
    """The order with this `cl_ord_id` (txid and state), open or closed, or None."""
    params = {"cl_ord_id": cl_ord_id}
    opened = await rest.private_as(OpenOrders, "OpenOrders", params)
    for txid, order in opened.open.items():
        return txid, order
    closed = await rest.private_as(ClosedOrders, "ClosedOrders", params)
    for txid, order in closed.closed.items():
        return txid, order
    return None


async def add_order_once(
    rest: KrakenRest,
    params: Mapping[str, Any],
    *,
    request: VenueRequest,
    clock: Clock,
    attempts: int = 3,
    confirm_delay_s: float = 0.5,
) -> str:
    """Place the order at most once and return its txid. `params` must carry a `cl_ord_id`."""
    cl_ord_id = params.get("cl_ord_id")
    if not cl_ord_id:
        raise ValueError("exactly-once order entry needs a cl_ord_id")
    last: AmbiguousOutcome | None = None
    for attempt in range(attempts):
        try:
            result = await rest.private("AddOrder", params, request=request)
            return str(result["txid"][0])
        except AmbiguousOutcome as exc:
            last = exc
            log.warning("order.ambiguous", cl_ord_id=cl_ord_id, attempt=attempt, error=str(exc))
        txid = await _reconcile(rest, str(cl_ord_id), clock, confirm_delay_s)
        if txid is not None:
            log.info("order.reconciled", cl_ord_id=cl_ord_id, txid=txid)
            return txid
    assert last is not None  # noqa: S101 - the loop only ends here after an ambiguous outcome
    raise last


_LOOKUPS = 5


async def _reconcile(
    rest: KrakenRest, cl_ord_id: str, clock: Clock, confirm_delay_s: float
) -> str | None:
    """Look the order up; a miss is confirmed after a delay. While the venue cannot answer, back
    off and ask again; if it never answers, the outcome stays ambiguous (raised)."""
    delay_s = max(confirm_delay_s, 0.01)
    for lookup in range(_LOOKUPS):
        try:
            found = await find_order(rest, cl_ord_id)
            if found is None:
                await clock.sleep(confirm_delay_s)
                found = await find_order(rest, cl_ord_id)
        except VenueUnavailable as exc:
            if lookup == _LOOKUPS - 1:
                raise AmbiguousOutcome(f"AddOrder {cl_ord_id}: cannot reconcile ({exc})") from exc
            await clock.sleep(delay_s)
            delay_s *= 2
            continue
        return None if found is None else found[0]
    return None  # pragma: no cover - the loop returns or raises

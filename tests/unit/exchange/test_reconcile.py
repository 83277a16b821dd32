"""Exactly once without sockets: a scripted venue behind `MockTransport` executes, then loses,
garbles or cuts the reply; the trading venue and the treasury reconcile before any resend."""

from __future__ import annotations

import datetime
import json
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import msgspec
import pytest

from orchestrator.clock import ManualClock
from orchestrator.errors import AmbiguousOutcome
from orchestrator.exchange.instruments import Instrument, Instruments
from orchestrator.exchange.kraken.common.key_lock import LocalKeyLock
from orchestrator.exchange.kraken.common.nonce import LocalNonce
from orchestrator.exchange.kraken.common.transport import HttpReply, HttpRequest, MockTransport
from orchestrator.exchange.kraken.spot.reader import KrakenAccountReader
from orchestrator.exchange.kraken.spot.rest import KrakenRest
from orchestrator.exchange.kraken.spot.trading import KrakenTrading
from orchestrator.exchange.kraken.spot.treasury import KrakenTreasury
from orchestrator.exchange.protocol import OrderSpec
from orchestrator.ratelimit.permits import Permit, Unlimited
from orchestrator.ratelimit.policy import VenueRequest
from orchestrator.secrets import ApiCredentials, Secret

XBT_USD = Instrument(rest_name="XXBTZUSD", altname="XBTUSD", wsname="XBT/USD", symbol="BTC/USD", base="XXBT",
                     quote="ZUSD", price_decimals=1, qty_decimals=8, tick_size=Decimal("0.1"),
                     ordermin=Decimal("0.0001"), costmin=Decimal("0.5"))  # fmt: skip
Fault = str  # "lost" (timeout), "reset" (connection closed), "garbled" (not the envelope)


class ScriptedVenue:
    """Just enough of Kraken: orders by cl_ord_id, cancels, amends, a transfer ledger. `faults`
    maps a method to the fault its next reply suffers, after the venue acted."""

    def __init__(self) -> None:
        self.clock: ManualClock | None = None
        self.deadlines_ahead_s: list[float] = []  # `deadline` minus the time it arrived
        self.faults: dict[str, list[Fault]] = {}
        self.sent: list[str] = []
        self.orders: dict[str, dict[str, Any]] = {}
        self.ledger: dict[str, dict[str, Any]] = {}

    async def __call__(self, request: HttpRequest) -> HttpReply:
        method = request.url.rsplit("/", 1)[1]
        form = {k: v[0] for k, v in parse_qs((request.body or b"").decode()).items()}
        self.sent.append(method)
        if "deadline" in form and self.clock is not None:
            at = datetime.datetime.fromisoformat(form["deadline"].replace("Z", "+00:00"))
            self.deadlines_ahead_s.append(at.timestamp() - self.clock.time())
        result = getattr(self, method)(form)
        faults = self.faults.get(method)
        fault = faults.pop(0) if faults else None
        if fault == "lost":
            raise TimeoutError
        if fault == "reset":
            raise aiohttp.ServerDisconnectedError
        if fault == "garbled":
            return HttpReply(502, b"<html>502 Bad Gateway</html>")
        return HttpReply(200, json.dumps({"error": [], "result": result}).encode())

    def _order(self, txid: str) -> dict[str, Any]:
        o = self.orders[txid]
        return {"status": o["status"], "opentm": 1.0, "vol": o["vol"], "vol_exec": "0",
                "cl_ord_id": o["cl_ord_id"],
                "descr": {"pair": "XBTUSD", "type": "buy", "ordertype": "limit",
                          "price": o["price"]}}  # fmt: skip

    def AddOrder(self, form: dict[str, str]) -> Any:
        txid = f"O{len(self.orders)}"
        self.orders[txid] = {"status": "open", "vol": form["volume"], "price": form["price"],
                             "cl_ord_id": form["cl_ord_id"]}  # fmt: skip
        return {"descr": {"order": "buy"}, "txid": [txid]}

    def OpenOrders(self, form: dict[str, str]) -> Any:
        return {"open": {t: self._order(t) for t, o in self.orders.items()
                         if o["status"] == "open" and form.get("cl_ord_id") in (None, o["cl_ord_id"])}}  # fmt: skip

    def ClosedOrders(self, form: dict[str, str]) -> Any:
        return {"closed": {t: self._order(t) for t, o in self.orders.items()
                           if o["status"] != "open" and form.get("cl_ord_id") == o["cl_ord_id"]}}  # fmt: skip

    def QueryOrders(self, form: dict[str, str]) -> Any:
        return {form["txid"]: self._order(form["txid"])}

    def AmendOrder(self, form: dict[str, str]) -> Any:
        order = self.orders[form["txid"]]
        order["price"] = form.get("limit_price", order["price"])
        order["vol"] = form.get("order_qty", order["vol"])
        return {"amend_id": f"A{len(self.sent)}"}

    def CancelOrder(self, form: dict[str, str]) -> Any:
        self.orders[form["txid"]]["status"] = "canceled"
        return {"count": 1}

    def CancelAll(self, form: dict[str, str]) -> Any:
        cancelled = [o for o in self.orders.values() if o["status"] == "open"]
        for o in cancelled:
            o["status"] = "canceled"
        return {"count": len(cancelled)}

    def AccountTransfer(self, form: dict[str, str]) -> Any:
        refid = f"T{len(self.ledger)}"
        self.ledger[f"L{len(self.ledger)}"] = {"refid": refid, "time": 1.0, "type": "transfer",
                                               "asset": form["asset"], "amount": f"-{form['amount']}",
                                               "fee": "0", "balance": "0"}  # fmt: skip
        return {"transfer_id": refid, "status": "complete"}

    def Ledgers(self, form: dict[str, str]) -> Any:
        return {"ledger": self.ledger, "count": len(self.ledger)}


class SlowPermits(Unlimited):
    """Grants after `wait_s` of the clock, and records each request's method and lane."""

    def __init__(self, clock: ManualClock, wait_s: float = 0.0) -> None:
        self.clock = clock
        self.wait_s = wait_s
        self.lanes: list[tuple[str, str]] = []

    async def acquire_for(self, request: VenueRequest, **kw: Any) -> Permit:
        self.lanes.append((str(request.method), request.lane))
        await self.clock.sleep(self.wait_s)
        return await super().acquire_for(request, **kw)


def wire(
    venue: ScriptedVenue, permit_wait_s: float = 0.0
) -> tuple[KrakenTrading, KrakenTreasury, SlowPermits]:
    clock = ManualClock(autojump=True)  # waiting out an order's deadline takes no real time
    venue.clock = clock
    permits = SlowPermits(clock, permit_wait_s)
    rest = KrakenRest(MockTransport(venue), "https://api.example", account="a", nonce=LocalNonce(),
                      credentials=ApiCredentials(key=Secret("k"), secret=Secret("c2VjcmV0")),
                      key_lock=LocalKeyLock(), permits=permits)  # fmt: skip
    instruments = Instruments([XBT_USD])
    reader = KrakenAccountReader(rest, instruments)
    return (KrakenTrading(rest, clock, instruments, confirm_delay_s=0.0),
            KrakenTreasury(rest, clock, {"a": reader}, confirm_delay_s=0.0), permits)  # fmt: skip


SPEC = OrderSpec(instrument=XBT_USD, side="buy", order_type="limit", volume=Decimal("0.01"),
                 price=Decimal("50000.0"), cl_ord_id="c-1")  # fmt: skip


@pytest.mark.parametrize("fault", ["lost", "reset", "garbled"])
async def test_each_acting_call_executes_once(fault: Fault) -> None:
    venue = ScriptedVenue()
    trading, treasury, _ = wire(venue)
    venue.faults = {m: [fault] for m in ("AddOrder", "AmendOrder", "CancelOrder",
                                         "AccountTransfer")}  # fmt: skip
    ref = await trading.place(SPEC)
    ref = await trading.amend(ref, price=Decimal("50001.0"))
    assert await trading.cancel(ref) is True
    transfer = await treasury.account_transfer("ZUSD", Decimal("5"), "a", "b")
    assert venue.sent.count("AddOrder") == 1
    assert venue.sent.count("AmendOrder") == 1
    assert venue.sent.count("CancelOrder") == 1
    assert venue.sent.count("AccountTransfer") == 1
    assert [o["price"] for o in venue.orders.values()] == ["50001.0"]
    assert transfer.transfer_id == "T0"


async def test_a_call_the_venue_never_got_is_sent_again() -> None:
    venue = ScriptedVenue()
    trading, _, _ = wire(venue)
    real_add = venue.AddOrder
    dropped = [True]

    def add_or_drop(form: dict[str, str]) -> Any:
        if dropped and dropped.pop():
            raise TimeoutError  # lost on the way there: the venue never saw it
        return real_add(form)

    venue.AddOrder = add_or_drop  # type: ignore[method-assign]
    ref = await trading.place(SPEC)
    assert venue.sent.count("AddOrder") == 2
    assert list(venue.orders) == [ref.txid]


async def test_a_venue_that_cannot_answer_leaves_the_outcome_ambiguous() -> None:
    venue = ScriptedVenue()
    trading, _, _ = wire(venue)
    venue.faults = {"AddOrder": ["lost"], "OpenOrders": ["lost"] * 20}
    with pytest.raises(AmbiguousOutcome, match="cannot reconcile"):
        await trading.place(SPEC)
    assert venue.sent.count("AddOrder") == 1


async def test_deadline_is_stamped_after_every_wait() -> None:
    """A permit that takes 4 s (of a 5 s deadline) must not eat into the deadline Kraken sees:
    it is stamped when the request is signed, not when the call began."""
    venue = ScriptedVenue()
    trading, _, _ = wire(venue, permit_wait_s=4.0)
    ref = await trading.place(SPEC)
    await trading.amend(ref, price=Decimal("50001.0"))
    assert venue.deadlines_ahead_s == [pytest.approx(5.0, abs=0.01)] * 2


async def test_a_cancels_lookups_ride_the_cancels_lane() -> None:
    """Settling a cancel must not be refused as new risk (as it would be with Redis down)."""
    venue = ScriptedVenue()
    trading, _, permits = wire(venue)
    ref = await trading.place(SPEC)
    venue.faults = {"CancelOrder": ["lost"], "CancelAll": ["lost"]}
    assert await trading.cancel(ref) is True
    other = await trading.place(msgspec.structs.replace(SPEC, cl_ord_id="c-2"))
    assert await trading.cancel_all([other]) == 1
    settling = [lane for method, lane in permits.lanes if method in ("QueryOrders", "OpenOrders")]
    assert settling
    assert set(settling) == {"risk_reducing"}

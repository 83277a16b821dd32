"""Reply faults after the venue acted: lost, garbled, reset; over spot REST, futures REST and WS.

Each test proves both halves: the client hears the fault (a disconnect, a timeout, a body that is
not the envelope, a reset), and the venue carried the request out (the state change is kept and
the reconciliation endpoint shows it). Faults are counted and filtered by method, so a test says
"the next AccountTransfer" and nothing else is touched.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import msgspec
import pytest

from orchestrator.clock import ManualClock
from orchestrator.simulator.app import RunningSimulator, open_simulator
from orchestrator.simulator.reply_faults import HTML_502, choose
from orchestrator.simulator.settings import FaultSettings, SimSettings

from .conftest import SimClient
from .test_futures_rest import Futures, flex, open_futures

ORDER = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "volume": "0.01",
         "price": "50000.0"}  # fmt: skip
TRANSFER = {"asset": "USD", "amount": "25", "from": "master", "to": "mm-xbt"}


def not_json(body: bytes) -> bool:
    try:
        msgspec.json.decode(body)
    except msgspec.DecodeError:
        return True
    return False


# --- choosing a fault (pure) ---------------------------------------------------------------------
def test_counted_faults_strike_the_next_matching_requests_only() -> None:
    faults = FaultSettings(garbled_reply_next=1, garbled_reply_methods=("AccountTransfer",))
    rng = random.Random(1)
    assert choose(faults, rng, "AddOrder", acting=True) is None  # filtered out: untouched
    assert choose(faults, rng, "AccountTransfer", acting=True) == "garbled"
    assert choose(faults, rng, "AccountTransfer", acting=True) is None  # used up
    assert faults.garbled_reply_next == 0


def test_unfiltered_faults_strike_acting_requests_and_named_queries_are_struck_too() -> None:
    rng = random.Random(1)
    faults = FaultSettings(reset_reply_next=1)
    assert choose(faults, rng, "OpenOrders", acting=False) is None
    assert choose(faults, rng, "transfer/subaccount", acting=True) == "reset"
    named = FaultSettings(lost_reply_next=1, lost_reply_methods=("OpenOrders",))
    assert choose(named, rng, "OpenOrders", acting=False) == "lost"


def test_one_fault_per_request_in_a_fixed_order() -> None:
    faults = FaultSettings(lost_reply_next=1, garbled_reply_next=1, reset_reply_next=1)
    rng = random.Random(1)
    got = [choose(faults, rng, "add_order", acting=True) for _ in range(4)]
    assert got == ["lost", "garbled", "reset", None]


def test_the_lost_reply_rate_draws_from_the_seeded_rng() -> None:
    always, never = FaultSettings(lost_reply_rate=1.0), FaultSettings(lost_reply_rate=0.0)
    rng = random.Random(1)
    assert choose(always, rng, "AddOrder", acting=True) == "lost"
    state = rng.getstate()
    assert choose(never, rng, "AddOrder", acting=True) is None
    assert rng.getstate() == state  # no rate, no draw: other faults' draws are not shifted


# --- spot REST -----------------------------------------------------------------------------------
async def test_garbled_account_transfer_is_executed_and_found_in_the_ledger(
    master: SimClient, sim: RunningSimulator
) -> None:
    await master.admin(
        "faults", {"garbled_reply_next": 1, "garbled_reply_methods": ["AccountTransfer"]}
    )
    await master.ok("AddOrder", **ORDER)  # not an AccountTransfer: clean, and nothing consumed
    status, content_type, body = await master.raw("AccountTransfer", TRANSFER)
    assert (status, content_type) == (200, "application/json")
    assert not_json(body)
    [transfer] = sim.venue.funding.transfers.values()
    ledger = (await master.ok("Ledgers", type="transfer"))["ledger"]
    assert [e["refid"] for e in ledger.values()] == [transfer.transfer_id]
    assert [e["amount"] for e in ledger.values()] == ["-25.0000"]
    assert sim.venue.request_counts["fault:garbled_reply"] == 1
    assert (await master.ok("Balance"))["ZUSD"]  # later requests are clean again


async def test_html_502_after_a_withdrawal_and_withdraw_status_shows_it(
    master: SimClient, sim: RunningSimulator
) -> None:
    await master.admin("faults", {"garbled_reply_next": 1, "garbled_reply_body": "html_502"})
    params = {"asset": "XBT", "key": "desk-wallet", "amount": "0.5"}
    status, content_type, body = await master.raw("Withdraw", params)
    assert (status, content_type, body) == (502, "text/html", HTML_502)
    [withdrawal] = sim.venue.funding.withdrawals.values()
    found = await master.ok("WithdrawStatus", asset="XBT")
    assert [w["refid"] for w in found] == [withdrawal.refid]


async def test_reset_after_add_order_and_the_order_is_found_by_cl_ord_id(
    trader: SimClient, sim: RunningSimulator
) -> None:
    await trader.admin("faults", {"reset_reply_next": 1, "reset_reply_methods": ["AddOrder"]})
    with pytest.raises(aiohttp.ClientOSError) as raised:
        await trader.raw("AddOrder", {**ORDER, "cl_ord_id": "reset-1"})
    assert raised.value.errno == 104  # ECONNRESET: an RST, not an orderly close
    opened = (await trader.ok("OpenOrders", cl_ord_id="reset-1"))["open"]
    assert len(opened) == 1
    assert sim.venue.request_counts["fault:reset_reply"] == 1


async def test_lost_reply_closes_without_a_response(trader: SimClient) -> None:
    txid = (await trader.ok("AddOrder", **{**ORDER, "cl_ord_id": "cancel-1"}))["txid"][0]
    await trader.admin("faults", {"lost_reply_next": 1, "lost_reply_methods": ["CancelOrder"]})
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await trader.raw("CancelOrder", {"cl_ord_id": "cancel-1"})
    closed = (await trader.ok("ClosedOrders", cl_ord_id="cancel-1"))["closed"]
    assert closed[txid]["status"] == "canceled"


async def test_lost_reply_held_silent_until_the_client_times_out(
    trader: SimClient, sim: RunningSimulator
) -> None:
    await trader.ok("AddOrder", **ORDER)
    await trader.admin("faults", {"lost_reply_next": 1, "lost_reply_hold_s": 30.0})
    with pytest.raises(TimeoutError):
        await trader.raw("CancelAll", {}, timeout_s=0.2)
    assert (await trader.ok("OpenOrders"))["open"] == {}  # the cancel happened
    assert sim.venue.request_counts["fault:lost_reply"] == 1


async def test_garbled_amend_and_order_amends_shows_it(trader: SimClient) -> None:
    txid = (await trader.ok("AddOrder", **ORDER))["txid"][0]
    await trader.admin("faults", {"garbled_reply_next": 1})
    status, _, body = await trader.raw("AmendOrder", {"txid": txid, "limit_price": "49000.0"})
    assert status == 200
    assert not_json(body)
    amends = (await trader.ok("OrderAmends", order_id=txid))["amends"]
    assert [(a["amend_type"], a["limit_price"]) for a in amends] == [
        ("original", "50000.0"), ("user", "49000.0"),
    ]  # fmt: skip


async def test_a_refused_request_consumes_no_fault(
    trader: SimClient, sim: RunningSimulator
) -> None:
    await trader.admin("faults", {"reset_reply_next": 1})
    assert await trader.error("CancelOrder", txid="OUNKNO-WN000-000000") == "EOrder:Unknown order"
    assert sim.venue.settings.faults.reset_reply_next == 1  # nothing acted: still armed


async def test_queries_stay_clean_unless_named(trader: SimClient) -> None:
    await trader.admin("faults", {"garbled_reply_next": 1})
    await trader.ok("OpenOrders")  # a query, and the fault names no method: untouched
    await trader.admin("faults", {"garbled_reply_methods": ["OpenOrders"]})
    status, _, body = await trader.raw("OpenOrders", {})
    assert status == 200
    assert not_json(body)


async def test_faults_are_set_at_start_too(session: aiohttp.ClientSession) -> None:
    settings = SimSettings(faults=FaultSettings(reset_reply_next=1))
    async with open_simulator(settings, clock=ManualClock()) as sim:
        trader = SimClient(session, sim, sim.venue.keys_of("mm-xbt")[0])
        with pytest.raises(aiohttp.ClientOSError):
            await trader.raw("AddOrder", ORDER)
        assert len(sim.venue.engine.orders) == 1


async def test_a_misspelt_fault_is_refused_not_ignored(trader: SimClient) -> None:
    reply = await trader.admin("faults", {"garbled_next": 1})
    assert "garbled_next" in reply["error"]
    reply = await trader.admin("faults", {"garbled_reply_body": "gzip"})
    assert "error" in reply


# Every acting call a client must reconcile, with what it needs first and how it is found after.
ACTING: dict[str, tuple[bool, dict[str, str]]] = {  # method: (needs a resting order, params)
    "AddOrder": (False, {**ORDER, "cl_ord_id": "matrix"}),
    "AmendOrder": (True, {"cl_ord_id": "matrix", "order_qty": "0.005"}),
    "CancelOrder": (True, {"cl_ord_id": "matrix"}),
    "CancelAll": (True, {}),
    "AccountTransfer": (False, TRANSFER),
    "Withdraw": (False, {"asset": "XBT", "key": "desk-wallet", "amount": "0.5"}),
}


async def acted_once(client: SimClient, method: str) -> bool:
    """What the venue shows of `method` having been carried out, by the reconciling queries."""
    if method == "Withdraw":
        return len(await client.ok("WithdrawStatus", asset="XBT")) == 1
    if method == "AccountTransfer":
        return len((await client.ok("Ledgers", type="transfer"))["ledger"]) == 1
    opened = (await client.ok("OpenOrders", cl_ord_id="matrix"))["open"]
    closed = (await client.ok("ClosedOrders", cl_ord_id="matrix"))["closed"]
    if method == "AddOrder":
        return len(opened) == 1
    if method == "AmendOrder":
        [txid] = opened
        amends: dict[str, Any] = await client.ok("OrderAmends", order_id=txid)
        return bool(amends["count"] == 2)
    return opened == {} and [o["status"] for o in closed.values()] == ["canceled"]


@pytest.mark.parametrize("fault", ["lost", "garbled", "reset"])
@pytest.mark.parametrize("method", list(ACTING))
async def test_every_acting_call_is_carried_out_once_whatever_the_reply(
    master: SimClient, sim: RunningSimulator, method: str, fault: str
) -> None:
    needs_order, params = ACTING[method]
    if needs_order:
        await master.ok("AddOrder", **ORDER, cl_ord_id="matrix")
    await master.admin("faults", {f"{fault}_reply_next": 1, f"{fault}_reply_methods": [method]})
    if fault == "garbled":
        status, _, body = await master.raw(method, params)
        assert status == 200
        assert not_json(body)
    else:
        error = aiohttp.ServerDisconnectedError if fault == "lost" else aiohttp.ClientOSError
        with pytest.raises(error):
            await master.raw(method, params)
    assert sim.venue.request_counts[f"fault:{fault}_reply"] == 1
    assert await acted_once(master, method)


# --- futures REST --------------------------------------------------------------------------------
@pytest.fixture
async def futures() -> AsyncIterator[Futures]:
    async with open_futures() as desk:
        yield desk


SUB_TRANSFER_PATH = "/derivatives/api/v3/transfer/subaccount"
SUB_TRANSFER = ("fromUser=master&toUser=beta&fromAccount=flex&toAccount=flex&unit=USD"
                "&amount=100")  # fmt: skip


@pytest.mark.parametrize(
    ("faults", "seen"),
    [
        ({"garbled_reply_next": 1}, (200, "application/json")),
        ({"garbled_reply_next": 1, "garbled_reply_body": "html_502"}, (502, "text/html")),
    ],
)
async def test_garbled_subaccount_transfer_is_executed(
    futures: Futures, faults: dict[str, Any], seen: tuple[int, str]
) -> None:
    faults["garbled_reply_methods"] = ["transfer/subaccount"]
    futures.venue.settings.faults = msgspec.convert(faults, FaultSettings)
    await futures.ok("GET", "/accounts")  # a read, and not the one named: clean
    status, content_type, body = await futures.raw("POST", SUB_TRANSFER_PATH, body=SUB_TRANSFER)
    assert (status, content_type) == seen
    assert not_json(body)
    assert flex(futures.venue, "beta") == {"ZUSD": Decimal(100)}  # executed


async def test_reset_subaccount_transfer_is_executed(futures: Futures) -> None:
    futures.venue.settings.faults.reset_reply_next = 1
    with pytest.raises(aiohttp.ClientOSError):
        await futures.raw("POST", SUB_TRANSFER_PATH, body=SUB_TRANSFER)
    assert flex(futures.venue, "beta") == {"ZUSD": Decimal(100)}
    reply = await futures.ok("GET", "/accounts")  # the master's side, seen by balance
    assert reply["accounts"]["flex"]["currencies"]["USD"]["quantity"] == 9900.0


async def test_lost_subaccount_transfer_held_until_the_client_times_out(futures: Futures) -> None:
    faults = futures.venue.settings.faults
    faults.lost_reply_next, faults.lost_reply_hold_s = 1, 30.0
    with pytest.raises(TimeoutError):
        await futures.raw("POST", SUB_TRANSFER_PATH, body=SUB_TRANSFER, timeout_s=0.2)
    assert flex(futures.venue, "beta") == {"ZUSD": Decimal(100)}


# --- WS v2 ---------------------------------------------------------------------------------------
class Ws:
    """A bare WS v2 client: frames as text, so that a garbled one can be looked at."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, token: str) -> None:
        self.ws = ws
        self.token = token
        self._ids = iter(range(1, 1000))

    async def send(self, method: str, **params: Any) -> int:
        req_id = next(self._ids)
        params = {**params, "token": self.token}
        await self.ws.send_str(json.dumps({"method": method, "params": params, "req_id": req_id}))
        return req_id

    async def frames_until_pong(self) -> list[str]:
        """Every text frame before the pong (the server answers in order)."""
        req_id = await self.send("ping")
        frames: list[str] = []
        while True:
            msg = await asyncio.wait_for(self.ws.receive(), 5.0)
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            if f'"req_id":{req_id}' in msg.data and '"pong"' in msg.data:
                return frames
            frames.append(msg.data)


@pytest.fixture
async def ws(sim: RunningSimulator, session: aiohttp.ClientSession) -> AsyncIterator[Ws]:
    key = sim.venue.keys_of("mm-xbt")[0]
    async with session.ws_connect(sim.ws_private_url) as conn:
        await conn.receive()  # the status message
        yield Ws(conn, sim.venue.issue_ws_token(key).token)


WS_ORDER = {"symbol": "BTC/USD", "side": "buy", "order_type": "limit", "order_qty": 0.01,
            "limit_price": 50000.0}  # fmt: skip


async def test_ws_garbled_add_order_reply_is_not_json(ws: Ws, sim: RunningSimulator) -> None:
    sim.venue.settings.faults.garbled_reply_next = 1
    await ws.send("add_order", **WS_ORDER, cl_ord_id="ws-garbled")
    [frame] = await ws.frames_until_pong()
    assert frame.startswith('{"method":"add_order"')
    assert not_json(frame.encode())
    [order] = sim.venue.engine.orders.values()
    assert order.cl_ord_id == "ws-garbled"


async def test_ws_lost_amend_reply_and_the_amend_happened(ws: Ws, sim: RunningSimulator) -> None:
    await ws.send("add_order", **WS_ORDER, cl_ord_id="ws-lost")
    await ws.frames_until_pong()
    sim.venue.settings.faults.lost_reply_next = 1
    sim.venue.settings.faults.lost_reply_methods = ("amend_order",)
    await ws.send("amend_order", cl_ord_id="ws-lost", limit_price=49000.0)
    assert await ws.frames_until_pong() == []  # no reply; the connection lives on
    [order] = sim.venue.engine.orders.values()
    assert [a.amend_type for a in order.amends] == ["original", "user"]
    assert order.price == 490000  # in units of 10**-1


async def test_ws_reset_after_cancel_and_the_order_is_cancelled(
    ws: Ws, sim: RunningSimulator
) -> None:
    await ws.send("add_order", **WS_ORDER, cl_ord_id="ws-reset")
    await ws.frames_until_pong()
    sim.venue.settings.faults.reset_reply_next = 1
    await ws.send("cancel_order", cl_ord_id=["ws-reset"])
    msg = await asyncio.wait_for(ws.ws.receive(), 5.0)
    assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
    assert ws.ws.close_code == 1006  # no close frame: the TCP connection was reset
    [order] = sim.venue.engine.orders.values()
    assert order.status == "canceled"
    assert sim.venue.request_counts["fault:reset_reply"] == 1


WS_ACTING: dict[str, dict[str, Any]] = {
    "add_order": {**WS_ORDER, "cl_ord_id": "ws-matrix"},
    "amend_order": {"cl_ord_id": "ws-matrix", "order_qty": 0.005},
    "cancel_order": {"cl_ord_id": ["ws-matrix"]},
}


@pytest.mark.parametrize("fault", ["lost", "garbled", "reset"])
@pytest.mark.parametrize("method", list(WS_ACTING))
async def test_every_ws_trading_call_is_carried_out_once_whatever_the_reply(
    ws: Ws, sim: RunningSimulator, method: str, fault: str
) -> None:
    if method != "add_order":
        await ws.send("add_order", **WS_ORDER, cl_ord_id="ws-matrix")
        await ws.frames_until_pong()
    armed = {f"{fault}_reply_next": 1, f"{fault}_reply_methods": [method]}
    sim.venue.settings.faults = msgspec.convert(armed, FaultSettings)
    await ws.send(method, **WS_ACTING[method])
    if fault == "reset":
        msg = await asyncio.wait_for(ws.ws.receive(), 5.0)
        assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
    else:
        frames = await ws.frames_until_pong()
        replies = [f for f in frames if f'"method":"{method}"' in f]
        assert len(replies) == (0 if fault == "lost" else 1)
        assert all(not_json(f.encode()) for f in replies)  # a garbled reply is not JSON
    [order] = sim.venue.engine.orders.values()
    expected = {"add_order": ("open", 1), "amend_order": ("open", 2),
                "cancel_order": ("canceled", 1)}[method]  # fmt: skip
    assert (order.status, len(order.amends)) == expected

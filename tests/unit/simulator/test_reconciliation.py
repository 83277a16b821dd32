"""What a client reconciles an ambiguous outcome with, in the simulator: OrderAmends (amend
history), Ledgers and WithdrawStatus (funding), AddOrder's `deadline` (a bound on how long an
order can stay in doubt), and the futures account log (`/api/history/v3/account-log`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from orchestrator.simulator.app import RunningSimulator
from orchestrator.simulator.auth import futures_authent
from orchestrator.simulator.events import rfc3339
from orchestrator.simulator.futures_history import ACCOUNT_LOG_PATH

from .conftest import SimClient
from .test_futures_rest import SECRET, Futures, open_futures

ORDER = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "volume": "0.01",
         "price": "50000.0"}  # fmt: skip
# Every field of Kraken's AccountLogEntry marked required in its spec.
LOG_FIELDS = {
    "asset", "booking_uid", "collateral", "contract", "date", "execution", "fee", "funding_rate",
    "id", "info", "margin_account", "mark_price", "new_average_entry_price", "new_balance",
    "old_average_entry_price", "old_balance", "realized_funding", "realized_pnl", "trade_price",
    "conversion_spread_percentage", "liquidation_fee",
}  # fmt: skip


def ahead(sim: RunningSimulator, seconds: float) -> str:
    return rfc3339(sim.venue.clock.time() + seconds)


# --- OrderAmends ---------------------------------------------------------------------------------
async def test_order_amends_lists_the_entry_then_each_amend(
    trader: SimClient, sim: RunningSimulator
) -> None:
    [txid] = (await trader.ok("AddOrder", **ORDER))["txid"]
    await sim.advance(1)
    down = (await trader.ok("AmendOrder", txid=txid, order_qty="0.008"))["amend_id"]
    await sim.advance(1)
    moved = await trader.ok("AmendOrder", txid=txid, limit_price="49000.0", post_only="true")
    result = await trader.ok("OrderAmends", order_id=txid)
    assert result["count"] == 3
    amends = result["amends"]
    assert [a["amend_id"] for a in amends[1:]] == [down, moved["amend_id"]]
    assert amends[0] == {
        "amend_id": amends[0]["amend_id"], "amend_type": "original", "order_qty": "0.01000000",
        "remaining_qty": "0.01000000", "limit_price": "50000.0",
        "timestamp": int(sim.venue.clock.time() - 2) * 10**9,
    }  # fmt: skip
    assert (amends[1]["amend_type"], amends[1]["order_qty"], amends[1]["limit_price"]) == (
        "user", "0.00800000", "50000.0",
    )  # fmt: skip
    assert amends[2]["post_only"] is True
    assert [a["timestamp"] for a in amends] == sorted(a["timestamp"] for a in amends)


async def test_order_amends_permission_follows_the_order_status(
    trader: SimClient, sim: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    [txid] = (await trader.ok("AddOrder", **ORDER))["txid"]
    open_only = SimClient(session, sim, sim.venue.add_key("mm-xbt", None, None, ("query_open",)))
    assert (await open_only.ok("OrderAmends", order_id=txid))["count"] == 1
    await trader.ok("CancelOrder", txid=txid)
    assert await open_only.error("OrderAmends", order_id=txid) == "EGeneral:Permission denied"
    assert (await trader.ok("OrderAmends", order_id=txid))["count"] == 1


async def test_order_amends_refuses_unknown_and_foreign_orders(
    trader: SimClient, master: SimClient
) -> None:
    [txid] = (await master.ok("AddOrder", **ORDER))["txid"]
    assert await trader.error("OrderAmends", order_id=txid) == "EOrder:Invalid order"
    assert await trader.error("OrderAmends", order_id="OUNKNO-WN000-000000") == (
        "EOrder:Invalid order"
    )
    assert await trader.error("OrderAmends") == "EGeneral:Invalid arguments:order_id"


async def test_an_edited_order_starts_its_own_history(trader: SimClient) -> None:
    [txid] = (await trader.ok("AddOrder", **ORDER))["txid"]
    edited = await trader.ok("EditOrder", txid=txid, pair="XBTUSD", price="49000.0")
    amends = (await trader.ok("OrderAmends", order_id=edited["txid"]))["amends"]
    assert [(a["amend_type"], a["limit_price"]) for a in amends] == [("original", "49000.0")]


# --- funding -------------------------------------------------------------------------------------
async def test_a_transfer_is_in_both_ledgers_under_its_transfer_id(
    master: SimClient, trader: SimClient
) -> None:
    params = {"asset": "USD", "amount": "10", "from": "master", "to": "mm-xbt"}
    transfer_id = (await master.ok("AccountTransfer", **params))["transfer_id"]
    for client, amount in ((master, "-10.0000"), (trader, "10.0000")):
        ledger = (await client.ok("Ledgers", type="transfer"))["ledger"]
        assert [(e["refid"], e["amount"]) for e in ledger.values()] == [(transfer_id, amount)]


async def test_a_pending_transfer_reaches_the_ledger_only_once_complete(
    master: SimClient, sim: RunningSimulator
) -> None:
    """A client reconciling a pending transfer by Ledgers alone would not find it yet; the
    balance, though, already shows the amount set aside."""
    await master.admin("settings", {"transfer_mode": "pending"})
    before = Decimal((await master.ok("Balance"))["ZUSD"])
    params = {"asset": "USD", "amount": "10", "from": "master", "to": "mm-xbt"}
    reply = await master.ok("AccountTransfer", **params)
    assert reply["status"] == "pending"
    assert (await master.ok("Ledgers", type="transfer"))["ledger"] == {}
    assert Decimal((await master.ok("Balance"))["ZUSD"]) == before - 10
    await sim.advance(sim.venue.funding.settings.transfer_delay_s)
    ledger = (await master.ok("Ledgers", type="transfer"))["ledger"]
    assert [e["refid"] for e in ledger.values()] == [reply["transfer_id"]]


# --- deadline ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "deadline", ["+1", "+61", "naive", "yesterday"], ids=["too-soon", "too-far", "no-offset", "bad"]
)
async def test_a_deadline_outside_the_documented_range_is_refused(
    trader: SimClient, sim: RunningSimulator, deadline: str
) -> None:
    text = {"naive": ahead(sim, 10).removesuffix("Z"), "yesterday": "yesterday"}.get(deadline)
    text = text or ahead(sim, float(deadline))
    assert await trader.error("AddOrder", deadline=text, **ORDER) == (
        "EGeneral:Invalid arguments:deadline"
    )
    assert sim.venue.engine.orders == {}


async def test_a_deadline_passed_before_the_engine_saw_the_order_executes_nothing(
    trader: SimClient, sim: RunningSimulator
) -> None:
    await trader.ok("AddOrder", deadline=ahead(sim, 10), **ORDER)  # in range, in time
    await trader.admin("faults", {"engine_delay_s": 15.0})
    error = await trader.error("AddOrder", deadline=ahead(sim, 10), cl_ord_id="late", **ORDER)
    assert error == "EService:Deadline elapsed"
    assert (await trader.ok("OpenOrders", cl_ord_id="late"))["open"] == {}
    assert (await trader.ok("ClosedOrders", cl_ord_id="late"))["closed"] == {}
    [txid] = (await trader.ok("OpenOrders"))["open"]
    error = await trader.error("AmendOrder", txid=txid, order_qty="0.005", deadline=ahead(sim, 10))
    assert error == "EService:Deadline elapsed"
    assert (await trader.ok("OrderAmends", order_id=txid))["count"] == 1  # not amended


async def test_ws_deadlines_allow_half_a_second(
    sim: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    token = sim.venue.issue_ws_token(sim.venue.keys_of("mm-xbt")[0]).token
    order = {"symbol": "BTC/USD", "side": "buy", "order_type": "limit", "order_qty": 0.01,
             "limit_price": 50000.0, "token": token}  # fmt: skip
    async with session.ws_connect(sim.ws_private_url) as ws:
        await ws.receive()  # status
        replies = []
        for req_id, seconds in enumerate((0.6, 0.4), start=1):
            params = {**order, "deadline": ahead(sim, seconds)}
            await ws.send_str(json.dumps({"method": "add_order", "params": params,
                                          "req_id": req_id}))  # fmt: skip
            while (reply := json.loads((await ws.receive()).data)).get("req_id") != req_id:
                pass
            replies.append(reply)
    assert replies[0]["success"] is True
    assert replies[1]["error"] == "EGeneral:Invalid arguments:deadline"


# --- the futures account log ---------------------------------------------------------------------
@pytest.fixture
async def futures() -> AsyncIterator[Futures]:
    async with open_futures() as desk:
        yield desk


async def account_log(futures: Futures, query: str = "", as_: str = "master") -> Any:
    status, _, body = await futures.raw("GET", ACCOUNT_LOG_PATH, query=query, as_=as_)
    assert status == 200, body
    return json.loads(body)


async def sub_transfer(futures: Futures, amount: str, to: str = "beta") -> None:
    params = {"fromUser": "master", "toUser": to, "fromAccount": "flex", "toAccount": "flex",
              "unit": "USD", "amount": amount}  # fmt: skip
    assert (await futures.transfer_sub(**params))["result"] == "success"


async def test_a_subaccount_transfer_writes_both_account_logs(futures: Futures) -> None:
    await sub_transfer(futures, "100")
    master = await account_log(futures)
    assert master["accountUid"] == futures.venue.domain.accounts["master"].futures_uid
    [out] = master["logs"]
    assert set(out) == LOG_FIELDS
    assert (out["id"], out["info"], out["asset"], out["margin_account"]) == (
        1, "subaccount transfer", "usd", "flex",
    )  # fmt: skip
    assert (out["old_balance"], out["new_balance"]) == (10000.0, 9900.0)
    assert out["date"] == "2023-11-14T22:13:20.000Z"
    assert (out["fee"], out["trade_price"]) == (None, None)
    [into] = (await account_log(futures, as_="beta"))["logs"]
    assert (into["old_balance"], into["new_balance"]) == (0.0, 100.0)
    assert into["execution"] == out["execution"]  # one transfer, one uid, two sides
    assert into["booking_uid"] != out["booking_uid"]


async def test_an_own_wallet_transfer_writes_two_entries_of_one_log(futures: Futures) -> None:
    body = "fromAccount=flex&toAccount=cash&unit=USD&amount=5"
    await futures.ok("POST", "/transfer", body=body)
    logs = (await account_log(futures, "sort=asc"))["logs"]
    assert [(e["id"], e["info"], e["margin_account"], e["new_balance"]) for e in logs] == [
        (1, "transfer", "flex", 9995.0), (2, "transfer", "cash", 5.0),
    ]  # fmt: skip


async def test_account_log_filters(futures: Futures) -> None:
    for amount in ("1", "2", "3"):
        await sub_transfer(futures, amount)
        await futures.sim.advance(1)
    start_ms = int(futures.venue.clock.time() - 3) * 1000

    async def ids(query: str) -> list[int]:
        return [e["id"] for e in (await account_log(futures, query))["logs"]]

    assert await ids("") == [3, 2, 1]  # newest first by default
    assert await ids("sort=asc&count=2") == [1, 2]
    assert await ids("from=2") == [3, 2]
    assert await ids("from=1&to=2&sort=asc") == [1, 2]
    assert await ids(f"since={start_ms + 1000}") == [3, 2]
    assert await ids(f"before={start_ms + 1000}") == [1]
    assert await ids("info=subaccount%20transfer&count=1") == [3]
    assert await ids("info=futures%20trade") == []


async def test_account_log_refusals(futures: Futures) -> None:
    status, _, body = await futures.raw("GET", ACCOUNT_LOG_PATH, query="sort=up")
    assert (status, json.loads(body)["error"]) == (400, "invalidArgument")
    status, _, body = await futures.raw("GET", ACCOUNT_LOG_PATH, query="count=0")
    assert status == 400
    status, _, body = await futures.raw("GET", ACCOUNT_LOG_PATH, authent="bad")
    assert (status, json.loads(body)["error"]) == (401, "authenticationError")
    assert (await account_log(futures, as_="reader"))["logs"] == []  # a read-only key will do


async def test_account_log_has_its_own_history_budget(futures: Futures) -> None:
    for _ in range(33):  # 500 entries cost 3 of the pool's 100 tokens
        await account_log(futures)
    status, content_type, _ = await futures.raw("GET", ACCOUNT_LOG_PATH)
    assert (status, content_type) == (429, "text/plain")
    status, _, _ = await futures.raw("GET", ACCOUNT_LOG_PATH, query="count=25")  # costs 1
    assert status == 200
    await futures.ok("GET", "/accounts")  # the derivatives budget is another one
    await futures.sim.advance(18)  # 100 tokens per 600 s: 3 back after 18 s
    assert (await futures.raw("GET", ACCOUNT_LOG_PATH))[0] == 200


async def test_account_log_rate_limit_says_when_to_come_back(futures: Futures) -> None:
    for _ in range(33):
        await account_log(futures)
    status, _, _ = await futures.raw("GET", ACCOUNT_LOG_PATH, query="count=25")
    assert status == 200  # 100 of 100 used now
    url = futures.sim.rest_url + ACCOUNT_LOG_PATH
    headers = {"APIKey": "master-key",
               "Authent": futures_authent(SECRET, "", "", ACCOUNT_LOG_PATH)}  # fmt: skip
    async with futures.session.get(url, headers=headers) as resp:
        assert resp.status == 429
        assert resp.headers["rate-limit-reset"] == "18"  # 3 tokens at 1/6 per second

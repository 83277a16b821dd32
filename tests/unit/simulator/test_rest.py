"""The simulator's spot REST API against Kraken's documented shapes and errors."""

from __future__ import annotations

from decimal import Decimal

import aiohttp
import pytest

from orchestrator.simulator.app import RunningSimulator
from orchestrator.simulator.settings import AccountSeed, KeySeed, SimSettings

from .conftest import SimClient, client_for

XBT_BID_FAR = "50000.0"  # rests: far below the synthetic market at ~60000


# --- public -------------------------------------------------------------------------------------
async def test_public_reference_data(trader: SimClient) -> None:
    time_ = (await trader.public("Time"))["result"]
    assert isinstance(time_["unixtime"], int)
    assert time_["rfc1123"].endswith("GMT")
    assert (await trader.public("SystemStatus"))["result"]["status"] == "online"
    assets = (await trader.public("Assets"))["result"]
    assert assets["XXBT"]["altname"] == "XBT"
    assert assets["ZUSD"]["decimals"] == 4
    pairs = (await trader.public("AssetPairs", pair="ETH/XBT"))["result"]
    eth_xbt = pairs["XETHXXBT"]
    assert (eth_xbt["ordermin"], eth_xbt["costmin"], eth_xbt["tick_size"]) == (
        "0.01",
        "0.00002",
        "0.00001",
    )
    xbt = (await trader.public("AssetPairs", pair="XBTUSD"))["result"]["XXBTZUSD"]
    assert (xbt["pair_decimals"], xbt["lot_decimals"], xbt["cost_decimals"]) == (1, 8, 5)
    assert xbt["wsname"] == "XBT/USD"


async def test_public_market_data(trader: SimClient) -> None:
    tick = (await trader.public("Ticker", pair="XBTUSD"))["result"]["XXBTZUSD"]
    assert set(tick) == {"a", "b", "c", "v", "p", "t", "l", "h", "o"}
    assert Decimal(tick["a"][0]) > Decimal(tick["b"][0])
    depth = (await trader.public("Depth", pair="XBT/USD", count=5))["result"]["XXBTZUSD"]
    assert len(depth["asks"]) == 5
    assert len(depth["bids"]) == 5
    asks = [Decimal(p) for p, _, _ in depth["asks"]]
    assert asks == sorted(asks)
    bids = [Decimal(p) for p, _, _ in depth["bids"]]
    assert bids == sorted(bids, reverse=True)


async def test_public_errors(trader: SimClient) -> None:
    assert (await trader.public("Depth", pair="NOPE"))["error"] == ["EQuery:Unknown asset pair"]
    assert (await trader.public("Depth", pair="XBTUSD", count=0))["error"][0].startswith(
        "EGeneral:Invalid arguments"
    )
    assert (await trader.public("Nope"))["error"] == ["EGeneral:Unknown method"]


# --- auth ---------------------------------------------------------------------------------------
async def test_signature_and_nonce_rules(trader: SimClient) -> None:
    assert await trader.error("Balance", sign=False) == "EAPI:Invalid signature"
    await trader.ok("Balance", nonce=1_800_000_000_000)
    assert await trader.error("Balance", nonce=1_800_000_000_000) == "EAPI:Invalid nonce"
    assert await trader.error("Balance", nonce=1_799_999_999_999) == "EAPI:Invalid nonce"
    await trader.ok("Balance", nonce=1_800_000_000_001)


async def test_unknown_key(session: aiohttp.ClientSession, sim: RunningSimulator) -> None:
    async with session.post(
        sim.rest_url + "/0/private/Balance",
        data="nonce=1",
        headers={"API-Key": "nobody", "API-Sign": "x"},
    ) as resp:
        assert (await resp.json())["error"] == ["EAPI:Invalid key"]


async def test_json_body_is_signed_as_sent(trader: SimClient) -> None:
    result = await trader.ok("Balance", as_json=True)
    assert result["ZUSD"] == "10000.0000"


@pytest.mark.parametrize(
    "settings",
    [
        SimSettings(
            accounts=(
                AccountSeed(name="master", role="master"),
                AccountSeed(name="watcher", keys=(KeySeed(permissions=("query_funds",)),)),
            ),
            lockout_after=3,
        )
    ],
)
async def test_permissions_and_lockout(
    session: aiohttp.ClientSession, sim: RunningSimulator
) -> None:
    watcher = client_for(session, sim, "watcher")
    await watcher.ok("Balance")
    assert await watcher.error("OpenOrders") == "EGeneral:Permission denied"
    assert await watcher.error(
        "AddOrder", pair="XBTUSD", type="buy", ordertype="market", volume="1"
    ) == ("EGeneral:Permission denied")
    for _ in range(3):
        assert await watcher.error("Balance", sign=False) == "EAPI:Invalid signature"
    assert await watcher.error("Balance") == "EGeneral:Temporary lockout"


# --- orders -------------------------------------------------------------------------------------
async def test_limit_order_rests_holds_and_cancels(trader: SimClient) -> None:
    added = await trader.ok("AddOrder", pair="XBTUSD", type="buy", ordertype="limit", volume="0.01",
                            price=XBT_BID_FAR, cl_ord_id="my-order-1")  # fmt: skip
    assert added["descr"]["order"] == "buy 0.01000000 XBTUSD @ limit 50000.0"
    [txid] = added["txid"]
    hold = Decimal("500") * Decimal("1.0026")
    balance = await trader.ok("BalanceEx")
    assert Decimal(balance["ZUSD"]["hold_trade"]) == hold
    opened = (await trader.ok("OpenOrders", cl_ord_id="my-order-1"))["open"]
    assert list(opened) == [txid]
    assert opened[txid]["status"] == "open"
    assert opened[txid]["descr"]["price"] == "50000.0"
    assert await trader.ok("CancelOrder", cl_ord_id="my-order-1") == {"count": 1, "pending": False}
    assert Decimal((await trader.ok("BalanceEx"))["ZUSD"]["hold_trade"]) == 0
    queried = await trader.ok("QueryOrders", txid=txid)
    assert queried[txid]["status"] == "canceled"
    assert queried[txid]["reason"] == "User requested"
    assert await trader.error("CancelOrder", txid=txid) == "EOrder:Unknown order"


async def test_market_buy_fills_and_writes_ledgers(
    trader: SimClient, sim: RunningSimulator
) -> None:
    totals = sim.venue.domain.totals()
    [txid] = (
        await trader.ok("AddOrder", pair="XBTUSD", type="buy", ordertype="market", volume="0.01")
    )["txid"]
    order = (await trader.ok("QueryOrders", txid=txid, trades=True))[txid]
    assert order["status"] == "closed"
    assert order["vol_exec"] == "0.01000000"
    assert Decimal(order["fee"]) > 0
    assert len(order["trades"]) >= 1
    balance = await trader.ok("Balance")
    assert Decimal(balance["XXBT"]) == Decimal("0.51")
    spent = Decimal(10000) - Decimal(balance["ZUSD"])
    assert spent == (Decimal(order["cost"]) + Decimal(order["fee"])).quantize(Decimal("0.0001"))
    ledger = (await trader.ok("Ledgers", type="trade"))["ledger"]
    assert {entry["asset"] for entry in ledger.values()} == {"XXBT", "ZUSD"}
    assert all(entry["refid"] in order["trades"] for entry in ledger.values())
    some_id = next(iter(ledger))
    assert (await trader.ok("QueryLedgers", id=some_id))[some_id]["type"] == "trade"
    assert sim.venue.domain.totals() == totals


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"volume": "0.00001"}, "EOrder:Order minimum not met"),
        ({"volume": "0.0001", "price": "1000.0"}, "EOrder:Cost minimum not met"),
        ({"price": "50000.05"}, "EOrder:Tick size check failed"),
        ({"price": "-1"}, "EOrder:Invalid price"),
        ({"volume": "-1"}, "EGeneral:Invalid arguments:volume"),
        ({"volume": "abc"}, "EGeneral:Invalid arguments:volume"),
        ({"volume": "1000"}, "EOrder:Insufficient funds"),
        ({"pair": "DOGEUSD"}, "EQuery:Unknown asset pair"),
        (
            {"userref": "7", "cl_ord_id": "x1"},
            "EGeneral:Invalid arguments:cl_ord_id and userref are mutually exclusive",
        ),
        ({"cl_ord_id": "far too long for a free-form id"}, "EGeneral:Invalid arguments:cl_ord_id"),
        ({"reduce_only": "true"}, "EOrder:Reduce only:No position exists"),
        ({"oflags": "bogus"}, "EGeneral:Invalid arguments:oflags"),
        ({"type": "hold"}, "EGeneral:Invalid arguments:type"),
        ({"ordertype": "stop-loss"}, "EGeneral:Invalid arguments:ordertype"),
    ],
)
async def test_add_order_errors(trader: SimClient, params: dict[str, str], error: str) -> None:
    base = {
        "pair": "XBTUSD",
        "type": "buy",
        "ordertype": "limit",
        "volume": "0.01",
        "price": XBT_BID_FAR,
    }
    assert await trader.error("AddOrder", **(base | params)) == error
    assert (await trader.ok("OpenOrders"))["open"] == {}


async def test_validate_only_returns_no_txid(trader: SimClient) -> None:
    result = await trader.ok("AddOrder", pair="XBTUSD", type="buy", ordertype="limit", volume="0.01",
                             price=XBT_BID_FAR, validate="true")  # fmt: skip
    assert "txid" not in result
    assert (await trader.ok("OpenOrders"))["open"] == {}


async def test_post_only_that_would_take_is_cancelled(trader: SimClient) -> None:
    [txid] = (await trader.ok("AddOrder", pair="XBTUSD", type="buy", ordertype="limit", volume="0.01",
                              price="70000.0", oflags="post"))["txid"]  # fmt: skip
    order = (await trader.ok("QueryOrders", txid=txid))[txid]
    assert (order["status"], order["reason"], order["vol_exec"]) == (
        "canceled",
        "Post only order",
        "0.00000000",
    )


async def test_ioc_never_rests(trader: SimClient) -> None:
    [txid] = (await trader.ok("AddOrder", pair="XBTUSD", type="buy", ordertype="limit", volume="0.01",
                              price=XBT_BID_FAR, timeinforce="IOC"))["txid"]  # fmt: skip
    assert (await trader.ok("QueryOrders", txid=txid))[txid]["status"] == "canceled"


async def test_duplicate_cl_ord_id_among_open_orders(trader: SimClient) -> None:
    order = {
        "pair": "XBTUSD",
        "type": "buy",
        "ordertype": "limit",
        "volume": "0.01",
        "price": XBT_BID_FAR,
    }
    await trader.ok("AddOrder", cl_ord_id="dup", **order)
    assert (await trader.error("AddOrder", cl_ord_id="dup", **order)).startswith(
        "EGeneral:Invalid arguments"
    )


async def test_cancel_by_userref_cancels_all_with_it(trader: SimClient) -> None:
    order = {
        "pair": "XBTUSD",
        "type": "buy",
        "ordertype": "limit",
        "volume": "0.01",
        "price": XBT_BID_FAR,
    }
    for _ in range(3):
        await trader.ok("AddOrder", userref="42", **order)
    await trader.ok("AddOrder", userref="43", **order)
    assert (await trader.ok("CancelOrder", txid="42"))["count"] == 3
    assert len((await trader.ok("OpenOrders"))["open"]) == 1
    assert await trader.ok("CancelAll") == {"count": 1, "pending": False}


async def test_amend_keeps_txid_and_edit_replaces(trader: SimClient) -> None:
    order = {
        "pair": "XBTUSD",
        "type": "buy",
        "ordertype": "limit",
        "volume": "0.02",
        "price": XBT_BID_FAR,
    }
    [txid] = (await trader.ok("AddOrder", cl_ord_id="amend-me", **order))["txid"]
    assert "amend_id" in await trader.ok(
        "AmendOrder", cl_ord_id="amend-me", order_qty="0.01", limit_price="51000.0"
    )
    amended = (await trader.ok("OpenOrders"))["open"][txid]
    assert (amended["vol"], amended["descr"]["price"], amended["misc"]) == (
        "0.01000000",
        "51000.0",
        "amended",
    )
    hold = Decimal((await trader.ok("BalanceEx"))["ZUSD"]["hold_trade"])
    assert hold == Decimal("510") * Decimal("1.0026")
    edited = await trader.ok("EditOrder", txid=txid, pair="XBTUSD", volume="0.03")
    assert edited["originaltxid"] == txid
    assert edited["txid"] != txid
    assert edited["status"] == "Ok"
    assert list((await trader.ok("OpenOrders"))["open"]) == [edited["txid"]]


async def test_batch_add_whole_batch_validated_first(trader: SimClient) -> None:
    good = {"ordertype": "limit", "type": "buy", "volume": "0.01", "price": XBT_BID_FAR}
    bad = good | {"price": "50000.05"}
    reply = await trader.private("AddOrderBatch", as_json=True, pair="XBTUSD", orders=[good, bad])
    assert reply["error"] == ["EOrder:Tick size check failed"]
    assert (await trader.ok("OpenOrders"))["open"] == {}
    result = (
        await trader.private("AddOrderBatch", as_json=True, pair="XBTUSD", orders=[good, good])
    )["result"]
    txids = [entry["txid"] for entry in result["orders"]]
    assert len(txids) == 2
    assert all(isinstance(t, str) for t in txids)  # a scalar per entry, unlike AddOrder
    cancelled = await trader.private(
        "CancelOrderBatch", as_json=True, orders=[{"txid": t} for t in txids]
    )
    assert cancelled["result"] == {"count": 2}


async def test_dead_mans_switch_cancels_everything(
    trader: SimClient, sim: RunningSimulator
) -> None:
    await trader.ok(
        "AddOrder", pair="XBTUSD", type="buy", ordertype="limit", volume="0.01", price=XBT_BID_FAR
    )
    armed = await trader.ok("CancelAllOrdersAfter", timeout="60")
    assert armed["triggerTime"] != "0"
    await sim.advance(59)
    assert len((await trader.ok("OpenOrders"))["open"]) == 1
    await sim.advance(2)
    assert (await trader.ok("OpenOrders"))["open"] == {}
    assert (await trader.ok("CancelAllOrdersAfter", timeout="0"))["triggerTime"] == "0"
    assert (await trader.error("CancelAllOrdersAfter", timeout="86400")).startswith(
        "EGeneral:Invalid arguments"
    )


async def test_closed_orders_newest_first_with_count(trader: SimClient) -> None:
    for _ in range(3):
        await trader.ok("AddOrder", pair="XBTUSD", type="buy", ordertype="market", volume="0.001")
    closed = await trader.ok("ClosedOrders")
    assert closed["count"] == 3
    times = [o["closetm"] for o in closed["closed"].values()]
    assert times == sorted(times, reverse=True)


# --- rate limits --------------------------------------------------------------------------------
async def test_rest_counter_refuses_past_the_tier_max(
    trader: SimClient, sim: RunningSimulator
) -> None:
    for _ in range(20):  # intermediate: max 20, +1 per call; the manual clock does not decay it
        await trader.ok("Balance")
    assert await trader.error("Balance") == "EAPI:Rate limit exceeded"
    assert await trader.error("Ledgers") == "EAPI:Rate limit exceeded"
    await sim.advance(4)  # 0.5/s decay: 2 units free
    await trader.ok("Balance")
    state = await trader.admin("state")
    assert state["rejections"][f"rest:{trader.key.key}"] == 2


async def test_trading_counter_and_cancel_cost_by_age(
    trader: SimClient, sim: RunningSimulator
) -> None:
    order = {
        "pair": "XBTUSD",
        "type": "buy",
        "ordertype": "limit",
        "volume": "0.001",
        "price": XBT_BID_FAR,
    }
    [young] = (await trader.ok("AddOrder", **order))["txid"]
    await trader.ok("CancelOrder", txid=young)  # 1 (add) + 8 (cancel under 5 s)
    levels = sim.venue.limits.levels(sim.venue.clock.time())
    assert levels["trade:mm-xbt:XBT/USD"] == 9
    [old] = (await trader.ok("AddOrder", **order))["txid"]
    await sim.advance(300)  # decays everything; the order is now 300 s old: cancel costs 0
    await trader.ok("CancelOrder", txid=old)
    assert sim.venue.limits.levels(sim.venue.clock.time())["trade:mm-xbt:XBT/USD"] == 0


async def test_trading_counter_refuses_at_threshold(trader: SimClient) -> None:
    order = {
        "pair": "XBTUSD",
        "type": "buy",
        "ordertype": "limit",
        "volume": "0.0001",
        "price": "10000.0",
    }
    for _ in range(62):  # 62 adds + 62 ... intermediate threshold is 125: adds cost 1 each
        await trader.ok("AddOrder", **order)
    await trader.ok("CancelAll")  # forced: 62 x 8 on top, far past the threshold
    assert await trader.error("AddOrder", **order) == "EOrder:Rate limit exceeded"


@pytest.mark.parametrize(
    "settings",
    [SimSettings(domain=__import__("orchestrator.simulator.limits", fromlist=["DomainSettings"]).DomainSettings(
        per_account_cap=False, multiplier=1))],
)  # fmt: skip
async def test_domain_pool_shared_by_accounts(
    session: aiohttp.ClientSession, sim: RunningSimulator
) -> None:
    a, b = client_for(session, sim, "mm-xbt"), client_for(session, sim, "master")
    order = {
        "pair": "XBTUSD",
        "type": "buy",
        "ordertype": "limit",
        "volume": "0.0001",
        "price": "10000.0",
    }
    for _ in range(63):
        await a.ok("AddOrder", **order)
    for _ in range(62):
        await b.ok("AddOrder", **order)
    assert await a.error("AddOrder", **order) == "EOrder:Domain rate limit exceeded"
    assert await b.error("AddOrder", **order) == "EOrder:Domain rate limit exceeded"


# --- funding ------------------------------------------------------------------------------------
async def test_account_transfer_complete(
    master: SimClient, trader: SimClient, sim: RunningSimulator
) -> None:
    result = await master.ok(
        "AccountTransfer", asset="USD", amount="250.5", **{"from": "master", "to": "mm-xbt"}
    )
    assert result["status"] == "complete"
    assert Decimal((await trader.ok("Balance"))["ZUSD"]) == Decimal("10250.5")
    mine = (await trader.ok("Ledgers", type="transfer"))["ledger"]
    [entry] = mine.values()
    assert (entry["refid"], Decimal(entry["amount"])) == (result["transfer_id"], Decimal("250.5"))
    theirs = (await master.ok("Ledgers", type="transfer"))["ledger"]
    assert [Decimal(e["amount"]) for e in theirs.values()] == [Decimal("-250.5")]
    assert await trader.error(
        "AccountTransfer", asset="USD", amount="1", **{"from": "mm-xbt", "to": "master"}
    ) == ("EGeneral:Permission denied")
    assert await master.error(
        "AccountTransfer", asset="USD", amount="1e9", **{"from": "master", "to": "mm-xbt"}
    ) == ("EFunding:Insufficient funds")
    assert await master.error(
        "AccountTransfer", asset="USD", amount="-1", **{"from": "master", "to": "mm-xbt"}
    ) == ("EFunding:Invalid amount")


async def test_pending_then_failed_transfers(
    master: SimClient, trader: SimClient, sim: RunningSimulator
) -> None:
    await master.admin("settings", {"transfer_mode": "pending"})
    pending = await master.ok(
        "AccountTransfer", asset="USD", amount="100", **{"from": "master", "to": "mm-xbt"}
    )
    assert pending["status"] == "pending"
    assert Decimal((await trader.ok("Balance"))["ZUSD"]) == 10000
    await sim.advance(3)
    assert Decimal((await trader.ok("Balance"))["ZUSD"]) == 10100
    await master.admin("settings", {"transfer_mode": "fail"})
    await master.ok(
        "AccountTransfer", asset="USD", amount="100", **{"from": "master", "to": "mm-xbt"}
    )
    await sim.advance(3)
    assert Decimal((await trader.ok("Balance"))["ZUSD"]) == 10100
    statuses = [t["status"] for t in (await master.admin("transfers"))["transfers"]]
    assert statuses == ["complete", "failed"]


async def test_withdraw_with_organization_approval(
    master: SimClient, sim: RunningSimulator
) -> None:
    plain = await master.ok("Withdraw", asset="XBT", key="desk-wallet", amount="1")
    assert set(plain) == {"refid"}
    await master.admin("settings", {"organization_mode": True})
    gated = await master.ok("Withdraw", asset="XBT", key="desk-wallet", amount="2")
    assert set(gated) == {"refid", "approval_request_id"}
    await sim.advance(5)
    statuses = {w["refid"]: w["status"] for w in await master.ok("WithdrawStatus", asset="XBT")}
    assert statuses == {plain["refid"]: "Success", gated["refid"]: "Initial"}
    await master.admin(
        "approve", {"approval_request_id": gated["approval_request_id"], "approve": True}
    )
    await sim.advance(5)
    statuses = {w["refid"]: w["status"] for w in await master.ok("WithdrawStatus", asset="XBT")}
    assert statuses[gated["refid"]] == "Success"
    assert Decimal((await master.ok("Balance"))["XXBT"]) == Decimal(20) - 3 - 2 * Decimal("0.00015")
    assert (
        await master.error("Withdraw", asset="XBT", key="unknown", amount="1")
        == "EFunding:Unknown withdraw key"
    )


async def test_create_subaccount(master: SimClient, trader: SimClient) -> None:
    assert (
        await master.ok("CreateSubaccount", username="new-desk", email="desk@example.com") is True
    )
    assert (
        await trader.error("CreateSubaccount", username="x", email="x@example.com")
        == "EGeneral:Permission denied"
    )
    moved = await master.ok(
        "AccountTransfer", asset="USD", amount="5", **{"from": "master", "to": "new-desk"}
    )
    assert moved["status"] == "complete"


async def test_websockets_token(trader: SimClient) -> None:
    token = await trader.ok("GetWebSocketsToken")
    assert token["expires"] == 900
    assert len(token["token"]) > 16


async def test_gtd_order_expires(trader: SimClient, sim: RunningSimulator) -> None:
    gtd = {"timeinforce": "GTD", "expiretm": "+10"}
    added = await trader.ok("AddOrder", pair="XBTUSD", type="buy", ordertype="limit", volume="0.01",
                            price=XBT_BID_FAR, **gtd)  # fmt: skip
    [txid] = added["txid"]
    await sim.advance(9)
    assert (await trader.ok("QueryOrders", txid=txid))[txid]["status"] == "open"
    await sim.advance(2)
    order = (await trader.ok("QueryOrders", txid=txid))[txid]
    assert (order["status"], order["reason"]) == ("expired", "Order expired")
    assert Decimal((await trader.ok("BalanceEx"))["ZUSD"]["hold_trade"]) == 0
    assert (await trader.error("AddOrder", pair="XBTUSD", type="buy", ordertype="limit", volume="0.01",
                               price=XBT_BID_FAR, timeinforce="GTD")).startswith("EGeneral:Invalid arguments")  # fmt: skip

"""The simulator's WS v2 server, in process: a real server on a free port, a manual clock, and
aiohttp's client reading frames as a careful Kraken client does (numbers as Decimals).

No test sleeps: `Client.drain` sends a ping and collects what arrives before the pong, and the
server queues every message of one connection in order, so the pong comes after all of them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import aiohttp
import msgspec
import pytest

from orchestrator.clock import ManualClock
from orchestrator.simulator.app import RunningSimulator, open_simulator
from orchestrator.simulator.auth import spot_signature
from orchestrator.simulator.checksum import book_checksum, to_scaled
from orchestrator.simulator.events import rfc3339
from orchestrator.simulator.ws import WS_HUB_KEY

Message = dict[str, Any]
_TIMEOUT_S = 5.0
_encoder = msgspec.json.Encoder(decimal_format="number")
_NONCES = itertools.count(1)
_EXPONENT = re.compile(r"\d[eE][-+]?\d")


class Client:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.buffer: list[Message] = []
        self.frames: list[str] = []
        self.status: Message = {}
        self._ids = itertools.count(1)

    async def read(self) -> Message:
        msg = await asyncio.wait_for(self.ws.receive(), _TIMEOUT_S)
        assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, msg.data)
        self.frames.append(msg.data)
        data: Message = json.loads(msg.data, parse_float=Decimal)
        return data

    async def next(self) -> Message:
        return self.buffer.pop(0) if self.buffer else await self.read()

    async def request(self, method: str, **params: Any) -> Message:
        """The first reply to this request; what arrives before it is kept for `drain`."""
        req_id = next(self._ids)
        await self.ws.send_str(
            _encoder.encode({"method": method, "params": params, "req_id": req_id}).decode()
        )
        while True:
            msg = await self.read()
            if msg.get("req_id") == req_id:
                return msg
            self.buffer.append(msg)

    async def drain(self) -> list[Message]:
        """Everything the server queued for us before now."""
        pong = await self.request("ping")
        assert pong["method"] == "pong"
        out, self.buffer = self.buffer, []
        return out


Connect = Callable[[str], Awaitable[Client]]


@pytest.fixture
async def sim(clock: ManualClock) -> AsyncIterator[RunningSimulator]:
    async with open_simulator(clock=clock) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def connect(http: aiohttp.ClientSession) -> AsyncIterator[Connect]:
    clients: list[Client] = []

    async def open_client(url: str) -> Client:
        client = Client(await http.ws_connect(url))
        client.status = await client.read()
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        await client.ws.close()


def of(messages: list[Message], channel: str) -> list[Message]:
    return [m for m in messages if m.get("channel") == channel]


def token_of(sim: RunningSimulator, account: str = "master") -> str:
    return sim.venue.issue_ws_token(sim.venue.keys_of(account)[0]).token


async def private_client(sim: RunningSimulator, connect: Connect) -> tuple[Client, str]:
    return await connect(sim.ws_private_url), token_of(sim)


def resting_buy(token: str, **extra: Any) -> dict[str, Any]:
    return {"symbol": "BTC/USD", "side": "buy", "order_type": "limit",
            "order_qty": Decimal("0.001"), "limit_price": Decimal("30000.0"), "token": token,
            **extra}  # fmt: skip


class ReferenceBook:
    """A Kraken client's book: a dict per side, apply in order, truncate, CRC the top 10."""

    def __init__(self, depth: int, price_dp: int, qty_dp: int) -> None:
        self.depth, self.dps = depth, (price_dp, qty_dp)
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}

    def apply(self, data: Message) -> bool:
        """Apply one `book` element; True when its checksum matches the result."""
        for book, levels in ((self.bids, data["bids"]), (self.asks, data["asks"])):
            for level in levels:
                if level["qty"] == 0:
                    book.pop(level["price"], None)
                else:
                    book[level["price"]] = level["qty"]
        self.bids = dict(sorted(self.bids.items(), reverse=True)[: self.depth])
        self.asks = dict(sorted(self.asks.items())[: self.depth])
        return bool(
            book_checksum(self.scaled(self.asks), self.scaled(self.bids)) == data["checksum"]
        )

    def scaled(self, side: dict[Decimal, Decimal]) -> list[tuple[int, int]]:
        price_dp, qty_dp = self.dps
        return [(to_scaled(p, price_dp), to_scaled(q, qty_dp)) for p, q in side.items()]


# --- connection, ping, subscriptions -----------------------------------------------------------
async def test_connect_sends_status_and_ping_gets_pong(
    sim: RunningSimulator, connect: Connect, clock: ManualClock
) -> None:
    client = await connect(sim.ws_public_url)
    assert client.status["channel"] == "status"
    assert client.status["type"] == "update"
    [status] = client.status["data"]
    assert status["system"] == "online"
    assert status["api_version"] == "v2"
    assert status["connection_id"] > 2**53
    assert status["version"].startswith("2.0.")
    now = rfc3339(clock.time())
    assert await client.request("ping") == {
        "method": "pong", "req_id": 1, "time_in": now, "time_out": now,
    }  # fmt: skip


async def test_subscribe_acks_once_per_symbol_each_before_its_snapshot(
    sim: RunningSimulator, connect: Connect
) -> None:
    client = await connect(sim.ws_public_url)
    ack = await client.request("subscribe", channel="book", symbol=["BTC/USD", "ETH/USD"])
    assert ack["result"] == {"channel": "book", "depth": 10, "snapshot": True, "symbol": "BTC/USD"}
    assert ack["success"] is True
    assert ack["method"] == "subscribe"
    assert {"time_in", "time_out", "req_id"} <= ack.keys()
    rest = await client.drain()
    assert [(m.get("channel"), m.get("type")) for m in rest] == [
        ("book", "snapshot"), (None, None), ("book", "snapshot"),
    ]  # fmt: skip
    assert rest[1]["result"]["symbol"] == "ETH/USD"
    assert rest[1]["req_id"] == 1
    assert [m["data"][0]["symbol"] for m in of(rest, "book")] == ["BTC/USD", "ETH/USD"]
    assert len(rest[0]["data"][0]["bids"]) == 10
    assert "timestamp" not in rest[0]["data"][0]


@pytest.mark.parametrize("depth", [10, 25])
async def test_book_updates_keep_a_client_book_matching_every_checksum(
    sim: RunningSimulator, connect: Connect, depth: int
) -> None:
    client = await connect(sim.ws_public_url)
    symbols = {"BTC/USD": "XXBTZUSD", "ETH/BTC": "XETHXXBT"}
    await client.request("subscribe", channel="book", symbol=list(symbols), depth=depth)
    pairs = sim.venue.catalog.pairs
    books = {
        s: ReferenceBook(depth, pairs[k].pair_decimals, pairs[k].lot_decimals)
        for s, k in symbols.items()
    }
    updates = 0
    messages = await client.drain()
    for _ in range(40):
        await sim.advance(0.5)
        messages += await client.drain()
    for message in of(messages, "book"):
        [data] = message["data"]
        assert books[data["symbol"]].apply(data), message
        if message["type"] == "update":
            updates += 1
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:]{8}\.\d{6}Z", data["timestamp"])
    assert updates >= 40
    for symbol, key in symbols.items():
        venue_book = sim.venue.public_books[key]
        assert books[symbol].scaled(books[symbol].bids) == venue_book.top("bid", depth)
        assert books[symbol].scaled(books[symbol].asks) == venue_book.top("ask", depth)


async def test_book_without_snapshot_starts_with_the_whole_window(
    sim: RunningSimulator, connect: Connect
) -> None:
    client = await connect(sim.ws_public_url)
    ack = await client.request("subscribe", channel="book", symbol=["BTC/USD"], snapshot=False)
    assert ack["result"]["snapshot"] is False
    assert of(await client.drain(), "book") == []
    await sim.advance(0.5)
    first, *_ = of(await client.drain(), "book")
    assert first["type"] == "update"
    book = ReferenceBook(10, 1, 8)
    assert book.apply(first["data"][0])
    assert len(book.bids) == len(book.asks) == 10


async def test_corrupt_checksum_fault_is_caught_by_the_client(
    sim: RunningSimulator, connect: Connect
) -> None:
    client = await connect(sim.ws_public_url)
    await client.request("subscribe", channel="book", symbol=["BTC/USD"])
    book = ReferenceBook(10, 1, 8)
    [snapshot] = of(await client.drain(), "book")
    assert book.apply(snapshot["data"][0])
    sim.venue.settings.faults.corrupt_checksum_rate = 1.0
    await sim.advance(0.5)
    updates = of(await client.drain(), "book")
    assert updates
    matches = [book.apply(u["data"][0]) for u in updates]  # apply them all: the data is right
    assert not any(matches)
    assert sim.venue.request_counts["fault:corrupt_checksum"] == len(updates)
    assert book.scaled(book.bids) == sim.venue.public_books["XXBTZUSD"].top("bid", 10)


async def test_subscription_errors_are_replies_and_the_connection_lives(
    sim: RunningSimulator, connect: Connect
) -> None:
    client = await connect(sim.ws_public_url)

    async def error_of(**params: Any) -> tuple[str, str | None]:
        reply = await client.request(params.pop("method", "subscribe"), **params)
        assert reply["success"] is False
        assert {"time_in", "time_out", "req_id", "method"} <= reply.keys()
        return reply["error"], reply.get("symbol")

    assert await error_of(channel="book", symbol=["NOPE/USD"]) == (
        "Currency pair not supported", "NOPE/USD",
    )  # fmt: skip
    assert await error_of(channel="book", symbol=["BTC/USD"], depth=50) == (
        "EGeneral:Invalid arguments:depth", None,
    )  # fmt: skip
    assert await error_of(channel="book") == ("EGeneral:Invalid arguments:symbol", None)
    assert await error_of(channel="ohlc", symbol=["BTC/USD"]) == (
        "EGeneral:Invalid arguments:channel", None,
    )  # fmt: skip
    assert await error_of(channel="executions", token="x") == ("EGeneral:Permission denied", None)
    assert await error_of(method="unsubscribe", channel="trade", symbol=["BTC/USD"]) == (
        "Subscription Not Found", "BTC/USD",
    )  # fmt: skip
    await client.request("subscribe", channel="ticker", symbol=["BTC/USD"])
    assert await error_of(channel="ticker", symbol=["XBT/USD"]) == (
        "Already subscribed", "BTC/USD",
    )  # fmt: skip
    bye = await client.request("unsubscribe", channel="ticker", symbol=["BTC/USD"])
    assert bye["result"] == {"channel": "ticker", "event_trigger": "trades", "symbol": "BTC/USD"}
    assert (await client.request("ping"))["method"] == "pong"


async def test_heartbeat_only_for_a_subscribed_connection_gone_quiet(
    sim: RunningSimulator, connect: Connect
) -> None:
    idle = await connect(sim.ws_public_url)
    subscribed = await connect(sim.ws_public_url)
    await subscribed.request("subscribe", channel="ticker", symbol=["BTC/USD"])
    await subscribed.drain()
    await sim.advance(0.5)
    assert await subscribed.drain() == []  # and its pong is traffic: the next second starts now
    await sim.advance(0.5)
    await sim.advance(0.5)
    assert await subscribed.drain() == [{"channel": "heartbeat"}]
    await sim.advance(2.0)
    assert await subscribed.drain() == [{"channel": "heartbeat"}]
    assert await idle.drain() == []


async def test_bbo_ticker_follows_the_top_of_book(sim: RunningSimulator, connect: Connect) -> None:
    client = await connect(sim.ws_public_url)
    ack = await client.request(
        "subscribe", channel="ticker", symbol=["ETH/USD"], event_trigger="bbo"
    )
    assert ack["result"]["event_trigger"] == "bbo"
    await client.drain()
    book = sim.venue.public_books["XETHZUSD"]
    seen = []
    for _ in range(10):
        top = book.top("bid", 1), book.top("ask", 1)
        await sim.advance(0.5)
        ticks = of(await client.drain(), "ticker")
        assert len(ticks) == int(top != (book.top("bid", 1), book.top("ask", 1)))
        seen += [t["data"][0] for t in ticks]
    assert seen
    [(bid, bid_qty)] = book.top("bid", 1)
    assert (seen[-1]["bid"], seen[-1]["bid_qty"]) == (Decimal(bid) / 100, Decimal(bid_qty) / 10**8)


# --- public channels fed by trades -------------------------------------------------------------
async def test_ticker_and_trade_follow_a_client_trade(
    sim: RunningSimulator, connect: Connect
) -> None:
    public = await connect(sim.ws_public_url)
    await public.request("subscribe", channel="ticker", symbol=["BTC/USD"])
    await public.request("subscribe", channel="trade", symbol=["BTC/USD"])
    [snapshot] = of(await public.drain(), "ticker")
    assert snapshot["type"] == "snapshot"
    assert snapshot["data"][0]["volume"] == 0
    trader, token = await private_client(sim, connect)
    reply = await trader.request(
        "add_order", symbol="BTC/USD", side="buy", order_type="market",
        order_qty=Decimal("0.01"), token=token,
    )  # fmt: skip
    assert reply["success"] is True, reply
    messages = await public.drain()
    trades = [t for m in of(messages, "trade") for t in m["data"]]
    assert sum(t["qty"] for t in trades) == Decimal("0.01")
    assert {(t["symbol"], t["side"], t["ord_type"]) for t in trades} == {
        ("BTC/USD", "buy", "market")
    }
    [tick] = of(messages, "ticker")
    assert tick["type"] == "update"
    assert tick["data"][0]["last"] == trades[-1]["price"]
    assert tick["data"][0]["volume"] == Decimal("0.01")
    late = await connect(sim.ws_public_url)
    await late.request("subscribe", channel="trade", symbol=["BTC/USD"], snapshot=True)
    [recent] = of(await late.drain(), "trade")
    assert recent["type"] == "snapshot"
    assert recent["data"] == trades


# --- private channels and trading --------------------------------------------------------------
async def test_ws_order_lifecycle_on_executions(sim: RunningSimulator, connect: Connect) -> None:
    client, token = await private_client(sim, connect)
    ack = await client.request("subscribe", channel="executions", token=token)
    assert ack["result"] == {"channel": "executions", "snap_orders": True,
                             "snap_trades": False, "order_status": True}  # fmt: skip
    [snapshot] = await client.drain()
    assert (snapshot["type"], snapshot["data"], snapshot["sequence"]) == ("snapshot", [], 1)

    placed = await client.request("add_order", **resting_buy(token, cl_ord_id="c-1"))
    order_id = placed["result"]["order_id"]
    assert placed["result"] == {"order_id": order_id, "cl_ord_id": "c-1"}
    events = await client.drain()
    assert [(e["data"][0]["exec_type"], e["sequence"]) for e in events] == [
        ("pending_new", 2), ("new", 3),
    ]  # fmt: skip
    new = events[1]["data"][0]
    assert (new["order_qty"], new["limit_price"]) == (Decimal("0.001"), Decimal("30000.0"))
    assert '"order_qty":0.00100000' in client.frames[-2]

    late = await connect(sim.ws_private_url)
    await late.request("subscribe", channel="executions", token=token)
    [snap] = of(await late.drain(), "executions")
    assert [(o["order_id"], o["exec_type"], o["order_status"]) for o in snap["data"]] == [
        (order_id, "new", "new")
    ]
    amended = await client.request(
        "amend_order", order_id=order_id, limit_price=Decimal("30001.0"), token=token
    )
    assert amended["result"]["order_id"] == order_id
    assert amended["result"]["amend_id"]
    cancelled = await client.request("cancel_order", cl_ord_id=["c-1"], token=token)
    assert cancelled["result"] == {"order_id": order_id, "cl_ord_id": "c-1"}
    # (the engine re-books an order whose price changed, so a `new` may precede `amended`)
    assert [e["data"][0]["exec_type"] for e in await client.drain()][-2:] == [
        "amended", "canceled",
    ]  # fmt: skip
    again = await client.request("cancel_order", order_id=[order_id], token=token)
    assert again["error"] == "EOrder:Unknown order"
    assert sim.venue.request_counts["ws:add_order"] == 1


async def test_quiet_executions_stream_only_open_and_close(
    sim: RunningSimulator, connect: Connect
) -> None:
    client, token = await private_client(sim, connect)
    await client.request("subscribe", channel="executions", token=token, order_status=False)
    await client.drain()
    placed = await client.request("add_order", **resting_buy(token))
    await client.request("cancel_order", order_id=[placed["result"]["order_id"]], token=token)
    events = of(await client.drain(), "executions")
    assert [e["data"][0]["exec_type"] for e in events] == ["new", "canceled"]
    assert [e["sequence"] for e in events] == [2, 3]


async def test_a_fill_reaches_executions_and_balances(
    sim: RunningSimulator, connect: Connect
) -> None:
    client, token = await private_client(sim, connect)
    await client.request("subscribe", channel="executions", token=token)
    await client.request("subscribe", channel="balances", token=token)
    snapshots = await client.drain()
    [balances] = of(snapshots, "balances")
    assert balances["sequence"] == 1
    usd = next(b for b in balances["data"] if b["asset"] == "USD")
    assert usd["balance"] == Decimal(1_000_000)
    assert usd["wallets"] == [{"type": "spot", "id": "main", "balance": usd["balance"]}]
    reply = await client.request(
        "add_order", symbol="BTC/USD", side="buy", order_type="market",
        order_qty=Decimal("0.01"), token=token,
    )  # fmt: skip
    assert reply["success"] is True, reply
    messages = await client.drain()
    kinds = [e["data"][0]["exec_type"] for e in of(messages, "executions")]
    assert kinds[0] == "pending_new"
    assert kinds[-1] == "filled"
    fills = [
        e["data"][0] for e in of(messages, "executions") if e["data"][0]["exec_type"] == "trade"
    ]
    assert sum(f["last_qty"] for f in fills) == Decimal("0.01")
    assert {f["liquidity_ind"] for f in fills} == {"t"}
    assert fills[0]["fees"][0]["asset"] == "USD"
    ledger = [e["data"][0] for e in of(messages, "balances")]
    assert [m["sequence"] for m in of(messages, "balances")] == list(range(2, 2 + len(ledger)))
    assert sum(e["amount"] for e in ledger if e["asset"] == "BTC") == Decimal("0.01")
    assert all(e["amount"] < 0 for e in ledger if e["asset"] == "USD")
    master = sim.venue.domain.accounts["master"]
    assert ledger[-1]["balance"] == master.balances[sim.venue.catalog.asset(ledger[-1]["asset"]).id]
    assert not [f for f in client.frames if _EXPONENT.search(f)]


async def test_rest_orders_reach_ws_executions(
    sim: RunningSimulator, connect: Connect, http: aiohttp.ClientSession
) -> None:
    key = sim.venue.keys_of("master")[0]

    async def rest(method: str, **params: str) -> Any:
        nonce = str(next(_NONCES))
        body = urlencode({"nonce": nonce, **params}).encode()
        path = f"/0/private/{method}"
        headers = {"API-Key": key.key, "API-Sign": spot_signature(key.secret_b64, path, nonce, body),
                   "Content-Type": "application/x-www-form-urlencoded"}  # fmt: skip
        async with http.post(sim.rest_url + path, data=body, headers=headers) as response:
            reply = await response.json()
        assert reply["error"] == [], reply
        return reply["result"]

    token = (await rest("GetWebSocketsToken"))["token"]
    client = await connect(sim.ws_private_url)
    await client.request("subscribe", channel="executions", token=token)
    await client.drain()
    placed = await rest("AddOrder", pair="XBTUSD", type="buy", ordertype="limit",
                        volume="0.001", price="30000.0")  # fmt: skip
    [txid] = placed["txid"]
    await rest("CancelOrder", txid=txid)
    events = [e["data"][0] for e in of(await client.drain(), "executions")]
    assert [(e["order_id"], e["exec_type"]) for e in events] == [
        (txid, "pending_new"), (txid, "new"), (txid, "canceled"),
    ]  # fmt: skip


async def test_invalid_and_expired_tokens_are_refused(
    sim: RunningSimulator, connect: Connect
) -> None:
    client, token = await private_client(sim, connect)
    bad = await client.request("subscribe", channel="executions", token="nope")
    assert (bad["method"], bad["success"], bad["error"]) == (
        "subscribe",
        False,
        "EAPI:Invalid token",
    )
    bad = await client.request("add_order", **resting_buy("nope"))
    assert bad["error"] == "EAPI:Invalid token"
    await sim.advance(sim.venue.settings.ws_token_ttl_s + 1)
    expired = await client.request("subscribe", channel="balances", token=token)
    assert expired["error"] == "EAPI:Invalid token"
    assert not sim.venue.engine.open_orders("master")


async def test_batch_add_and_batch_cancel(sim: RunningSimulator, connect: Connect) -> None:
    client, token = await private_client(sim, connect)
    orders = [{"side": "buy", "order_type": "limit", "order_qty": Decimal("0.001"),
               "limit_price": Decimal(30000 + i), "cl_ord_id": f"b-{i}"} for i in range(3)]  # fmt: skip
    one = await client.request("batch_add", symbol="BTC/USD", orders=orders[:1], token=token)
    assert one["error"] == "EGeneral:Invalid arguments:orders"
    off_tick = [*orders, {**orders[0], "limit_price": Decimal("30000.05"), "cl_ord_id": "x"}]
    refused = await client.request("batch_add", symbol="BTC/USD", orders=off_tick, token=token)
    assert refused["error"] == "EOrder:Tick size check failed"
    assert not sim.venue.engine.open_orders("master")
    batch = await client.request("batch_add", symbol="BTC/USD", orders=orders, token=token)
    assert [r["cl_ord_id"] for r in batch["result"]] == ["b-0", "b-1", "b-2"]
    ids = [r["order_id"] for r in batch["result"]]
    assert set(sim.venue.engine.open_orders("master")) == set(ids)
    gone = await client.request("batch_cancel", orders=ids[:2], cl_ord_id=["b-2"], token=token)
    assert gone["result"] == {"count": 3}
    assert not sim.venue.engine.open_orders("master")


async def test_dead_man_switch_fires_when_time_passes(
    sim: RunningSimulator, connect: Connect
) -> None:
    client, token = await private_client(sim, connect)
    await client.request("subscribe", channel="executions", token=token)
    await client.request("add_order", **resting_buy(token))
    armed = await client.request("cancel_all_orders_after", timeout=10, token=token)
    now_s = sim.venue.clock.time()
    assert armed["result"]["currentTime"] == rfc3339(now_s)[:19] + "Z"
    assert armed["result"]["triggerTime"] == rfc3339(now_s + 10)[:19] + "Z"
    await client.drain()
    await sim.advance(9)
    assert sim.venue.engine.open_orders("master")
    await sim.advance(1.5)
    cancelled = [e["data"][0] for e in of(await client.drain(), "executions")]
    assert [(e["exec_type"], e["reason"]) for e in cancelled] == [("canceled", "Dead man's switch")]


async def test_cancel_all(sim: RunningSimulator, connect: Connect) -> None:
    client, token = await private_client(sim, connect)
    for _ in range(2):
        await client.request("add_order", **resting_buy(token))
    assert (await client.request("cancel_all", token=token))["result"] == {"count": 2}


async def test_order_entry_refusals(sim: RunningSimulator, connect: Connect) -> None:
    client, token = await private_client(sim, connect)

    async def error_of(**changes: Any) -> str:
        reply = await client.request("add_order", **(resting_buy(token) | changes))
        assert reply["success"] is False, reply
        return str(reply["error"])

    assert await error_of(order_qty=Decimal(1000)) == "EOrder:Insufficient funds"
    assert await error_of(symbol="NOPE/USD") == "EQuery:Unknown asset pair"
    assert await error_of(triggers={"price": 1}) == "EGeneral:Invalid arguments:triggers"
    assert await error_of(stp_type="sideways") == "EGeneral:Invalid arguments:stp_type"
    checked = await client.request("add_order", **resting_buy(token, validate=True))
    assert checked["result"] == {}
    assert not sim.venue.engine.open_orders("master")
    sim.venue.settings.status = "maintenance"
    await sim.advance(0.25)
    [status] = of(await client.drain(), "status")
    assert status["data"][0]["system"] == "maintenance"
    assert await error_of() == "EService:Unavailable"
    public = await connect(sim.ws_public_url)
    assert (await public.request("add_order", **resting_buy(token)))["error"] == (
        "EGeneral:Permission denied"
    )


# --- robustness --------------------------------------------------------------------------------
async def test_malformed_frames_get_error_replies_and_the_connection_lives(
    sim: RunningSimulator, connect: Connect
) -> None:
    client = await connect(sim.ws_public_url)
    prefix = "EGeneral:Invalid arguments:"
    cases: list[tuple[str | bytes, str]] = [
        ("not json", prefix + "message is not JSON"),
        ("[1, 2]", prefix + "message must be a JSON object"),
        ('{"method": "nope", "req_id": 7}', "EGeneral:Unknown method"),
        ('{"method": "ping", "req_id": "a"}', prefix + "req_id"),
        ('{"method": "subscribe", "params": [1]}', prefix + "params"),
        ('{"method": "ping", "pad": "' + "x" * 70_000 + '"}', prefix + "message too large"),
        (b'{"method": "ping"}', prefix + "binary frames are not supported"),
    ]
    replies = []
    for frame, error in cases:
        if isinstance(frame, bytes):
            await client.ws.send_bytes(frame)
        else:
            await client.ws.send_str(frame)
        replies.append(reply := await client.next())
        assert (reply["success"], reply["error"]) == (False, error), frame[:40]
    assert replies[0].keys() == {"success", "error", "time_in", "time_out"}
    assert (replies[2]["method"], replies[2]["req_id"]) == ("nope", 7)
    assert (await client.request("ping"))["method"] == "pong"
    assert sim.venue.request_counts["ws:malformed"] == len(cases)


async def test_disconnect_fault_closes_the_socket(sim: RunningSimulator, connect: Connect) -> None:
    sim.venue.settings.faults.ws_disconnect_after_s = 5.0
    client = await connect(sim.ws_public_url)
    await sim.advance(4.5)
    assert (await client.request("ping"))["method"] == "pong"
    await sim.advance(0.5)
    closing = await asyncio.wait_for(client.ws.receive(), _TIMEOUT_S)
    assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 1001)
    assert sim.venue.request_counts["fault:ws_disconnect"] == 1


async def test_a_vanished_client_does_not_disturb_the_others(
    sim: RunningSimulator, connect: Connect
) -> None:
    survivor = await connect(sim.ws_public_url)
    await survivor.request("subscribe", channel="book", symbol=["BTC/USD"])
    book = ReferenceBook(10, 1, 8)
    async with aiohttp.ClientSession() as other:
        doomed = Client(await other.ws_connect(sim.ws_public_url))
        await doomed.read()
        await doomed.request("subscribe", channel="book", symbol=["BTC/USD"])
    hub = sim.app[WS_HUB_KEY]
    for _ in range(100):
        if len(hub.connections) == 1:
            break
        await asyncio.sleep(0.01)
    assert len(hub.connections) == 1
    messages = await survivor.drain()
    for _ in range(5):
        await sim.advance(0.5)
        messages += await survivor.drain()
    assert all(book.apply(m["data"][0]) for m in of(messages, "book"))
    assert len(of(messages, "book")) > 1


async def test_shutdown_closes_open_connections(http: aiohttp.ClientSession) -> None:
    async with open_simulator(clock=ManualClock()) as running:
        ws = await http.ws_connect(running.ws_private_url)
        await ws.receive()  # status
        closed = asyncio.ensure_future(ws.receive())
    message = await asyncio.wait_for(closed, _TIMEOUT_S)
    assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 1001)
    assert not running.app[WS_HUB_KEY].connections


async def test_ratecounter_acks_the_threshold_and_streams_the_accounts_counter(
    sim: RunningSimulator, connect: Connect
) -> None:
    client, token = await private_client(sim, connect)
    ack = await client.request("subscribe", channel="executions", token=token, ratecounter=True)
    threshold = sim.venue.limits.limits.trade_threshold
    assert ack["result"]["maxratecount"] == round(threshold)
    await client.drain()
    placed = await client.request("add_order", **resting_buy(token))
    counts = [e["data"][0] for e in of(await client.drain(), "executions")
              if "ratecount" in e["data"][0]]  # fmt: skip
    assert [(c["symbol"], c["ratecount"]) for c in counts] == [("BTC/USD", Decimal(1))]
    assert "order_id" not in counts[0]
    await client.request("cancel_order", order_id=[placed["result"]["order_id"]], token=token)
    counts = [e["data"][0] for e in of(await client.drain(), "executions")
              if "ratecount" in e["data"][0]]  # fmt: skip
    assert [c["ratecount"] for c in counts] == [Decimal(9)]  # + 8: cancelled under 5 s old


async def test_ratecounter_off_by_default_and_only_for_the_accounts_own_trading(
    sim: RunningSimulator, connect: Connect
) -> None:
    quiet, token = await private_client(sim, connect)
    ack = await quiet.request("subscribe", channel="executions", token=token)
    assert "maxratecount" not in ack["result"]
    other = await connect(sim.ws_private_url)
    await other.request("subscribe", channel="executions", token=token_of(sim, "mm-xbt"),
                        ratecounter=True)  # fmt: skip
    await other.drain()
    await quiet.drain()
    await quiet.request("add_order", **resting_buy(token))
    assert not [e for e in of(await quiet.drain(), "executions") if "ratecount" in e["data"][0]]
    assert not [e for e in of(await other.drain(), "executions") if "ratecount" in e["data"][0]]

"""The tick-to-order benchmark's venue, in a process of its own (`serve_venue`).

Three servers on one loop (uvloop, the same for every variant measured):
- the simulator's REST API (`open_simulator`): instruments, balances, WebSocket tokens, order
  queries; everything the product asks at start-up, as it would ask Kraken;
- a public WebSocket v2 server that sends one `book` subscriber the frames of the simulator's
  own book model (`AggregatedBook` + `DepthView`: Kraken's diffs and CRC32 checksums). Each tick
  moves the best bid to a new price; the frame is built first, then stamped
  (`time.monotonic_ns()`) and written;
- a private WebSocket v2 server that answers the order methods as Kraken does (a reply, then the
  `executions` update) and stamps every order frame as soon as it is read. An amend whose limit
  price is the best bid of the tick in flight is that tick's order.

Ticks go one at a time: the next is sent 2-4 ms after the previous tick's order arrived, so no
queue builds anywhere. `CLOCK_MONOTONIC` is one clock for every process of a Linux host, so
arrival minus send is the tick-to-order latency of the client process in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

import msgspec
import uvloop
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from orchestrator.logs import configure_logging
from orchestrator.simulator.app import open_simulator
from orchestrator.simulator.book_feed import AggregatedBook, DepthView
from orchestrator.simulator.catalog import PairSpec
from orchestrator.simulator.events import rfc3339
from orchestrator.simulator.settings import SimSettings, domain_accounts
from orchestrator.simulator.ws_session import encode

PAIR: Final = "XBT/USD"
ACCOUNT: Final = "s0"
_FUNDS: Final = {"ZUSD": Decimal(100_000), "XXBT": Decimal(10)}
_LADDER_LEVELS: Final = 20  # per side, below the best bid and from the best ask up
_BEST_ASK_INT: Final = 300_100  # 30010.0 at the pair's 1 decimal
_LADDER_TOP_BID_INT: Final = 299_880  # 29988.0; the moving best bid sits above it
_BEST_BID_INTS: Final = tuple(range(299_890, 299_990))  # 29989.0 .. 29998.9, one tick apart
_HEARTBEAT_S: Final = 1.0
_decode = msgspec.json.Decoder(float_hook=Decimal).decode


@dataclass(frozen=True, slots=True)
class VenueAddress:
    rest_url: str
    ws_public_url: str
    ws_private_url: str
    keys: dict[str, tuple[str, str]]  # account -> (API key, secret), the simulator's own


@dataclass(frozen=True, slots=True)
class TickPlan:
    samples: int  # ticks measured, after `warmup` unmeasured ones
    warmup: int
    seed: int
    gap_min_s: float = 0.002
    gap_max_s: float = 0.004
    timeout_s: float = 1.0  # a tick whose order has not come by then is missed
    ready_timeout_s: float = 60.0  # for the client to subscribe and rest its first order


@dataclass(slots=True)
class TickResult:
    latencies_ns: list[int] = field(default_factory=list)
    missed: int = 0  # ticks whose order did not come within `timeout_s`
    stray: int = 0  # order frames that matched no tick in flight
    methods: dict[str, int] = field(default_factory=dict)  # private requests read, by method


def _reply(message: dict[str, Any], result: Any, time_in: str) -> bytes:
    body: dict[str, Any] = {"method": message.get("method")}
    if message.get("req_id") is not None:
        body["req_id"] = message["req_id"]
    body |= {
        "result": result,
        "success": True,
        "time_in": time_in,
        "time_out": rfc3339(time.time()),
    }
    return encode(body)


def _pong(message: dict[str, Any]) -> bytes:
    now = rfc3339(time.time())
    return encode(
        {"method": "pong", "req_id": message.get("req_id"), "time_in": now, "time_out": now}
    )


async def _heartbeats(ws: ServerConnection) -> None:
    with contextlib.suppress(ConnectionClosed):
        while True:
            await asyncio.sleep(_HEARTBEAT_S)
            await ws.send(b'{"channel":"heartbeat"}', text=True)


class BookFeed:
    """The public side: one book, sent to its latest subscriber."""

    def __init__(self, pair: PairSpec) -> None:
        self.pair = pair
        self.book = AggregatedBook(pair.pair_decimals, pair.lot_decimals, symbol=pair.symbol)
        rng = random.Random(7)
        for k in range(_LADDER_LEVELS):
            self.book.set_level("bid", _LADDER_TOP_BID_INT - 10 * k, rng.randint(1, 90) * 10**7)
            self.book.set_level("ask", _BEST_ASK_INT + 10 * k, rng.randint(1, 90) * 10**7)
        self.best_bid_int = _BEST_BID_INTS[0]
        self.book.set_level("bid", self.best_bid_int, 5 * 10**7)
        self._prices = itertools.cycle(_BEST_BID_INTS[1:] + _BEST_BID_INTS[:1])
        self.subscriber: tuple[ServerConnection, DepthView] | None = None
        self.subscribed = asyncio.Event()

    async def handler(self, ws: ServerConnection) -> None:
        heartbeats: asyncio.Task[None] | None = None
        try:
            async for raw in ws:
                message = _decode(raw)
                time_in = rfc3339(time.time())
                if message.get("method") == "ping":
                    await ws.send(_pong(message), text=True)
                elif message.get("method") in ("subscribe", "unsubscribe"):
                    params = message.get("params", {})
                    result = {"channel": params.get("channel"), "symbol": self.pair.symbol}
                    await ws.send(_reply(message, result, time_in), text=True)
                    if message["method"] == "subscribe" and params.get("channel") == "book":
                        view = DepthView(self.book, int(params.get("depth", 10)))
                        snapshot = {
                            "channel": "book",
                            "type": "snapshot",
                            "data": [view.snapshot()],
                        }
                        await ws.send(encode(snapshot), text=True)
                        self.subscriber = (ws, view)
                        self.subscribed.set()
                        heartbeats = heartbeats or asyncio.create_task(_heartbeats(ws))
        except ConnectionClosed:
            pass
        finally:
            if heartbeats is not None:
                heartbeats.cancel()
            if self.subscriber is not None and self.subscriber[0] is ws:
                self.subscriber = None
                self.subscribed.clear()

    def tick(self) -> tuple[ServerConnection, bytes, Decimal]:
        """The next tick: the best bid moved; its frame for the subscriber, and the new price."""
        if self.subscriber is None:
            raise ConnectionError("the book's subscriber left")
        ws, view = self.subscriber
        self.book.set_level("bid", self.best_bid_int, 0)
        self.best_bid_int = next(self._prices)
        self.book.set_level("bid", self.best_bid_int, 5 * 10**7)
        payload = view.update(rfc3339(time.time()))
        frame = encode({"channel": "book", "type": "update", "data": [payload]})
        return ws, frame, Decimal(self.best_bid_int).scaleb(-self.pair.pair_decimals)


class OrderDesk:
    """The private side: answers order methods, and tells the tick in flight its order came."""

    def __init__(self, pair: PairSpec) -> None:
        self.pair = pair
        self.resting = asyncio.Event()  # the client's first order rests: ticks may start
        self._resting_ws: ServerConnection | None = None
        self._ids = itertools.count(1)
        self._orders: dict[str, dict[str, Any]] = {}  # order_id -> params of its add_order
        self._expected: tuple[Decimal, asyncio.Future[int]] | None = None
        self.ticking = False  # from the first tick on, every order frame must answer one
        self.result = TickResult()

    def expect(self, price: Decimal) -> asyncio.Future[int]:
        """The arrival time (ns) of the next order frame priced `price`."""
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._expected = (price, waiter)
        return waiter

    def _arrived(self, params: dict[str, Any], arrived_ns: int) -> None:
        """An order frame: the order of the tick in flight, or (once ticks run) a stray one."""
        expected = self._expected
        if expected is not None and params.get("limit_price") == expected[0]:
            self._expected = None
            if not expected[1].done():
                expected[1].set_result(arrived_ns)
        elif self.ticking:
            self.result.stray += 1

    async def handler(self, ws: ServerConnection) -> None:
        self.result = TickResult()  # a new client (the last one stopped before it started)
        heartbeats = asyncio.create_task(_heartbeats(ws))
        try:
            async for raw in ws:
                arrived_ns = time.monotonic_ns()  # first: the order frame was just read
                message = _decode(raw)
                method = str(message.get("method"))
                params = message.get("params") or {}
                if method in ("add_order", "amend_order"):
                    self._arrived(params, arrived_ns)
                methods = self.result.methods
                methods[method] = methods.get(method, 0) + 1
                for frame in self._answer(ws, method, message, params):
                    await ws.send(frame, text=True)
        except ConnectionClosed:
            pass
        finally:
            heartbeats.cancel()
            if self._resting_ws is ws:
                self._resting_ws = None
                self.resting.clear()
                self._orders.clear()

    def _answer(
        self, ws: ServerConnection, method: str, message: dict[str, Any], params: dict[str, Any]
    ) -> list[bytes]:
        time_in = rfc3339(time.time())
        if method == "ping":
            return [_pong(message)]
        if method == "subscribe":
            channel = params.get("channel")
            frames = [_reply(message, {"channel": channel, "snapshot": True}, time_in)]
            if channel in ("executions", "balances"):
                frames.append(encode({"channel": channel, "type": "snapshot", "data": []}))
            return frames
        if method == "add_order":
            order_id = f"OTICK{next(self._ids):06d}"
            self._orders[order_id] = params
            self._resting_ws = ws
            self.resting.set()
            result = {"order_id": order_id, "cl_ord_id": params.get("cl_ord_id")}
            return [_reply(message, result, time_in), self._execution(order_id, "new")]
        if method == "amend_order":
            order_id = str(params.get("order_id"))
            if order_id in self._orders:
                self._orders[order_id] = self._orders[order_id] | {
                    k: params[k] for k in ("limit_price", "order_qty") if k in params
                }
            result = {"amend_id": f"ATICK{next(self._ids):06d}", "order_id": order_id}
            return [_reply(message, result, time_in), self._execution(order_id, "amended")]
        if method == "cancel_order":
            gone = [o for o in params.get("order_id", []) if o in self._orders]
            return [
                _reply(message, {"order_id": gone[0] if gone else None}, time_in),
                *(self._execution(o, "canceled", close=True) for o in gone),
            ]
        if method == "cancel_all":
            gone = list(self._orders)
            return [
                _reply(message, {"count": len(gone)}, time_in),
                *(self._execution(o, "canceled", close=True) for o in gone),
            ]
        if method == "cancel_all_orders_after":
            timeout_s = int(params.get("timeout", 0))
            trigger = rfc3339(time.time() + timeout_s)[:19] + "Z" if timeout_s else "0"
            result = {"currentTime": time_in[:19] + "Z", "triggerTime": trigger}
            return [_reply(message, result, time_in)]
        body = {
            "method": method,
            "req_id": message.get("req_id"),
            "success": False,
            "error": "EGeneral:Invalid arguments",
            "time_in": time_in,
            "time_out": time_in,
        }
        return [encode(body)]

    def _execution(self, order_id: str, exec_type: str, *, close: bool = False) -> bytes:
        params = self._orders.pop(order_id) if close else self._orders.get(order_id, {})
        status = {"new": "new", "amended": "new", "canceled": "canceled"}[exec_type]
        entry = {
            "order_id": order_id,
            "exec_type": exec_type,
            "order_status": status,
            "timestamp": rfc3339(time.time()),
            "symbol": self.pair.symbol,
            "side": params.get("side"),
            "order_type": params.get("order_type"),
            "order_qty": params.get("order_qty"),
            "limit_price": params.get("limit_price"),
            "cl_ord_id": params.get("cl_ord_id"),
            "cum_qty": Decimal(0),
        }
        return encode({"channel": "executions", "type": "update", "data": [entry]})


async def run_ticks(feed: BookFeed, desk: OrderDesk, plan: TickPlan) -> TickResult:
    """One variant's ticks against the client connected now; see the module docstring."""
    async with asyncio.timeout(plan.ready_timeout_s):
        await feed.subscribed.wait()
        await desk.resting.wait()
    await asyncio.sleep(0.2)  # the first order's reply and execution reach the client first
    result = desk.result
    rng = random.Random(plan.seed)
    desk.ticking = True
    try:
        for n in range(plan.warmup + plan.samples):
            ws, frame, price = feed.tick()
            arrival = desk.expect(price)
            sent_ns = time.monotonic_ns()  # last: the frame is written now
            await ws.send(frame, text=True)
            try:
                arrived_ns = await asyncio.wait_for(arrival, plan.timeout_s)
            except TimeoutError:
                result.missed += 1
            else:
                if n >= plan.warmup:
                    result.latencies_ns.append(arrived_ns - sent_ns)
            await asyncio.sleep(rng.uniform(plan.gap_min_s, plan.gap_max_s))
    finally:
        desk.ticking = False
    return result


async def _serve(control: Any) -> None:
    settings = SimSettings(accounts=domain_accounts(1, _FUNDS), tier="pro", market_step_s=3600.0)
    async with open_simulator(settings, port=0) as sim:
        pair = sim.venue.catalog.pair(PAIR)
        feed, desk = BookFeed(pair), OrderDesk(pair)
        async with (
            serve(feed.handler, "127.0.0.1", 0, compression=None) as public,
            serve(desk.handler, "127.0.0.1", 0, compression=None) as private,
        ):
            keys = {}
            for account in ("master", ACCOUNT):
                key = sim.venue.keys_of(account)[0]
                keys[account] = (key.key, key.secret_b64)
            public_port = public.sockets[0].getsockname()[1]
            private_port = private.sockets[0].getsockname()[1]
            control.send(
                VenueAddress(
                    rest_url=sim.rest_url,
                    ws_public_url=f"ws://127.0.0.1:{public_port}/v2",
                    ws_private_url=f"ws://127.0.0.1:{private_port}/v2",
                    keys=keys,
                )
            )
            while (plan := await asyncio.to_thread(control.recv)) is not None:
                try:
                    control.send(await run_ticks(feed, desk, plan))
                except (TimeoutError, ConnectionError) as exc:
                    control.send(f"{type(exc).__name__}: {exc}")


def serve_venue(control: Any) -> None:
    """The venue process: serve until `None` comes on `control` (a Pipe end); a `TickPlan`
    runs ticks and sends back their `TickResult` (or why it could not, as text)."""
    configure_logging("warning")
    uvloop.run(_serve(control))

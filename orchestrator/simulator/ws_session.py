"""One WebSocket v2 connection as the venue sees it: its subscriptions, its outbound queue and the
reply shapes every method shares (`docs/kraken/websocket.md` sections 1 and 2).

The engine's listeners are synchronous and may fire in the middle of this connection's own
request, so nothing is written to the socket directly: messages go into a queue that one writer
task drains in order. The channel messages a request causes (`pending_new` after `add_order`) are
held until the request's reply is queued, so a client always reads the reply first.

Numbers are JSON numbers, as Kraken's v2 sends them, written as plain fixed-point text: `plain`
turns Decimals into `msgspec.Raw` (a Decimal under `decimal_format="number"` can come out `7E-8`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

import msgspec
from aiohttp import WSCloseCode, web

from orchestrator.simulator.book_feed import DepthView
from orchestrator.simulator.events import rfc3339
from orchestrator.simulator.http import count_error
from orchestrator.simulator.params import Params
from orchestrator.simulator.reply_faults import ReplyFault, close_transport, garble
from orchestrator.simulator.venue import Venue

# Subscription-layer refusals, in Kraken's words where known (docs/kraken/websocket.md 1, 2).
ALREADY_SUBSCRIBED: Final = "Already subscribed"
SUBSCRIPTION_NOT_FOUND: Final = "Subscription Not Found"
PAIR_NOT_SUPPORTED: Final = "Currency pair not supported"

MAX_QUEUED_MESSAGES: Final = 10_000
"""A client this far behind is dropped (close 1008), as a venue drops a slow consumer."""

_encoder = msgspec.json.Encoder(decimal_format="number")


def encode(message: Any) -> bytes:
    return _encoder.encode(message)


def plain(value: Any) -> Any:
    """`value` with every Decimal as a fixed-point JSON number (`0.00000007`, never `7E-8`)."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"not a finite number: {value}")
        return msgspec.Raw(format(value, "f").encode())
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


class Recent:
    """The last `size` items per key: the snapshots of `trade` and of `executions` fills."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: dict[str, deque[Any]] = {}

    def add(self, key: str, item: Any) -> None:
        self._items.setdefault(key, deque(maxlen=self._size)).append(item)

    def get(self, key: str) -> list[Any]:
        return list(self._items.get(key, ()))


@dataclass(frozen=True, slots=True)
class Request:
    """One parsed client message; `method` is None when the frame was not a usable object."""

    method: str | None
    req_id: int | None
    params: Params
    time_in: str


@dataclass(slots=True)
class TickerSub:
    event_trigger: str  # "trades" or "bbo"
    last_seen: object  # what the last message reflected: the trade count, or the top of book


@dataclass(slots=True)
class PrivateSub:
    """An `executions` or `balances` subscription: the token's account and the message counter."""

    account: str
    order_status: bool = True
    ratecounter: bool = False  # `executions` only: the account's trading counters in the stream
    sequence: int = 0

    def next_sequence(self) -> int:
        self.sequence += 1
        return self.sequence


class Connection:
    """One client connection: what it subscribed to and what waits to be sent to it."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        venue: Venue,
        *,
        private: bool,
        connection_id: int,
        transport: asyncio.Transport | None,
    ) -> None:
        self.ws = ws
        self.transport = transport  # the TCP connection under the socket (reset fault)
        self.venue = venue
        self.private = private
        self.connection_id = connection_id
        self.opened_s = venue.clock.monotonic()
        self.last_sent_s = self.opened_s
        self.books: dict[str, DepthView] = {}  # by pair key: one depth per symbol
        self.tickers: dict[str, TickerSub] = {}  # by pair key
        self.trades: set[str] = set()  # pair keys
        self.executions: PrivateSub | None = None
        self.balances: PrivateSub | None = None
        self.closing = False
        self._close_code = WSCloseCode.OK
        self._close_reason = b""
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._held: list[bytes] | None = None
        self._reply_fault: ReplyFault | None = None

    @property
    def subscribed(self) -> bool:
        return bool(self.books or self.tickers or self.trades or self.executions or self.balances)

    # --- outbound ------------------------------------------------------------------------------
    def send(self, message: bytes) -> None:
        """Queue a channel message; held back while this connection's own request is handled."""
        if self._held is not None:
            self._held.append(message)
        else:
            self._put(message)

    def send_now(self, message: bytes) -> None:
        """Queue a message in reply order (a snapshot right after its subscription's ack)."""
        self._put(message)

    @contextlib.contextmanager
    def handling(self) -> Iterator[None]:
        """While a request runs: its replies go first, the channel messages it causes after."""
        self._held = []
        try:
            yield
        finally:
            held, self._held = self._held, None
            for message in held:
                self._put(message)

    @contextlib.contextmanager
    def replies_faulted(self, fault: ReplyFault | None) -> Iterator[None]:
        """While replying to a request the venue carried out: lost replies are not sent,
        garbled ones are cut in half (not JSON any more); None changes nothing."""
        self._reply_fault = fault
        try:
            yield
        finally:
            self._reply_fault = None

    def ok(self, req: Request, result: Any) -> None:
        self._reply(req, {"result": result, "success": True})

    def fail(self, req: Request, code: str, symbol: str | None = None) -> None:
        count_error(self.venue, code)
        body: dict[str, Any] = {"success": False, "error": code}
        if symbol is not None:
            body["symbol"] = symbol
        self._reply(req, body)

    def pong(self, req: Request) -> None:
        self._reply(Request("pong", req.req_id, req.params, req.time_in), {})

    def _reply(self, req: Request, body: dict[str, Any]) -> None:
        message: dict[str, Any] = {}
        if req.method is not None:
            message["method"] = req.method
        if req.req_id is not None:
            message["req_id"] = req.req_id
        message.update(body)
        message["time_in"] = req.time_in
        message["time_out"] = rfc3339(self.venue.clock.time())
        if self._reply_fault == "lost":
            return
        frame = encode(message)
        self._put(garble(frame) if self._reply_fault == "garbled" else frame)

    def _put(self, message: bytes) -> None:
        if self.closing:
            return
        if self._queue.qsize() >= MAX_QUEUED_MESSAGES:
            self.venue.count("ws:slow_consumer")
            self.close_soon(WSCloseCode.POLICY_VIOLATION, "slow consumer")
            return
        self._queue.put_nowait(message)
        self.last_sent_s = self.venue.clock.monotonic()

    # --- closing -------------------------------------------------------------------------------
    def close_soon(self, code: int, reason: str) -> None:
        """Drop what is queued and have the writer close the socket with `code`."""
        if self.closing:
            return
        self.closing = True
        self._close_code = WSCloseCode(code)
        self._close_reason = reason.encode()
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    def reset(self) -> None:
        """Reset the TCP connection now (RST, no close frame: the client sees 1006); what was
        queued is lost with it."""
        self.close_soon(WSCloseCode.ABNORMAL_CLOSURE, "fault injection: reset")
        close_transport(self.transport, reset=True)

    async def run_writer(self) -> None:
        """Send queued messages in order until the peer is gone or a close is asked for."""
        while True:
            message = await self._queue.get()
            if message is None:
                await self.ws.close(code=self._close_code, message=self._close_reason)
                return
            try:
                await self.ws.send_str(message.decode())
            except ConnectionResetError:
                return  # the peer went away; the reader sees it too and ends the connection

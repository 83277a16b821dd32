"""Kraken Spot WebSocket v2: one connection that keeps itself alive and subscribed.

`KrakenWs.run()` connects, (re)subscribes everything wanted, and reads: method replies resolve
their `req_id`; `book` frames go to the `BookStore` (checksummed, one book re-synced alone on a
mismatch); other channels go to `on_event`. A silent connection (no frame for
`heartbeat_timeout_s`; Kraken sends a heartbeat every second once subscribed) is dropped and
reopened with exponential backoff; private subscriptions get a fresh token each time. Requests in
flight when the link drops fail with `AmbiguousOutcome` when they act (trading), so the caller
reconciles. Trading methods take a limiter permit first, on the same counters as REST.
Malformed frames are logged and counted; they never end the connection task.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import Awaitable, Callable
from typing import Any, Final

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from orchestrator.clock import Clock
from orchestrator.errors import AmbiguousOutcome, VenueRateLimited, VenueUnavailable
from orchestrator.exchange.kraken.common.errors import rate_limit_kind, to_exception
from orchestrator.exchange.kraken.ws.book import BookEvent
from orchestrator.exchange.kraken.ws.book_store import BookStore
from orchestrator.exchange.kraken.ws.schemas import (
    BalanceSnapshot,
    Execution,
    LedgerUpdate,
    balances_decoder,
    executions_decoder,
    snapshot_decoder,
    update_decoder,
)
from orchestrator.logs import get_logger
from orchestrator.ratelimit.policy import VenueRequest
from orchestrator.ratelimit.redis import Limiter

log = get_logger(__name__)

TRADING_METHODS: Final = frozenset(
    {"add_order", "amend_order", "edit_order", "cancel_order", "cancel_all",
     "cancel_all_orders_after", "batch_add", "batch_cancel"}
)  # fmt: skip
PRIVATE_CHANNELS: Final = frozenset({"executions", "balances"})
_MAX_FRAME_BYTES: Final = 4 * 1024 * 1024


class Subscription(msgspec.Struct, frozen=True, kw_only=True):
    """One wanted subscription: a channel, maybe a symbol, and its channel parameters."""

    channel: str
    symbol: str | None = None
    depth: int | None = None
    snapshot: bool = True
    extra: tuple[tuple[str, Any], ...] = ()

    def unsubscribe_params(self) -> dict[str, Any]:
        """What identifies the subscription (Kraken wants `depth` repeated for books)."""
        params: dict[str, Any] = {"channel": self.channel}
        if self.symbol is not None:
            params["symbol"] = [self.symbol]
        if self.depth is not None:
            params["depth"] = self.depth
        return params

    def params(self, token: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"channel": self.channel, **dict(self.extra)}
        if self.symbol is not None:
            params["symbol"] = [self.symbol]
        if self.depth is not None:
            params["depth"] = self.depth
        if self.channel in PRIVATE_CHANNELS:
            params["snap_orders" if self.channel == "executions" else "snapshot"] = self.snapshot
            params["token"] = token
        else:
            params["snapshot"] = self.snapshot
        return params


class _Head(msgspec.Struct):
    """The routing fields of any frame; the rest is decoded only by whoever needs it."""

    channel: str | None = None
    method: str | None = None
    req_id: int | None = None
    success: bool | None = None
    error: str | None = None


_head = msgspec.json.Decoder(_Head)
_any = msgspec.json.Decoder()
_encode = msgspec.json.Encoder().encode

EventHandler = Callable[[str, dict[str, Any]], None]
BookHandler = Callable[[BookEvent], None]
ExecutionHandler = Callable[[Execution], None]
BalanceHandler = Callable[[BalanceSnapshot | LedgerUpdate], None]
TokenSource = Callable[[], Awaitable[str]]


class KrakenWs:
    def __init__(
        self,
        url: str,
        *,
        clock: Clock,
        books: BookStore | None = None,
        token: TokenSource | None = None,
        on_event: EventHandler | None = None,
        on_book: BookHandler | None = None,
        on_execution: ExecutionHandler | None = None,
        on_balance: BalanceHandler | None = None,
        limiter: Limiter | None = None,
        account: str = "",
        strategy: str | None = None,
        heartbeat_timeout_s: float = 5.0,
        request_timeout_s: float = 10.0,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 30.0,
    ) -> None:
        self.url = url
        self.clock = clock
        self.books = books or BookStore()
        self._token_source = token
        self._token: str | None = None  # fetched once per connection (REST call, REST counter)
        self._on_event = on_event
        self._on_book = on_book
        self._on_execution = on_execution
        self._on_balance = on_balance
        self.limiter = limiter
        self.account = account
        self.strategy = strategy
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.request_timeout_s = request_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.wanted: dict[tuple[str, str | None], Subscription] = {}
        self._ws: ClientConnection | None = None
        self._connected = asyncio.Event()
        self._pending: dict[int, tuple[str, asyncio.Future[dict[str, Any]]]] = {}
        self._req_ids = itertools.count(1)
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._rng = random.Random()  # noqa: S311 - backoff jitter
        self.counters = {"connects": 0, "reconnects": 0, "malformed": 0, "resyncs": 0, "errors": 0}

    # --- lifecycle ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Connect and serve until `close()`; reconnect with backoff after any loss."""
        delay_s = self.backoff_initial_s
        while not self.stopping():
            try:
                async with connect(self.url, max_size=_MAX_FRAME_BYTES, ping_interval=20) as ws:
                    self._ws = ws
                    self.counters["connects"] += 1
                    delay_s = self.backoff_initial_s
                    await self._on_connect()
                    await self._read(ws)
            except (OSError, WebSocketException, TimeoutError) as exc:
                log.warning("ws.disconnected", url=self.url, error=type(exc).__name__)
            finally:
                self._ws = None
                self._connected.clear()
                self._fail_pending()
                for task in list(self._tasks):
                    task.cancel()  # re-syncs die with their connection; reconnecting resubscribes
            if self.stopping():
                break
            self.counters["reconnects"] += 1
            await self.clock.sleep(delay_s * (1 + 0.2 * self._rng.random()))
            delay_s = min(self.backoff_max_s, delay_s * 2)

    def stopping(self) -> bool:
        """Whether `close()` was called (a method: it changes while `run` awaits)."""
        return self._closing

    async def close(self) -> None:
        self._closing = True
        if self._ws is not None:
            await self._ws.close()

    async def wait_connected(self, timeout_s: float = 10.0) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout_s)

    async def _on_connect(self) -> None:
        for symbol in self.books.symbols:
            book = self.books.book(symbol)
            if book is not None:
                book.mark_stale()  # a snapshot follows every (re)subscription
        self._token = None
        token = await self._current_token() if self._needs_token() else None
        for subscription in list(self.wanted.values()):
            await self._send({"method": "subscribe", "params": subscription.params(token)})
        self._connected.set()

    async def _current_token(self) -> str | None:
        if self._token is None and self._token_source is not None:
            self._token = await self._token_source()
        return self._token

    def _needs_token(self) -> bool:
        return any(s.channel in PRIVATE_CHANNELS for s in self.wanted.values())

    async def _read(self, ws: ClientConnection) -> None:
        """Read until the link drops. Silence gets one application ping (a connection with no
        subscription hears no heartbeats); silence after that ping ends the connection."""
        pinged = False
        while True:
            try:
                frame = await asyncio.wait_for(ws.recv(decode=False), self.heartbeat_timeout_s)
            except TimeoutError:
                if not pinged:
                    pinged = True
                    await self._send({"method": "ping", "req_id": next(self._req_ids)})
                    continue
                log.warning("ws.silent", url=self.url, timeout_s=self.heartbeat_timeout_s)
                await ws.close()
                return
            pinged = False
            self.handle_frame(frame)

    # --- frames ------------------------------------------------------------------------------
    def handle_frame(self, frame: bytes) -> None:
        """Route one frame. Never raises: malformed input is counted and logged."""
        try:
            head = _head.decode(frame)
        except msgspec.DecodeError:
            self.counters["malformed"] += 1
            log.warning(
                "ws.malformed_frame", size=len(frame), head=frame[:120].decode("utf-8", "replace")
            )
            return
        try:
            if head.method is not None:
                self._on_reply(head, frame)
            elif head.channel == "book":
                for event in self.books.on_message(frame):
                    self._on_book_event(event)
            elif head.channel == "executions" and self._on_execution is not None:
                for execution in executions_decoder.decode(frame).data:
                    self._on_execution(execution)
            elif head.channel == "balances" and self._on_balance is not None:
                self._on_balances(frame)
            elif head.channel not in (None, "heartbeat") and self._on_event is not None:
                self._on_event(head.channel, _any.decode(frame))
        except msgspec.ValidationError as exc:
            self.counters["malformed"] += 1
            log.warning("ws.unexpected_shape", channel=head.channel, error=str(exc))
        except Exception:  # a handler's bug must not end the connection task
            self.counters["errors"] += 1
            log.exception("ws.handler_failed", channel=head.channel, method=head.method)

    def _on_balances(self, frame: bytes) -> None:
        assert self._on_balance is not None  # noqa: S101 - checked by the caller
        message = balances_decoder.decode(frame)
        decoder = snapshot_decoder if message.type == "snapshot" else update_decoder
        for raw in message.data:
            self._on_balance(decoder.decode(raw))

    def _on_book_event(self, event: BookEvent) -> None:
        if event.kind == "resync_needed":
            self.counters["resyncs"] += 1
            subscription = self.wanted.get(("book", event.symbol))
            if subscription is not None:
                task = asyncio.get_running_loop().create_task(self._resync(subscription))
                self._tasks.add(task)  # owned: cancelled with the connection, never orphaned
                task.add_done_callback(self._tasks.discard)
        if self._on_book is not None:
            self._on_book(event)

    async def _resync(self, subscription: Subscription) -> None:
        """Fresh snapshot for one book: unsubscribe and subscribe that symbol only."""
        with contextlib.suppress(OSError, WebSocketException):
            await self._send({"method": "unsubscribe", "params": subscription.unsubscribe_params()})
            await self._send({"method": "subscribe", "params": subscription.params(None)})

    def _on_reply(self, head: _Head, frame: bytes) -> None:
        pending = self._pending.pop(head.req_id, None) if head.req_id is not None else None
        if pending is None:
            if head.success is False:
                log.warning("ws.request_failed", method=head.method, error=head.error)
            return
        method, future = pending
        if future.done():
            return
        if head.success is False:
            code = head.error or "EGeneral:Unknown error"
            acting = method in TRADING_METHODS
            future.set_exception(to_exception([code], acting=acting, method=method))
        else:
            future.set_result(_any.decode(frame))

    def _fail_pending(self) -> None:
        for method, future in self._pending.values():
            if not future.done():
                error = AmbiguousOutcome if method in TRADING_METHODS else VenueUnavailable
                future.set_exception(error(f"{method}: connection lost before the reply"))
        self._pending.clear()

    async def _send(self, message: dict[str, Any]) -> None:
        if self._ws is None:
            raise VenueUnavailable("not connected")
        await self._ws.send(_encode(message).decode())  # text frames, as Kraken expects

    # --- subscriptions and requests ------------------------------------------------------------
    async def subscribe(self, subscription: Subscription) -> None:
        """Want it from now on (kept across reconnects); subscribe now if connected."""
        self.wanted[(subscription.channel, subscription.symbol)] = subscription
        if self._ws is not None:
            private = subscription.channel in PRIVATE_CHANNELS
            token = await self._current_token() if private else None
            await self._send({"method": "subscribe", "params": subscription.params(token)})

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send a method with a `req_id` and wait for its reply (mapped errors raise)."""
        req_id = next(self._req_ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = (method, future)
        try:
            await self._send({"method": method, "params": params, "req_id": req_id})
            return await asyncio.wait_for(future, self.request_timeout_s)
        except TimeoutError as exc:
            error = AmbiguousOutcome if method in TRADING_METHODS else VenueUnavailable
            raise error(f"{method}: no reply in {self.request_timeout_s} s") from exc
        finally:
            self._pending.pop(req_id, None)

    async def trade(
        self, method: str, params: dict[str, Any], *, request: VenueRequest
    ) -> dict[str, Any]:
        """A trading method over WS: limiter permit first (same counters as REST), then send."""
        token = await self._current_token()
        if token is None:
            raise ValueError("trading over WS needs a private connection (a token source)")
        permit = (
            await self.limiter.acquire_for(
                request, account=self.account, key_id="", strategy=self.strategy
            )
            if self.limiter is not None
            else None
        )
        try:
            return await self.request(method, params | {"token": token})
        except VenueRateLimited as exc:
            if self.limiter is not None and permit is not None:
                kind = rate_limit_kind(exc.codes[0]) if exc.codes else None
                await self.limiter.feedback(permit, kind)  # the scopes this request booked
            raise

"""Kraken Spot WebSocket v2: one connection that keeps itself alive and subscribed.

`KrakenWs.run()` connects, (re)subscribes everything wanted, and reads: method replies resolve
their `req_id`; `book` frames go to the `BookStore` (checksummed, one book re-synced alone on a
mismatch); other channels go to their handlers. Trading over the connection goes through
`ws/trading.py`, which takes a limiter permit first, on the same counters as REST.

Liveness. Kraken sends a heartbeat every second once subscribed, so a link with no frame for
`dead_after_heartbeats` heartbeat intervals (3 s by default) is dead: it is dropped and reopened
with exponential backoff; private subscriptions get a fresh token each time. Each interval of
silence before that gets an application ping (a connection with no subscription hears no
heartbeats, only pongs). When a link drops (silent, closed, failed), at once: every book of it
goes stale (`on_book` hears a `stale` event per book that was whole), and requests in flight
fail, with `AmbiguousOutcome` when they act (trading) so the caller reconciles.

Errors. Malformed venue frames are counted and logged; they never end the connection: they are
the venue's input, not our bugs. A handler's exception is its owner's bug: `run()` ends raising
it, after the socket is closed and pending requests failed, so the owner's TaskGroup sees it.
Every wait of ours (open, heartbeat, request, backoff, `wait_connected`) is on the `Clock`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from typing import Any, Final, NoReturn

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from orchestrator.clock import Clock
from orchestrator.errors import VenueUnavailable
from orchestrator.exchange.kraken.ws.book import BookEvent
from orchestrator.exchange.kraken.ws.book_store import BookStore
from orchestrator.exchange.kraken.ws.codec import Head, current
from orchestrator.exchange.kraken.ws.requests import PendingRequests, unanswered
from orchestrator.exchange.kraken.ws.schemas import (
    BalanceSnapshot,
    Execution,
    LedgerUpdate,
    RateCount,
    balances_decoder,
    executions_decoder,
    snapshot_decoder,
    subscribe_ack_decoder,
    update_decoder,
)
from orchestrator.exchange.kraken.ws.subscription import PRIVATE_CHANNELS, Subscription
from orchestrator.logs import get_logger

log = get_logger(__name__)

_MAX_FRAME_BYTES: Final = 4 * 1024 * 1024


EventHandler = Callable[[str, dict[str, Any]], None]
RawHandler = Callable[[str, bytes], None]  # a frame left undecoded: the handler decodes it typed
BookHandler = Callable[[BookEvent], None]
ExecutionHandler = Callable[[Execution], None]
BalanceHandler = Callable[[BalanceSnapshot | LedgerUpdate], None]
RateCountHandler = Callable[[RateCount], None]
TokenSource = Callable[[], Awaitable[str]]


class _LinkDown(VenueUnavailable):
    """The link dropped, or cannot come up now: `run()` reopens it after a backoff. `reason`
    (silent, closed, unreachable, no_token) goes into the books' `stale` events."""

    def __init__(self, message: str, *, reason: str, sent_maybe: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.sent_maybe = sent_maybe  # the failed send may have put the frame on the wire


class KrakenWs:
    def __init__(
        self,
        url: str,
        *,
        clock: Clock,
        books: BookStore | None = None,
        token: TokenSource | None = None,
        on_event: EventHandler | None = None,
        on_raw: RawHandler | None = None,
        on_book: BookHandler | None = None,
        on_execution: ExecutionHandler | None = None,
        on_balance: BalanceHandler | None = None,
        on_ratecount: RateCountHandler | None = None,
        heartbeat_interval_s: float = 1.0,
        dead_after_heartbeats: int = 3,
        request_timeout_s: float = 10.0,
        open_timeout_s: float = 10.0,
        close_timeout_s: float = 2.0,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 30.0,
    ) -> None:
        """`heartbeat_interval_s` is Kraken's (1 s); a link silent for `dead_after_heartbeats`
        of them is dead. `close_timeout_s` bounds the closing handshake, on websockets' own
        timer (real time): it also ends a link whose venue never closes its side."""
        self.url = url
        self.clock = clock
        self.books = books or BookStore()
        self._codec = current()  # JSON in and out (codec.py)
        self._token_source = token
        self._token: str | None = None  # fetched once per connection (REST call, REST counter)
        self._on_event = on_event
        self._on_raw = on_raw  # takes other channels' frames instead of `on_event`
        self._on_book = on_book
        self._on_execution = on_execution
        self._on_balance = on_balance
        self._on_ratecount = on_ratecount
        self.max_rate_count: float | None = None  # the `executions` ack's `maxratecount`
        self.heartbeat_interval_s = heartbeat_interval_s
        self.dead_after_heartbeats = dead_after_heartbeats
        self.request_timeout_s = request_timeout_s
        self.open_timeout_s = open_timeout_s
        self.close_timeout_s = close_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.wanted: dict[tuple[str, str | None], Subscription] = {}
        self.last_frame_s = clock.monotonic()  # any frame: data, heartbeat, reply
        self._ws: ClientConnection | None = None
        self._connected = asyncio.Event()
        self._pending = PendingRequests()
        self._closing = False
        self._stop = asyncio.Event()  # ends a backoff wait at `close()`
        self._resyncs: dict[str, Subscription] = {}  # books asking for a fresh snapshot
        self._untold: tuple[BookEvent, ...] = ()  # `stale` events of the link that just dropped
        self._rng = random.Random()  # noqa: S311 - backoff jitter
        self.counters = {"connects": 0, "reconnects": 0, "malformed": 0, "resyncs": 0, "errors": 0}

    @property
    def silence_timeout_s(self) -> float:
        """How long a link may go without a frame before it is dropped as dead."""
        return self.heartbeat_interval_s * self.dead_after_heartbeats

    # --- lifecycle ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Connect and serve until `close()`; reconnect with backoff after any loss of the link.

        Ends raising what a handler raised, once the socket is closed and pending requests failed.
        """
        delay_s = self.backoff_initial_s
        while not self.stopping():
            try:
                ws = await self._open()
                delay_s = self.backoff_initial_s
                await self._serve(ws)
            except _LinkDown as exc:
                level = log.info if self.stopping() else log.warning  # closing is no trouble
                level("ws.disconnected", url=self.url, reason=exc.reason, error=str(exc))
                self._tell_stale()
            if self.stopping():
                break
            self.counters["reconnects"] += 1
            await self._backoff(delay_s * (1 + 0.2 * self._rng.random()))
            delay_s = min(self.backoff_max_s, delay_s * 2)

    def stopping(self) -> bool:
        """Whether `close()` was called (a method: it changes while `run` awaits)."""
        return self._closing

    async def close(self) -> None:
        """Stop `run()`: close the link (its books go stale) or end its backoff wait."""
        self._closing = True
        self._stop.set()
        if self._ws is not None:
            await self._ws.close()

    @property
    def connected(self) -> bool:
        """Whether the link is up and subscribed now: a request would be sent, not refused."""
        return self._connected.is_set()

    async def wait_connected(self, timeout_s: float = 10.0) -> None:
        """Until the link is up and subscribed; `TimeoutError` after `timeout_s` of the clock."""
        async with self.clock.timeout(timeout_s):
            await self._connected.wait()

    async def _open(self) -> ClientConnection:
        try:
            async with self.clock.timeout(self.open_timeout_s):
                return await connect(
                    self.url,
                    max_size=_MAX_FRAME_BYTES,
                    open_timeout=None,  # ours, on the clock
                    ping_interval=None,  # our heartbeat watchdog instead
                    close_timeout=self.close_timeout_s,
                )
        except (OSError, WebSocketException, TimeoutError) as exc:
            raise _LinkDown(f"cannot connect: {exc!r}", reason="unreachable") from exc

    async def _serve(self, ws: ClientConnection) -> None:
        """One connection's life: subscribe, then read until the link drops (`_LinkDown`) or a
        handler fails (its error). Either way, before the socket is closed, the link is down."""
        self._ws = ws
        self.counters["connects"] += 1
        reason = "failed"  # unless the link itself dropped: a handler's error, or a cancellation
        try:
            if not self.stopping():
                await self._on_connect()
                await self._read(ws)
        except _LinkDown as exc:
            reason = exc.reason
            raise
        finally:
            self._link_down(reason)
            await ws.close()

    def _link_down(self, reason: str) -> None:
        """Nothing may read the link's books as whole, and nothing waits on its replies."""
        self._untold = self.books.mark_all_stale(reason)
        self._ws = None
        self._connected.clear()
        self._resyncs.clear()  # reconnecting resubscribes every book
        self._pending.fail_all("connection lost before the reply")

    def _tell_stale(self) -> None:
        events, self._untold = self._untold, ()
        if self._on_book is not None:
            for event in events:
                self._on_book(event)

    async def _backoff(self, delay_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with self.clock.timeout(delay_s):
                await self._stop.wait()

    async def _on_connect(self) -> None:
        self._token = None
        try:
            token = await self._current_token() if self._needs_token() else None
        except VenueUnavailable as exc:  # the token's REST call: the venue's trouble, retried
            raise _LinkDown(f"no token: {exc}", reason="no_token") from exc
        for subscription in list(self.wanted.values()):
            await self._send({"method": "subscribe", "params": subscription.params(token)})
        self._connected.set()

    async def _current_token(self) -> str | None:
        if self._token is None and self._token_source is not None:
            self._token = await self._token_source()
        return self._token

    async def private_token(self) -> str:
        """The token private requests carry (fetched once per connection)."""
        token = await self._current_token()
        if token is None:
            raise ValueError("private requests need a private connection (a token source)")
        return token

    def _needs_token(self) -> bool:
        return any(s.channel in PRIVATE_CHANNELS for s in self.wanted.values())

    async def _read(self, ws: ClientConnection) -> NoReturn:
        """Handle frames until the link drops or a handler fails. A heartbeat interval with no
        frame gets a ping; `silence_timeout_s` with no frame is a dead link."""
        self.last_frame_s = self.clock.monotonic()
        while True:
            silent_s = self.clock.monotonic() - self.last_frame_s
            if silent_s >= self.silence_timeout_s:
                ws.transport.abort()  # a dead link: no closing handshake to wait for
                raise _LinkDown(f"no frame for {silent_s:.3f} s", reason="silent")
            wait_s = min(self.heartbeat_interval_s, self.silence_timeout_s - silent_s)
            try:
                async with self.clock.timeout(wait_s):
                    frame = await ws.recv(decode=False)
            except TimeoutError:
                await self._ping()
                continue
            except ConnectionClosed as exc:
                raise _LinkDown(f"closed: {exc}", reason="closed") from exc
            self.last_frame_s = self.clock.monotonic()
            self.handle_frame(frame)
            await self._send_resyncs()

    async def _ping(self) -> None:
        """Ask a silent link for a frame, within what is left of its silence budget (a send to a
        dead peer can block once its buffers fill; the watchdog must not block with it)."""
        budget_s = self.silence_timeout_s - (self.clock.monotonic() - self.last_frame_s)
        if budget_s <= 0:
            return
        with contextlib.suppress(TimeoutError):
            async with self.clock.timeout(budget_s):
                await self._send({"method": "ping", "req_id": self._pending.next_id()})

    # --- frames ------------------------------------------------------------------------------
    def handle_frame(self, frame: bytes) -> None:
        """Route one frame. Malformed venue input is counted and logged, never raised: it is the
        venue's. A handler's exception propagates: it is a bug of the handler's owner."""
        try:
            head = self._codec.head(frame)
        except msgspec.DecodeError:
            self.counters["malformed"] += 1
            log.warning(
                "ws.malformed_frame", size=len(frame), head=frame[:120].decode("utf-8", "replace")
            )
            return
        try:
            self._route(head, frame)
        except Exception:
            self.counters["errors"] += 1
            log.warning("ws.handler_failed", channel=head.channel, method=head.method)
            raise

    def _route(self, head: Head, frame: bytes) -> None:
        """Decode for the handler (a misfit is counted, reaches no handler), then call it."""
        channel = head.channel
        if head.method is not None:
            self._on_reply(head, frame)
        elif channel == "book":
            for event in self.books.on_message(frame):  # never raises on venue input
                self._on_book_event(event)
        elif channel == "executions" and self._on_execution is not None:
            self._route_executions(frame, self._on_execution)
        elif channel == "balances" and self._on_balance is not None:
            try:
                balances = self._balances(frame)
            except msgspec.DecodeError as exc:
                self._unexpected_shape(channel, exc)
                return
            for balance in balances:
                self._on_balance(balance)
        elif channel not in (None, "heartbeat"):
            if self._on_raw is not None:
                self._on_raw(channel, frame)
            elif self._on_event is not None:
                self._on_event(channel, self._codec.value(frame))

    def _route_executions(self, frame: bytes, on_execution: ExecutionHandler) -> None:
        """Order reports to `on_execution`; the venue's trading counter (`ratecount`, on a
        counter-only element or maybe on a report) to `on_ratecount`."""
        try:
            executions = executions_decoder.decode(frame).data
        except msgspec.DecodeError as exc:
            self._unexpected_shape("executions", exc)
            return
        for execution in executions:
            if execution.ratecount is not None and execution.symbol is not None:
                if self._on_ratecount is not None:
                    self._on_ratecount(RateCount(execution.symbol, execution.ratecount))
                if not execution.order_id:
                    continue  # a counter-only element
            if not (execution.order_id and execution.exec_type and execution.timestamp):
                self.counters["malformed"] += 1
                log.warning("ws.unexpected_shape", channel="executions", error="no order")
                continue
            on_execution(execution)

    def _unexpected_shape(self, channel: str, exc: msgspec.DecodeError) -> None:
        self.counters["malformed"] += 1
        log.warning("ws.unexpected_shape", channel=channel, error=str(exc))

    @staticmethod
    def _balances(frame: bytes) -> list[BalanceSnapshot | LedgerUpdate]:
        """Every entry of a `balances` frame, or DecodeError: one bad entry spoils the frame."""
        message = balances_decoder.decode(frame)
        decoder = snapshot_decoder if message.type == "snapshot" else update_decoder
        return [decoder.decode(raw) for raw in message.data]

    def _on_book_event(self, event: BookEvent) -> None:
        if event.kind == "resync_needed":
            self.counters["resyncs"] += 1
            subscription = self.wanted.get(("book", event.symbol))
            if subscription is not None:
                self._resyncs[event.symbol] = subscription  # sent by the reader, next
        if self._on_book is not None:
            self._on_book(event)

    async def _send_resyncs(self) -> None:
        """Fresh snapshots for the books that asked: unsubscribe and subscribe each one alone.
        The reader sends them, between frames: no task to own, a failed send drops the link."""
        while self._resyncs:
            _, subscription = self._resyncs.popitem()
            await self._send({"method": "unsubscribe", "params": subscription.unsubscribe_params()})
            await self._send({"method": "subscribe", "params": subscription.params(None)})

    def _on_reply(self, head: Head, frame: bytes) -> None:
        failed = head.success is False
        if head.method == "subscribe" and not failed and self._on_ratecount is not None:
            self._note_max_rate_count(frame)
        error = (head.error or "EGeneral:Unknown error") if failed else None
        answered = self._pending.resolve(
            head.req_id, error, None if failed else self._codec.value(frame)
        )
        if failed and not answered:
            log.warning("ws.request_failed", method=head.method, error=head.error)

    def _note_max_rate_count(self, frame: bytes) -> None:
        try:
            result = subscribe_ack_decoder.decode(frame).result
        except msgspec.DecodeError:
            return  # the reply is resolved (or logged) as any other
        if result is not None and result.channel == "executions":
            self.max_rate_count = result.maxratecount

    async def _send(self, message: dict[str, Any]) -> None:
        """Send on the link; `VenueUnavailable` (never a websockets error) when it is down."""
        ws = self._ws
        if ws is None:
            raise _LinkDown("not connected", reason="closed")
        try:
            await ws.send(self._codec.text(message))  # text frames, as Kraken expects
        except ConnectionClosed as exc:
            # The frame may have been written before the drain saw the close: `sent_maybe`.
            raise _LinkDown(f"closed: {exc}", reason="closed", sent_maybe=True) from exc

    # --- subscriptions and requests ------------------------------------------------------------
    async def subscribe(self, subscription: Subscription) -> None:
        """Want it from now on (kept across reconnects); subscribe now if connected."""
        self.wanted[(subscription.channel, subscription.symbol)] = subscription
        if self._ws is not None:
            private = subscription.channel in PRIVATE_CHANNELS
            token = await self._current_token() if private else None
            await self._send({"method": "subscribe", "params": subscription.params(token)})

    async def unsubscribe(self, channel: str, symbol: str | None) -> None:
        """Want it no more (nor its pending resync); unsubscribe now if connected."""
        subscription = self.wanted.pop((channel, symbol), None)
        if channel == "book" and symbol is not None:
            self._resyncs.pop(symbol, None)
        if subscription is not None and self._ws is not None:
            await self._send({"method": "unsubscribe", "params": subscription.unsubscribe_params()})

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send a method with a `req_id` and wait for its reply (mapped errors raise)."""
        req_id, future = self._pending.open(method)
        try:
            await self._send({"method": method, "params": params, "req_id": req_id})
            async with self.clock.timeout(self.request_timeout_s):
                return await future
        except TimeoutError as exc:
            raise unanswered(method, f"no reply in {self.request_timeout_s} s") from exc
        except _LinkDown as exc:
            if exc.sent_maybe:  # a trading method may have reached the venue
                raise unanswered(method, f"link lost while sending ({exc})") from exc
            raise
        finally:
            self._pending.forget(req_id)

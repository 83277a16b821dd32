"""The simulator's Spot WebSocket v2 server: `/v2` (public) and `/auth/v2` (private, token).

    add_routes(app, app[STEP_LISTENERS_KEY])      # once, in build_app

Kraken's shapes (`docs/kraken/websocket.md` 1-6): a `status` message on connect, `ping`/`pong`,
`subscribe`/`unsubscribe` with one ack per symbol, the `book`/`ticker`/`trade` channels
(`ws_public`), `executions`/`balances` and the trading methods (`ws_private`). The hub owns every
connection and is the engine's listener; it publishes after each market step and, through
`call_soon`, right after anything else moved a book (a REST order), so a client need not wait for
the next step. Heartbeats (`{"channel":"heartbeat"}` to a subscribed connection silent for a
second of venue time) and the `ws_disconnect_after_s` fault are checked on each market step.

Nothing a client sends can break its connection or another's: a frame that is not a JSON object,
an unknown method or a frame over 64 KiB gets an error reply (counted as `ws:malformed`);
an unexpected exception is logged and answered `EGeneral:Internal error`. Frames over 1 MiB are
refused by aiohttp itself, which closes the connection with 1009 (message too big).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final

import msgspec
from aiohttp import WSCloseCode, WSMsgType, web

from orchestrator.logs import get_logger
from orchestrator.simulator import ws_private, ws_public
from orchestrator.simulator.catalog import PairSpec
from orchestrator.simulator.errors import (
    INTERNAL_ERROR,
    INVALID_ARGUMENTS,
    PERMISSION_DENIED,
    UNKNOWN_METHOD,
    KrakenError,
)
from orchestrator.simulator.events import rfc3339
from orchestrator.simulator.http import VENUE_KEY
from orchestrator.simulator.orders import invalid
from orchestrator.simulator.params import Params
from orchestrator.simulator.venue import Venue
from orchestrator.simulator.ws_session import Connection, Recent, Request, encode, plain

log = get_logger(__name__)

MAX_FRAME_BYTES: Final = 64 * 1024
_HARD_FRAME_BYTES: Final = 1024 * 1024
_MAX_METHOD_CHARS: Final = 64
_CLOSE_TIMEOUT_S: Final = 2.0  # how long a close waits for the peer's close frame
HEARTBEAT_S: Final = 1.0
_CONNECTION_ID_BASE: Final = 8_628_615_390_848_610_000  # > 2**53, like Kraken's
_API_VERSION: Final = "2.0.10"
_HEARTBEAT: Final = encode({"channel": "heartbeat"})
_decoder = msgspec.json.Decoder(float_hook=Decimal)


class WsHub:
    """Every open connection, the venue's listeners that feed them, and their dispatcher."""

    def __init__(self, venue: Venue) -> None:
        self.venue = venue
        self.connections: dict[int, Connection] = {}  # by connection_id, in opening order
        self.trades = Recent(ws_public.RECENT_TRADES)  # by pair key: the `trade` snapshot
        self.fills = Recent(ws_private.RECENT_FILLS)  # by account: `snap_trades`
        self._ids = itertools.count(_CONNECTION_ID_BASE)
        self._status = venue.settings.status
        self._unpublished_trades: dict[str, list[Any]] = {}
        self._publish_handle: asyncio.Handle | None = None

    def listen(self) -> None:
        engine = self.venue.engine
        engine.execution_listeners.append(self._on_execution)
        engine.ledger_listeners.append(self._on_ledger)
        engine.trade_listeners.append(self._on_trade)
        engine.level_listeners.append(self._on_level)
        self.venue.limits.trading_listeners.append(self._on_trading_level)

    # --- connections ---------------------------------------------------------------------------
    def open(
        self, ws: web.WebSocketResponse, *, private: bool, transport: asyncio.Transport | None
    ) -> Connection:
        conn = Connection(
            ws, self.venue, private=private, connection_id=next(self._ids), transport=transport
        )
        self.connections[conn.connection_id] = conn
        self.venue.count("ws:connect")
        conn.send(self._status_message(conn.connection_id))
        return conn

    def forget(self, conn: Connection) -> None:
        self.connections.pop(conn.connection_id, None)

    def _status_message(self, connection_id: int) -> bytes:
        status = {"system": self._status, "api_version": "v2", "connection_id": connection_id,
                  "version": _API_VERSION}  # fmt: skip
        return encode({"channel": "status", "type": "update", "data": [status]})

    async def shutdown(self, app: web.Application) -> None:
        """Close every connection (1001) so that the server can stop without waiting on them."""
        if self._publish_handle is not None:
            self._publish_handle.cancel()
            self._publish_handle = None
        closing = [
            conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"Server shutdown")
            for conn in list(self.connections.values())
        ]
        await asyncio.gather(*closing, return_exceptions=True)

    # --- requests ------------------------------------------------------------------------------
    def handle(self, conn: Connection, frame: str | bytes) -> None:
        """Answer one frame; every outcome, even a bug of ours, is a reply on this connection."""
        time_in = rfc3339(self.venue.clock.time())
        with conn.handling():
            req = self._parse(conn, frame, time_in)
            if req is None:
                return
            try:
                self._dispatch(conn, req)
            except KrakenError as exc:
                conn.fail(req, exc.code)
            except Exception as exc:
                self.venue.record_internal_error("ws_request_failed", exc)
                conn.fail(req, INTERNAL_ERROR)

    def _parse(self, conn: Connection, frame: str | bytes, time_in: str) -> Request | None:
        """The frame as a request, or None after an error reply to what cannot be one."""
        data, problem = _decode(frame)
        method: str | None = None
        req_id: int | None = None
        if problem is None:
            raw_method, raw_id, params = data.get("method"), data.get("req_id"), data.get("params")
            if isinstance(raw_method, str) and len(raw_method) <= _MAX_METHOD_CHARS:
                method = raw_method
            if isinstance(raw_id, int) and not isinstance(raw_id, bool):
                req_id = raw_id
            elif raw_id is not None:
                problem = "req_id"
            if method not in _METHODS:
                problem = problem or "method"
            elif params is not None and not isinstance(params, dict):
                problem = "params"
        if problem is not None:
            self.venue.count("ws:malformed")
            code = UNKNOWN_METHOD if problem == "method" else f"{INVALID_ARGUMENTS}:{problem}"
            conn.fail(Request(method, req_id, Params({}), time_in), code)
            return None
        self.venue.count(f"ws:{method}")
        return Request(method, req_id, Params(data.get("params") or {}), time_in)

    def _dispatch(self, conn: Connection, req: Request) -> None:
        match req.method:
            case "ping":
                conn.pong(req)
            case "subscribe" | "unsubscribe":
                self._subscription(conn, req)
            case _:
                if not conn.private:
                    raise KrakenError(PERMISSION_DENIED)  # trading needs the private endpoint
                ws_private.trade(conn, req)

    def _subscription(self, conn: Connection, req: Request) -> None:
        channel = req.params.text("channel")
        subscribing = req.method == "subscribe"
        if channel in ws_public.CHANNELS:
            if subscribing:
                ws_public.subscribe(conn, req, channel, self.trades)
            else:
                ws_public.unsubscribe(conn, req, channel)
        elif channel in ws_private.CHANNELS:
            if not conn.private:
                raise KrakenError(PERMISSION_DENIED)
            if subscribing:
                ws_private.subscribe(conn, req, channel, self.fills)
            else:
                ws_private.unsubscribe(conn, req, channel)
        else:
            raise invalid("channel")

    # --- publishing ----------------------------------------------------------------------------
    def on_step(self) -> None:
        """After a market step: publish, then heartbeats and the disconnect fault."""
        try:
            self.publish()
            self._keep_alive()
        except Exception as exc:
            self.venue.record_internal_error("ws_step_failed", exc)

    def publish(self) -> None:
        if self._publish_handle is not None:
            self._publish_handle.cancel()
            self._publish_handle = None
        timestamp = rfc3339(self.venue.clock.time())
        status_changed = self.venue.settings.status != self._status
        self._status = self.venue.settings.status
        trades = {k: ws_public.trade_message(v) for k, v in self._unpublished_trades.items()}
        self._unpublished_trades = {}
        for conn in list(self.connections.values()):
            try:
                if status_changed:
                    conn.send(self._status_message(conn.connection_id))
                ws_public.publish(conn, timestamp, trades)
            except Exception as exc:
                self.venue.record_internal_error("ws_publish_failed", exc)

    def _keep_alive(self) -> None:
        now_s = self.venue.clock.monotonic()
        disconnect_after_s = self.venue.settings.faults.ws_disconnect_after_s
        for conn in list(self.connections.values()):
            if disconnect_after_s is not None and now_s - conn.opened_s >= disconnect_after_s:
                if not conn.closing:
                    self.venue.count("fault:ws_disconnect")
                    conn.close_soon(WSCloseCode.GOING_AWAY, "fault injection: disconnect")
            elif conn.subscribed and now_s - conn.last_sent_s >= HEARTBEAT_S:
                conn.send(_HEARTBEAT)

    def _publish_soon(self) -> None:
        if self._publish_handle is not None or not self.connections:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # the venue driven outside a server: the next step publishes
            return
        self._publish_handle = loop.call_soon(self._publish_due)

    def _publish_due(self) -> None:
        self._publish_handle = None
        try:
            self.publish()
        except Exception as exc:
            self.venue.record_internal_error("ws_publish_failed", exc)

    # --- engine listeners (must never raise into the engine) -----------------------------------
    def _on_level(self, pair_key: str, side: str, price: int, qty: int) -> None:
        self._publish_soon()

    def _on_trade(self, pair: PairSpec, trade: dict[str, Any]) -> None:
        try:
            item = plain(trade)
            self.trades.add(pair.key, item)
            if self.connections:
                self._unpublished_trades.setdefault(pair.key, []).append(item)
                self._publish_soon()
        except Exception as exc:
            self.venue.record_internal_error("ws_trade_failed", exc)

    def _on_execution(self, account: str, event: dict[str, Any]) -> None:
        try:
            item = plain(event)
            if event.get("exec_type") == "trade":
                self.fills.add(account, item)
            ws_private.forward_execution(self.connections.values(), account, item)
        except Exception as exc:
            self.venue.record_internal_error("ws_execution_failed", exc)

    def _on_trading_level(self, account: str, pair: str, level: float, now_s: float) -> None:
        try:
            symbol = self.venue.catalog.pair(pair).symbol
            ws_private.forward_ratecount(self.connections.values(), account, symbol, level, now_s)
        except Exception as exc:
            self.venue.record_internal_error("ws_ratecount_failed", exc)

    def _on_ledger(self, account: str, entry: dict[str, Any]) -> None:
        try:
            ws_private.forward_ledger(self.connections.values(), account, entry)
        except Exception as exc:
            self.venue.record_internal_error("ws_ledger_failed", exc)


_METHODS: Final = frozenset({"ping", "subscribe", "unsubscribe", *ws_private.TRADING})
WS_HUB_KEY: Final = web.AppKey("ws_hub", WsHub)


def _decode(frame: str | bytes) -> tuple[dict[str, Any], str | None]:
    """The frame's JSON object, or what is wrong with it."""
    if isinstance(frame, bytes):
        return {}, "binary frames are not supported"
    if len(frame) > MAX_FRAME_BYTES // 4 and len(frame.encode()) > MAX_FRAME_BYTES:
        return {}, "message too large"
    try:
        data = _decoder.decode(frame)
    except msgspec.DecodeError:
        return {}, "message is not JSON"
    if not isinstance(data, dict):
        return {}, "message must be a JSON object"
    return data, None


async def _serve(request: web.Request, *, private: bool) -> web.WebSocketResponse:
    hub = request.app[WS_HUB_KEY]
    ws = web.WebSocketResponse(max_msg_size=_HARD_FRAME_BYTES, timeout=_CLOSE_TIMEOUT_S)
    await ws.prepare(request)
    conn = hub.open(ws, private=private, transport=request.transport)
    writer = asyncio.create_task(conn.run_writer(), name=f"ws-writer-{conn.connection_id}")
    try:
        async for message in ws:
            if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                hub.handle(conn, message.data)
    finally:
        hub.forget(conn)
        if not conn.closing:  # else the writer is closing the socket: let it finish
            writer.cancel()
        try:
            await writer
        except asyncio.CancelledError:
            pass
        except Exception as exc:
            hub.venue.record_internal_error("ws_writer_failed", exc)
        with contextlib.suppress(ConnectionResetError):
            await ws.close()
    return ws


async def public_endpoint(request: web.Request) -> web.WebSocketResponse:
    return await _serve(request, private=False)


async def private_endpoint(request: web.Request) -> web.WebSocketResponse:
    return await _serve(request, private=True)


def add_routes(app: web.Application, step_listeners: list[Callable[[], None]]) -> None:
    """Serve WS v2 on `app`; `step_listeners` is the list the simulator calls after each step."""
    hub = WsHub(app[VENUE_KEY])
    hub.listen()
    app[WS_HUB_KEY] = hub
    step_listeners.append(hub.on_step)
    app.on_shutdown.append(hub.shutdown)
    app.router.add_get("/v2", public_endpoint)
    app.router.add_get("/auth/v2", private_endpoint)

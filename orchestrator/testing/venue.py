"""The replay harness's venue: one account's order entry and reads, answered in-process by the
simulator's own request handlers (no socket, no token, no signing, no limiter).

Order entry calls the WebSocket v2 trading handlers (`simulator/ws_private.TRADING`), as live
order entry goes over the private socket; reads call the REST query handlers
(`simulator/rest_queries`), as the live reader does. Requests are encoded as the wire carries
them and replies decoded by the live clients' own decoders, so validation, `cl_ord_id`
uniqueness, matching, holds, trading counters and their error strings are the simulator's, and
its refusals reach the caller through the one translation the live clients use (`to_exception`).
The REST counter is not charged (no limiter paces these calls); the trading counters are.

Executions and balances: the engine's listeners, for this account only, framed by the
simulator's WS code (`forward_execution`, `forward_ledger`) and decoded by the WS client's
decoders. Live, the private socket's reader handles `pending_new` / `new` before the task that
placed the order resumes with its reply (frames read together are handled without a yield), so
by default (`delivery="before_reply"`) the executions a call causes are delivered before that
call returns; `"after_reply"` delivers them with `loop.call_soon`, once the caller holds the
reply (what REST order entry sees). Events no call of this venue caused (a market step's fill,
another account's order, the dead man's switch) are delivered with `call_soon`, as a reader task
would. A handler's exception is its owner's bug: delivery stops, and the next call (and
`close()`) raises it.

Faults, deterministic: `fail_next(method, "lost")` lets the venue act and loses the reply
(`AmbiguousOutcome` for order entry), `fail_next(method, "unavailable")` does nothing
(`VenueUnavailable`); the simulator's own reply faults (`settings.faults.lost_reply_next`, ...)
strike trading here as over its WebSocket.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import Any, Final, Literal, TypeVar, cast

import msgspec

from orchestrator.clock import ManualClock
from orchestrator.errors import VenueError, VenueUnavailable
from orchestrator.exchange.instruments import Instruments
from orchestrator.exchange.kraken.common.errors import to_exception
from orchestrator.exchange.kraken.spot import schemas as s
from orchestrator.exchange.kraken.spot.instruments import instrument
from orchestrator.exchange.kraken.spot.orders import order_state
from orchestrator.exchange.kraken.spot.reader import (
    balances_of,
    ledger_entries,
    ledger_params,
    order_states,
)
from orchestrator.exchange.kraken.spot.rest import decode_result, read_envelope
from orchestrator.exchange.kraken.ws.order_params import (
    add_order_params,
    amend_order_params,
    batch_add_params,
)
from orchestrator.exchange.kraken.ws.requests import acting, unanswered
from orchestrator.exchange.kraken.ws.schemas import (
    BalanceSnapshot,
    Execution,
    LedgerUpdate,
    balances_decoder,
    executions_decoder,
    snapshot_decoder,
    update_decoder,
)
from orchestrator.exchange.protocol import Balance, LedgerEntry, OrderRef, OrderSpec, OrderState
from orchestrator.logs import get_logger
from orchestrator.simulator import rest_public, rest_queries, ws_private
from orchestrator.simulator.auth import ApiKey
from orchestrator.simulator.errors import INTERNAL_ERROR, UNKNOWN_ORDER, KrakenError
from orchestrator.simulator.events import execution
from orchestrator.simulator.params import Params
from orchestrator.simulator.reply_faults import choose
from orchestrator.simulator.settings import SimSettings
from orchestrator.simulator.venue import Venue, build_venue
from orchestrator.simulator.ws_session import Connection, PrivateSub, encode, plain

log = get_logger(__name__)

Delivery = Literal["before_reply", "after_reply"]
FaultKind = Literal["lost", "unavailable"]
ExecutionHandler = Callable[[Execution], None]
BalanceHandler = Callable[[BalanceSnapshot | LedgerUpdate], None]
T = TypeVar("T")

_QUERIES: Final = {
    "OpenOrders": rest_queries.open_orders,
    "ClosedOrders": rest_queries.closed_orders,
    "QueryOrders": rest_queries.query_orders,
    "BalanceEx": rest_queries.balance_ex,
    "Ledgers": rest_queries.ledgers,
}
FAULTABLE: Final = frozenset(ws_private.TRADING) | frozenset(_QUERIES)
"""What `fail_next` takes: WS v2 trading methods (`add_order`) and REST queries (`OpenOrders`)."""

_rest_encoder = msgspec.json.Encoder(decimal_format="string")  # as the simulator's HTTP layer
_ws_params = msgspec.json.Decoder(float_hook=Decimal)  # as the simulator's WS layer reads frames


class _Head(msgspec.Struct):
    channel: str


_head = msgspec.json.Decoder(_Head)


class _Sink:
    """What the simulator's WS forwarding writes to: this account's two subscriptions and the
    frames they were sent (the duck of `ws_session.Connection` that `forward_*` use)."""

    def __init__(self, arrived: Callable[[], None]) -> None:
        self.executions: PrivateSub | None = None
        self.balances: PrivateSub | None = None
        self.frames: deque[bytes] = deque()
        self._arrived = arrived

    def send(self, message: bytes) -> None:
        self.frames.append(message)
        self._arrived()


def _wire(params: dict[str, Any]) -> Params:
    """`params` as the simulator's WS layer reads them off a frame (numbers as Decimals)."""
    return Params(_ws_params.decode(encode(plain(params))))


@contextlib.contextmanager
def _kraken_errors(venue: Venue, method: str, *, acts: bool) -> Iterator[None]:
    """The simulator's refusals as the live clients raise them; a bug of the simulator as the
    `EGeneral:Internal error` it would answer, recorded for the test to see."""
    try:
        yield
    except KrakenError as exc:
        raise to_exception([exc.code], acting=acts, method=method) from exc
    except Exception as exc:
        venue.record_internal_error(f"inprocess:{method}", exc)
        raise to_exception([INTERNAL_ERROR], acting=acts, method=method) from exc


class InProcessVenue:
    """`TradingVenue` and `AccountReader` of one account of an in-process simulator."""

    def __init__(
        self,
        venue: Venue,
        account: str,
        instruments: Instruments,
        *,
        delivery: Delivery = "before_reply",
    ) -> None:
        if account not in venue.domain.accounts:
            raise ValueError(f"the simulator has no account {account!r}")
        self.venue = venue
        self.account = account
        self.instruments = instruments
        self.delivery: Delivery = delivery
        self.failure: BaseException | None = None  # a handler's error: delivery stopped
        # The REST queries read only the key's account: no key of the venue is needed.
        self._key = ApiKey(key=f"inprocess:{account}", secret_b64="", account=account,
                           permissions=frozenset({"query_open", "query_closed"}))  # fmt: skip
        self._faults: dict[str, deque[FaultKind]] = {}
        self._sink = _Sink(self._frame_arrived)
        self._on_execution: ExecutionHandler | None = None
        self._on_balance: BalanceHandler | None = None
        self._in_call = False
        self._soon: asyncio.Handle | None = None
        self._closed = False
        venue.engine.execution_listeners.append(self._engine_execution)
        venue.engine.ledger_listeners.append(self._engine_ledger)

    # --- faults --------------------------------------------------------------------------------
    def fail_next(self, method: str, kind: FaultKind) -> None:
        """The next call of `method` fails so: `lost` (acted, reply lost) or `unavailable`
        (nothing done). Faults queue up, one per call; as with the simulator's own, a trading
        request the venue refused is answered as usual and consumes no `lost`."""
        if method not in FAULTABLE:
            raise ValueError(f"{method!r} is none of {sorted(FAULTABLE)}")
        self._faults.setdefault(method, deque()).append(kind)

    def _take_fault(self, method: str, kind: FaultKind) -> bool:
        """Whether the fault queued next for `method` is `kind` (then it is consumed)."""
        queued = self._faults.get(method)
        if not queued or queued[0] != kind:
            return False
        queued.popleft()
        return True

    def _unavailable(self, method: str) -> None:
        if self._take_fault(method, "unavailable"):
            raise VenueUnavailable(f"{method}: unavailable (injected)")

    # --- TradingVenue --------------------------------------------------------------------------
    async def place(self, spec: OrderSpec) -> OrderRef:
        pair = spec.instrument
        params = add_order_params(spec)
        result = await self._trade("add_order", params)
        rested_s = self.venue.clock.time() if spec.rests else None
        return OrderRef(txid=result["order_id"], cl_ord_id=spec.cl_ord_id, instrument=pair,
                        rested_s=rested_s)  # fmt: skip

    async def place_batch(self, specs: Sequence[OrderSpec]) -> list[OrderRef | VenueError]:
        """`batch_add`: validated whole (one bad order refuses the batch), then each order
        placed or failing alone (its slot carries the error)."""
        slots = await self._trade("batch_add", batch_add_params(specs))
        now_s = self.venue.clock.time()
        out: list[OrderRef | VenueError] = []
        for spec, slot in zip(specs, slots, strict=True):
            if "error" in slot:
                out.append(to_exception([slot["error"]], acting=True, method="batch_add"))
                continue
            out.append(OrderRef(txid=slot["order_id"], cl_ord_id=spec.cl_ord_id,
                                instrument=spec.instrument,
                                rested_s=now_s if spec.rests else None))  # fmt: skip
        return out

    async def amend(
        self, ref: OrderRef, *, volume: Decimal | None = None, price: Decimal | None = None
    ) -> OrderRef:
        params = amend_order_params(ref, volume=volume, price=price)
        await self._trade("amend_order", params)
        return OrderRef(txid=ref.txid, cl_ord_id=ref.cl_ord_id, instrument=ref.instrument,
                        rested_s=self.venue.clock.time())  # fmt: skip

    async def cancel(self, ref: OrderRef) -> bool:
        replies: ws_private.Several = await self._trade("cancel_order", {"order_id": [ref.txid]})
        for item in replies.items:
            if isinstance(item, KrakenError) and item.code != UNKNOWN_ORDER:
                raise to_exception([item.code], acting=True, method="cancel_order")
        return any(not isinstance(item, KrakenError) for item in replies.items)

    async def cancel_all(self, resting: Sequence[OrderRef]) -> int:
        return int((await self._trade("cancel_all", {}))["count"])

    async def dead_man_switch(self, timeout_s: int) -> str:
        result = await self._trade("cancel_all_orders_after", {"timeout": timeout_s})
        return str(result["triggerTime"])

    async def open_orders(self) -> list[OrderState]:
        result = await self._query("OpenOrders", s.OpenOrders, {})
        return [order_state(txid, o, self.instruments) for txid, o in result.open.items()]

    async def find_order(self, cl_ord_id: str) -> OrderState | None:
        """As the live lookup: the open orders first, then the closed ones."""
        opened = await self._query("OpenOrders", s.OpenOrders, {"cl_ord_id": cl_ord_id})
        found = (
            opened.open
            or (await self._query("ClosedOrders", s.ClosedOrders, {"cl_ord_id": cl_ord_id})).closed
        )
        for txid, order in found.items():
            return order_state(txid, order, self.instruments)
        return None

    # --- AccountReader -------------------------------------------------------------------------
    async def balances(self) -> dict[str, Balance]:
        return balances_of(await self._query("BalanceEx", dict[str, s.BalanceEx], {}))

    async def ledger(
        self, *, asset: str | None = None, type_: str | None = None
    ) -> list[LedgerEntry]:
        params = ledger_params(asset, type_)
        return ledger_entries(await self._query("Ledgers", s.Ledgers, params))

    async def query_orders(self, txids: Sequence[str]) -> list[OrderState]:
        result = await self._query(
            "QueryOrders", dict[str, s.KrakenOrder], {"txid": ",".join(txids)}
        )
        return order_states(result, self.instruments)

    # --- calls ---------------------------------------------------------------------------------
    async def _trade(self, method: str, params: dict[str, Any]) -> Any:
        """One WS trading request: the venue acts and replies at once, after the request's time
        in flight (one turn of the loop, where a cancellation means it was never sent)."""
        await asyncio.sleep(0)
        self._check_open()
        self._unavailable(method)
        self._in_call = True
        try:
            with _kraken_errors(self.venue, method, acts=acting(method)):
                result = ws_private.TRADING[method].handler(self.venue, self.account, _wire(params))
        finally:
            self._in_call = False
            self._call_done()
        fault = choose(self.venue.settings.faults, self.venue.rng, method, acting=True)
        if self._take_fault(method, "lost") or fault is not None:
            raise unanswered(method, "the reply was lost")
        return result

    async def _query(self, method: str, into: type[T], params: dict[str, str]) -> T:
        """One REST query, its reply read by the live client's envelope and result decoders."""
        await asyncio.sleep(0)
        self._check_open()
        self._unavailable(method)
        if self._take_fault(method, "lost"):  # a query's lost reply: nothing to reconcile
            raise VenueUnavailable(f"{method}: the reply was lost (injected)")
        with _kraken_errors(self.venue, method, acts=False):
            result = _QUERIES[method](self.venue, self._key, Params(params))
        body = _rest_encoder.encode({"error": [], "result": result})
        return decode_result(into, read_envelope(body, method, acting=False), method, acting=False)

    def _check_open(self) -> None:
        if self.failure is not None:
            raise self.failure
        if self._closed:
            raise VenueUnavailable(f"the in-process venue of {self.account} is closed")

    # --- executions and balances ---------------------------------------------------------------
    def subscribe_executions(
        self, on_execution: ExecutionHandler, *, snapshot: bool = True
    ) -> None:
        """Hear this account's executions; the snapshot holds its open orders (`new` each).
        Subscribing again is a new connection: a new snapshot, a new sequence."""
        self._on_execution = on_execution
        sub = self._sink.executions = PrivateSub(self.account)
        if snapshot:
            orders = self.venue.engine.open_orders(self.account).values()
            data = [plain(execution(o, "new", o.changed_s)) for o in orders]
            message = {"channel": "executions", "type": "snapshot", "data": data}
            self._sink.send(encode(message | {"sequence": sub.next_sequence()}))

    def subscribe_balances(self, on_balance: BalanceHandler, *, snapshot: bool = True) -> None:
        """Hear this account's ledger entries, after a snapshot of its balances."""
        self._on_balance = on_balance
        sub = self._sink.balances = PrivateSub(self.account)
        if snapshot:
            data = ws_private.balances_snapshot(self.venue, self.account)
            message = {"channel": "balances", "type": "snapshot", "data": data}
            self._sink.send(encode(message | {"sequence": sub.next_sequence()}))

    def close(self) -> None:
        """Stop hearing the engine; frames not yet delivered are lost, as with a process that
        died. Raises a handler's error, if one stopped delivery."""
        self._closed = True
        engine = self.venue.engine
        with contextlib.suppress(ValueError):
            engine.execution_listeners.remove(self._engine_execution)
        with contextlib.suppress(ValueError):
            engine.ledger_listeners.remove(self._engine_ledger)
        if self._soon is not None:
            self._soon.cancel()
            self._soon = None
        self._sink.frames.clear()
        if self.failure is not None:
            raise self.failure

    def _engine_execution(self, account: str, event: dict[str, Any]) -> None:
        if account == self.account:
            conns = cast(list[Connection], [self._sink])  # the sink has what forwarding uses
            ws_private.forward_execution(conns, account, plain(event))

    def _engine_ledger(self, account: str, entry: dict[str, Any]) -> None:
        if account == self.account:
            ws_private.forward_ledger(cast(list[Connection], [self._sink]), account, entry)

    def _frame_arrived(self) -> None:
        if not self._in_call:
            self._deliver_soon()

    def _call_done(self) -> None:
        if self.delivery == "before_reply":
            self.deliver()
        else:
            self._deliver_soon()

    def _deliver_soon(self) -> None:
        """Deliver on the next turn of the loop; with no loop running (a venue stepped from sync
        code), at the end of the next call or the next `deliver()`."""
        if self._soon is not None or not self._sink.frames:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._soon = loop.call_soon(self.deliver)

    def deliver(self) -> None:
        """Hand every frame received so far to its handler, in order."""
        if self._soon is not None:
            self._soon.cancel()
            self._soon = None
        frames = self._sink.frames
        while frames and self.failure is None:
            frame = frames.popleft()
            try:
                self._handle(frame)
            except Exception as exc:
                log.exception("inprocess.handler_failed", account=self.account)
                self.failure = exc
                frames.clear()

    def _handle(self, frame: bytes) -> None:
        if _head.decode(frame).channel == "executions":
            if self._on_execution is not None:
                for item in executions_decoder.decode(frame).data:
                    self._on_execution(item)
            return
        if self._on_balance is not None:
            message = balances_decoder.decode(frame)
            decoder = snapshot_decoder if message.type == "snapshot" else update_decoder
            for raw in message.data:
                self._on_balance(decoder.decode(raw))


def build_inprocess_domain(settings: SimSettings, clock: ManualClock) -> tuple[Venue, Instruments]:
    """A simulated domain and its instrument registry, built as live builds it from AssetPairs
    (the simulator's handler, the client's decoder and parser): names and precisions as live."""
    venue = build_venue(settings, clock)
    result = rest_public.asset_pairs(venue, Params({}))
    body = _rest_encoder.encode({"error": [], "result": result})
    raw = read_envelope(body, "AssetPairs", acting=False)
    pairs = decode_result(dict[str, s.AssetPair], raw, "AssetPairs", acting=False)
    return venue, Instruments(instrument(name, pair) for name, pair in pairs.items())

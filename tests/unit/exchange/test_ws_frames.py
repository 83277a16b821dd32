"""The WS client's frame routing, with no socket: malformed venue input is counted and never
raised; a handler's exception (our bug, not the venue's) propagates to the caller."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
import pytest
from websockets.exceptions import ConnectionClosed

from orchestrator.clock import ManualClock
from orchestrator.errors import AmbiguousOutcome, VenueUnavailable
from orchestrator.exchange.kraken.ws.book import BookEvent, PairPrecision
from orchestrator.exchange.kraken.ws.book_store import BookStore
from orchestrator.exchange.kraken.ws.client import KrakenWs
from orchestrator.exchange.kraken.ws.schemas import (
    BalanceSnapshot,
    Execution,
    LedgerUpdate,
    RateCount,
)
from tests.ws_frames import book_snapshot

BTC = PairPrecision(price_decimals=1, qty_decimals=8)
_encode = msgspec.json.Encoder().encode


BTC_SNAPSHOT = book_snapshot("BTC/USD", [("50000.0", "1.5")], [("50000.5", "0.25")], BTC)
EXECUTION = _encode({"channel": "executions", "type": "update",
                     "data": [{"order_id": "O-1", "exec_type": "new", "timestamp": "2026-01-01T00:00:00Z"}]})  # fmt: skip
BALANCES = _encode({"channel": "balances", "type": "snapshot",
                    "data": [{"asset": "USD", "balance": 100}, {"asset": "XBT", "balance": 1}]})  # fmt: skip
STATUS = b'{"channel": "status", "type": "update", "data": [{"system": "online"}]}'


def client_of(**handlers: Any) -> KrakenWs:
    books = BookStore()
    books.add_book("BTC/USD", 10, BTC)
    return KrakenWs("ws://unused.invalid/v2", clock=ManualClock(), books=books, **handlers)


def test_malformed_frames_are_counted_not_fatal() -> None:
    client = client_of()
    client.handle_frame(b"not json")
    client.handle_frame(b'{"channel": "book", "type": "update", "data": [{"symbol": 5}]}')
    client.handle_frame(b'{"channel": "ticker", "data": []}')  # no listener: ignored
    assert client.counters["malformed"] == 1
    assert client.books.malformed >= 1


def test_malformed_private_frames_are_counted_and_reach_no_handler() -> None:
    executions: list[Execution] = []
    balances: list[BalanceSnapshot | LedgerUpdate] = []
    client = client_of(on_execution=executions.append, on_balance=balances.append)
    client.handle_frame(b'{"channel": "executions", "type": "update", "data": [{"order_id": 1}]}')
    # One bad entry spoils its frame: no handler sees half of it.
    client.handle_frame(_encode({"channel": "balances", "type": "snapshot",
                                 "data": [{"asset": "USD", "balance": 1}, {"asset": "XBT"}]}))  # fmt: skip
    assert client.counters["malformed"] == 2
    assert (executions, balances) == ([], [])
    client.handle_frame(EXECUTION)
    client.handle_frame(BALANCES)
    assert [e.order_id for e in executions] == ["O-1"]
    assert balances == [BalanceSnapshot(asset="USD", balance=Decimal(100)),
                        BalanceSnapshot(asset="XBT", balance=Decimal(1))]  # fmt: skip


class HandlerBug(Exception):
    """What a handler with a bug raises."""


def fail(*_: object) -> None:
    raise HandlerBug("a bug in the handler")


@pytest.mark.parametrize(
    ("handler", "frame"),
    [("on_book", BTC_SNAPSHOT), ("on_execution", EXECUTION), ("on_balance", BALANCES),
     ("on_event", STATUS)],
)  # fmt: skip
def test_a_handlers_error_reaches_the_caller(handler: str, frame: bytes) -> None:
    client = client_of(**{handler: fail})
    with pytest.raises(HandlerBug):
        client.handle_frame(frame)
    assert client.counters["errors"] == 1
    assert client.counters["malformed"] == 0


def test_a_handlers_own_validation_error_is_not_venue_input() -> None:
    """A handler that decodes and fails raises msgspec's error: still the handler's bug."""

    def strict(_channel: str, message: dict[str, Any]) -> None:
        msgspec.convert(message, type=dict[str, int])

    client = client_of(on_event=strict)
    with pytest.raises(msgspec.ValidationError):
        client.handle_frame(STATUS)
    assert client.counters["malformed"] == 0


def test_a_dropped_link_makes_every_whole_book_stale_at_once() -> None:
    events: list[BookEvent] = []
    books = BookStore()
    for symbol in ("BTC/USD", "ETH/USD", "XBT/EUR"):
        books.add_book(symbol, 10, BTC)
    client = KrakenWs("ws://unused.invalid/v2", clock=ManualClock(), books=books,
                      on_book=events.append)  # fmt: skip
    client.handle_frame(BTC_SNAPSHOT)
    client.handle_frame(book_snapshot("ETH/USD", [("3000.0", "2")], [("3000.5", "1")], BTC))
    assert books.stale_symbols == ["XBT/EUR"]  # never had its snapshot
    events.clear()
    assert books.mark_all_stale("silent") == (
        BookEvent("BTC/USD", "stale", False, reason="silent"),
        BookEvent("ETH/USD", "stale", False, reason="silent"),
    )  # already stale: no news, no event
    assert books.stale_symbols == ["BTC/USD", "ETH/USD", "XBT/EUR"]
    assert books.mark_all_stale("closed") == ()


class _ClosesOnSend:
    """A connection whose send fails on a close, as websockets does when the link dies while
    the frame drains: the frame may already be on the wire."""

    async def send(self, text: str) -> None:
        raise ConnectionClosed(None, None)


async def test_a_send_cut_by_a_close_is_ambiguous_for_trading_only() -> None:
    client = KrakenWs("ws://127.0.0.1:9/unused", clock=ManualClock())
    client._ws = _ClosesOnSend()  # type: ignore[assignment]  # the socket seam, nothing else
    with pytest.raises(AmbiguousOutcome, match="link lost while sending"):
        await client.request("add_order", {"symbol": "BTC/USD"})
    with pytest.raises(VenueUnavailable) as info:
        await client.request("ping", {})
    assert not isinstance(info.value, AmbiguousOutcome)


def test_the_venues_trading_counter_reaches_its_handler_and_no_order_handler() -> None:
    executions: list[Execution] = []
    counts: list[RateCount] = []
    client = client_of(on_execution=executions.append, on_ratecount=counts.append)
    client.handle_frame(_encode({"method": "subscribe", "success": True,
                                 "result": {"channel": "executions", "maxratecount": 125}}))  # fmt: skip
    assert client.max_rate_count == 125
    client.handle_frame(_encode({"channel": "executions", "type": "update", "sequence": 3,
                                 "data": [{"symbol": "BTC/USD", "ratecount": 62.5,
                                           "timestamp": "2026-01-01T00:00:00Z"}]}))  # fmt: skip
    # Kraken may put it on an execution report too: the report still reaches its handler.
    client.handle_frame(_encode({"channel": "executions", "type": "update",
                                 "data": [{"order_id": "O-1", "exec_type": "new", "symbol": "BTC/USD",
                                           "timestamp": "2026-01-01T00:00:00Z", "ratecount": 63}]}))  # fmt: skip
    assert counts == [RateCount("BTC/USD", 62.5), RateCount("BTC/USD", 63.0)]
    assert [e.order_id for e in executions] == ["O-1"]
    client.handle_frame(_encode({"channel": "executions", "type": "update",
                                 "data": [{"symbol": "BTC/USD", "timestamp": "x"}]}))  # fmt: skip
    assert client.counters["malformed"] == 1
    assert len(executions) == 1

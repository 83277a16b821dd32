"""The tick-to-order baseline's stdlib codec gives what the product's msgspec codec gives, so the
benchmark's two variants do the same work (benchmarks/_tick_codec.py)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import msgspec
import pytest

from benchmarks._tick_codec import stdlib_codec
from benchmarks.book import generate_stream
from orchestrator.clock import RealClock
from orchestrator.exchange.kraken.spot.instruments import instrument
from orchestrator.exchange.kraken.spot.schemas import AssetPair
from orchestrator.exchange.kraken.ws import codec
from orchestrator.exchange.kraken.ws.book_store import BookStore
from orchestrator.exchange.kraken.ws.client import KrakenWs
from orchestrator.exchange.kraken.ws.codec import MSGSPEC
from orchestrator.exchange.kraken.ws.order_params import amend_order_params
from orchestrator.exchange.protocol import OrderRef

STDLIB = stdlib_codec()
XBT_USD = instrument("XXBTZUSD", AssetPair(altname="XBTUSD", wsname="XBT/USD", base="XXBT",
                                           quote="ZUSD", pair_decimals=1, lot_decimals=8,
                                           ordermin=Decimal("0.0001"), costmin=Decimal("0.5"),
                                           tick_size=Decimal("0.1")))  # fmt: skip


@pytest.fixture
def stdlib_installed() -> Iterator[None]:
    codec.install(STDLIB)
    try:
        yield
    finally:
        codec.install(MSGSPEC)


def test_book_frames_decode_alike() -> None:
    stream = generate_stream(200, 10, seed=5)
    for frame in [stream.snapshot, *stream.updates]:
        assert STDLIB.book(frame) == MSGSPEC.book(frame)
        assert STDLIB.head(frame) == MSGSPEC.head(frame)


def test_a_book_store_on_the_stdlib_codec_verifies_every_checksum(stdlib_installed: None) -> None:
    stream = generate_stream(500, 10, seed=9)
    store = BookStore()
    store.add_book(stream.symbol, stream.depth, stream.precision)
    events = [e for frame in [stream.snapshot, *stream.updates] for e in store.on_message(frame)]
    assert all(e.ok for e in events)
    assert (store.mismatches, store.malformed) == (0, 0)


def test_sockets_read_the_codec_installed_when_they_are_made(stdlib_installed: None) -> None:
    made_before = KrakenWs("ws://127.0.0.1:1/v2", clock=RealClock())
    codec.install(MSGSPEC)
    made_after = KrakenWs("ws://127.0.0.1:1/v2", clock=RealClock())
    frame = b'{"channel":"book","type":"update","data":[]}'
    assert made_before._codec is STDLIB
    assert made_before.books._decode_frame == STDLIB.book
    assert made_after._codec is MSGSPEC
    assert made_after.books.on_message(frame) == ()


@pytest.mark.parametrize(
    "frame",
    [
        b"not json",
        b"[1, 2]",
        b'{"channel": 5}',
        b'{"method": "add_order", "req_id": "7"}',
        b'{"success": 1}',
    ],
)
def test_a_misfit_head_raises_decode_error_as_msgspec_does(frame: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        MSGSPEC.head(frame)
    with pytest.raises(msgspec.DecodeError):
        STDLIB.head(frame)


@pytest.mark.parametrize(
    "frame",
    [
        b'{"channel": "book", "type": "refresh", "data": []}',
        b'{"channel": "book", "type": "update", "data": [{"symbol": "BTC/USD"}]}',
        b'{"channel": "book", "type": "update", "data": [{"symbol": "B", "checksum": -1}]}',
        b'{"channel": "book", "type": "update", "data": [{"symbol": "B", "checksum": 1, '
        b'"bids": [{"price": 1.0}]}]}',
    ],
)
def test_a_misfit_book_frame_raises_decode_error_as_msgspec_does(frame: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        MSGSPEC.book(frame)
    with pytest.raises(msgspec.DecodeError):
        STDLIB.book(frame)


def test_requests_are_written_with_the_same_values() -> None:
    ref = OrderRef(txid="OABC", cl_ord_id="c1", instrument=XBT_USD, rested_s=None)
    params = amend_order_params(ref, volume=Decimal("0.00100000"), price=Decimal("29995.3"))
    message = {"method": "amend_order", "params": params | {"token": "t"}, "req_id": 3}
    mine, theirs = STDLIB.text(message), MSGSPEC.text(message)
    assert isinstance(mine, str)
    assert msgspec.json.decode(mine) == msgspec.json.decode(theirs)
    assert '"limit_price":29995.3' in mine
    assert '"order_qty":0.001' in mine

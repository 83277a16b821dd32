"""The JSON at the edge of a Kraken WebSocket v2 connection: frames in, requests out.

`KrakenWs` reads every frame's routing fields (`head`) and its replies (`value`) through the
codec, `BookStore` its `book` frames (`book`: typed, numbers kept as their wire text), and every
request is written through it (`text`). The product's codec is msgspec, one decoder per type made
once (`MSGSPEC`). A decoder raises `msgspec.DecodeError` on input that does not fit.

Why a seam: benchmarks/tick_to_order.py measures the tick-to-order path with stdlib `json` at
these edges too, to show what msgspec buys. It installs its own codec (`install`) in a child
process of its own, before any connection or book store exists; each reads the codec when it is
made, so the hot path pays no lookup. Nothing in the product replaces it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from orchestrator.exchange.kraken.ws.book import U32, WireLevel


class Head(msgspec.Struct):
    """The routing fields of any frame; the rest is decoded only by whoever needs it."""

    channel: str | None = None
    method: str | None = None
    req_id: int | None = None
    success: bool | None = None
    error: str | None = None


class BookEntry(msgspec.Struct, gc=False, kw_only=True):
    """One `data` entry of a `book` frame."""

    # Fields in Kraken's wire order: msgspec matches keys fastest when they come in order.
    symbol: str
    bids: list[WireLevel] = []
    asks: list[WireLevel] = []
    checksum: U32


class BookFrame(msgspec.Struct, gc=False):
    channel: str
    type: Literal["snapshot", "update"]
    data: list[BookEntry]


@dataclass(frozen=True, slots=True)
class WireCodec:
    head: Callable[[bytes | str], Head]
    book: Callable[[bytes | str], BookFrame]
    value: Callable[[bytes | str], Any]  # any frame, untyped (replies)
    text: Callable[[Mapping[str, Any]], str]  # a request as the text frame Kraken expects


_encode = msgspec.json.Encoder().encode


def _text(message: Mapping[str, Any]) -> str:
    return _encode(message).decode()


MSGSPEC = WireCodec(
    head=msgspec.json.Decoder(Head).decode,
    book=msgspec.json.Decoder(BookFrame).decode,
    value=msgspec.json.Decoder().decode,
    text=_text,
)
_installed = MSGSPEC


def install(codec: WireCodec) -> None:
    """Use `codec` for every connection and book store made from now on (benchmarks only)."""
    global _installed  # noqa: PLW0603 - the one seam, documented above
    _installed = codec


def current() -> WireCodec:
    return _installed

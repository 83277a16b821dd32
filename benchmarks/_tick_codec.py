"""The tick-to-order baseline's codec: stdlib `json` at the WebSocket's edges, same results.

What a client built on stdlib `json` would do, kept exact and as fast as stdlib allows:
- a frame is parsed once: `head` and `book` read one `json.loads` (the last frame parsed is
  kept by identity), where the msgspec codec decodes it twice (a head, then the typed frame);
- numbers of a `book` frame stay their wire text (`parse_float` keeps the text; the book needs
  it for Kraken's checksum), and the types msgspec checks are checked here too (a misfit raises
  `msgspec.DecodeError`, so the book store's slow path sees it as it would);
- requests are written with `json.dumps`; it cannot write a number's text verbatim, so order
  numbers (`msgspec.Raw`) go through `float`, which is exact for these prices and volumes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from orchestrator.exchange.kraken.ws.book import WireLevel
from orchestrator.exchange.kraken.ws.codec import BookEntry, BookFrame, Head, WireCodec

_U32_MAX: Final = 0xFFFFFFFF


def _wire_text(text: str) -> msgspec.Raw:
    return msgspec.Raw(text.encode())


class _OneParse:
    """`json.loads` of the last frame, kept while the next frame is a different object."""

    __slots__ = ("frame", "value")

    def __init__(self) -> None:
        self.frame: bytes | str | None = None
        self.value: Any = None

    def load(self, frame: bytes | str) -> Any:
        if frame is not self.frame:
            try:
                value = json.loads(frame, parse_float=_wire_text)
            except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
                raise msgspec.DecodeError(f"not JSON: {exc}") from None
            self.frame, self.value = frame, value
        return self.value


def _fail(what: str) -> msgspec.ValidationError:
    return msgspec.ValidationError(f"expected {what}")


def _optional(message: dict[str, Any], key: str, kind: type) -> Any:
    value = message.get(key)
    if value is not None and (type(value) is not kind):
        raise _fail(f"{kind.__name__} at `$.{key}`")
    return value


def _number(value: Any) -> msgspec.Raw:
    """A level's number as its wire text (msgspec's `Raw` takes any JSON value; so do we)."""
    if type(value) is msgspec.Raw:
        return value
    if type(value) is int:
        return msgspec.Raw(str(value).encode())
    return msgspec.Raw(json.dumps(value).encode())  # not a number: the book refuses it


def _levels(value: Any) -> list[WireLevel]:
    if type(value) is not list:
        raise _fail("array of levels")
    levels = []
    for level in value:
        if type(level) is not dict or "price" not in level or "qty" not in level:
            raise _fail("a level with price and qty")
        levels.append(WireLevel(_number(level["price"]), _number(level["qty"])))
    return levels


def _entry(value: Any) -> BookEntry:
    if type(value) is not dict:
        raise _fail("object at `$.data[...]`")
    symbol, checksum = value.get("symbol"), value.get("checksum")
    if type(symbol) is not str:
        raise _fail("str at `$.data[...].symbol`")
    if type(checksum) is not int or not 0 <= checksum <= _U32_MAX:
        raise _fail("u32 at `$.data[...].checksum`")
    return BookEntry(
        symbol=symbol,
        bids=_levels(value.get("bids", [])),
        asks=_levels(value.get("asks", [])),
        checksum=checksum,
    )


class StdlibCodec:
    def __init__(self) -> None:
        self._parsed = _OneParse()
        self._plain = json.JSONDecoder()  # replies: floats as floats, as msgspec's untyped decode

    def head(self, frame: bytes | str) -> Head:
        message = self._parsed.load(frame)
        if type(message) is not dict:
            raise _fail("object")
        return Head(
            channel=_optional(message, "channel", str),
            method=_optional(message, "method", str),
            req_id=_optional(message, "req_id", int),
            success=_optional(message, "success", bool),
            error=_optional(message, "error", str),
        )

    def book(self, frame: bytes | str) -> BookFrame:
        message = self._parsed.load(frame)
        if type(message) is not dict:
            raise _fail("object")
        channel, kind, data = message.get("channel"), message.get("type"), message.get("data")
        if type(channel) is not str or kind not in ("snapshot", "update") or type(data) is not list:
            raise _fail("a book frame (channel, type, data)")
        return BookFrame(channel, kind, [_entry(entry) for entry in data])

    def value(self, frame: bytes | str) -> Any:
        try:
            return json.loads(frame)
        except ValueError as exc:
            raise msgspec.DecodeError(f"not JSON: {exc}") from None

    @staticmethod
    def text(message: Mapping[str, Any]) -> str:
        return json.dumps(message, separators=(",", ":"), default=_float_of_raw)


def _float_of_raw(value: Any) -> float:
    if isinstance(value, msgspec.Raw):
        return float(bytes(value))
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def stdlib_codec() -> WireCodec:
    codec = StdlibCodec()
    return WireCodec(head=codec.head, book=codec.book, value=codec.value, text=codec.text)

"""Typed decoding of the public `trade` and `ticker` channels (docs/kraken/websocket.md 4).

Numbers are decoded from their JSON text straight into `Decimal`, never through a float (a
float keeps only ~15 digits: a large volume at 8 decimals would come out wrong). The pair is
named as strategies name it, the registry's wsname (`XBT/USD`), not the v2 symbol of the wire.

Malformed input is the venue's, not a bug: it is counted and logged, never raised. A frame is
decoded whole on the fast path; one that fails is decoded entry by entry, so one bad trade costs
only itself.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Final, Generic, Literal, TypeVar

import msgspec

from orchestrator.exchange.instruments import Instruments
from orchestrator.logs import get_logger
from orchestrator.strategy import Ticker, Trade

log = get_logger(__name__)

_AwareTime = Annotated[datetime, msgspec.Meta(tz=True)]
_LOGGED_FRAME_BYTES: Final = 200
_ZERO: Final = Decimal(0)


class _TradeEntry(msgspec.Struct, gc=False):
    # Kraken's wire order (msgspec matches keys fastest in order); unknown fields are ignored.
    symbol: str
    side: Literal["buy", "sell"]
    price: Decimal
    qty: Decimal
    timestamp: _AwareTime


class _TickerEntry(msgspec.Struct, gc=False):
    symbol: str
    bid: Decimal
    ask: Decimal
    last: Decimal
    volume: Decimal  # of the last 24 hours


E = TypeVar("E", _TradeEntry, _TickerEntry)


class _Frame(msgspec.Struct, Generic[E], gc=False):
    channel: str
    type: Literal["snapshot", "update"]
    data: list[E]


class _Envelope(msgspec.Struct):
    """The slow path's view of a frame that failed the typed decode: its entries undecoded."""

    data: list[msgspec.Raw]


_ENVELOPE: Final = msgspec.json.Decoder(_Envelope)
_TRADES: Final = msgspec.json.Decoder(_Frame[_TradeEntry])
_TRADE: Final = msgspec.json.Decoder(_TradeEntry)
_TICKERS: Final = msgspec.json.Decoder(_Frame[_TickerEntry])
_TICKER: Final = msgspec.json.Decoder(_TickerEntry)


def _positive(*values: Decimal) -> bool:
    return all(v.is_finite() and v > _ZERO for v in values)


def _non_negative(*values: Decimal) -> bool:
    return all(v.is_finite() and v >= _ZERO for v in values)


class MarketDecoder:
    """Decodes `trade` and `ticker` frames into `strategy.Trade` / `strategy.Ticker`.

    `malformed` counts entries (or whole frames) refused; `unknown_symbol` counts entries of a
    symbol the registry does not list. Neither ever raises.
    """

    def __init__(self, instruments: Instruments) -> None:
        self._instruments = instruments
        self._pair_of: dict[str, str] = {}  # v2 symbol -> wsname, of the registry's symbols
        self.malformed = 0
        self.unknown_symbol = 0

    def trades(self, frame: bytes) -> list[Trade]:
        """Every well-formed trade of a `trade` frame, in the frame's order."""
        try:
            entries = _TRADES.decode(frame).data
        except msgspec.DecodeError:
            entries = self._entries(frame, _TRADE, "trade")
        out: list[Trade] = []
        for entry in entries:
            pair = self._pair(entry.symbol)
            if pair is None:
                continue
            if not _positive(entry.price, entry.qty):
                self._refuse("trade", f"price {entry.price} or qty {entry.qty} not positive")
                continue
            out.append(Trade(pair=pair, side=entry.side, price=entry.price, qty=entry.qty,
                             time_s=entry.timestamp.timestamp()))  # fmt: skip
        return out

    def tickers(self, frame: bytes) -> list[Ticker]:
        """Every well-formed ticker of a `ticker` frame (a side with no order shows 0)."""
        try:
            entries = _TICKERS.decode(frame).data
        except msgspec.DecodeError:
            entries = self._entries(frame, _TICKER, "ticker")
        out: list[Ticker] = []
        for entry in entries:
            pair = self._pair(entry.symbol)
            if pair is None:
                continue
            if not _non_negative(entry.bid, entry.ask, entry.last, entry.volume):
                self._refuse("ticker", f"negative or not finite: {entry}")
                continue
            out.append(Ticker(pair=pair, bid=entry.bid, ask=entry.ask, last=entry.last,
                              volume_24h=entry.volume))  # fmt: skip
        return out

    def _entries(self, frame: bytes, decoder: msgspec.json.Decoder[E], channel: str) -> list[E]:
        """The slow path: the entries that decode, each alone; the others counted."""
        try:
            raw_entries = _ENVELOPE.decode(frame).data
        except msgspec.DecodeError as exc:
            text = frame[:_LOGGED_FRAME_BYTES].decode("utf-8", "replace")
            self._refuse(channel, f"not a {channel} frame: {exc}", frame=text)
            return []
        entries: list[E] = []
        for raw in raw_entries:
            try:
                entries.append(decoder.decode(raw))
            except msgspec.DecodeError as exc:
                self._refuse(channel, str(exc))
        return entries

    def _pair(self, symbol: str) -> str | None:
        pair = self._pair_of.get(symbol)
        if pair is None:
            if symbol not in self._instruments:  # not cached: the venue's names are unbounded
                self.unknown_symbol += 1
                log.debug("feeds.unknown_symbol", symbol=symbol)
                return None
            pair = self._pair_of[symbol] = self._instruments.get(symbol).wsname
        return pair

    def _refuse(self, channel: str, reason: str, **fields: str) -> None:
        self.malformed += 1
        log.warning("feeds.malformed", channel=channel, reason=reason, **fields)

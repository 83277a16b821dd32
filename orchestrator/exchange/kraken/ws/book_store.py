"""The books of one WebSocket connection: routes `book` frames to their `L2Book`s.

One book's trouble (checksum mismatch, malformed entry) marks only that book stale and yields a
`resync_needed` event for it, which the WS client answers by re-subscribing that symbol alone.
The connection's trouble (it dropped) marks every book stale at once (`mark_all_stale`).
Frames of other channels are ignored; nothing here raises on venue input.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from orchestrator.exchange.instruments import Instrument
from orchestrator.exchange.kraken.ws.book import (
    BookEvent,
    EventKind,
    L2Book,
    MalformedBookData,
    PairPrecision,
)
from orchestrator.exchange.kraken.ws.codec import BookEntry, current
from orchestrator.logs import get_logger

log = get_logger(__name__)
_LOGGED_FRAME_BYTES: Final = 200


class _Envelope(msgspec.Struct):
    """The slow path's lenient view of a frame that failed the typed decode."""

    channel: Any = None
    type: Any = None
    data: msgspec.Raw = msgspec.Raw(b"null")  # any JSON value; a union with Raw is not allowed


class _SymbolOnly(msgspec.Struct):
    symbol: Any = None


_ENVELOPE_DECODER: Final = msgspec.json.Decoder(_Envelope)
_ENTRIES_DECODER: Final = msgspec.json.Decoder(list[msgspec.Raw])
_ENTRY_DECODER: Final = msgspec.json.Decoder(BookEntry)
_SYMBOL_DECODER: Final = msgspec.json.Decoder(_SymbolOnly)


class BookStore:
    """The books of one connection, keyed by symbol; routes `book` frames to them.

    One book's trouble (checksum mismatch, malformed entry) marks only that book stale and
    yields a `resync_needed` event for it; its updates are then ignored until a new snapshot.
    Frames of other channels are ignored. Nothing here raises on venue input.
    """

    def __init__(self) -> None:
        self._decode_frame = current().book  # the typed decode of a frame (codec.py)
        self._books: dict[str, L2Book] = {}
        self._update_ok: dict[str, tuple[BookEvent]] = {}
        self.mismatches = 0  # checksum mismatches, all books
        self.malformed = 0  # frames or data entries refused as malformed
        self.ignored_stale = 0  # updates dropped because their book awaits a snapshot
        self.unknown_symbol = 0  # entries for symbols with no book here

    def add_book(self, symbol: str, depth: int, precision: PairPrecision) -> L2Book:
        """Register (or replace) the book for `symbol`; it is stale until its snapshot."""
        book = L2Book(symbol, depth, precision)
        self._books[symbol] = book
        self._update_ok[symbol] = (BookEvent(symbol, "update", True),)  # immutable: shared
        return book

    def add_instrument(self, instrument: Instrument, depth: int) -> L2Book:
        """The book of an instrument of the registry: its v2 symbol and decimals."""
        precision = PairPrecision(
            price_decimals=instrument.price_decimals, qty_decimals=instrument.qty_decimals
        )
        return self.add_book(instrument.symbol, depth, precision)

    def remove_book(self, symbol: str) -> None:
        self._books.pop(symbol, None)
        self._update_ok.pop(symbol, None)

    def book(self, symbol: str) -> L2Book | None:
        return self._books.get(symbol)

    @property
    def symbols(self) -> list[str]:
        return list(self._books)

    @property
    def stale_symbols(self) -> list[str]:
        """Books that do not mirror the venue now (awaiting a snapshot, or refused one)."""
        return [symbol for symbol, book in self._books.items() if book.stale]

    def mark_all_stale(self, reason: str) -> tuple[BookEvent, ...]:
        """The connection dropped: every book is stale now, and until its next snapshot.

        One `stale` event per book that was whole; a book already stale has no news.
        """
        events = tuple(
            BookEvent(symbol, "stale", False, reason=reason)
            for symbol, book in self._books.items()
            if not book.stale
        )
        for book in self._books.values():
            book.mark_stale()
        return events

    def on_message(self, raw: bytes | str) -> tuple[BookEvent, ...]:
        """Apply one WS frame; entries of `data` are applied in order, one event or more each."""
        try:
            frame = self._decode_frame(raw)
        except msgspec.DecodeError:
            return self._on_irregular(raw)
        if frame.channel != "book":
            return ()
        data = frame.data
        if len(data) == 1 and frame.type == "update":
            # The common frame, kept short: one update for a live book.
            entry = data[0]
            book = self._books.get(entry.symbol)
            if book is not None and not book.stale:
                try:
                    if book.apply_update(entry.bids, entry.asks, entry.checksum):
                        return self._update_ok[entry.symbol]
                except MalformedBookData as exc:
                    return self._refused(entry.symbol, str(exc))
                return self._mismatched(book, entry, snapshot=False)
        events: list[BookEvent] = []
        snapshot = frame.type == "snapshot"
        for entry in data:
            self._apply_entry(entry, snapshot, events)
        return tuple(events)

    def _apply_entry(self, entry: BookEntry, snapshot: bool, events: list[BookEvent]) -> None:
        symbol = entry.symbol
        book = self._books.get(symbol)
        if book is None:
            self.unknown_symbol += 1
            log.debug("book.unknown_symbol", symbol=symbol)
            return
        if not snapshot and book.stale:
            self.ignored_stale += 1
            return
        try:
            if snapshot:
                ok = book.apply_snapshot(entry.bids, entry.asks, entry.checksum)
            else:
                ok = book.apply_update(entry.bids, entry.asks, entry.checksum)
        except MalformedBookData as exc:
            self._refuse_entry(symbol, str(exc), events, resync=True)
            return
        if ok:
            events.append(BookEvent(symbol, "snapshot" if snapshot else "update", ok))
        else:
            self._on_mismatch(book, entry, snapshot, events)

    def _refused(self, symbol: str, reason: str) -> tuple[BookEvent, ...]:
        events: list[BookEvent] = []
        self._refuse_entry(symbol, reason, events, resync=True)
        return tuple(events)

    def _mismatched(
        self, book: L2Book, entry: BookEntry, *, snapshot: bool
    ) -> tuple[BookEvent, ...]:
        events: list[BookEvent] = []
        self._on_mismatch(book, entry, snapshot, events)
        return tuple(events)

    def _on_mismatch(
        self, book: L2Book, entry: BookEntry, snapshot: bool, events: list[BookEvent]
    ) -> None:
        self.mismatches += 1
        kind: EventKind = "snapshot" if snapshot else "update"
        log.warning(
            "book.checksum_mismatch",
            symbol=book.symbol,
            kind=kind,
            expected=entry.checksum,
            computed=book.checksum(),
        )
        events.append(BookEvent(book.symbol, kind, False))
        events.append(BookEvent(book.symbol, "resync_needed", False, reason="checksum"))

    def _on_irregular(self, raw: bytes | str) -> tuple[BookEvent, ...]:
        """The slow path: tell other channels from malformed book frames, entry by entry."""
        try:
            envelope = _ENVELOPE_DECODER.decode(raw)
        except msgspec.DecodeError as exc:
            self._refuse_frame(raw, f"not a JSON object: {exc}")
            return ()
        if envelope.channel != "book":
            return ()
        events: list[BookEvent] = []
        try:
            entries = _ENTRIES_DECODER.decode(envelope.data)
        except msgspec.DecodeError:
            entries = []
        if not entries:
            self._refuse_frame(raw, "book frame without a data list")
            return tuple(events)
        if envelope.type not in ("snapshot", "update"):
            # Something was sent for these symbols that we cannot apply: they are out of sync.
            for raw_entry in entries:
                self._refuse_entry(
                    _symbol_of(raw_entry), f"unknown type {envelope.type!r}", events, resync=False
                )
            return tuple(events)
        snapshot = envelope.type == "snapshot"
        for raw_entry in entries:
            try:
                entry = _ENTRY_DECODER.decode(raw_entry)
            except msgspec.DecodeError as exc:
                # A lost snapshot leaves the book waiting forever: always ask again for it.
                self._refuse_entry(_symbol_of(raw_entry), str(exc), events, resync=snapshot)
                continue
            self._apply_entry(entry, snapshot, events)
        return tuple(events)

    def _refuse_frame(self, raw: bytes | str, reason: str) -> None:
        self.malformed += 1
        head = raw[:_LOGGED_FRAME_BYTES]
        text = head if isinstance(head, str) else bytes(head).decode("utf-8", "replace")
        log.warning("book.malformed_frame", reason=reason, frame=text)

    def _refuse_entry(
        self, symbol: str | None, reason: str, events: list[BookEvent], *, resync: bool
    ) -> None:
        """Count a malformed entry; its book (if any) goes stale and asks for a resync once."""
        self.malformed += 1
        log.warning("book.malformed_entry", symbol=symbol, reason=reason)
        book = self._books.get(symbol) if symbol is not None else None
        if book is None:
            return
        was_stale = book.stale
        book.mark_stale()
        if resync or not was_stale:
            events.append(BookEvent(book.symbol, "resync_needed", False, reason="malformed"))


def _symbol_of(raw_entry: msgspec.Raw) -> str | None:
    try:
        symbol = _SYMBOL_DECODER.decode(raw_entry).symbol
    except msgspec.DecodeError:
        return None
    return symbol if isinstance(symbol, str) else None

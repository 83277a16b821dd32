"""The audit trail: every command and its outcome, halts, strategy failures, transfers.

    audit = AuditLog(redis, keys, clock, mirror=Path("/var/log/orchestrator/audit.jsonl"))
    await audit.append("halt", {"operator": "ada", "reason": "desk drill"})
    entries = await audit.read(since="0", count=100)

One capped Redis stream, `keys.audit()` (`XADD MAXLEN ~ max_len`), whose entries have three
fields: `kind`, `time_s` (wall clock, as text) and `record` (a JSON object). The bus's `finish`
script writes command outcomes in the same form, so readers see one shape whoever wrote it.

The optional mirror is a JSON-lines file on the writer's host, for a desk that keeps its audit
trail outside Redis (whose stream is capped). A line is one `write` on a file opened for append
(so several processes can share one file), created owner-only (0o600). The mirror is a second
copy, never a gate: a line it cannot write is logged and the caller goes on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis
from redis.typing import EncodableT, FieldT

from orchestrator.clock import Clock
from orchestrator.logs import get_logger
from orchestrator.store.errors import redis_errors
from orchestrator.store.keys import Keys

log = get_logger(__name__)

_MIRROR_MODE: Final = 0o600
# A record is data about what happened: a value JSON cannot hold (a Decimal is text already)
# is written as its text rather than losing the whole record.
_encoder: Final = msgspec.json.Encoder(decimal_format="string", enc_hook=str)
_record: Final = msgspec.json.Decoder(dict[str, Any])


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    entry: str  # the stream entry id ("1733112000000-0")
    kind: str  # command | halt | strategy_failed | transfer | ...
    time_s: float
    record: dict[str, Any]


def encode_record(record: Mapping[str, Any]) -> bytes:
    """The `record` field of an audit entry."""
    return _encoder.encode(record)


def decode_entry(entry: bytes | str, fields: Mapping[bytes | str, bytes | str]) -> AuditEntry:
    """One stream entry as an `AuditEntry`. Readers show whatever is there: a field missing or
    unreadable (written by hand, or by a newer version) does not hide the entry; its raw text
    is kept under `record["unreadable"]`."""
    text = {_text(name): _text(value) for name, value in fields.items()}
    try:
        time_s = float(text.get("time_s", "nan"))
    except ValueError:
        time_s = float("nan")
    raw = text.get("record", "{}")
    try:
        record = _record.decode(raw)
    except msgspec.DecodeError:
        record = {"unreadable": raw}
    return AuditEntry(entry=_text(entry), kind=text.get("kind", "?"), time_s=time_s, record=record)


def decode_rows(rows: Any) -> list[AuditEntry]:
    """XRANGE / XREAD rows (`[(entry id, fields), ...]`) as entries; a row without fields (an
    entry deleted under a pending reader) is left out."""
    return [decode_entry(entry, fields) for entry, fields in rows or () if entry and fields]


class AuditLog:
    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        clock: Clock,
        *,
        max_len: int = 100_000,
        mirror: Path | None = None,
    ) -> None:
        if max_len < 1:
            raise ValueError(f"max_len must be at least 1 (got {max_len})")
        self.redis = redis
        self.key: Final = keys.audit()
        self.clock = clock
        self.max_len = max_len
        self.mirror_path = mirror

    async def append(self, kind: str, record: Mapping[str, Any]) -> None:
        """XADD one entry (then mirror it). Raises `StoreError` / `StoreUnavailable` when Redis
        did not take it; the mirror still gets its line then (without an entry id)."""
        time_s = self.clock.time()
        body = encode_record(record)
        fields: dict[FieldT, EncodableT] = {"kind": kind, "time_s": repr(time_s), "record": body}
        entry: str | None = None
        try:
            async with redis_errors(self.redis, "audit.append"):
                added = await self.redis.xadd(
                    self.key, fields, maxlen=self.max_len, approximate=True
                )
            entry = _text(added)
        finally:
            self._mirror_line(kind, time_s, body, entry)

    def mirror(self, kind: str, record: Mapping[str, Any]) -> None:
        """Write one line to the mirror file only (when Redis is not the point, or is away)."""
        self._mirror_line(kind, self.clock.time(), encode_record(record), None)

    async def read(self, *, since: str = "0", count: int = 100) -> list[AuditEntry]:
        """Up to `count` entries after entry id `since` (exclusive), oldest first: pass the last
        entry id read to page on. `since="0"` starts at the oldest entry kept."""
        async with redis_errors(self.redis, "audit.read"):
            rows = await self.redis.xrange(self.key, min=f"({since}", max="+", count=count)
        return decode_rows(rows)

    def _mirror_line(self, kind: str, time_s: float, body: bytes, entry: str | None) -> None:
        if self.mirror_path is None:
            return
        head = _encoder.encode({"entry": entry, "kind": kind, "time_s": time_s})
        line = head[:-1] + b',"record":' + body + b"}\n"  # the record's bytes as Redis has them
        try:
            fd = os.open(self.mirror_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, _MIRROR_MODE)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as exc:
            log.warning("audit.mirror_failed", path=str(self.mirror_path), kind=kind,
                        entry=entry, error=f"{type(exc).__name__}: {exc.strerror}")  # fmt: skip


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value

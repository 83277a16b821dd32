"""The transfer journal: every move of money written to Redis *before* the venue hears of it,
and moved through its states only as the venue's answer or its ledgers say.

    journal = TransferJournal(redis, keys, clock)
    await journal.create(record)                       # state `intent`, before anything is sent
    await journal.update(sent, expected="intent")      # compare-and-set on the state
    await journal.open_records(); await journal.in_flight(); await journal.moved_today(a, day)

Four keys, one hash tag (`Keys.rebalancer_*`), so the write script also runs on Redis Cluster:
- `transfers`: hash record id -> record (msgspec JSON, Decimals as exact strings);
- `open`: hash record id -> state of every record not final yet (what `reconcile` walks);
- `finished`: sorted set of final record ids by finish time, kept `finished_keep_s` and at
  most `finished_max` of them; older ones leave `transfers` too (bounded memory);
- `day:<YYYY-MM-DD>`: hash record id -> (kind, asset, amount) of that UTC day's moves that did
  not fail (counted from `intent` on: a move that may still happen counts), for the daily caps;
  it expires `day_ttl_s` after its last write.

Every write is one Lua script: the record, its state in `open` or its place in `finished`, and
its day entry change together or not at all. `update` is a compare-and-set on the state: it
applies only if the record is still open in `expected`, so two writers (a cycle and a
reconciliation, or two processes by mistake) can never both move one record, and a final
record never changes again. A write whose reply was lost may have landed: the caller reads the
record back (`get`) rather than guessing. Redis errors reach callers once translated
(`redis_errors`) as `StoreError` / `StoreUnavailable`; a corrupt record is a `StoreError`
naming it, never dropped (it may be money in flight).

Persistence: like the order journal, only as durable as Redis (run it with AOF).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Final, cast

import msgspec
import redis.asyncio as aioredis

from orchestrator.clock import Clock
from orchestrator.errors import StoreError
from orchestrator.rebalancer.transfers import FINAL_STATES, MoveKind, TransferRecord, TransferState
from orchestrator.store.errors import redis_errors
from orchestrator.store.keys import Keys

FINISHED_MAX: Final = 10_000
FINISHED_KEEP_S: Final = 7 * 86_400.0
DAY_TTL_S: Final = 8 * 86_400

# KEYS: transfers, open, finished, day. ARGV: id, expected state ('' for a new record), state,
# record, final ('1'/'0'), finished score, counted ('1'/'0'), day entry, day ttl, finished max,
# finished cutoff. Returns -1 when the record is not as expected, else how many are open.
_WRITE_LUA: Final = """
local id = ARGV[1]
if ARGV[2] == '' then
  if redis.call('HEXISTS', KEYS[1], id) == 1 then return -1 end
elseif redis.call('HGET', KEYS[2], id) ~= ARGV[2] then
  return -1
end
redis.call('HSET', KEYS[1], id, ARGV[4])
if ARGV[5] == '1' then
  redis.call('HDEL', KEYS[2], id)
  redis.call('ZADD', KEYS[3], ARGV[6], id)
  local drop = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[11])
  local over = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[10])
  if over > 0 then
    for _, old in ipairs(redis.call('ZRANGE', KEYS[3], 0, over - 1)) do table.insert(drop, old) end
  end
  for _, old in ipairs(drop) do
    if old ~= id then
      redis.call('HDEL', KEYS[1], old)
      redis.call('ZREM', KEYS[3], old)
    end
  end
else
  redis.call('HSET', KEYS[2], id, ARGV[3])
end
if ARGV[7] == '1' then
  redis.call('HSET', KEYS[4], id, ARGV[8])
  redis.call('EXPIRE', KEYS[4], ARGV[9])
else
  redis.call('HDEL', KEYS[4], id)
end
return redis.call('HLEN', KEYS[2])
"""


class _DayEntry(msgspec.Struct, frozen=True, kw_only=True):
    kind: MoveKind
    asset: str
    amount: Decimal


_ENCODER: Final = msgspec.json.Encoder()
_RECORD: Final = msgspec.json.Decoder(TransferRecord)
_DAY_ENTRY: Final = msgspec.json.Decoder(_DayEntry)


class TransferJournal:
    """The rebalancer's journal of moves (see the module). `clock` stamps finish times."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        clock: Clock,
        *,
        finished_max: int = FINISHED_MAX,
        finished_keep_s: float = FINISHED_KEEP_S,
        day_ttl_s: int = DAY_TTL_S,
    ) -> None:
        if finished_max < 1 or finished_keep_s <= 0 or day_ttl_s < 1:
            raise ValueError("finished_max, finished_keep_s and day_ttl_s must be positive")
        self._redis = redis
        self._keys = keys
        self.clock = clock
        self.finished_max = finished_max
        self.finished_keep_s = finished_keep_s
        self.day_ttl_s = day_ttl_s
        self.records_key: Final = keys.rebalancer_transfers()
        self.open_key: Final = keys.rebalancer_open()
        self.finished_key: Final = keys.rebalancer_finished()
        self.open_count: int | None = None  # open records as of this journal's last write
        self._write = redis.register_script(_WRITE_LUA)

    # --- writes ----------------------------------------------------------------------------------
    async def create(self, record: TransferRecord) -> None:
        """Journal a new record (normally `intent`, before anything is sent). `ValueError` if
        its id is already journalled (ids are ours and never reused)."""
        if not await self._put(record, expected=""):
            raise ValueError(f"transfer record {record.id!r} is already journalled")

    async def update(self, record: TransferRecord, *, expected: TransferState) -> bool:
        """Write `record` if it is still open in state `expected`; False (nothing written) if
        it is not: another writer moved it, or it is final."""
        return await self._put(record, expected=expected)

    async def _put(self, record: TransferRecord, *, expected: str) -> bool:
        planned = record.planned
        day_entry = _DayEntry(kind=planned.kind, asset=planned.asset, amount=planned.amount)
        final = record.state in FINAL_STATES
        now_s = self.clock.time()
        args: list[bytes | str | int] = [
            record.id, expected, record.state, _ENCODER.encode(record), "1" if final else "0",
            repr(record.updated_s), "0" if record.state == "failed" else "1",
            _ENCODER.encode(day_entry), self.day_ttl_s, self.finished_max,
            repr(now_s - self.finished_keep_s),
        ]  # fmt: skip
        keys = [self.records_key, self.open_key, self.finished_key, self._day_key(record.day)]
        async with redis_errors(self._redis, f"transfer_journal.write {record.id}"):
            result = int(await self._write(keys=keys, args=args))
        if result < 0:
            return False
        self.open_count = result
        return True

    # --- reads -----------------------------------------------------------------------------------
    async def get(self, record_id: str) -> TransferRecord | None:
        """The record, open or finished (until it ages out of the bounded history)."""
        async with redis_errors(self._redis, f"transfer_journal.get {record_id}"):
            raw = await self._redis.hget(self.records_key, record_id)
        return None if raw is None else self._decode(record_id, raw)

    async def open_records(self) -> list[TransferRecord]:
        """Every record not final yet, oldest first."""
        async with redis_errors(self._redis, "transfer_journal.open_records"):
            ids = await self._redis.hkeys(self.open_key)
            raws = await self._redis.hmget(self.records_key, ids) if ids else []
        records = self._decode_all(ids, raws)
        missing = [_text(i) for i, raw in zip(ids, raws, strict=True) if raw is None]
        if missing:  # an open id without its record: the journal lost what may be in flight
            raise StoreError(f"transfer journal {self.open_key}: open ids without records "
                             f"{missing}")  # fmt: skip
        records = [r for r in records if not r.is_final]  # finished between the two reads
        self.open_count = len(records)
        return sorted(records, key=lambda r: (r.created_s, r.id))

    async def finished(self, count: int = 100) -> list[TransferRecord]:
        """The `count` most recently finished records, newest first (for `list_transfers`)."""
        if count < 1:
            raise ValueError(f"count must be >= 1, not {count}")
        async with redis_errors(self._redis, "transfer_journal.finished"):
            ids = cast(list[bytes | str], await self._redis.zrevrange(self.finished_key, 0,
                                                                       count - 1))  # fmt: skip
            raws = await self._redis.hmget(self.records_key, ids) if ids else []
        return self._decode_all(ids, raws)

    async def in_flight(self) -> set[tuple[str, str]]:
        """(account, asset) of both ends of every open record: nothing else is sent for them."""
        busy: set[tuple[str, str]] = set()
        for record in await self.open_records():
            planned = record.planned
            busy |= {(planned.source, planned.asset), (planned.target, planned.asset)}
        return busy

    async def moved_today(self, asset: str, day: str) -> Decimal:
        """How much of `asset` transfers between accounts (spot and futures) moved or may still
        move on UTC `day`: every record of that day but the failed ones; not withdrawals."""
        return sum(
            (e.amount for e in await self._day(day) if e.asset == asset and e.kind != "withdrawal"),
            Decimal(0),
        )

    async def withdrawn_today(self, day: str) -> dict[str, Decimal]:
        """Per asset, what withdrawals of UTC `day` took or may still take out (failed ones not
        counted): what the caller values in USD against the tier's daily withdrawal limit."""
        out: dict[str, Decimal] = {}
        for entry in await self._day(day):
            if entry.kind == "withdrawal":
                out[entry.asset] = out.get(entry.asset, Decimal(0)) + entry.amount
        return out

    async def _day(self, day: str) -> list[_DayEntry]:
        key = self._day_key(day)
        async with redis_errors(self._redis, f"transfer_journal.day {key}"):
            raws = await self._redis.hvals(key)
        try:
            return [_DAY_ENTRY.decode(_bytes(raw)) for raw in raws]
        except msgspec.DecodeError as exc:
            raise StoreError(f"transfer journal {key}: corrupt day entry ({exc})") from exc

    def _day_key(self, day: str) -> str:
        return self._keys.rebalancer_day(day)

    def _decode_all(
        self, ids: Sequence[bytes | str], raws: Iterable[bytes | str | None]
    ) -> list[TransferRecord]:
        return [
            self._decode(_text(i), raw) for i, raw in zip(ids, raws, strict=True) if raw is not None
        ]

    def _decode(self, record_id: str | bytes, raw: bytes | str) -> TransferRecord:
        record_id = _text(record_id)
        try:
            record = _RECORD.decode(_bytes(raw))
        except msgspec.DecodeError as exc:
            raise StoreError(f"transfer journal: record {record_id!r} is corrupt ({exc})") from exc
        if record.id != record_id:
            raise StoreError(f"transfer journal: {record_id!r} holds record {record.id!r}")
        return record


def _bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value

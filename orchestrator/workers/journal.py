"""The order journal: every order intent written to Redis *before* it is sent, and resolved from
the venue's answer, never guessed.

The order manager calls `record` before it sends an order and `settle` once the venue (its reply,
the `executions` channel, or reconciliation by `cl_ord_id` against open and closed orders) says
what became of it. At start it reconciles `pending()`: an entry still pending is an order whose
fate this process never learnt, so it may or may not be on the venue; only the venue can say.

Two keys per account (`Keys.order_journal`, `Keys.order_outcomes`):
- a hash `cl_ord_id -> entry` of the intents not settled yet;
- a stream of settled entries, capped (`MAXLEN ~ settled_maxlen`), for audit and for tests.
Entries are msgspec JSON (Decimals as exact strings), readable with `redis-cli HGETALL`.

Failure modes the caller relies on:
- Redis unreachable: `record` raises `StoreUnavailable` (within the client's socket timeout):
  the manager refuses the intent and sends nothing. A `record` whose reply was lost may have
  landed; the entry then stays pending and reconciliation settles it `not_placed` (the venue
  never saw that `cl_ord_id`). Recording the very same entry again is accepted, so a retry is safe.
- `settle` is atomic (a Lua script: XADD the outcome, then HDEL the entry, or nothing) and
  idempotent: settling an id no longer pending does nothing, so the venue's answer and
  reconciliation may both settle one order. A lost reply: settle again.
- A corrupt entry is a `StoreError` naming the key and the `cl_ord_id`, never dropped: dropping
  it would forget an order that may be live on the venue.

Persistence: the journal is only as durable as Redis. A Redis restarted without persistence has
lost every pending entry, and with them the knowledge of which orders were in flight (the
orphan policy then meets those orders as strangers). In production run Redis with AOF
(`appendonly yes`, `appendfsync everysec` or `always`).

The two keys share one hash tag (`Keys.order_journal`), so the script also runs on Redis Cluster.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final, Literal, get_args

import msgspec
import redis.asyncio as aioredis

from orchestrator.errors import StoreError
from orchestrator.logs import get_logger
from orchestrator.store.errors import redis_errors
from orchestrator.store.keys import Keys
from orchestrator.strategy import OrderType, Side, TimeInForce
from orchestrator.workers.order_states import TrackedOrder

log = get_logger(__name__)

Outcome = Literal["placed", "not_placed", "rejected"]
_OUTCOMES: Final = frozenset(get_args(Outcome))

# KEYS: pending hash, settled stream. ARGV: cl_ord_id, maxlen, encoded settlement.
# XADD first: if it fails (a wrong type, maxmemory), the entry stays pending and nothing changed;
# HDEL cannot fail after it (deletions are allowed at maxmemory).
_SETTLE_LUA: Final = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'entry', raw, 'settlement', ARGV[3])
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
"""


class JournalEntry(msgspec.Struct, frozen=True, kw_only=True):
    """An order intent as journalled before sending: enough to find it on the venue
    (`cl_ord_id`) and to rebuild the order if the venue has it.

    Unknown fields are ignored when decoding, so a process rolled back reads the journal of a
    newer one instead of refusing to start."""

    cl_ord_id: str
    strategy: str
    account: str
    pair: str  # the instrument's wsname
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    post_only: bool
    volume: Decimal
    price: Decimal | None
    created_s: float
    fence: int = 0  # the lease's fencing token, once leases exist


class _Settlement(msgspec.Struct, frozen=True, kw_only=True):
    outcome: Outcome
    txid: str | None = None
    reason: str | None = None


class SettledEntry(msgspec.Struct, frozen=True, kw_only=True):
    """What became of one journalled intent; `settled_s` is Redis's clock when it was settled."""

    entry: JournalEntry
    outcome: Outcome
    txid: str | None
    reason: str | None
    settled_s: float

    @property
    def cl_ord_id(self) -> str:
        return self.entry.cl_ord_id


_ENCODER: Final = msgspec.json.Encoder()
_ENTRY: Final = msgspec.json.Decoder(JournalEntry)
_SETTLEMENT: Final = msgspec.json.Decoder(_Settlement)


class OrderJournal:
    """The journal of one account's order intents (see the module)."""

    def __init__(
        self, redis: aioredis.Redis, keys: Keys, account: str, *, settled_maxlen: int = 10_000
    ) -> None:
        if settled_maxlen < 1:
            raise ValueError(f"settled_maxlen must be >= 1, not {settled_maxlen}")
        self._redis = redis
        self.account = account
        self.pending_key: Final = keys.order_journal(account)
        self.settled_key: Final = keys.order_outcomes(account)
        self.settled_maxlen = settled_maxlen
        self._settle = redis.register_script(_SETTLE_LUA)

    async def record(self, entry: JournalEntry) -> None:
        """Journal `entry` before its order is sent. `StoreError`/`StoreUnavailable`: do not send.

        `ValueError` (a programming error) for an entry of another account, an empty
        `cl_ord_id`, or a `cl_ord_id` already pending with different contents. The same entry
        recorded twice (a retry after a lost reply) is accepted."""
        if entry.account != self.account:
            raise ValueError(
                f"entry of account {entry.account!r} in the journal of {self.account!r}"
            )
        if not entry.cl_ord_id:
            raise ValueError("an entry needs a cl_ord_id")
        raw = _ENCODER.encode(entry)
        existing: bytes | str | None = None
        async with redis_errors(self._redis, f"journal.record {self.pending_key}"):
            added = await self._redis.hsetnx(self.pending_key, entry.cl_ord_id, raw)
            if not added:
                existing = await self._redis.hget(self.pending_key, entry.cl_ord_id)
        if not added and (existing is None or _bytes(existing) != raw):
            raise ValueError(
                f"cl_ord_id {entry.cl_ord_id!r} is already pending in {self.pending_key}"
            )

    async def settle(
        self,
        cl_ord_id: str,
        outcome: Outcome,
        *,
        txid: str | None = None,
        reason: str | None = None,
    ) -> bool:
        """Resolve a pending entry with what the venue said. True if this call settled it; False
        if it was not pending (already settled, or never recorded): nothing is written."""
        if outcome not in _OUTCOMES:
            raise ValueError(f"outcome {outcome!r} is not one of {sorted(_OUTCOMES)}")
        settlement = _ENCODER.encode(_Settlement(outcome=outcome, txid=txid, reason=reason))
        async with redis_errors(self._redis, f"journal.settle {self.pending_key}"):
            done = await self._settle(
                keys=[self.pending_key, self.settled_key],
                args=[cl_ord_id, self.settled_maxlen, settlement],
            )
        if not done:
            log.info("journal.settle_not_pending", key=self.pending_key, cl_ord_id=cl_ord_id,
                     outcome=outcome)  # fmt: skip
        return bool(done)

    async def pending(self) -> list[JournalEntry]:
        """Every entry not settled yet, oldest first. `StoreError` naming each corrupt one."""
        async with redis_errors(self._redis, f"journal.pending {self.pending_key}"):
            raw_entries = await self._redis.hgetall(self.pending_key)
        entries: list[JournalEntry] = []
        corrupt: list[str] = []
        for field, raw in raw_entries.items():
            cl_ord_id = _bytes(field).decode(errors="replace")
            try:
                entry = _ENTRY.decode(_bytes(raw))
            except msgspec.DecodeError as exc:
                corrupt.append(f"{cl_ord_id!r} ({exc})")
                continue
            if entry.cl_ord_id != cl_ord_id or entry.account != self.account:
                corrupt.append(f"{cl_ord_id!r} (holds {entry.cl_ord_id!r} of {entry.account!r})")
                continue
            entries.append(entry)
        if corrupt:
            log.error("journal.corrupt", key=self.pending_key, entries=corrupt)
            raise StoreError(f"journal {self.pending_key}: corrupt entries {', '.join(corrupt)}")
        entries.sort(key=lambda e: (e.created_s, e.cl_ord_id))
        return entries

    async def settled(self, count: int = 100) -> list[SettledEntry]:
        """The `count` most recently settled entries, newest first."""
        if count < 1:
            raise ValueError(f"count must be >= 1, not {count}")
        async with redis_errors(self._redis, f"journal.settled {self.settled_key}"):
            rows = await self._redis.xrevrange(self.settled_key, count=count)
        return [
            self._settled_entry(
                _bytes(stream_id), {_bytes(k): _bytes(v) for k, v in fields.items()}
            )
            for stream_id, fields in rows or ()
            if stream_id is not None and fields is not None
        ]

    def _settled_entry(self, stream_id: bytes, fields: dict[bytes, bytes]) -> SettledEntry:
        where = f"journal {self.settled_key}: settled entry {stream_id.decode(errors='replace')}"
        try:
            entry = _ENTRY.decode(fields[b"entry"])
        except (KeyError, msgspec.DecodeError) as exc:
            raise StoreError(f"{where} is corrupt ({exc!r})") from exc
        try:
            settlement = _SETTLEMENT.decode(fields[b"settlement"])
        except (KeyError, msgspec.DecodeError) as exc:
            raise StoreError(f"{where} of {entry.cl_ord_id!r} is corrupt ({exc!r})") from exc
        settled_ms = int(stream_id.split(b"-", 1)[0])
        return SettledEntry(
            entry=entry,
            outcome=settlement.outcome,
            txid=settlement.txid,
            reason=settlement.reason,
            settled_s=settled_ms / 1000,
        )


def _bytes(value: bytes | str) -> bytes:
    """Replies as bytes, whether or not the client decodes responses."""
    return value.encode() if isinstance(value, str) else value


def journal_entry(
    order: TrackedOrder, *, strategy: str, account: str, created_s: float
) -> JournalEntry:
    """The entry that is written before `order` is sent."""
    return JournalEntry(cl_ord_id=order.cl_ord_id, strategy=strategy, account=account,
                        pair=order.instrument.wsname, side=order.side,
                        order_type=order.order_type, time_in_force=order.time_in_force,
                        post_only=order.post_only, volume=order.volume, price=order.price,
                        created_s=created_s)  # fmt: skip

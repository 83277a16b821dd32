"""The transfer journal on fakeredis and on the private redis-server (its Lua script for real):
states moved by compare-and-set only, open records, in-flight accounts, the day's counts, the
bounded history, and Redis errors in our tree."""

from __future__ import annotations

import uuid
from decimal import Decimal

import fakeredis
import msgspec
import pytest
import redis.asyncio as aioredis

from orchestrator.clock import ManualClock
from orchestrator.errors import StoreError, StoreUnavailable
from orchestrator.rebalancer.journal import TransferJournal
from orchestrator.rebalancer.transfers import (
    MoveKind,
    PlannedTransfer,
    TransferRecord,
    TransferState,
    utc_day,
)
from orchestrator.store.keys import Keys


def record(
    state: TransferState = "intent", *, amount: str = "10", asset: str = "ZUSD",
    kind: MoveKind = "transfer", source: str = "master", target: str = "s0",
    at_s: float = 1_700_000_000.0, record_id: str | None = None,
) -> TransferRecord:  # fmt: skip
    planned = PlannedTransfer(kind=kind, asset=asset, amount=Decimal(amount), source=source,
                              target=target, reason="band_low")  # fmt: skip
    return TransferRecord(id=record_id or uuid.uuid4().hex, planned=planned, state=state,
                          trigger="period", created_s=at_s, updated_s=at_s,
                          day=utc_day(at_s))  # fmt: skip


def moved(rec: TransferRecord, state: TransferState, **changes: object) -> TransferRecord:
    return msgspec.structs.replace(rec, state=state, **changes)


async def test_a_record_is_written_before_and_moved_by_compare_and_set(
    any_redis: aioredis.Redis, keys: Keys, clock: ManualClock
) -> None:
    journal = TransferJournal(any_redis, keys, clock)
    intent = moved(record(), "intent", ledger_mark="LABC", ledger_mark_s=1.5)
    await journal.create(intent)
    assert await journal.get(intent.id) == intent
    assert [r.id for r in await journal.open_records()] == [intent.id]
    assert journal.open_count == 1
    sent = moved(intent, "sent", sent_s=clock.time())
    assert await journal.update(sent, expected="intent")
    assert not await journal.update(moved(intent, "failed"), expected="intent")  # it moved on
    assert await journal.get(intent.id) == sent
    done = moved(sent, "complete", venue_id="TR1")
    assert await journal.update(done, expected="sent")
    assert journal.open_count == 0
    assert await journal.open_records() == []
    assert not await journal.update(moved(done, "failed"), expected="complete")  # final: never
    assert await journal.get(intent.id) == done
    assert await journal.finished() == [done]


async def test_an_id_is_journalled_once(
    any_redis: aioredis.Redis, keys: Keys, clock: ManualClock
) -> None:
    journal = TransferJournal(any_redis, keys, clock)
    rec = record()
    await journal.create(rec)
    with pytest.raises(ValueError, match="already journalled"):
        await journal.create(moved(rec, "intent", trigger="again"))
    assert await journal.get(rec.id) == rec


async def test_records_are_json_with_exact_decimal_strings(
    any_redis: aioredis.Redis, keys: Keys, clock: ManualClock
) -> None:
    journal = TransferJournal(any_redis, keys, clock)
    rec = record(amount="0.12345678", asset="XXBT")
    await journal.create(rec)
    raw = await any_redis.hget(keys.rebalancer_transfers(), rec.id)
    assert raw is not None
    assert b'"amount":"0.12345678"' in raw
    assert await any_redis.hget(keys.rebalancer_open(), rec.id) == b"intent"


async def test_in_flight_names_both_ends_of_every_open_record(
    any_redis: aioredis.Redis, keys: Keys, clock: ManualClock
) -> None:
    journal = TransferJournal(any_redis, keys, clock)
    a, b = record(source="master", target="s0"), record(asset="XXBT", source="s1", target="master")
    for rec in (a, b, record(source="s2", target="s3")):
        await journal.create(rec)
    await journal.update(moved(a, "pending"), expected="intent")
    [third] = [r for r in await journal.open_records() if r.id not in (a.id, b.id)]
    await journal.update(moved(third, "failed"), expected="intent")
    assert await journal.in_flight() == {("master", "ZUSD"), ("s0", "ZUSD"), ("s1", "XXBT"),
                                         ("master", "XXBT")}  # fmt: skip


async def test_the_day_counts_every_move_but_the_failed_ones(
    any_redis: aioredis.Redis, keys: Keys, clock: ManualClock
) -> None:
    journal = TransferJournal(any_redis, keys, clock)
    day = utc_day(clock.time())
    kept, failed = record(amount="10"), record(amount="7")
    futures = record(amount="3", kind="futures_transfer")
    out = record(amount="0.5", asset="XXBT", kind="withdrawal", target="desk-wallet")
    out_usd = record(amount="250", kind="withdrawal", target="desk-wallet")
    tomorrow = record(amount="1000", at_s=clock.time() + 86_400)
    for rec in (kept, failed, futures, out, out_usd, tomorrow):
        await journal.create(rec)
    assert await journal.moved_today("ZUSD", day) == Decimal(20)
    await journal.update(moved(failed, "failed", error="not executed"), expected="intent")
    await journal.update(moved(kept, "complete"), expected="intent")
    assert await journal.moved_today("ZUSD", day) == Decimal(13)  # the futures top-up counts
    assert await journal.moved_today("XXBT", day) == Decimal(0)  # withdrawals do not
    assert await journal.withdrawn_today(day) == {"XXBT": Decimal("0.5"), "ZUSD": Decimal(250)}
    assert await journal.moved_today("ZUSD", utc_day(clock.time() + 86_400)) == Decimal(1000)
    ttl_s = await any_redis.ttl(keys.rebalancer_day(day))
    assert 7 * 86_400 < ttl_s <= 8 * 86_400


async def test_finished_records_are_kept_bounded_by_count_and_age(
    any_redis: aioredis.Redis, keys: Keys, clock: ManualClock
) -> None:
    journal = TransferJournal(any_redis, keys, clock, finished_max=3, finished_keep_s=3_600)
    done = []
    for i in range(5):
        rec = record(at_s=clock.time() + i)
        await journal.create(rec)
        rec = moved(rec, "complete", updated_s=clock.time() + i)
        await journal.update(rec, expected="intent")
        done.append(rec)
    assert await journal.finished() == done[:1:-1]  # the newest three
    assert await journal.get(done[0].id) is None  # gone from the records too
    assert await any_redis.hlen(keys.rebalancer_transfers()) == 3
    await clock.advance(7_200)
    late = record(at_s=clock.time())
    await journal.create(late)
    late = moved(late, "failed", updated_s=clock.time())
    await journal.update(late, expected="intent")
    assert await journal.finished() == [late]  # the others aged out
    assert await any_redis.hlen(keys.rebalancer_transfers()) == 1


async def test_open_records_are_never_trimmed(
    any_redis: aioredis.Redis, keys: Keys, clock: ManualClock
) -> None:
    journal = TransferJournal(any_redis, keys, clock, finished_max=1, finished_keep_s=1)
    waiting = record(state="awaiting_approval", kind="withdrawal", target="desk-wallet")
    await journal.create(waiting)
    await clock.advance(100)
    for _ in range(3):
        rec = record(at_s=clock.time())
        await journal.create(rec)
        await journal.update(moved(rec, "complete", updated_s=clock.time()), expected="intent")
    assert await journal.open_records() == [waiting]


async def test_a_corrupt_record_is_an_error_naming_it(
    any_redis: aioredis.Redis, keys: Keys, clock: ManualClock
) -> None:
    journal = TransferJournal(any_redis, keys, clock)
    await any_redis.hset(keys.rebalancer_transfers(), "bad", b"{not json")
    await any_redis.hset(keys.rebalancer_open(), "bad", b"sent")
    with pytest.raises(StoreError, match="'bad' is corrupt"):
        await journal.open_records()
    await any_redis.hdel(keys.rebalancer_transfers(), "bad")
    with pytest.raises(StoreError, match="open ids without records"):
        await journal.open_records()


async def test_redis_unreachable_is_store_unavailable(clock: ManualClock) -> None:
    server = fakeredis.FakeServer()
    client = fakeredis.FakeAsyncRedis(server=server)
    journal = TransferJournal(client, Keys("down"), clock)
    server.connected = False
    with pytest.raises(StoreUnavailable, match=r"transfer_journal\.write"):
        await journal.create(record())
    with pytest.raises(StoreUnavailable, match=r"transfer_journal\.open_records"):
        await journal.in_flight()
    await client.aclose()

"""The order journal on fakeredis: entries round-trip exactly, a pending cl_ord_id is never
recorded twice, settling is atomic and idempotent, corrupt data is reported by key and
cl_ord_id, and Redis errors leave as StoreError / StoreUnavailable only."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import fakeredis
import msgspec
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from orchestrator.errors import StoreError, StoreUnavailable
from orchestrator.store.keys import Keys
from orchestrator.workers.journal import JournalEntry, OrderJournal

KEYS = Keys("test")


def entry(cl_ord_id: str, *, created_s: float = 1_700_000_000.0, **changes: object) -> JournalEntry:
    base = JournalEntry(
        cl_ord_id=cl_ord_id,
        strategy="mm",
        account="sub1",
        pair="XBT/USD",
        side="buy",
        order_type="limit",
        time_in_force="GTC",
        post_only=True,
        volume=Decimal("0.12345678"),
        price=Decimal("30000.1"),
        created_s=created_s,
    )
    return msgspec.structs.replace(base, **changes)


@pytest.fixture
def journal(fake_redis: fakeredis.FakeAsyncRedis) -> OrderJournal:
    return OrderJournal(fake_redis, KEYS, "sub1")


async def test_recorded_entries_come_back_exactly_oldest_first(journal: OrderJournal) -> None:
    late = entry("b", created_s=20.5)
    early = entry("a", created_s=10.25, order_type="market", price=None, volume=Decimal("1E-8"))
    await journal.record(late)
    await journal.record(early)
    assert await journal.pending() == [early, late]
    (first, _) = await journal.pending()
    assert first.volume == Decimal("0.00000001")
    assert first.price is None


async def test_a_pending_cl_ord_id_is_refused_unless_it_is_the_same_entry(
    journal: OrderJournal,
) -> None:
    original = entry("a")
    await journal.record(original)
    await journal.record(original)  # a retry after a lost reply: accepted, nothing changes
    with pytest.raises(ValueError, match="'a' is already pending"):
        await journal.record(entry("a", volume=Decimal(2)))
    assert await journal.pending() == [original]


async def test_concurrent_records_of_one_cl_ord_id_leave_one_winner(journal: OrderJournal) -> None:
    attempts = [entry("a", volume=Decimal(n + 1)) for n in range(10)]
    results = await asyncio.gather(*(journal.record(e) for e in attempts), return_exceptions=True)
    winners = [e for e, result in zip(attempts, results, strict=True) if result is None]
    assert len(winners) == 1
    assert all(isinstance(r, ValueError) for r in results if r is not None)
    assert await journal.pending() == winners


async def test_an_entry_of_another_account_is_refused(journal: OrderJournal) -> None:
    with pytest.raises(ValueError, match="account 'sub2'"):
        await journal.record(entry("a", account="sub2"))
    with pytest.raises(ValueError, match="cl_ord_id"):
        await journal.record(entry(""))
    assert await journal.pending() == []


async def test_settle_moves_the_entry_to_the_outcomes_newest_first(
    journal: OrderJournal,
) -> None:
    for cl_ord_id in ("a", "b", "c"):
        await journal.record(entry(cl_ord_id))
    before_s = time.time()
    assert await journal.settle("a", "placed", txid="OABC-1")
    assert await journal.settle("c", "rejected", reason="EOrder:Insufficient funds")
    assert [e.cl_ord_id for e in await journal.pending()] == ["b"]
    newest, oldest = await journal.settled()
    assert (newest.entry, newest.outcome, newest.txid, newest.reason) == (
        entry("c"), "rejected", None, "EOrder:Insufficient funds"
    )  # fmt: skip
    assert (oldest.entry, oldest.outcome, oldest.txid) == (entry("a"), "placed", "OABC-1")
    assert before_s - 1 <= oldest.settled_s <= newest.settled_s <= time.time() + 1
    assert [s.cl_ord_id for s in await journal.settled(count=1)] == ["c"]


async def test_settle_is_idempotent(journal: OrderJournal) -> None:
    await journal.record(entry("a"))
    results = await asyncio.gather(*(journal.settle("a", "not_placed") for _ in range(5)))
    assert sorted(results) == [False, False, False, False, True]
    assert not await journal.settle("never-recorded", "placed")
    assert [s.outcome for s in await journal.settled()] == ["not_placed"]
    assert await journal.pending() == []


async def test_settle_refuses_an_unknown_outcome(journal: OrderJournal) -> None:
    await journal.record(entry("a"))
    with pytest.raises(ValueError, match="filled"):
        await journal.settle("a", "filled")  # type: ignore[arg-type]
    assert await journal.pending() == [entry("a")]


async def test_a_failed_settle_leaves_the_entry_pending(
    journal: OrderJournal, fake_redis: fakeredis.FakeAsyncRedis
) -> None:
    """The outcome could not be written (here: the stream key holds a string): the entry is not
    removed, so no intent is forgotten without its outcome."""
    await journal.record(entry("a"))
    await fake_redis.set(journal.settled_key, "not a stream")
    with pytest.raises(StoreError, match=r"journal\.settle"):
        await journal.settle("a", "placed", txid="O1")
    assert await journal.pending() == [entry("a")]


async def test_the_outcomes_stream_is_capped(fake_redis: fakeredis.FakeAsyncRedis) -> None:
    journal = OrderJournal(fake_redis, KEYS, "sub1", settled_maxlen=5)
    for n in range(300):
        await journal.record(entry(f"o{n}"))
        await journal.settle(f"o{n}", "placed")
    length = await fake_redis.xlen(journal.settled_key)
    assert 5 <= length < 300
    assert [s.entry.cl_ord_id for s in await journal.settled(count=2)] == ["o299", "o298"]


async def test_a_corrupt_pending_entry_is_reported_by_key_and_cl_ord_id(
    journal: OrderJournal, fake_redis: fakeredis.FakeAsyncRedis
) -> None:
    await journal.record(entry("good"))
    await fake_redis.hset(journal.pending_key, "bad", b"{not json")
    with pytest.raises(StoreError, match=rf"{journal.pending_key}.*'bad'") as raised:
        await journal.pending()
    assert "'good'" not in str(raised.value)


async def test_an_entry_filed_under_another_cl_ord_id_is_corrupt(
    journal: OrderJournal, fake_redis: fakeredis.FakeAsyncRedis
) -> None:
    await fake_redis.hset(journal.pending_key, "x", msgspec.json.encode(entry("y")))
    with pytest.raises(StoreError, match="'x' \\(holds 'y' of 'sub1'\\)"):
        await journal.pending()


async def test_a_corrupt_settled_entry_is_reported(
    journal: OrderJournal, fake_redis: fakeredis.FakeAsyncRedis
) -> None:
    await fake_redis.xadd(
        journal.settled_key, {"entry": msgspec.json.encode(entry("a")), "settlement": "{}"}
    )
    with pytest.raises(StoreError, match=rf"{journal.settled_key}.*'a' is corrupt"):
        await journal.settled()


async def test_redis_unreachable_is_store_unavailable(
    journal: OrderJournal, fake_redis: fakeredis.FakeAsyncRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def unreachable(*args: object, **kwargs: object) -> object:
        raise RedisConnectionError("Connection refused")

    monkeypatch.setattr(fake_redis, "hsetnx", unreachable)
    monkeypatch.setattr(fake_redis, "hgetall", unreachable)
    with pytest.raises(StoreUnavailable, match=r"journal\.record"):
        await journal.record(entry("a"))
    with pytest.raises(StoreUnavailable, match=r"journal\.pending"):
        await journal.pending()


async def test_a_redis_refusal_is_store_error(
    journal: OrderJournal, fake_redis: fakeredis.FakeAsyncRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def busy(*args: object, **kwargs: object) -> object:
        raise ResponseError("BUSY Redis is busy running a script")

    monkeypatch.setattr(fake_redis, "xrevrange", busy)
    with pytest.raises(StoreError, match="BUSY"):
        await journal.settled()


async def test_a_client_decoding_responses_reads_the_same_journal() -> None:
    server = fakeredis.FakeServer()
    raw = fakeredis.FakeAsyncRedis(server=server)
    decoding = fakeredis.FakeAsyncRedis(server=server, decode_responses=True)
    try:
        await OrderJournal(raw, KEYS, "sub1").record(entry("a"))
        journal = OrderJournal(decoding, KEYS, "sub1")
        await journal.record(entry("a"))  # the same entry: accepted
        assert await journal.pending() == [entry("a")]
        assert await journal.settle("a", "placed", txid="O1")
        assert [s.txid for s in await journal.settled()] == ["O1"]
    finally:
        await raw.aclose()
        await decoding.aclose()


def test_bad_limits_are_refused(fake_redis: fakeredis.FakeAsyncRedis) -> None:
    with pytest.raises(ValueError, match="settled_maxlen"):
        OrderJournal(fake_redis, KEYS, "sub1", settled_maxlen=0)

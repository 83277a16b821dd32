"""The command bus on a real redis-server: one consumer group over the main stream and each
process's inbox; own pending entries again after a restart; a dead consumer's entries claimed
after `claim_idle_s`; take's four outcomes; finish, route and ack_broadcast atomic and written
once; broadcast acks gathered within their timeout; trimmed entries acked; a lost group made
again; Redis down is `StoreUnavailable`, never a raw redis error."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis
from redis.typing import EncodableT, FieldT

from orchestrator.clock import ManualClock, RealClock
from orchestrator.control.bus import CommandBus, Delivery
from orchestrator.control.replies import Ack, Reply, decode_reply
from orchestrator.errors import StoreUnavailable
from orchestrator.store.connection import redis_client
from orchestrator.store.keys import Keys
from tests.redis_process import RedisProcess, own_redis_server

GROUP = "orchestrator"
WIRE = b'{"command": "{}", "signature": "00"}'  # the bus carries bytes; it never reads them


def bus(redis: aioredis.Redis, keys: Keys, process: str = "A", **options: Any) -> CommandBus:
    options.setdefault("block_s", 0.05)
    options.setdefault("clock", RealClock())
    return CommandBus(redis, keys, group=GROUP, process=process, **options)


async def opened(
    redis: aioredis.Redis, keys: Keys, process: str = "A", **options: Any
) -> CommandBus:
    one = bus(redis, keys, process, **options)
    await one.open()
    return one


async def send(
    redis: aioredis.Redis, keys: Keys, wire: bytes = WIRE, extra: Mapping[str, str] | None = None
) -> str:
    """What `ctl` does: XADD the signed bytes; the entry id names the reply."""
    fields: dict[FieldT, EncodableT] = {"wire": wire}
    fields.update((name, value) for name, value in (extra or {}).items())
    return text(await redis.xadd(keys.commands(), fields, maxlen=10_000, approximate=True))


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def raw(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


async def until_batch(one: CommandBus, within_s: float = 2.0) -> list[Delivery]:
    deadline_s = time.monotonic() + within_s
    while time.monotonic() < deadline_s:
        batch = await one.next_batch()
        if batch:
            return batch
    raise AssertionError(f"nothing delivered within {within_s} s")


def reply_for(delivery: Delivery, command_id: str | None = "cmd-00000001", **fields: Any) -> Reply:
    given: dict[str, Any] = {"type": "status", "ok": True, "result": {"n": 1}, "process": "A",
                             "time_s": 1_800_000_000.0} | fields  # fmt: skip
    return Reply(entry=delivery.reply_to, command_id=command_id, **given)


async def pending(redis: aioredis.Redis, stream: str) -> int:
    return int((await redis.xpending(stream, GROUP))["pending"])


async def record(redis: aioredis.Redis, keys: Keys, command_id: str) -> dict[str, str]:
    fields = await redis.hgetall(keys.command_record(command_id))
    return {text(k): text(v) for k, v in fields.items()}


# --- reading ------------------------------------------------------------------------------------
async def test_open_creates_the_group_once_on_both_streams(
    redis: aioredis.Redis, keys: Keys
) -> None:
    one = await opened(redis, keys)
    await one.open()
    await opened(redis, keys, "B")
    for stream in (keys.commands(), keys.inbox("A")):
        groups = await redis.xinfo_groups(stream)
        assert [g["name"] for g in groups] == [GROUP.encode()]


async def test_a_sent_entry_is_delivered_once(redis: aioredis.Redis, keys: Keys) -> None:
    a, b = await opened(redis, keys, "A"), await opened(redis, keys, "B")
    entry = await send(redis, keys)
    [delivery] = await until_batch(a)
    assert delivery == Delivery(stream=keys.commands(), entry=entry, reply_to=entry, wire=WIRE,
                                routed_from=None, broadcast=False,
                                queued_s=int(entry.split("-")[0]) / 1000)  # fmt: skip
    assert await a.next_batch() == []
    assert await b.next_batch() == []
    assert await a.pending_count() == 1


async def test_main_stream_fields_cannot_redirect_a_reply(
    redis: aioredis.Redis, keys: Keys
) -> None:
    """`entry`, `from` and `broadcast` mean something only in a process's own inbox."""
    a = await opened(redis, keys)
    entry = await send(redis, keys, extra={"entry": "1-0", "broadcast": "1", "from": "X"})
    [delivery] = await until_batch(a)
    assert (delivery.reply_to, delivery.routed_from, delivery.broadcast) == (entry, None, False)


async def test_an_entry_without_wire_gives_empty_bytes(redis: aioredis.Redis, keys: Keys) -> None:
    a = await opened(redis, keys)
    await redis.xadd(keys.commands(), {"other": "x"})
    [delivery] = await until_batch(a)
    assert delivery.wire == b""


async def test_own_pending_entries_come_first_after_a_restart(
    redis: aioredis.Redis, keys: Keys
) -> None:
    a, b = await opened(redis, keys, "A"), await opened(redis, keys, "B")
    first = await send(redis, keys)
    [main] = await until_batch(a)
    await b.route(main, "cmd-00000001", "A")  # as if another process routed one here
    [routed] = await until_batch(a)
    assert (main.entry, routed.reply_to) == (first, first)
    later = await send(redis, keys)  # never read before the restart

    again = await opened(redis, keys, "A")  # the same process name: its pending are its own
    batch = await again.next_batch(count=1)  # one page per stream
    assert {(d.stream, d.reply_to) for d in batch} == {(keys.inbox("A"), first)}
    assert batch[0].routed_from == "B"
    [new] = await until_batch(again)
    assert new.entry == later
    assert await again.next_batch() == []


async def test_own_pending_pages_through_more_than_one_batch(
    redis: aioredis.Redis, keys: Keys
) -> None:
    a = await opened(redis, keys)
    sent = [await send(redis, keys) for _ in range(5)]
    read: list[str] = []
    while len(read) < 5:
        read += [d.entry for d in await a.next_batch()]
    again = await opened(redis, keys)
    redelivered: list[str] = []
    for _ in range(3):
        redelivered += [d.entry for d in await again.next_batch(count=2)]
    assert redelivered == sent
    assert await again.next_batch() == []


async def test_a_dead_consumers_entry_is_claimed_and_taken_again(
    redis: aioredis.Redis, keys: Keys
) -> None:
    dead = await opened(redis, keys, "A", claim_idle_s=0.2)
    entry = await send(redis, keys)
    [delivery] = await until_batch(dead)
    assert await dead.take("cmd-00000001", delivery) == "new"
    # A dies here: never answered, never acked.
    heir = await opened(redis, keys, "B", claim_idle_s=0.2)
    started_s = time.monotonic()
    [claimed] = await until_batch(heir)
    assert time.monotonic() - started_s >= 0.15  # not before the entry was idle long enough
    assert (claimed.stream, claimed.entry, claimed.reply_to) == (keys.commands(), entry, entry)
    assert await heir.take("cmd-00000001", claimed) == "again"
    owners = await redis.xpending_range(keys.commands(), GROUP, "-", "+", 10)
    assert [o["consumer"] for o in owners] == [b"B"]


async def test_a_claim_never_hands_out_our_own_entry_in_flight(
    redis: aioredis.Redis, keys: Keys
) -> None:
    """A slow handler's entry stays with it: our own claims do not hand it out a second time."""
    a = await opened(redis, keys, claim_idle_s=0.1)
    await send(redis, keys)
    [delivery] = await until_batch(a)
    deadline_s = time.monotonic() + 0.4
    while time.monotonic() < deadline_s:
        assert await a.next_batch() == []
    await a.finish(delivery, reply_for(delivery, None), {})
    assert await a.pending_count() == 0


async def test_trimmed_entries_in_a_claim_are_acked(redis: aioredis.Redis, keys: Keys) -> None:
    dead = await opened(redis, keys, "A", claim_idle_s=0.2)
    entries = [await send(redis, keys) for _ in range(3)]
    assert len(await until_batch(dead)) == 3
    await redis.xdel(keys.commands(), entries[0], entries[2])  # trimmed while pending
    heir = await opened(redis, keys, "B", claim_idle_s=0.2)
    [claimed] = await until_batch(heir)
    assert claimed.entry == entries[1]
    assert await pending(redis, keys.commands()) == 1  # the two deleted ones acked


async def test_trimmed_own_pending_entries_are_acked(redis: aioredis.Redis, keys: Keys) -> None:
    a = await opened(redis, keys)
    entries = [await send(redis, keys) for _ in range(2)]
    assert len(await until_batch(a)) == 2
    await redis.xdel(keys.commands(), entries[0])
    again = await opened(redis, keys)
    assert [d.entry for d in await again.next_batch()] == [entries[1]]
    assert await pending(redis, keys.commands()) == 1


async def test_a_lost_group_is_made_again(redis: aioredis.Redis, keys: Keys) -> None:
    """A Redis restarted without persistence lost the streams and their group."""
    a = await opened(redis, keys)
    await redis.delete(keys.commands(), keys.inbox("A"))
    assert await a.next_batch() == []
    entry = await send(redis, keys)
    [delivery] = await until_batch(a)
    assert delivery.entry == entry


# --- exactly once -------------------------------------------------------------------------------
async def test_take_new_again_done_duplicate(redis: aioredis.Redis, keys: Keys) -> None:
    a = await opened(redis, keys, record_ttl_s=3600.0)
    first = await send(redis, keys)
    [delivery] = await until_batch(a)
    assert await a.take("cmd-00000001", delivery) == "new"
    assert await record(redis, keys, "cmd-00000001") == {
        "state": "taken",
        "entry": first,
        "by": "A",
    }
    assert 3590 < await redis.ttl(keys.command_record("cmd-00000001")) <= 3600
    assert await a.take("cmd-00000001", delivery) == "again"

    replay = await send(redis, keys)
    [copy] = await until_batch(a)
    assert copy.entry == replay
    assert await a.take("cmd-00000001", copy) == "duplicate"
    await a.finish(copy, reply_for(copy, ok=False, error="replay"), {"ok": False})
    assert await record(redis, keys, "cmd-00000001") == {
        "state": "taken",
        "entry": first,
        "by": "A",
    }

    await a.finish(delivery, reply_for(delivery), {"ok": True})
    assert (await record(redis, keys, "cmd-00000001"))["state"] == "done"
    assert await a.take("cmd-00000001", delivery) == "done"
    assert await a.take("cmd-00000001", copy) == "duplicate"


async def test_take_done_acks_a_late_copy(redis: aioredis.Redis, keys: Keys) -> None:
    a, b = await opened(redis, keys, "A"), await opened(redis, keys, "B")
    await send(redis, keys)
    [delivery] = await until_batch(a)
    assert await a.take("cmd-00000001", delivery) == "new"
    await a.broadcast(delivery, ["B"])
    await a.finish(delivery, reply_for(delivery), {})
    [late] = await until_batch(b)
    assert await b.take("cmd-00000001", late) == "done"
    assert await pending(redis, keys.inbox("B")) == 0


async def test_finish_answers_acks_audits_and_closes_the_record(
    redis: aioredis.Redis, keys: Keys
) -> None:
    a = await opened(redis, keys, reply_ttl_s=300.0, clock=ManualClock(1_800_000_000.0))
    entry = await send(redis, keys)
    [delivery] = await until_batch(a)
    await a.take("cmd-00000001", delivery)
    reply = reply_for(delivery)
    audit = {"operator": "ops", "command_id": "cmd-00000001", "type": "status", "ok": True}
    await a.finish(delivery, reply, audit)

    [answer] = await redis.lrange(keys.reply(entry), 0, -1)
    assert decode_reply(raw(answer)) == reply
    assert 290 < await redis.ttl(keys.reply(entry)) <= 300
    assert await pending(redis, keys.commands()) == 0
    [(_, fields)] = await redis.xrange(keys.audit()) or []
    assert fields is not None
    assert fields[b"kind"] == b"command"
    assert float(fields[b"time_s"]) == 1_800_000_000.0
    assert msgspec.json.decode(fields[b"record"]) == audit
    assert await record(redis, keys, "cmd-00000001") == {"state": "done", "entry": entry, "by": "A"}

    await a.finish(delivery, reply, audit)  # a retry after a lost reply: written once
    assert await redis.llen(keys.reply(entry)) == 1
    assert await redis.xlen(keys.audit()) == 1


async def test_finish_without_a_command_id_still_answers(redis: aioredis.Redis, keys: Keys) -> None:
    a = await opened(redis, keys)
    entry = await send(redis, keys, wire=b"not a command")
    [delivery] = await until_batch(a)
    await a.finish(delivery, reply_for(delivery, None, ok=False, error="unreadable"), {})
    [answer] = await redis.lrange(keys.reply(entry), 0, -1)
    assert decode_reply(raw(answer)).error == "unreadable"
    assert await pending(redis, keys.commands()) == 0


async def test_finish_refuses_a_broadcast_copy(redis: aioredis.Redis, keys: Keys) -> None:
    a = bus(redis, keys)
    copy = Delivery(stream=keys.inbox("A"), entry="2-0", reply_to="1-0", wire=WIRE,
                    routed_from="B", broadcast=True, queued_s=0.001)  # fmt: skip
    with pytest.raises(ValueError, match="ack_broadcast"):
        await a.finish(copy, reply_for(copy), {})


# --- routing and broadcasts ---------------------------------------------------------------------
async def test_route_hands_the_command_to_its_process(redis: aioredis.Redis, keys: Keys) -> None:
    a, b = await opened(redis, keys, "A"), await opened(redis, keys, "B")
    entry = await send(redis, keys)
    [delivery] = await until_batch(a)
    assert await a.take("cmd-00000001", delivery) == "new"
    await a.route(delivery, "cmd-00000001", "B")
    assert await record(redis, keys, "cmd-00000001") == {
        "state": "routed",
        "entry": entry,
        "by": "B",
    }
    assert await pending(redis, keys.commands()) == 0

    [routed] = await until_batch(b)
    assert routed.stream == keys.inbox("B")
    assert (routed.reply_to, routed.routed_from, routed.wire, routed.broadcast) == (
        entry,
        "A",
        WIRE,
        False,
    )
    assert routed.queued_s == delivery.queued_s
    assert await b.take("cmd-00000001", routed) == "again"
    await b.finish(routed, reply_for(routed), {})
    assert (await record(redis, keys, "cmd-00000001"))["state"] == "done"
    assert await redis.llen(keys.reply(entry)) == 1
    assert await pending(redis, keys.inbox("B")) == 0


async def test_broadcast_acks_are_gathered(redis: aioredis.Redis, keys: Keys) -> None:
    a = await opened(redis, keys, "A")
    b, c = await opened(redis, keys, "B"), await opened(redis, keys, "C")
    entry = await send(redis, keys)
    [delivery] = await until_batch(a)
    await a.broadcast(delivery, ["B", "C"])
    for process, one in (("B", b), ("C", c)):
        [copy] = await until_batch(one)
        assert (copy.broadcast, copy.reply_to, copy.routed_from) == (True, entry, "A")
        await one.ack_broadcast(copy, Ack(process=process, ok=True, result={"halted": True}))
        await one.ack_broadcast(copy, Ack(process=process, ok=True))  # acked already: no second
        assert await pending(redis, keys.inbox(process)) == 0
    assert 290 < await redis.ttl(keys.acks(entry)) <= 300
    acks = await a.wait_acks(entry, 2, timeout_s=2.0)
    assert sorted(ack.process for ack in acks) == ["B", "C"]
    assert await pending(redis, keys.commands()) == 1  # the taker finishes it afterwards


async def test_wait_acks_times_out_with_what_came(redis: aioredis.Redis, keys: Keys) -> None:
    a = bus(redis, keys)
    await redis.lpush(keys.acks("1-0"), b"not json", msgspec.json.encode(Ack(process="B", ok=True)))
    started_s = time.monotonic()
    acks = await a.wait_acks("1-0", 2, timeout_s=0.3)
    elapsed_s = time.monotonic() - started_s
    assert [ack.process for ack in acks] == ["B"]
    assert 0.25 <= elapsed_s < 1.0


async def test_wait_acks_ends_on_a_manual_clock(redis: aioredis.Redis, keys: Keys) -> None:
    """The clock never moves, yet the wait ends: it counts its empty slices too."""
    a = bus(redis, keys, clock=ManualClock())
    started_s = time.monotonic()
    assert await a.wait_acks("1-0", 1, timeout_s=0.5) == []
    assert time.monotonic() - started_s < 1.5


async def test_streams_are_capped(redis: aioredis.Redis, keys: Keys) -> None:
    a = await opened(redis, keys, audit_max_len=100)
    for _ in range(400):
        entry = await send(redis, keys)
        delivery = Delivery(stream=keys.commands(), entry=entry, reply_to=entry, wire=WIRE,
                            routed_from=None, broadcast=False, queued_s=0.0)  # fmt: skip
        await redis.xreadgroup(GROUP, "A", {keys.commands(): ">"}, count=1)
        await a.finish(delivery, reply_for(delivery, None), {})
    assert 100 <= await redis.xlen(keys.audit()) < 400


# --- Redis down ---------------------------------------------------------------------------------
@pytest.fixture
def server() -> Iterator[RedisProcess]:
    with own_redis_server() as running:
        yield running


async def test_redis_down_is_store_unavailable(server: RedisProcess) -> None:
    client = redis_client(server.url, socket_timeout=0.5, socket_connect_timeout=0.5)
    keys = Keys("down")
    try:
        a = await opened(client, keys)
        await send(client, keys)
        [delivery] = await until_batch(a)
        server.kill()
        calls: list[Callable[[], Awaitable[object]]] = [
            a.next_batch, lambda: a.take("cmd-00000001", delivery),
            lambda: a.route(delivery, "cmd-00000001", "B"),
            lambda: a.finish(delivery, reply_for(delivery), {}),
            lambda: a.broadcast(delivery, ["B"]),
            lambda: a.ack_broadcast(delivery, Ack(process="A", ok=True)),
            lambda: a.wait_acks("1-0", 1, 0.2), a.pending_count, a.open,
        ]  # fmt: skip
        for call in calls:
            with pytest.raises(StoreUnavailable):
                await asyncio.wait_for(call(), 2.0)
    finally:
        await client.aclose()


async def test_blocking_stays_below_the_socket_timeout(redis_server: str, keys: Keys) -> None:
    client = redis_client(redis_server, socket_timeout=0.5)
    try:
        one = CommandBus(client, keys, group=GROUP, process="A", block_s=1.0, clock=RealClock())
        assert one.block_ms == 250
        started_s = time.monotonic()
        await one.open()
        assert await one.next_batch() == []  # no socket timeout while it blocks
        assert await one.wait_acks("1-0", 1, timeout_s=0.6) == []
        assert time.monotonic() - started_s < 2.0
    finally:
        await client.aclose()

"""LatestByPair: a pair is marked once until drained, drained in first-marked order, and the inbox
never holds more than one entry per pair, however fast the marks come."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.feeds.conflation import LatestByPair

PAIRS = ["XBT/USD", "ETH/USD", "SOL/USD"]


def test_marks_are_idempotent_and_drained_in_first_marked_order() -> None:
    inbox = LatestByPair()
    for pair in ["ETH/USD", "XBT/USD", "ETH/USD", "ETH/USD", "SOL/USD", "XBT/USD"]:
        inbox.mark(pair)
    assert len(inbox) == 3
    assert "ETH/USD" in inbox
    assert inbox.drain() == ["ETH/USD", "XBT/USD", "SOL/USD"]
    assert (len(inbox), inbox.drain()) == (0, [])
    inbox.mark("XBT/USD")  # marked again once drained
    assert inbox.drain() == ["XBT/USD"]


def test_a_slow_consumer_sees_each_pair_once_never_a_backlog() -> None:
    inbox = LatestByPair()
    for i in range(10_000):  # a burst of book changes while the strategy was busy
        inbox.mark(PAIRS[i % len(PAIRS)])
        assert len(inbox) <= len(PAIRS)
    assert inbox.drain() == PAIRS


def test_discard_forgets_a_mark() -> None:
    inbox = LatestByPair()
    inbox.mark("XBT/USD")
    inbox.mark("ETH/USD")
    inbox.discard("XBT/USD")
    inbox.discard("SOL/USD")  # not marked: nothing to do
    assert inbox.drain() == ["ETH/USD"]


async def test_wait_returns_at_once_when_marked() -> None:
    inbox = LatestByPair()
    inbox.mark("SOL/USD")
    inbox.mark("XBT/USD")
    assert await asyncio.wait_for(inbox.wait(), 1.0) == ["SOL/USD", "XBT/USD"]
    assert len(inbox) == 0


async def test_wait_blocks_until_a_mark_then_takes_all_marked_meanwhile() -> None:
    inbox = LatestByPair()
    waiter = asyncio.create_task(inbox.wait())
    await asyncio.sleep(0)  # the waiter runs and parks on the empty inbox
    assert not waiter.done()
    inbox.mark("ETH/USD")
    inbox.mark("XBT/USD")
    inbox.mark("ETH/USD")
    assert await asyncio.wait_for(waiter, 1.0) == ["ETH/USD", "XBT/USD"]


async def test_a_drain_before_the_waiter_runs_leaves_it_waiting_not_empty_handed() -> None:
    inbox = LatestByPair()
    waiter = asyncio.create_task(inbox.wait())
    await asyncio.sleep(0)
    inbox.mark("XBT/USD")
    assert inbox.drain() == ["XBT/USD"]  # taken by someone else before the waiter woke
    await asyncio.sleep(0)
    assert not waiter.done()  # `wait` never returns an empty list
    inbox.mark("SOL/USD")
    assert await asyncio.wait_for(waiter, 1.0) == ["SOL/USD"]


@given(st.lists(st.one_of(st.sampled_from(PAIRS), st.none()), max_size=60))
def test_drains_give_the_distinct_marks_since_the_last_drain(steps: list[str | None]) -> None:
    """None drains. Each drain returns what a plain model says: the distinct pairs marked since
    the previous drain, in first-marked order."""
    inbox = LatestByPair()
    since_drain: list[str] = []
    for step in [*steps, None]:
        if step is None:
            assert inbox.drain() == list(dict.fromkeys(since_drain))
            since_drain = []
        else:
            inbox.mark(step)
            since_drain.append(step)
        assert len(inbox) == len(set(since_drain)) <= len(PAIRS)

"""Shared turns of the loop: a burst of takers is spread over turns, at most `per_turn` in each,
in arrival order, none skipped; a cancelled taker takes no turn."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.workers.turns import Turns


class TurnCounter:
    """Counts the loop's turns: a callback that re-schedules itself once per turn."""

    def __init__(self) -> None:
        self.turn = 0
        self._loop = asyncio.get_running_loop()
        self._handle = self._loop.call_soon(self._tick)

    def _tick(self) -> None:
        self.turn += 1
        self._handle = self._loop.call_soon(self._tick)

    def stop(self) -> None:
        self._handle.cancel()


async def test_a_burst_is_spread_over_turns_in_arrival_order() -> None:
    turns = Turns(per_turn=3)
    counter = TurnCounter()
    went: list[tuple[int, int]] = []  # (taker, turn it went in)

    async def taker(i: int) -> None:
        await turns.take()
        went.append((i, counter.turn))

    await asyncio.gather(*(taker(i) for i in range(8)))
    counter.stop()
    assert [i for i, _ in went] == list(range(8))  # in order, none skipped
    by_turn: dict[int, int] = {}
    for _, turn in went:
        by_turn[turn] = by_turn.get(turn, 0) + 1
    assert max(by_turn.values()) <= 3
    assert len(by_turn) == 3  # 8 takers at 3 a turn: three turns


async def test_a_lone_taker_goes_at_once() -> None:
    turns = Turns(per_turn=2)
    counter = TurnCounter()
    before = counter.turn
    await turns.take()
    assert counter.turn == before  # no turn waited
    counter.stop()


async def test_a_cancelled_taker_takes_no_turn() -> None:
    turns = Turns(per_turn=1)
    first = asyncio.ensure_future(turns.take())  # the three start in one turn: one goes
    waiting = asyncio.ensure_future(turns.take())
    behind = asyncio.ensure_future(turns.take())
    await asyncio.sleep(0)
    assert first.done()
    assert not waiting.done()
    waiting.cancel()
    await behind  # let go in the cancelled one's place
    with pytest.raises(asyncio.CancelledError):
        await waiting


def test_per_turn_must_be_positive() -> None:
    with pytest.raises(ValueError, match="per_turn"):
        Turns(per_turn=0)

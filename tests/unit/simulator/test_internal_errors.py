"""A bug of the simulator fails the test that met it, at the simulator's exit, by name."""

from __future__ import annotations

import aiohttp
import pytest

from orchestrator.simulator import rest_public
from orchestrator.simulator.app import open_simulator
from orchestrator.simulator.errors import SimulatorBug
from orchestrator.simulator.venue import Venue


def _broken(venue: Venue, params: object) -> object:
    raise ZeroDivisionError("a bug in the handler")


async def test_an_internal_error_is_answered_as_kraken_then_raised_at_exit(
    monkeypatch: pytest.MonkeyPatch, session: aiohttp.ClientSession
) -> None:
    monkeypatch.setitem(rest_public.PUBLIC, "Time", _broken)
    replies: list[object] = []

    async def serve_one_request() -> None:
        async with open_simulator() as sim, session.get(f"{sim.rest_url}/0/public/Time") as resp:
            replies.append((await resp.json())["error"])

    with pytest.raises(SimulatorBug, match="request Time: ZeroDivisionError: a bug in the handler"):
        await serve_one_request()
    assert replies == [["EGeneral:Internal error"]]  # answered as Kraken would, meanwhile


async def test_not_strict_keeps_serving_and_only_logs(
    monkeypatch: pytest.MonkeyPatch, session: aiohttp.ClientSession
) -> None:
    monkeypatch.setitem(rest_public.PUBLIC, "Time", _broken)
    async with (
        open_simulator(strict=False) as sim,
        session.get(f"{sim.rest_url}/0/public/Time") as resp,
    ):
        assert (await resp.json())["error"] == ["EGeneral:Internal error"]
    assert len(sim.venue.internal_errors) == 1

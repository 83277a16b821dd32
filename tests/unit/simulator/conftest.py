"""A simulator on a manual clock and a minimal signed client for its REST API."""

from __future__ import annotations

import itertools
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
import pytest

from orchestrator.clock import ManualClock
from orchestrator.simulator.app import RunningSimulator, open_simulator
from orchestrator.simulator.auth import ApiKey, spot_signature
from orchestrator.simulator.settings import SimSettings

_nonces = itertools.count(1_700_000_000_000)


class SimClient:
    """Signs like Kraken's clients do (form or JSON body). Test-only, not the product's client."""

    def __init__(self, session: aiohttp.ClientSession, sim: RunningSimulator, key: ApiKey) -> None:
        self.session = session
        self.sim = sim
        self.key = key

    async def private(
        self,
        method: str,
        *,
        as_json: bool = False,
        nonce: int | None = None,
        sign: bool = True,
        **params: Any,
    ) -> dict[str, Any]:
        return await self.call(method, params, as_json=as_json, nonce=nonce, sign=sign)

    async def call(
        self,
        method: str,
        params: dict[str, Any],
        *,
        as_json: bool = False,
        nonce: int | None = None,
        sign: bool = True,
    ) -> dict[str, Any]:
        """The envelope of one signed private call."""
        _, _, body = await self.raw(method, params, as_json=as_json, nonce=nonce, sign=sign)
        data: dict[str, Any] = msgspec.json.decode(body)
        return data

    async def raw(
        self,
        method: str,
        params: dict[str, Any],
        *,
        as_json: bool = False,
        nonce: int | None = None,
        sign: bool = True,
        timeout_s: float | None = None,
    ) -> tuple[int, str, bytes]:
        """Status, content type and body of one signed private call, whatever they are."""
        path = f"/0/private/{method}"
        value = next(_nonces) if nonce is None else nonce
        if as_json:
            body = msgspec.json.encode({"nonce": value, **params})
            content_type = "application/json"
        else:
            body = urllib.parse.urlencode({"nonce": value, **params}).encode()
            content_type = "application/x-www-form-urlencoded"
        signature = spot_signature(self.key.secret_b64, path, str(value), body) if sign else "x"
        headers = {"API-Key": self.key.key, "API-Sign": signature, "Content-Type": content_type}
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with self.session.post(
            self.sim.rest_url + path, data=body, headers=headers, timeout=timeout
        ) as resp:
            return resp.status, resp.content_type, await resp.read()

    async def ok(self, method: str, **params: Any) -> Any:
        reply = await self.private(method, **params)
        assert reply["error"] == [], reply
        return reply["result"]

    async def error(self, method: str, **params: Any) -> str:
        reply = await self.private(method, **params)
        assert reply["error"], reply
        assert "result" not in reply
        return str(reply["error"][0])

    async def public(self, method: str, **params: Any) -> dict[str, Any]:
        async with self.session.get(
            f"{self.sim.rest_url}/0/public/{method}", params=params
        ) as resp:
            data: dict[str, Any] = await resp.json()
            return data

    async def admin(self, path: str, body: dict[str, Any] | None = None) -> Any:
        url = f"{self.sim.rest_url}/admin/{path}"
        if body is None:
            async with self.session.get(url) as resp:
                return await resp.json()
        async with self.session.post(url, json=body) as resp:
            return await resp.json()


@pytest.fixture
def settings() -> SimSettings:
    return SimSettings()


@pytest.fixture
async def sim(settings: SimSettings) -> AsyncIterator[RunningSimulator]:
    async with open_simulator(settings, clock=ManualClock()) as running:
        yield running


def client_for(session: aiohttp.ClientSession, sim: RunningSimulator, account: str) -> SimClient:
    return SimClient(session, sim, sim.venue.keys_of(account)[0])


@pytest.fixture
def trader(session: aiohttp.ClientSession, sim: RunningSimulator) -> SimClient:
    return client_for(session, sim, "mm-xbt")


@pytest.fixture
def master(session: aiohttp.ClientSession, sim: RunningSimulator) -> SimClient:
    return client_for(session, sim, "master")

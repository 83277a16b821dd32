"""Simulator domains for end-to-end tests, and the product's wiring pointed at them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal

import redis.asyncio as aioredis

from orchestrator.clock import Clock
from orchestrator.config import Config, parse_config
from orchestrator.exchange.kraken.account import KrakenDomain, open_kraken
from orchestrator.exchange.kraken.common.transport import Transport
from orchestrator.metrics import Registry
from orchestrator.secrets import ApiCredentials, Secret
from orchestrator.simulator.app import RunningSimulator
from orchestrator.simulator.settings import SimSettings, domain_accounts


def domain_settings(subs: int, *, usd: int = 20_000) -> SimSettings:
    """A master and `subs` sub-accounts `s0..`, each with `usd` dollars and 1 XBT."""
    return SimSettings(accounts=domain_accounts(subs, {"ZUSD": Decimal(usd), "XXBT": Decimal(1)}))


def credentials_of(sim: RunningSimulator, account: str) -> ApiCredentials:
    """The first API key the simulator issued to `account`, as the clients take credentials."""
    key = sim.venue.keys_of(account)[0]
    return ApiCredentials(key=Secret(key.key), secret=Secret(key.secret_b64))


def sim_config(sim: RunningSimulator, *, namespace: str = "orch", **sections: object) -> Config:
    """A service config whose venue is `sim` and whose accounts are the simulator's."""
    accounts = [
        {"name": a.name, "role": a.role, "account_id": a.account_id or a.name}
        for a in sim.venue.settings.accounts
    ]
    raw: dict[str, object] = {
        "redis": {"namespace": namespace},
        "venue": {"kind": "simulator", "embedded": True, "rest_url": sim.rest_url,
                  "futures_url": sim.futures_url,
                  "tier": sim.venue.settings.tier, "request_timeout_s": 2.0},
        "accounts": accounts,
    } | sections  # fmt: skip
    return parse_config(raw)


@contextlib.asynccontextmanager
async def open_sim_domain(
    sim: RunningSimulator,
    redis: aioredis.Redis,
    clock: Clock,
    *,
    config: Config | None = None,
    transport: Transport | None = None,
    manual_time: bool = False,
) -> AsyncIterator[KrakenDomain]:
    """`open_kraken` (the product's wiring) against the simulator, every account's key.
    `manual_time`: the limiter reads `clock` (the simulator's manual clock), not Redis TIME."""
    config = config or sim_config(sim)
    credentials = {a.name: credentials_of(sim, a.name) for a in config.accounts}
    # The simulator's keys serve its futures API too (Kraken issues separate Derivatives keys).
    async with open_kraken(config, credentials, redis=redis, clock=clock, registry=Registry(),
                           futures_credentials=credentials, transport=transport,
                           script_time=clock.time if manual_time else None) as domain:  # fmt: skip
        yield domain

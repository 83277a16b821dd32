"""Simulator domains for integration and end-to-end tests."""

from __future__ import annotations

from decimal import Decimal

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

"""Simulator domains for integration and end-to-end tests."""

from __future__ import annotations

from decimal import Decimal

from orchestrator.simulator.settings import SimSettings, domain_accounts


def domain_settings(subs: int, *, usd: int = 20_000) -> SimSettings:
    """A master and `subs` sub-accounts `s0..`, each with `usd` dollars and 1 XBT."""
    return SimSettings(accounts=domain_accounts(subs, {"ZUSD": Decimal(usd), "XXBT": Decimal(1)}))

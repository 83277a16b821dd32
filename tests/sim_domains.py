"""Simulator domains for integration and end-to-end tests."""

from __future__ import annotations

from decimal import Decimal

from orchestrator.simulator.settings import AccountSeed, SimSettings


def domain_settings(subs: int, *, usd: int = 20_000) -> SimSettings:
    funded = {"ZUSD": Decimal(usd), "XXBT": Decimal(1)}
    subs_seeds = tuple(AccountSeed(name=f"s{i}", balances=funded) for i in range(subs))
    accounts = (AccountSeed(name="master", role="master", balances=funded), *subs_seeds)
    return SimSettings(accounts=accounts)

"""Config rules that span fields (an unknown account in a strategy, two strategies on one
sub-account, a band out of order ...). Each names the first offending field path."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from orchestrator.errors import ConfigError

if TYPE_CHECKING:
    from orchestrator.config import Config


def check_relations(config: Config, source: str) -> None:
    """Rules that span fields; each raises `ConfigError` naming the first offending field."""
    try:
        _check_accounts(config)
        _check_strategies(config)
        _check_rebalancer(config)
        _check_operators(config)
    except _Invalid as exc:
        raise ConfigError(exc.path, exc.reason, source=source) from None


class _Invalid(Exception):
    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason


def _check_accounts(config: Config) -> None:
    venue = config.venue
    if venue.kind == "kraken" and venue.embedded:
        raise _Invalid(
            "venue.embedded", "only the simulator can be embedded; set it false for kraken"
        )
    seen: set[str] = set()
    for i, account in enumerate(config.accounts):
        if account.name in seen:
            raise _Invalid(f"accounts[{i}].name", f"duplicate account name {account.name!r}")
        seen.add(account.name)
        if not venue.is_embedded:
            for field in ("api_key", "api_secret"):
                if getattr(account, field) is None:
                    raise _Invalid(
                        f"accounts[{i}].{field}",
                        "required when the venue is not the embedded simulator",
                    )
    masters = [i for i, a in enumerate(config.accounts) if a.role == "master"]
    if config.accounts and len(masters) != 1:
        where = f"accounts[{masters[1]}].role" if masters else "accounts"
        raise _Invalid(where, f"exactly one account must have role 'master', found {len(masters)}")
    if config.strategies and not config.accounts:
        raise _Invalid("accounts", "strategies are configured but no accounts are")


def _check_strategies(config: Config) -> None:
    roles = {a.name: a.role for a in config.accounts}
    names: set[str] = set()
    owner_of_account: dict[str, str] = {}
    for i, strategy in enumerate(config.strategies):
        where = f"strategies[{i}]"
        if strategy.name in names:
            raise _Invalid(f"{where}.name", f"duplicate strategy name {strategy.name!r}")
        names.add(strategy.name)
        account = strategy.account
        if account not in roles:
            known = ", ".join(roles) or "none"
            raise _Invalid(f"{where}.account", f"unknown account {account!r}; known: {known}")
        if roles[account] == "master":
            raise _Invalid(
                f"{where}.account",
                f"{account!r} is the master account; strategies trade from sub-accounts",
            )
        if account in owner_of_account:
            raise _Invalid(
                f"{where}.account",
                f"sub-account {account!r} is already used by strategy "
                f"{owner_of_account[account]!r}; one strategy per sub-account",
            )
        owner_of_account[account] = strategy.name
        if len(set(strategy.pairs)) != len(strategy.pairs):
            raise _Invalid(f"{where}.pairs", "a pair is listed twice")


def _check_rebalancer(config: Config) -> None:
    accounts = {a.name for a in config.accounts}
    rebalancer = config.rebalancer
    if rebalancer.source_account is not None and rebalancer.source_account not in accounts:
        raise _Invalid(
            "rebalancer.source_account", f"unknown account {rebalancer.source_account!r}"
        )
    seen_bands: set[tuple[str, str]] = set()
    for i, band in enumerate(rebalancer.targets):
        where = f"rebalancer.targets[{i}]"
        if band.account not in accounts:
            raise _Invalid(f"{where}.account", f"unknown account {band.account!r}")
        if not Decimal(0) <= band.low <= band.target <= band.high:
            raise _Invalid(
                where,
                f"needs 0 <= low <= target <= high, got {band.low} / {band.target} / {band.high}",
            )
        if (band.account, band.asset) in seen_bands:
            raise _Invalid(where, f"a second band for {band.account}/{band.asset}")
        seen_bands.add((band.account, band.asset))


def _check_operators(config: Config) -> None:
    seen: set[str] = set()
    for i, operator in enumerate(config.control.operators):
        if operator.name in seen:
            raise _Invalid(f"control.operators[{i}].name", f"duplicate operator {operator.name!r}")
        seen.add(operator.name)

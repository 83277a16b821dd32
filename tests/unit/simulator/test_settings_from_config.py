"""The simulator serves the service's own config: accounts, tier, seed and the same Decisions."""

from __future__ import annotations

from pathlib import Path

from orchestrator.config import load_config, parse_config
from orchestrator.simulator.settings import settings_from_config

ROOT = Path(__file__).resolve().parents[3]


def test_example_config_becomes_the_demo_domain() -> None:
    settings = settings_from_config(load_config(ROOT / "orchestrator.example.toml", environ={}))
    assert [(a.name, a.role) for a in settings.accounts] == [
        ("master", "master"), ("mm-xbt", "sub"), ("twap-eth", "sub"), ("grid-sol", "sub"),
    ]  # fmt: skip
    assert settings.tier == "intermediate"
    assert all(a.balances for a in settings.accounts)


def test_decisions_follow_the_limiter_config() -> None:
    config = parse_config(
        {
            "venue": {"tier": "pro", "simulator": {"seed": 7}},
            "limits": {"domain_multiplier": 3, "domain_scope": "all", "per_account_cap": False},
            "accounts": [{"name": "m", "role": "master", "account_id": "AA11 BB22"}],
        }
    )
    settings = settings_from_config(config)
    assert (settings.tier, settings.seed) == ("pro", 7)
    assert (settings.domain.multiplier, settings.domain.scope, settings.domain.per_account_cap) == (
        3,
        "all",
        False,
    )
    assert settings.accounts[0].account_id == "AA11 BB22"

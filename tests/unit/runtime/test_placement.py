"""Placement of strategies over replicas: pinned or by rendezvous hashing, the same in every
process, balanced, and moving only what must when the number of replicas changes."""

from __future__ import annotations

import collections

import pytest

from orchestrator.config import StrategyConfig, parse_config
from orchestrator.errors import ConfigError
from orchestrator.runtime.placement import ordinal_of, owner_of, place


def strategy(name: str, replica: int | None = None) -> StrategyConfig:
    return StrategyConfig(name=name, module="strategies.market_maker", account=f"acct-{name}",
                          pairs=["XBT/USD"], replica=replica)  # fmt: skip


NAMES = [f"mm{i}" for i in range(300)]


def test_every_strategy_runs_on_exactly_one_replica_as_every_process_computes() -> None:
    strategies = [strategy(n) for n in NAMES[:6]]
    views = [place(strategies, instance=f"orchestrator-{i}", replicas=3) for i in range(3)]
    hosted = [name for view in views for name in view.here]
    assert sorted(hosted) == sorted(NAMES[:6])  # once each
    for view in views:  # every process agrees where the others' run
        for name, owner in view.elsewhere.items():
            assert name in views[owner].here


def test_rendezvous_spreads_strategies_and_moves_few_when_a_replica_is_added() -> None:
    three = {n: owner_of(n, 3) for n in NAMES}
    counts = collections.Counter(three.values())
    assert min(counts.values()) >= 80  # of 300 over 3: roughly balanced
    four = {n: owner_of(n, 4) for n in NAMES}
    moved = [n for n in NAMES if three[n] != four[n]]
    assert all(four[n] == 3 for n in moved)  # only to the new replica
    assert 40 <= len(moved) <= 110  # about a quarter, not all


def test_a_pinned_strategy_runs_where_pinned() -> None:
    view = place([strategy("a", replica=2), strategy("b", replica=0)],
                 instance="desk-2", replicas=3)  # fmt: skip
    assert view.here == ("a",)
    assert view.elsewhere == {"b": 0}


@pytest.mark.parametrize("instance", ["orchestrator", "orchestrator-3", "host-a"])
def test_several_replicas_need_an_ordinal_in_the_instance_name(instance: str) -> None:
    with pytest.raises(ConfigError, match=r"service\.instance"):
        ordinal_of(instance, 3)


def test_one_replica_runs_everything_whatever_its_name() -> None:
    view = place([strategy(n) for n in NAMES[:5]], instance="any-host", replicas=1)
    assert view.here == tuple(NAMES[:5])
    assert view.elsewhere == {}


def test_a_pin_beyond_the_replicas_is_a_config_error() -> None:
    raw = {
        "service": {"replicas": 2},
        "accounts": [{"name": "m", "role": "master"}, {"name": "s0", "role": "sub"}],
        "strategies": [{"name": "mm", "module": "strategies.market_maker", "account": "s0",
                        "pairs": ["XBT/USD"], "replica": 2}],
    }  # fmt: skip
    with pytest.raises(ConfigError, match=r"strategies\[0\]\.replica: must be below"):
        parse_config(raw)

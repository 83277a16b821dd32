"""Which of the service's processes runs each strategy, when several share one config: pure.

A desk runs `service.replicas` processes with one config (a StatefulSet's pods, systemd
instances). Each process knows its ordinal from its instance name's trailing number
(`orchestrator-2` is 2: a StatefulSet's pod names are exactly that) and runs the strategies whose
owner is that ordinal: the one a strategy pins (`strategies[].replica`), else the ordinal that
ranks first for it by rendezvous hashing. No process asks another: every one computes the same
placement from the same config, and when `replicas` changes only the strategies whose first rank
changed move (about 1/N of them), not all.

The placement says where a strategy should run, not that it runs in one place only: two
processes started with the same ordinal would both run it. A StatefulSet never does that; the
leases that make it impossible are not built yet.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from orchestrator.config import StrategyConfig
from orchestrator.errors import ConfigError

_ORDINAL: Final = re.compile(r"[-_.](\d{1,4})$")


def ordinal_of(instance: str, replicas: int) -> int:
    """This process's ordinal (0 with one replica); `ConfigError` when several replicas share
    the config and the instance name does not end in one below `replicas`."""
    if replicas == 1:
        return 0
    found = _ORDINAL.search(instance)
    if found is None or int(found[1]) >= replicas:
        raise ConfigError(
            "service.instance",
            f"with service.replicas = {replicas}, this process's name must end in its ordinal "
            f"0..{replicas - 1} (e.g. orchestrator-0, as a StatefulSet names its pods), "
            f"got {instance!r}",
        )
    return int(found[1])


def owner_of(strategy: str, replicas: int, pinned: int | None = None) -> int:
    """The ordinal that runs `strategy`: the pinned one, else its rendezvous winner."""
    if pinned is not None:
        return pinned
    return max(range(replicas), key=lambda ordinal: (_rank(strategy, ordinal), -ordinal))


def _rank(strategy: str, ordinal: int) -> int:
    digest = hashlib.blake2b(f"{strategy}\x00{ordinal}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@dataclass(frozen=True, slots=True)
class Placement:
    ordinal: int
    replicas: int
    here: tuple[str, ...]  # the strategies this process runs, in config order
    elsewhere: dict[str, int]  # the others, by the ordinal that runs them


def place(strategies: Sequence[StrategyConfig], *, instance: str, replicas: int) -> Placement:
    """Where each configured strategy runs, seen from the process named `instance`."""
    ordinal = ordinal_of(instance, replicas)
    here: list[str] = []
    elsewhere: dict[str, int] = {}
    for strategy in strategies:
        owner = owner_of(strategy.name, replicas, strategy.replica)
        if owner == ordinal:
            here.append(strategy.name)
        else:
            elsewhere[strategy.name] = owner
    return Placement(ordinal, replicas, tuple(here), elsewhere)

"""The arguments and the reply of `lua/acquire.lua`, in one place (its header is the spec).

Few arguments, one reply string: each argument and each reply element costs the client
(redis-py packs and hiredis builds each one) about as much as a line of the script's maths, so
the request and the settings go as one argument, the scopes as one, and the reply comes back as
one string. Pure: the limiter and the script's property test build calls with the same code.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

NO_EPOCH: Final = "-"  # the caller asks for no epoch check (tests of the maths alone)
NO_STRATEGY: Final = "-"  # the request charges no fair share
# A strategy's name travels inside a space-separated argument and a "|"-joined field name.
_STRATEGY_NAME: Final = re.compile(r"^[A-Za-z0-9_.:/][A-Za-z0-9_.:/-]{0,199}$")


def check_strategy_name(name: str) -> str:
    """`name`, when the script can carry it (no space, "|" or braces); else `ValueError`."""
    if not _STRATEGY_NAME.match(name):
        raise ValueError(f"strategy name {name!r} must match {_STRATEGY_NAME.pattern}")
    return name


def settings_arg(reserve_fraction: float, transit_s: float, window_s: float) -> str:
    """The tail of ARGV[2]: what stays the same for every call of one limiter."""
    return f"{reserve_fraction!r} {transit_s!r} {window_s!r}"


def request_arg(
    *,
    risk_reducing: bool,
    max_wait_s: float,
    epoch_id: str,
    strategy: str,
    weight: float,
    opening_weight: float,
    phase: float,
    settings: str,
) -> str:
    """ARGV[2]: one request's lane, deadline, epoch and fair share (`NO_STRATEGY` for none),
    then the limiter's `settings_arg`."""
    return (
        f"{int(risk_reducing)} {max_wait_s!r} {epoch_id or NO_EPOCH} {strategy} {weight!r} "
        f"{opening_weight!r} {phase!r} {settings}"
    )


def scope_prefix(name: str, threshold: float, decay_per_s: float) -> str:
    """The part of a scope's entry in ARGV[3] that never changes (a limiter formats it once)."""
    return f"{name} {threshold!r} {decay_per_s!r} "


def scope_entry_head(prefix: str, cost: float, is_pool: bool, uncapped: bool) -> str:
    """A charge's entry in ARGV[3] up to its floors: what repeats for the same cost."""
    return f"{prefix}{cost!r} {_FLAGS[is_pool, uncapped]}"


def scope_entry(head: str, tat_floor_s: float, missing_tat: float) -> str:
    """One scope's entry in ARGV[3] (entries are joined by "|")."""
    return f"{head}{tat_floor_s!r} {missing_tat!r}"


_FLAGS: Final = {
    (is_pool, uncapped): f"{int(is_pool)} {int(uncapped)} "
    for is_pool in (False, True)
    for uncapped in (False, True)
}


class Reply(NamedTuple):
    status: int  # 1 granted (maybe with a wait), 0 refused, -1 not the caller's epoch
    wait_s: float
    binding: int  # index of the scope that decided the wait, -1 none
    now_s: float  # Redis's clock
    seq: int  # grants counted in the epoch (0 unless granted)
    tats: list[float]  # each scope's tat after the call (none when the epoch was not the caller's)


def parse_reply(raw: bytes | str) -> Reply:
    """The script's reply string as values (raises `ValueError` on a malformed one)."""
    status, wait_s, binding, now_s, seq, *tats = raw.split()
    return Reply(
        int(status), float(wait_s), int(binding) - 1, float(now_s), int(seq), list(map(float, tats))
    )

"""The arguments and the reply of `lua/acquire.lua`, in one place (its header is the spec).

Numbers travel as packed little-endian doubles, strings as themselves: a double is exact both
ways and costs the script a fifth of what reading or writing its text does (text handling was
about half of the script's time), and Python packs and unpacks them faster than it formats them.
A request is five arguments but for the scopes' names: what repeats from call to call is packed
once by `calls.py`. Pure: the limiter and the script's property test build calls with this code.
"""

from __future__ import annotations

import re
import struct
from typing import Final, NamedTuple

NO_EPOCH: Final = "-"  # the caller asks for no epoch check (tests of the maths alone)
NO_STRATEGY: Final = "-"  # the request charges no fair share
# A strategy's name travels as a member of a sorted set and inside a "|"-joined field name.
_STRATEGY_NAME: Final = re.compile(r"^[A-Za-z0-9_.:/][A-Za-z0-9_.:/-]{0,199}$")

_REQUEST: Final = struct.Struct("<8d")
_SCOPE_HEAD: Final = struct.Struct("<5d")  # threshold, decay, cost, is_pool, uncapped
_SCOPE_TAIL: Final = struct.Struct("<2d")  # tat_floor, missing_tat
_REPLY_HEAD: Final = 5  # status, wait, binding, now, seq; then one tat per scope
# A reply's layout by its length in doubles (a request touches a handful of scopes at most).
_REPLIES: Final = {n: struct.Struct(f"<{n}d") for n in range(_REPLY_HEAD, _REPLY_HEAD + 17)}
_COUNTER: Final = struct.Struct("<2d")  # a counter as stored: tat, cool


def check_strategy_name(name: str) -> str:
    """`name`, when the script can carry it (no space, "|" or braces); else `ValueError`."""
    if not _STRATEGY_NAME.match(name):
        raise ValueError(f"strategy name {name!r} must match {_STRATEGY_NAME.pattern}")
    return name


def request_arg(
    *,
    risk_reducing: bool,
    max_wait_s: float,
    weight: float,
    opening_weight: float,
    phase: float,
    reserve_fraction: float,
    transit_s: float,
    window_s: float,
) -> bytes:
    """ARGV[4]: one request's lane, deadline and fair share, and the limiter's settings."""
    return _REQUEST.pack(
        float(risk_reducing), max_wait_s, weight, opening_weight, phase, reserve_fraction,
        transit_s, window_s,
    )  # fmt: skip


def scope_head(threshold: float, decay_per_s: float, cost: float, is_pool: bool,
               uncapped: bool) -> bytes:  # fmt: skip
    """A charge's numbers in ARGV[5] up to its floors: what repeats for the same cost."""
    return _SCOPE_HEAD.pack(threshold, decay_per_s, cost, float(is_pool), float(uncapped))


def scope_tail(tat_floor_s: float, missing_tat: float) -> bytes:
    """The rest of a charge's numbers in ARGV[5]: what this process knows of its scope now."""
    return _SCOPE_TAIL.pack(tat_floor_s, missing_tat)


class Reply(NamedTuple):
    status: int  # 1 granted (maybe with a wait), 0 refused, -1 not the caller's epoch
    wait_s: float
    binding: int  # index of the scope that decided the wait, -1 none
    now_s: float  # Redis's clock
    seq: int  # grants counted in the epoch (0 unless granted)
    tats: tuple[float, ...]  # each scope's tat after the call (none when not the caller's epoch)


def parse_reply(raw: bytes) -> Reply:
    """The script's reply as values (raises `ValueError` on a malformed one)."""
    layout = _REPLIES.get(len(raw) // 8) if isinstance(raw, bytes) and not len(raw) % 8 else None
    if layout is None:
        raise ValueError(f"not a packed reply: {raw!r}")
    status, wait_s, binding, now_s, seq, *tats = layout.unpack(raw)
    return Reply(int(status), wait_s, int(binding) - 1, now_s, int(seq), tuple(tats))


def pack_counter(tat_s: float, cool_s: float) -> bytes:
    """A counter's value in the state hash (the scripts' `pack_scope`)."""
    return _COUNTER.pack(tat_s, cool_s)


def unpack_counter(stored: bytes | str) -> tuple[float, float]:
    """A counter's (tat, cooldown end) from its value in the state hash (raises `ValueError`
    on anything else: text, from a client that decodes replies, cannot hold packed doubles)."""
    if not isinstance(stored, bytes) or len(stored) != _COUNTER.size:
        raise ValueError(f"not a packed counter (a client that decodes replies?): {stored!r}")
    tat_s, cool_s = _COUNTER.unpack(stored)
    return tat_s, cool_s

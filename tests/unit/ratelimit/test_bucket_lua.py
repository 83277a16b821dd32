"""The Lua script and `bucket.decide` make the same decisions on random sequences.

The script gets the test's time as an argument (production uses Redis TIME); both sides start
from the same empty state and must agree on every grant, wait and binding scope, and leave the
same state behind.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import fakeredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.ratelimit.bucket import FairShare, PoolShares, ScopeCharge, ScopeState, decide
from orchestrator.ratelimit.bucket import penalize as py_penalize
from orchestrator.ratelimit.redis import ACQUIRE_LUA, PENALIZE_LUA
from orchestrator.ratelimit.wire import (
    NO_EPOCH,
    NO_STRATEGY,
    parse_reply,
    request_arg,
    scope_head,
    scope_tail,
    unpack_counter,
)

SCOPES = (
    ("rest", 20.0, 0.5, False),
    ("trade", 125.0, 2.34, False),
    ("pool", 625.0, 11.7, True),
)
STRATEGIES = {"a": 1.0, "b": 2.0, "c": 1.0, "d": 0.5}
WINDOW_S = 10.0
STATE = "state"  # the limiter's state hash
SHARES = "s|pool|"  # the pool's share fields in it


@dataclass
class Step:
    dt_s: float
    scopes: tuple[int, ...]
    cost: float
    risk_reducing: bool
    max_wait_s: float
    strategy: str | None
    penalize: bool
    floor_ahead_s: float | None  # a caller that knows a fresher (higher) tat than Redis holds
    transit_s: float
    uncapped: bool  # a risk-reducing request the venue takes past the threshold (CancelAll)
    opening_weight: float  # the weight configured on the pool (0: unknown)


steps = st.lists(
    st.builds(
        Step,
        dt_s=st.sampled_from([0.0, 0.0, 0.01, 0.1, 0.37, 1.0, 5.0, 60.0]),
        scopes=st.sets(st.integers(0, 2), min_size=1).map(lambda s: tuple(sorted(s))),
        cost=st.sampled_from([0.0, 1.0, 1.0, 2.0, 4.0, 8.0, 30.0, 700.0]),
        risk_reducing=st.booleans(),
        max_wait_s=st.sampled_from([0.0, 0.5, 5.0, 1e9]),
        strategy=st.sampled_from([None, "a", "b", "c", "d"]),
        penalize=st.integers(0, 9).map(lambda n: n == 0),  # one step in ten is venue feedback
        floor_ahead_s=st.sampled_from([None, None, None, -1.0, 0.5, 3.0, 60.0]),
        transit_s=st.sampled_from([0.0, 0.05, 0.3]),
        uncapped=st.integers(0, 4).map(lambda n: n == 0),
        opening_weight=st.sampled_from([0.0, 0.0, 1.0, 4.5, 40.0]),
    ),
    min_size=1,
    max_size=60,
)


def _fmt(x: float) -> str:
    return repr(x)


OUTCOMES: dict[str, int] = {"granted_now": 0, "granted_later": 0, "refused": 0}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=steps, start_s=st.floats(1.7e9, 1.8e9))
def test_lua_and_python_agree(steps: list[Step], start_s: float) -> None:
    server = fakeredis.FakeServer()
    r = fakeredis.FakeRedis(server=server)
    acquire = r.register_script(ACQUIRE_LUA)
    penalize = r.register_script(PENALIZE_LUA)
    states = [ScopeState() for _ in SCOPES]
    shares = PoolShares()
    now_s = start_s
    for step in steps:
        now_s += step.dt_s
        uncapped = step.uncapped and step.risk_reducing
        charges = [
            ScopeCharge(SCOPES[i][1], SCOPES[i][2], step.cost, SCOPES[i][3], uncapped)
            for i in step.scopes
        ]
        if step.penalize:
            i = step.scopes[0]
            states[i] = py_penalize(states[i], SCOPES[i][1], SCOPES[i][2], now_s, 1.5)
            named = [_fmt(now_s), f"r|{SCOPES[i][0]}", _fmt(SCOPES[i][1]), _fmt(SCOPES[i][2])]
            penalize(keys=[STATE], args=[*named, "1.5"])
            continue
        has_pool = any(SCOPES[i][3] for i in step.scopes)
        fair = None
        floors = [
            0.0 if step.floor_ahead_s is None else states[i].tat_s + step.floor_ahead_s
            for i in step.scopes
        ]
        packed = b"".join(
            scope_head(c.threshold, c.decay_per_s, c.cost, c.is_pool, c.uncapped)
            + scope_tail(floor, 0.0)
            for c, floor in zip(charges, floors, strict=True)
        )
        fields = [f"r|{SCOPES[i][0]}" for i in step.scopes]
        keys = [STATE]
        if step.strategy and has_pool:
            fair = FairShare(step.strategy, STRATEGIES[step.strategy], WINDOW_S,
                             opening_weight=step.opening_weight)  # fmt: skip
            keys.append("active:pool")
        request = request_arg(
            risk_reducing=step.risk_reducing,
            max_wait_s=step.max_wait_s,
            weight=fair.weight if fair else 0.0,
            opening_weight=step.opening_weight if fair else 0.0,
            phase=fair.phase if fair else 0.0,
            reserve_fraction=0.1,
            transit_s=step.transit_s,
            window_s=WINDOW_S,
        )
        strategy = fair.strategy if fair else NO_STRATEGY
        args: list[str | bytes] = [_fmt(now_s), NO_EPOCH, strategy, request, packed, *fields]
        py = decide(
            now_s,
            charges,
            [states[i].floored(floor) for i, floor in zip(step.scopes, floors, strict=True)],
            risk_reducing=step.risk_reducing,
            reserve_fraction=0.1,
            max_wait_s=step.max_wait_s,
            fair=fair,
            shares=shares,
            transit_s=step.transit_s,
        )
        reply = parse_reply(acquire(keys=keys, args=args))
        assert reply.now_s == now_s
        assert (reply.status == 1) == py.granted, (step, py)
        assert (reply.seq > 0) == py.granted
        lua_wait = reply.wait_s
        assert (math.isinf(lua_wait) and math.isinf(py.wait_s)) or math.isclose(
            lua_wait, py.wait_s, rel_tol=1e-12, abs_tol=1e-9
        )
        assert reply.binding == py.binding
        outcome = (
            "refused" if not py.granted else ("granted_later" if py.wait_s > 0 else "granted_now")
        )
        OUTCOMES[outcome] += 1
        if py.granted:
            assert reply.tats == tuple(new.tat_s for new in py.scopes)
            for i, new in zip(step.scopes, py.scopes, strict=True):
                states[i] = new
            if py.shares is not None:
                shares = py.shares
        for i in step.scopes:
            stored = r.hget(STATE, f"r|{SCOPES[i][0]}")
            tat, cool = unpack_counter(stored) if stored else (0.0, 0.0)
            assert (tat, cool) == (states[i].tat_s, states[i].cool_until_s)
        raw_state: dict[bytes, bytes] = r.hgetall(STATE)  # type: ignore[assignment]
        stored_shares = {
            k.decode().removeprefix(SHARES): struct.unpack(f"<{len(v) // 8}d", v)
            for k, v in raw_state.items()
            if k.decode().startswith(SHARES)
        }
        if "~W" in stored_shares:  # [total bound]: the bound is the script's, not the maths'
            total, bound = stored_shares["~W"]
            stored_shares["~W"] = (total,)
            ends = [m.active_until_s for m in shares.members.values() if m.active_until_s]
            assert bound <= min(ends, default=math.inf)
        expected: dict[str, tuple[float, ...]] = (
            {"~W": (shares.total_weight,)} if shares.members else {}
        )
        for name, share in shares.members.items():
            assert share.active_until_s is not None  # a member is in the active set
            expected[name] = (share.tat_s, share.weight, share.decay_per_s, share.active_until_s)
        if stored_shares or expected:
            assert stored_shares == expected
        raw_active: list[tuple[bytes, float]] = r.zrange("active:pool", 0, -1, withscores=True)  # type: ignore[assignment]
        active = {k.decode(): v for k, v in raw_active}
        assert active == {n: m.active_until_s for n, m in shares.members.items()}


def test_the_property_saw_every_outcome() -> None:
    """Guard against a vacuous property: grants now, reservations and refusals all occurred."""
    test_lua_and_python_agree()
    assert all(count > 0 for count in OUTCOMES.values()), OUTCOMES

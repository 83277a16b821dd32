"""Fair shares as a desk sees them, on `bucket.decide` (the script's mirror), simulated in time.

Greedy callers ask again the moment their permit's slot comes; every decision is a grant (no
refuse-and-retry), the pool never goes over its limit, its decay is used in full once the burst
is spent, and each strategy's take follows its weight, or borrows what others leave idle.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from orchestrator.ratelimit.bucket import FairShare, PoolShares, ScopeCharge, ScopeState, decide

THRESHOLD, DECAY = 900.0, 18.75  # a pro tier's domain pool, 5x
RESERVE = 0.1
LIMIT = THRESHOLD * (1 - RESERVE)


@dataclass
class Pool:
    threshold: float = THRESHOLD
    decay_per_s: float = DECAY
    opening_weight: float = 0.0  # the weight configured on the pool (0: unknown)
    state: ScopeState = field(default_factory=ScopeState)
    shares: PoolShares = field(default_factory=PoolShares)
    sent: list[tuple[float, str, float]] = field(default_factory=list)  # (send_s, strategy, cost)
    decisions: int = 0

    def ask(
        self, now_s: float, strategy: str, weight: float, max_wait_s: float = 1e9
    ) -> float | None:
        """One decision; the send time of the granted request (None: past `max_wait_s`)."""
        cost = 1.0
        self.decisions += 1
        decision = decide(
            now_s,
            [ScopeCharge(self.threshold, self.decay_per_s, cost, is_pool=True)],
            [self.state],
            risk_reducing=False,
            reserve_fraction=RESERVE,
            max_wait_s=max_wait_s,
            fair=FairShare(strategy, weight, 10.0, opening_weight=self.opening_weight),
            shares=self.shares,
        )
        if not decision.granted:
            assert decision.wait_s > max_wait_s
            return None
        assert decision.shares is not None
        self.state, self.shares = decision.scopes[0], decision.shares
        send_s = now_s + decision.wait_s
        self.sent.append((send_s, strategy, cost))
        return send_s


def run_greedy(
    pool: Pool,
    weights: dict[str, float],
    duration_s: float,
    *,
    light: dict[str, float] | None = None,
    rtt_s: float | Callable[[], float] = 0.0,
    start_spread_s: float | None = None,
) -> None:
    """Each greedy strategy asks again when its last slot comes (`rtt_s` after it: a real
    caller's round trip, a constant or drawn per ask); the greedy ones start `start_spread_s`
    apart in all (default: one round trip), in name order; `light` ones ask every so many
    seconds."""
    round_trip_s = rtt_s if callable(rtt_s) else (lambda: float(rtt_s))
    spread_s = round_trip_s() if start_spread_s is None else start_spread_s
    events = [(i * spread_s / len(weights), name) for i, name in enumerate(sorted(weights))]
    events += [(0.0, name) for name in sorted(light or {})]
    heapq.heapify(events)
    while events:
        now_s, name = heapq.heappop(events)
        if now_s >= duration_s:
            continue
        weight = weights.get(name, 1.0)
        send_s = pool.ask(now_s, name, weight)
        assert send_s is not None
        if name in weights:
            nxt = send_s + round_trip_s()
        else:
            nxt = max(send_s, now_s + (light or {})[name])
        heapq.heappush(events, (nxt, name))


def max_level(sent: list[tuple[float, str, float]], decay_per_s: float = DECAY) -> float:
    """The venue's view: the real level just after each send."""
    level, last_s, worst = 0.0, 0.0, 0.0
    for send_s, _, cost in sorted(sent):
        level = max(0.0, level - (send_s - last_s) * decay_per_s) + cost
        last_s = send_s
        worst = max(worst, level)
    return worst


def taken(sent: list[tuple[float, str, float]], start_s: float, end_s: float) -> dict[str, float]:
    out: dict[str, float] = {}
    for send_s, name, cost in sent:
        if start_s <= send_s < end_s:
            out[name] = out.get(name, 0.0) + cost
    return out


@pytest.mark.parametrize("n", [10, 50, 200])
def test_greedy_strategies_get_equal_shares_of_the_whole_decay(n: int) -> None:
    pool = Pool()
    weights = {f"s{i:03d}": 1.0 for i in range(n)}
    run_greedy(pool, weights, duration_s=300.0)
    assert pool.decisions == len(pool.sent)  # one decision per permit: nothing refused
    assert max_level(pool.sent) <= LIMIT + 1e-9
    # Steady state (after the burst): the pool's decay in full, each its 1/n of it.
    steady = taken(pool.sent, 100.0, 300.0)
    assert sum(steady.values()) / (200.0 * DECAY) >= 0.99
    per = sorted(steady.values())
    assert per[0] >= per[-1] - 1.0  # within one request of each other


@pytest.mark.parametrize("configured", [True, False])
def test_the_first_to_start_takes_its_part_of_the_burst_not_the_others(configured: bool) -> None:
    """Fifty greedy strategies of one weight (each asks again a round trip after its slot), one
    of them 50 ms before the others (processes never start at once): with the weight configured
    on the pool known, it gets its fiftieth of the burst as each of the others does; without
    it, it is alone for those 50 ms and takes all it can ask for in them."""
    pool = Pool(opening_weight=50.0 if configured else 0.0)
    rtt_s = 0.002
    events = [(0.0, "early")] + [(0.05 + i * 1e-4, f"late{i}") for i in range(49)]
    heapq.heapify(events)
    while events:
        now_s, name = heapq.heappop(events)
        if now_s < 5.0:
            send_s = pool.ask(now_s, name, 1.0)
            assert send_s is not None
            heapq.heappush(events, (send_s + rtt_s, name))
    burst = taken(pool.sent, 0.0, 5.0)
    late = [burst[f"late{i}"] for i in range(49)]
    if configured:
        assert burst["early"] <= max(late) + 1.0, (burst["early"], late)  # 19 against 16-18
    else:
        assert burst["early"] > max(late) + 5, (burst["early"], late)  # 28 against 16-18
    assert max_level(pool.sent) <= LIMIT + 1e-9


@pytest.mark.parametrize("configured", [True, False])
def test_weights_set_the_split(configured: bool) -> None:
    """With the pool's configured weight known, the split follows the weights from the first
    permit, burst included. Without it the first to ask ("a", by name) is alone for an instant
    and takes the whole burst; it keeps that, and the rates follow the weights once the others'
    part of the burst has been taken back (within 100 s)."""
    weights = {"big": 4.0, "mid": 2.0, "a": 1.0, "b": 1.0}
    pool = Pool(opening_weight=sum(weights.values()) if configured else 0.0)
    run_greedy(pool, weights, duration_s=200.0)
    window = taken(pool.sent, 0.0 if configured else 100.0, 200.0)
    total = sum(window.values())
    for name, weight in weights.items():
        assert window[name] / total == pytest.approx(weight / 8.0, rel=0.05)
    if not configured:
        assert taken(pool.sent, 0.0, 20.0)["a"] > 3 * taken(pool.sent, 0.0, 20.0)["big"]


def test_a_lone_greedy_strategy_borrows_what_light_ones_leave_idle() -> None:
    pool = Pool()
    light = {f"l{i}": 5.0 for i in range(3)}  # one request every 5 s each: active, nearly idle
    run_greedy(pool, {"greedy": 1.0}, duration_s=200.0, light=light)
    steady = taken(pool.sent, 80.0, 200.0)
    assert sum(steady.values()) / (120.0 * DECAY) >= 0.99  # borrowing keeps the pool full
    assert steady["greedy"] > 0.9 * 120.0 * DECAY  # far beyond its 1/4 share
    assert max_level(pool.sent) <= LIMIT + 1e-9


def test_light_strategies_are_never_queued_behind_a_borrower() -> None:
    """Borrowing leaves every other active share whole: a light strategy's request goes at once,
    however hard a borrower with a 5 s deadline pushes."""
    pool = Pool()
    for tick in range(1200):  # the borrower asks 30 times a second
        now_s = tick / 10
        for _ in range(3):
            pool.ask(now_s, "greedy", 1.0, max_wait_s=5.0)
        if tick >= 200 and tick % 50 == 0:
            assert pool.ask(now_s, "light", 1.0) == pytest.approx(now_s, abs=1e-9)
    assert max_level(pool.sent) <= LIMIT + 1e-9
    steady = taken(pool.sent, 30.0, 120.0)
    assert sum(steady.values()) / (90.0 * DECAY) >= 0.99


def window_for_20(n: int, threshold: float = 625.0, decay_per_s: float = 11.7) -> float:
    """The window in which the lightest share (weight 1 of n alternating 1 and 2) expects 20
    permits of the new-risk budget: one whole request is then 5% of it."""
    weight_sum = sum((1.0, 2.0)[i % 2] for i in range(n))
    return (20.0 * weight_sum - threshold * (1 - RESERVE)) / decay_per_s


@pytest.mark.parametrize("n", [50, 200])
def test_the_benchmark_scale_case_is_fair_and_uses_the_whole_decay(n: int) -> None:
    """The benchmark's scale case in the model: an intermediate pool (625, 11.7/s), n greedy
    strategies of weights 1 and 2 configured on it, starting within 50 ms of each other, each
    asking again a round trip after its slot (3 ms median, one ask in 50 up to 100 ms late);
    over the window in which the lightest share expects 20 permits, every share of all the
    permits (burst included) is within 5% of its weight, and after the burst the pool's decay
    is used in full."""
    weights = {f"s{i:03d}": (1.0, 2.0)[i % 2] for i in range(n)}
    pool = Pool(threshold=625.0, decay_per_s=11.7, opening_weight=sum(weights.values()))
    duration_s = window_for_20(n)
    rng = random.Random(7)

    def rtt_s() -> float:
        late_s = rng.random() * 0.1 if rng.random() < 0.02 else 0.0
        return 0.003 * math.exp(rng.gauss(0.0, 0.5)) + late_s

    run_greedy(pool, weights, duration_s=duration_s, rtt_s=rtt_s, start_spread_s=0.05)
    assert pool.decisions == len(pool.sent)
    assert max_level(pool.sent, 11.7) <= 625.0 * (1 - RESERVE) + 1e-9
    whole = taken(pool.sent, 0.0, duration_s)
    total, weight_sum = sum(whole.values()), sum(weights.values())
    for name, weight in weights.items():
        assert whole[name] / total == pytest.approx(weight / weight_sum, rel=0.05), name
    late = taken(pool.sent, duration_s / 3, duration_s)
    assert sum(late.values()) / (duration_s * 2 / 3 * 11.7) >= 0.99


def test_strategies_that_start_together_do_not_send_in_lockstep() -> None:
    """Fifty greedy strategies of one weight starting at once: without the phase each share
    would find room again at the same instant every interval (50 sends at once); spread by
    name, no 100 ms after the burst holds more than a few of them."""
    weights = {f"s{i:03d}": 1.0 for i in range(50)}
    pool = Pool(opening_weight=50.0)
    run_greedy(pool, weights, duration_s=120.0, rtt_s=0.003)
    after_burst = sorted(send_s for send_s, _, _ in pool.sent if send_s >= 30.0)
    per_slot: dict[int, int] = {}
    for send_s in after_burst:
        per_slot[int(send_s * 10)] = per_slot.get(int(send_s * 10), 0) + 1
    assert max(per_slot.values()) <= 6, max(per_slot.values())

"""The crash test of the order manager: a worker killed -9 at randomized points of placing,
amending and cancelling, then restarted on the same venue, clock and Redis.

Each run is a fresh in-process domain. The first worker trades through crash stand-ins
(tests/unit/workers/crash.py) that kill it at one I/O call, before or after the venue or Redis
acted; from then on it does no I/O at all (no clean-up helps it). A second, healthy worker for the
same account and config then starts (reconciliation runs), trades a little and stops. What the
venue holds is read from the simulator's engine, never from a worker; for every run:

1. no two orders of the account at the venue share a `cl_ord_id` (0 duplicate orders);
2. every order of the account at the venue carries a journalled `cl_ord_id` (nothing was sent
   before its journal entry) and the restarted worker knew it (adopted, not an orphan);
3. the journal has no pending entry once reconciled (every entry resolved), and every intent
   Redis journalled is settled (0 lost intents);
4. every settled outcome agrees with the venue: `placed` -> the order exists (same txid), `not_placed`
   / `rejected` -> no order of that `cl_ord_id` exists;
5. once the restarted worker stopped (cancel_on_stop), 0 orders of the account are open.

Crash points come from a census of a run without a crash (how many calls of each kind it
makes): for each seed one kind, before or after, and the nth call of that kind at random, so
that every kind of call is struck both ways.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

import fakeredis

from orchestrator.clock import ManualClock
from orchestrator.simulator.settings import SimSettings
from orchestrator.strategy import BookView, OrderUpdate, Side, Strategy, StrategyParams
from orchestrator.testing.harness import ReplayHarness
from orchestrator.testing.venue import InProcessVenue
from orchestrator.workers.journal import JournalEntry, OrderJournal, SettledEntry
from orchestrator.workers.orders import OrderManager
from tests.unit.workers.crash import (
    CrashingJournal,
    CrashingVenue,
    CrashPlan,
    CrashPoint,
    SimulatedCrash,
    When,
)

PAIR: Final = "XBT/USD"
ACCOUNT: Final = "mm-xbt"
SIZE: Final = Decimal("0.001")
TICK_S: Final = 0.5
CRASH_RUN_S: Final = 4.0  # venue time the first worker trades before it is stopped
RECONCILE_BOUND_S: Final = 30.0  # > place_final_after_s: an entry never sent is settled by then
RESTART_TRADE_S: Final = 2.0  # the restarted worker trades (and amends what it adopted)
SEEDS: Final = 260
MIN_STRUCK: Final = 200
MUST_STRIKE: Final = ("place", "place_batch", "amend", "cancel", "record", "settle")
# The first life's replies lost (the venue acted): (call, nth of that call).
LOST: Final = frozenset({("place", 3), ("place", 8), ("amend", 4), ("cancel", 2), ("cancel", 5)})
# Where a restarted worker is killed too: its reconciliation's calls, then its trading's.
RESTART_KINDS: Final = ("pending", "open_orders", "find_order", "settle", "settled", "record",
                        "place", "amend", "cancel")  # fmt: skip
CONFIG: Final[dict[str, Any]] = {"name": "churn", "module": "tests.unit.workers.test_crash_recovery",
                                 "account": ACCOUNT, "pairs": [PAIR]}  # fmt: skip


class Churner(Strategy[StrategyParams]):
    """Places, amends and cancels on every timer tick, from what the context says is open (so
    the restarted one works on the orders it adopted): a resting order each tick on alternate
    sides, every resting order amended, the oldest cancelled past two, an IOC at the touch
    every third tick (it fills), and every fourth tick an order cancelled as soon as placed
    (the cancel waits for its place)."""

    def on_start(self) -> None:
        self.ticks = 0
        self.takers: set[str] = set()
        self.ctx.set_timer("tick", TICK_S, repeat=True)

    def on_book(self, book: BookView) -> None:
        if self.ticks == 0 and not self.ctx.open_orders(PAIR):
            self.ticks = 1
            self._churn(book)

    def on_timer(self, name: str) -> None:
        book = self.ctx.book(PAIR)
        if book is not None and self.ticks > 0:
            self.ticks += 1
            self._churn(book)

    def on_order(self, order: OrderUpdate) -> None:
        if not order.is_open:
            self.takers.discard(order.cl_ord_id)

    def _churn(self, book: BookView) -> None:
        bid, ask, mid = book.best_bid, book.best_ask, book.mid
        if bid is None or ask is None or mid is None:
            return
        pair = self.ctx.instrument(PAIR)
        step = Decimal("0.001") * (self.ticks % 5)
        resting = [o for o in self.ctx.open_orders(PAIR) if o.cl_ord_id not in self.takers]
        for order in resting:
            factor = (Decimal("0.985") + step) if order.side == "buy" else (Decimal("1.015") - step)
            price = pair.round_price(mid * factor, up=order.side == "sell")
            if price != order.price:
                self.ctx.amend(order.cl_ord_id, price=price)
        if len(resting) > 2:
            self.ctx.cancel(resting[0].cl_ord_id)
        side: Side = "buy" if self.ticks % 2 else "sell"
        factor = Decimal("0.99") if side == "buy" else Decimal("1.01")
        self.ctx.place(PAIR, side, SIZE, pair.round_price(mid * factor, up=side == "sell"))
        if self.ticks % 3 == 0:
            taker_side: Side = "sell" if self.ticks % 2 else "buy"
            touch = bid[0] if taker_side == "sell" else ask[0]
            self.takers.add(self.ctx.place(PAIR, taker_side, SIZE, touch, time_in_force="IOC"))
        if self.ticks % 4 == 0:
            flash = self.ctx.place(PAIR, "buy", SIZE, pair.round_price(mid * Decimal("0.98")))
            self.ctx.cancel(flash)


@dataclass(frozen=True, slots=True)
class Life:
    """One life of the worker: its harness, whether it was killed, and what it knew once it
    had reconciled (the truth read from the engine and from Redis, not from the worker)."""

    replay: ReplayHarness
    crashed: bool
    reconciled: bool  # its reconciliation ended and its strategy started
    open_at_start: set[str | None]  # at the venue when its strategy started
    adopted: set[str | None]  # of those, the ones its order manager tracks
    pending_at_start: list[JournalEntry]  # entries of earlier lives still pending then


async def live(
    plan: CrashPlan, redis: fakeredis.FakeAsyncRedis, before: ReplayHarness | None,
    *, trade_s: float,
) -> Life:  # fmt: skip
    """Start a worker (on a fresh domain, or on the one `before` left), let it reconcile and
    trade for `trade_s`, then stop it; the plan may kill it anywhere on the way."""
    if before is None:
        replay = ReplayHarness(SimSettings(), clock=ManualClock(), redis=redis)
    else:
        replay = ReplayHarness(clock=before.clock, redis=redis,
                               domain=(before.venue, before.instruments))  # fmt: skip
    truth = OrderJournal(redis, replay.keys, ACCOUNT)  # Redis itself, not through the plan
    open_now: set[str | None] = set()
    adopted: set[str | None] = set()
    pending: list[JournalEntry] = []
    crashed = reconciled = False
    try:
        async with replay:
            worker = replay.add(CONFIG, Churner, wrap_venue=lambda v: CrashingVenue(v, plan),
                                wrap_journal=lambda j: CrashingJournal(j, plan))  # fmt: skip
            await replay.start()
            waited_s = 0.0
            while worker.state == "starting":  # an entry never sent: its deadline waited out
                assert waited_s < RECONCILE_BOUND_S, "reconciliation did not end"
                await replay.run_for(1.0, step_s=1.0)
                waited_s += 1.0
            reconciled = worker.state == "running"  # else killed (or failed) reconciling
            if reconciled:
                open_now = {o.cl_ord_id for o in venue_orders(replay) if o.is_open}
                adopted = open_now & set(worker.manager.orders)
                # this life's own intents may be between record and settle: not reconciled
                pending = [e for e in await truth.pending() if e.cl_ord_id not in plan.recorded]
            await replay.run_for(trade_s)
            await replay.stop()
    except* SimulatedCrash:
        crashed = True
    return Life(replay, crashed, reconciled, open_now, adopted, pending)


def describe(exc: BaseException) -> str:
    """An error as the failure report shows it (a TaskGroup's group by its members)."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


def venue_orders(replay: ReplayHarness) -> list[Any]:
    return [o for o in replay.venue.engine.orders.values() if o.account == ACCOUNT]


def first_plan(point: CrashPoint | None) -> CrashPlan:
    """The first life's plan: replies lost on a few calls (the venue acted), so that places
    settle from the executions, amends and cancels look the order up (`find_order`)."""
    return CrashPlan(point, lost=LOST)


async def census() -> Counter[str]:
    plan = first_plan(None)
    life = await live(plan, fakeredis.FakeAsyncRedis(), None, trade_s=CRASH_RUN_S)
    assert not life.crashed
    counts = Counter(plan.calls)
    counts["batched"] = plan.batched  # orders placed inside place_batch calls (not a call)
    return counts


def choose(seed: int, calls: Counter[str]) -> CrashPoint:
    """One kind of call (round robin), before or after (alternating per round), the nth call
    of that kind drawn at random: each kind struck both ways, at spread-out moments."""
    kinds = sorted(k for k, n in calls.items() if n > 0 and k != "batched")
    kind = kinds[seed % len(kinds)]
    when: When = "before" if (seed // len(kinds)) % 2 == 0 else "after"
    return CrashPoint(kind, random.Random(seed).randint(1, calls[kind]), when)


def choose_again(seed: int) -> CrashPoint | None:
    """Every third run the restarted worker is killed too, early (mostly reconciling)."""
    if seed % 3 != 2:
        return None
    rng = random.Random(-seed)
    when: When = "before" if rng.random() < 0.5 else "after"
    return CrashPoint(RESTART_KINDS[(seed // 3) % len(RESTART_KINDS)], rng.randint(1, 3), when)


@dataclass(frozen=True, slots=True)
class Outcome:
    struck: CrashPoint | None  # where the first life died
    struck_again: CrashPoint | None  # where the second died, if it was killed too


async def one_run(first: CrashPoint, again: CrashPoint | None) -> Outcome:
    redis = fakeredis.FakeAsyncRedis()
    plans = [first_plan(first)]
    lives = [await live(plans[0], redis, None, trade_s=CRASH_RUN_S)]
    if again is not None:
        plans.append(CrashPlan(again))
        lives.append(await live(plans[-1], redis, lives[-1].replay, trade_s=RESTART_TRADE_S))
    plans.append(CrashPlan())  # the last life is healthy
    lives.append(await live(plans[-1], redis, lives[-1].replay, trade_s=RESTART_TRADE_S))
    where = " then ".join(f"crash {p.point} (struck: {p.struck})" for p in plans[:-1])
    for plan, life in zip(plans, lives, strict=True):
        assert life.crashed == (plan.struck is not None), f"{where}: {plan.point} {life.crashed}"
    settled = await OrderJournal(redis, lives[-1].replay.keys, ACCOUNT).settled(10_000)
    check_invariants(lives[-1], plans, settled, where)
    return Outcome(plans[0].struck, plans[1].struck if again is not None else None)


def check_invariants(
    last: Life, plans: list[CrashPlan], settled_entries: list[SettledEntry], where: str
) -> None:
    orders = venue_orders(last.replay)
    ids = Counter(o.cl_ord_id for o in orders)
    duplicates = {k: n for k, n in ids.items() if n > 1}
    assert not duplicates, f"{where}: duplicate orders by cl_ord_id {duplicates}"
    assert None not in ids, f"{where}: an order of the account without a cl_ord_id"
    unjournalled_sends = [c for p in plans for c in p.unjournalled_sends]
    assert unjournalled_sends == [], f"{where}: sent before journalled {unjournalled_sends}"
    assert last.reconciled, f"{where}: the healthy restart did not reconcile"
    assert last.pending_at_start == [], f"{where}: pending once reconciled {last.pending_at_start}"
    assert last.adopted == last.open_at_start, (
        f"{where}: open at the venue, unknown to the restarted worker "
        f"{last.open_at_start - last.adopted}"
    )
    settled = {s.cl_ord_id: s for s in settled_entries}
    assert len(settled) == len(settled_entries), f"{where}: an entry settled twice"
    lost = set().union(*(p.recorded for p in plans)) - set(settled)
    assert not lost, f"{where}: journalled intents never resolved {lost}"
    unjournalled = set(ids) - set(settled)
    assert not unjournalled, f"{where}: orders at the venue no journal knows {unjournalled}"
    by_id = {o.cl_ord_id: o for o in orders}
    for cl_ord_id, entry in settled.items():
        order = by_id.get(cl_ord_id)
        if entry.outcome == "placed":
            assert order is not None, f"{where}: {cl_ord_id} settled placed, absent at the venue"
            assert entry.txid in (None, order.txid), f"{where}: {cl_ord_id} txid differs"
        else:
            assert order is None, f"{where}: {cl_ord_id} settled {entry.outcome}, yet at the venue"
    still_open = [o.cl_ord_id for o in orders if o.is_open]
    assert still_open == [], f"{where}: open at the venue after the stop {still_open}"


# --- the harness's stand-in hooks (regression: they were accepted and ignored) ---------------
async def test_the_harness_puts_the_stand_ins_around_the_workers_venue_and_journal() -> None:
    plan = CrashPlan()
    wrapped: list[object] = []

    def venue(inner: InProcessVenue) -> CrashingVenue:
        wrapped.append(inner)
        return CrashingVenue(inner, plan)

    def journal(inner: OrderJournal) -> OrderJournal:
        wrapped.append(inner)
        return CrashingJournal(inner, plan)

    async with ReplayHarness(SimSettings()) as replay:
        worker = replay.add(CONFIG, Churner, wrap_venue=venue, wrap_journal=journal)
        await replay.start()
        await replay.run_for(1.0)
        manager: OrderManager = worker.manager
        assert isinstance(manager.venue, CrashingVenue)
        assert isinstance(manager.journal, CrashingJournal)
        assert manager.journal.account == ACCOUNT  # read through to the wrapped journal
    assert len(wrapped) == 2
    assert plan.calls["record"] >= 1
    assert plan.calls["place"] + plan.batched == plan.calls["record"]
    assert set(plan.sent) == plan.recorded


async def test_a_harness_left_by_a_crash_no_longer_hears_the_venue() -> None:
    plan = CrashPlan(CrashPoint("place", 2, "after"))
    life = await live(plan, fakeredis.FakeAsyncRedis(), None, trade_s=CRASH_RUN_S)
    assert life.crashed
    assert plan.struck == CrashPoint("place", 2, "after")
    engine = life.replay.venue.engine
    assert engine.execution_listeners == []  # its venue and market were closed on the way out
    assert engine.trade_listeners == []
    assert any(o.is_open for o in venue_orders(life.replay))  # it died with orders resting


# --- the crash test ----------------------------------------------------------------------------
async def test_the_census_run_places_amends_and_cancels_concurrently() -> None:
    calls = await census()
    for kind in (*MUST_STRIKE, "find_order", "cancel_all"):
        assert calls[kind] >= 1, f"the run makes no {kind} call to strike: {calls}"
    for kind in MUST_STRIKE:
        assert calls[kind] >= 4, f"the run makes too few {kind} calls to strike: {calls}"
    assert calls["place"] + calls["batched"] == calls["record"] == calls["settle"]


async def test_killed_at_random_points_the_restart_reconciles_everything() -> None:
    calls = await census()
    struck: list[CrashPoint] = []
    struck_again: list[CrashPoint] = []
    failures: list[str] = []
    for seed in range(SEEDS):
        try:
            outcome = await one_run(choose(seed, calls), choose_again(seed))
        except Exception as exc:  # every seed's failure named, then all reported
            failures.append(f"seed {seed}: {describe(exc)}")
            continue
        struck.extend([outcome.struck] if outcome.struck is not None else [])
        struck_again.extend([outcome.struck_again] if outcome.struck_again is not None else [])
    assert failures == [], "\n".join(failures)
    assert len(struck) >= MIN_STRUCK, f"only {len(struck)} of {SEEDS} runs were struck"
    ways = Counter((p.call, p.when) for p in struck)
    for kind in MUST_STRIKE:
        for when in ("before", "after"):
            assert ways[kind, when] >= 5, f"{kind} struck {when} {ways[kind, when]} times: {ways}"
    again = {p.call for p in struck_again}
    assert {"pending", "open_orders", "settle", "place"} <= again, f"restarts struck at {again}"


# --- regression: an intent queued as the strategy stops is refused, not left open -----------
class PlacesOnStop(Strategy[StrategyParams]):
    """An intent made while stopping (a timer or `on_stop` racing the stop)."""

    def on_stop(self) -> None:
        book = self.ctx.book(PAIR)
        assert book is not None
        assert book.mid is not None
        pair = self.ctx.instrument(PAIR)
        self.late = self.ctx.place(PAIR, "buy", SIZE, pair.round_price(book.mid * Decimal("0.99")))


async def test_a_place_queued_while_stopping_is_refused_and_the_stop_is_prompt() -> None:
    async with ReplayHarness(SimSettings()) as replay:
        worker = replay.add(CONFIG, PlacesOnStop)
        await replay.start()
        await replay.run_for(1.0)
        started_s = replay.clock.time()
        await replay.stop()
        stopped_after_s = replay.clock.time() - started_s
        strategy = worker.strategy
        assert isinstance(strategy, PlacesOnStop)
        late = worker.manager.orders[strategy.late]
        assert late.status == "rejected"
        assert late.reason == "not sent: the strategy is stopping"
        assert worker.manager.open_orders() == []
        assert stopped_after_s < 1.0  # not the whole cancel timeout waiting for it
        assert venue_orders(replay) == []  # never sent
        assert await worker.manager.journal.pending() == []
        assert await worker.manager.journal.settled() == []  # never journalled

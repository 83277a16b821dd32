"""The crash test of the executor: killed -9 at randomized I/O points of moving money, then a
fresh executor on the same Redis, simulator and clock settles everything.

Each run is a fresh desk (tests/unit/rebalancer/desk.py). The first life runs two cycles
(reconcile, execute four moves, let time pass, reconcile): a transfer into a sub-account, one
out of a sub-account into the master, a withdrawal, a futures top-up, each of its own account
and asset. Every I/O call it makes goes through crash stand-ins (tests/unit/workers/crash.py's
`CrashPlan`): the journal, the treasury and the futures treasury, and every reader and futures
log, those the treasuries use inside their own calls included. At one call it dies, BEFORE the
call left or AFTER it acted (the venue moved the money, or Redis wrote, and no one heard). Every
third run a second life is killed too, while reconciling. A last, healthy life reconciles until
every record is final (time passes, pending moves fall due, approvals are given), plans again
what did not happen (a move with no `complete` record is executed anew) and settles again.
Runs vary the venue: transfers complete, pending, or pending then failed; Organizations on or
off; one reply lost after the venue acted (AccountTransfer, Withdraw or the futures transfer).

Checked from the simulator's own books, for every run:
1. 0 duplicates: each move executed at the venue exactly once (0 times for transfers in the
   failing mode), and never more often accepted than journalled `sent`;
2. 0 lost: every journal record final; each move has one `complete` record exactly when the
   venue executed it, with the venue's id;
3. nothing reached the venue without its record journalled `sent` first;
4. balances (spot and futures) exactly as planned, nothing left set aside.
"""

from __future__ import annotations

import itertools
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, Literal

from orchestrator.exchange.kraken.futures.client import KrakenFutures
from orchestrator.exchange.kraken.futures.schemas import AccountLog
from orchestrator.exchange.kraken.futures.treasury import FuturesTreasury
from orchestrator.exchange.kraken.spot.treasury import KrakenTreasury
from orchestrator.exchange.protocol import (
    AccountReader,
    Balance,
    LedgerEntry,
    OrderState,
    Transfer,
    Withdrawal,
    WithdrawalState,
)
from orchestrator.metrics import Registry
from orchestrator.rebalancer.executor import TransferExecutor
from orchestrator.rebalancer.journal import TransferJournal
from orchestrator.rebalancer.transfers import PlannedTransfer, TransferRecord, TransferState
from orchestrator.simulator.funding import TransferMode
from orchestrator.simulator.settings import AccountSeed, SimSettings
from tests.unit.rebalancer.desk import Desk, move, open_desk
from tests.unit.workers.crash import CrashPlan, CrashPoint, SimulatedCrash, When

SEEDS: Final = 260
MIN_STRUCK: Final = 200
MOVES: Final = (
    move("100.25", "master", "s0"),
    move("0.1", "s1", "master", asset="XXBT"),
    move("1.5", "master", "desk-wallet", asset="XETH", kind="withdrawal"),
    move("25", "master", "s0", asset="USD", kind="futures_transfer"),
)
MASTER: Final = {"ZUSD": Decimal(100_000), "XXBT": Decimal(10), "XETH": Decimal(20)}
SUB: Final = {"ZUSD": Decimal(1_000), "XXBT": Decimal(1)}
FLEX: Final = {"master": Decimal(5_000), "s0": Decimal(100)}
STEP_S: Final = 60.0  # venue time between the healthy life's reconciliations (= settle_after_s)
ROUNDS: Final = 6  # > (settle_after_s + the venue's delays) / STEP_S, with room
MUST_STRIKE: Final = ("create", "update", "ledger", "account_transfer", "withdraw",
                      "transfer_subaccount", "account_log", "withdraw_status")  # fmt: skip
# The venue calls that reconciling an open record of each kind makes.
RECONCILE_KINDS: Final = {"transfer": ("ledger", "balances"), "withdrawal": ("withdraw_status",),
                          "futures_transfer": ("account_log",)}  # fmt: skip
LOST: Final = (None, "AccountTransfer", "Withdraw", "transfer/subaccount")


@dataclass(frozen=True, slots=True)
class Venue:
    transfer_mode: TransferMode
    organizations: bool
    lost: str | None  # the acting method whose reply the first life loses


MODES: Final[tuple[TransferMode, ...]] = ("complete", "pending", "fail")
CONFIGS: Final = [Venue(m, o, lost) for m, o, lost in itertools.product(MODES, (False, True),
                                                                        LOST)]  # fmt: skip


def settings() -> SimSettings:
    return SimSettings(accounts=(
        AccountSeed(name="master", role="master", balances=MASTER,
                    futures_flex={"ZUSD": FLEX["master"]}),
        AccountSeed(name="s0", balances=SUB, futures_flex={"ZUSD": FLEX["s0"]}),
        AccountSeed(name="s1", balances=SUB),
    ))  # fmt: skip


# --- the stand-ins ------------------------------------------------------------------------------
class Sends:
    """Whether each send to the venue had its record journalled `sent` first (read from Redis
    itself, not through the plan)."""

    def __init__(self, truth: TransferJournal) -> None:
        self.truth = truth
        self.unjournalled: list[str] = []

    async def check(self, asset: str, amount: Decimal) -> None:
        if not any(
            r.state == "sent"
            and r.planned.asset.lower() == asset.lower()
            and r.planned.amount == amount
            for r in await self.truth.open_records()
        ):
            self.unjournalled.append(f"{amount} {asset}")  # fmt: skip


class CrashingJournal(TransferJournal):
    def __init__(self, inner: TransferJournal, plan: CrashPlan) -> None:  # no super(): a view
        self._inner = inner
        self._plan = plan

    def __getattr__(self, name: str) -> Any:  # open_count, keys: the inner journal's
        return getattr(self._inner, name)

    async def create(self, record: TransferRecord) -> None:
        await self._plan.call("create", lambda: self._inner.create(record))

    async def update(self, record: TransferRecord, *, expected: TransferState) -> bool:
        return await self._plan.call(
            "update", lambda: self._inner.update(record, expected=expected)
        )

    async def get(self, record_id: str) -> TransferRecord | None:
        return await self._plan.call("get", lambda: self._inner.get(record_id))

    async def open_records(self) -> list[TransferRecord]:
        return await self._plan.call("open_records", self._inner.open_records)

    async def in_flight(self) -> set[tuple[str, str]]:
        return await self._plan.call("in_flight", self._inner.in_flight)


class CrashingReader:
    def __init__(self, inner: AccountReader, plan: CrashPlan) -> None:
        self._inner = inner
        self._plan = plan

    async def balances(self) -> dict[str, Balance]:
        return await self._plan.call("balances", self._inner.balances)

    async def ledger(
        self, *, asset: str | None = None, type_: str | None = None
    ) -> list[LedgerEntry]:
        return await self._plan.call("ledger", lambda: self._inner.ledger(asset=asset, type_=type_))

    async def query_orders(self, txids: Sequence[str]) -> list[OrderState]:
        return await self._plan.call("query_orders", lambda: self._inner.query_orders(txids))


class CrashingLog(KrakenFutures):
    def __init__(self, inner: KrakenFutures, plan: CrashPlan) -> None:  # no super(): a view
        self._inner = inner
        self._plan = plan

    async def account_log(
        self, *, from_id: int | None = None, sort: Literal["asc", "desc"] = "desc", count: int = 25
    ) -> AccountLog:
        return await self._plan.call("account_log", lambda: self._inner.account_log(
            from_id=from_id, sort=sort, count=count))  # fmt: skip


class CrashingTreasury:
    def __init__(self, inner: KrakenTreasury, plan: CrashPlan, sends: Sends) -> None:
        self._inner = inner
        self._plan = plan
        self._sends = sends

    async def account_transfer(
        self, asset: str, amount: Decimal, source_id: str, target_id: str
    ) -> Transfer:
        async def forward() -> Transfer:
            await self._sends.check(asset, amount)
            return await self._inner.account_transfer(asset, amount, source_id, target_id)

        return await self._plan.call("account_transfer", forward)

    async def withdraw(
        self, asset: str, key: str, amount: Decimal, max_fee: Decimal | None = None
    ) -> Withdrawal:
        async def forward() -> Withdrawal:
            await self._sends.check(asset, amount)
            return await self._inner.withdraw(asset, key, amount, max_fee)

        return await self._plan.call("withdraw", forward)

    async def withdraw_status(self, asset: str | None = None) -> list[WithdrawalState]:
        return await self._plan.call("withdraw_status", lambda: self._inner.withdraw_status(asset))

    async def create_subaccount(self, username: str, email: str) -> None:
        raise AssertionError("the executor never creates sub-accounts")


class CrashingFutures:
    def __init__(self, inner: FuturesTreasury, plan: CrashPlan, sends: Sends) -> None:
        self._inner = inner
        self._plan = plan
        self._sends = sends

    @property
    def logs(self) -> Mapping[str, KrakenFutures]:
        return self._inner.logs

    async def transfer_subaccount(self, *, from_user: str, to_user: str, from_account: str,
                                  to_account: str, unit: str, amount: Decimal) -> None:  # fmt: skip
        async def forward() -> None:
            await self._sends.check(unit, amount)
            await self._inner.transfer_subaccount(from_user=from_user, to_user=to_user,
                                                  from_account=from_account,
                                                  to_account=to_account, unit=unit,
                                                  amount=amount)  # fmt: skip

        await self._plan.call("transfer_subaccount", forward)


def crashing_executor(desk: Desk, plan: CrashPlan, sends: Sends) -> TransferExecutor:
    """One life's executor: the product's pieces, each I/O call through `plan`."""
    readers = {name: CrashingReader(r, plan) for name, r in desk.readers.items()}
    by_id = {desk.account_ids[name]: r for name, r in readers.items()}
    spot = desk.domain.treasury
    futures = desk.domain.futures_treasury
    assert futures is not None
    logs = {uid: CrashingLog(log, plan) for uid, log in futures.logs.items()}
    return desk.executor(
        journal=CrashingJournal(desk.journal(), plan),
        treasury=CrashingTreasury(KrakenTreasury(spot.master, desk.clock, by_id,
                                                 confirm_delay_s=0.0), plan, sends),
        futures=CrashingFutures(FuturesTreasury(futures.master, desk.clock, logs,
                                                confirm_delay_s=0.0), plan, sends),
        readers=readers, registry=Registry(),
    )  # fmt: skip


# --- the lives ----------------------------------------------------------------------------------
async def live(desk: Desk, plan: CrashPlan, sends: Sends,
               work: Callable[[TransferExecutor], Awaitable[None]]) -> bool:  # fmt: skip
    """One life of the executor; True if the plan killed it."""
    try:
        await work(crashing_executor(desk, plan, sends))
    except SimulatedCrash:
        return True
    return False


def cycles(desk: Desk) -> Callable[[TransferExecutor], Awaitable[None]]:
    async def work(executor: TransferExecutor) -> None:
        await executor.reconcile()
        for planned in MOVES:
            await executor.execute(planned, "period")
        await desk.later(3.0)  # the venue's pending moves fall due
        await executor.reconcile()

    return work


async def settle_everything(desk: Desk, executor: TransferExecutor) -> None:
    for _ in range(ROUNDS):
        if not await executor.reconcile():
            return
        for approval in list(desk.sim.venue.funding.approvals):  # the approvers say yes
            desk.sim.venue.funding.decide(approval, True)
        await desk.later(STEP_S)
    raise AssertionError(f"still open after {ROUNDS} reconciliations")


async def reconciling(executor: TransferExecutor) -> None:
    await executor.reconcile()


def recovery(desk: Desk, truth: TransferJournal) -> Callable[[TransferExecutor], Awaitable[None]]:
    async def work(executor: TransferExecutor) -> None:
        await settle_everything(desk, executor)
        done = {r.planned for r in await truth.finished(1_000) if r.state == "complete"}
        for planned in MOVES:  # the next cycle plans again what did not happen
            if planned not in done:
                await executor.execute(planned, "period")
        await settle_everything(desk, executor)

    return work


@dataclass(frozen=True, slots=True)
class Run:
    struck: CrashPoint | None
    struck_again: CrashPoint | None
    duplicates: int
    lost: int
    transfers: int  # moves the venue executed
    endings: Counter[str]  # how the records ended: state, and why when failed


async def one_run(venue: Venue, first: CrashPoint | None, again: int | None,
                  calls: Counter[str] | None = None) -> Run:  # fmt: skip
    """One run; `again`: the seed of a crash point for a second life, chosen among the calls
    that reconciling what the first life left open makes."""
    async with open_desk(settings()) as desk:
        funding = desk.sim.venue.funding
        funding.settings.transfer_mode = venue.transfer_mode
        funding.settings.organization_mode = venue.organizations
        if venue.lost is not None:
            desk.strike(venue.lost)
        truth = desk.journal()
        sends = Sends(truth)
        plans = [CrashPlan(first)]
        crashed = [await live(desk, plans[0], sends, cycles(desk))]
        desk.sim.venue.settings.faults.lost_reply_next = 0
        if again is not None:
            plans.append(CrashPlan(reconciling_point(again, await truth.open_records())))
            crashed.append(await live(desk, plans[-1], sends, reconciling))
        plans.append(CrashPlan())
        crashed.append(await live(desk, plans[-1], sends, recovery(desk, truth)))
        if calls is not None:
            calls.update(plans[0].calls)
        where = " then ".join(f"{p.point} (struck: {p.struck})" for p in plans[:-1])
        assert crashed == [p.struck is not None for p in plans], f"{where}: {crashed}"
        assert sends.unjournalled == [], f"{where}: sent before journalled {sends.unjournalled}"
        records = [*await truth.open_records(), *await truth.finished(1_000)]
        return check(desk, venue, records, where, plans)


def check(desk: Desk, venue: Venue, records: list[TransferRecord], where: str,
          plans: list[CrashPlan]) -> Run:  # fmt: skip
    still_open = [(r.planned.kind, r.state) for r in records if not r.is_final]
    assert still_open == [], f"{where}: open after reconciliation {still_open}"
    duplicates = lost = executed_total = 0
    executed: dict[PlannedTransfer, int] = {}
    for planned in MOVES:
        mine = [r for r in records if r.planned == planned]
        complete = [r for r in mine if r.state == "complete"]
        venue_ids, accepted = at_venue(desk, planned)
        executed[planned] = len(venue_ids)
        expected = 0 if venue.transfer_mode == "fail" and planned.kind == "transfer" else 1
        duplicates += max(0, len(venue_ids) - 1)
        lost += abs(len(complete) - len(venue_ids))
        executed_total += len(venue_ids)
        assert len(venue_ids) == expected, f"{where}: {planned} executed {len(venue_ids)} times"
        assert len(complete) == expected, f"{where}: {planned} complete records {complete}"
        sent = sum(1 for r in mine if r.sent_s is not None)
        assert accepted <= sent, f"{where}: {planned} accepted {accepted} for {sent} sent"
        if planned.kind != "futures_transfer" and complete:
            assert complete[0].venue_id == venue_ids[0], f"{where}: {planned} venue id"
    check_balances(desk, executed, where)
    endings = Counter(ending(r) for r in records)
    return Run(plans[0].struck, plans[1].struck if len(plans) == 3 else None, duplicates, lost,
               executed_total, endings)  # fmt: skip


def ending(record: TransferRecord) -> str:
    if record.error is None or record.state == "complete":
        return record.state
    reason = record.error.split(":")[0]
    if reason == "not executed":
        detail = record.error.split(":")[1].strip()
        return f"failed, not executed: {'no trace' if detail.startswith('no trace') else detail}"
    return f"failed, {reason}"


def at_venue(desk: Desk, planned: PlannedTransfer) -> tuple[list[str], int]:
    """The venue's ids of the times it executed `planned`, and how often it accepted it."""
    funding = desk.sim.venue.funding
    if planned.kind == "transfer":
        ours = [t for t in funding.transfers.values() if (t.asset, t.amount, t.source, t.target)
                == (planned.asset, planned.amount, planned.source, planned.target)]  # fmt: skip
        return [t.transfer_id for t in ours if t.status == "complete"], len(ours)
    if planned.kind == "withdrawal":
        out = [w for w in funding.withdrawals.values()
               if (w.asset, w.amount) == (planned.asset, planned.amount)]  # fmt: skip
        return [w.refid for w in out if w.status == "Success"], len(out)
    log = desk.sim.venue.domain.accounts[planned.source].futures_log
    legs = [e.booking_uid for e in log if e.info == "subaccount transfer"
            and e.new_balance - e.old_balance == -planned.amount]  # fmt: skip
    return legs, len(legs)


def check_balances(desk: Desk, executed: Mapping[PlannedTransfer, int], where: str) -> None:
    into_s0, out_of_s1, withdrawn, top_up = (executed[m] * m.amount for m in MOVES)
    expected = {
        ("master", "ZUSD"): MASTER["ZUSD"] - into_s0, ("s0", "ZUSD"): SUB["ZUSD"] + into_s0,
        ("s1", "XXBT"): SUB["XXBT"] - out_of_s1, ("master", "XXBT"): MASTER["XXBT"] + out_of_s1,
        ("master", "XETH"): MASTER["XETH"] - withdrawn,
    }  # fmt: skip
    seen = {key: desk.balance(*key) for key in expected}
    assert seen == expected, f"{where}: balances {seen} != {expected}"
    flex = {name: desk.flex(name) for name in FLEX}
    assert flex == {"master": FLEX["master"] - top_up, "s0": FLEX["s0"] + top_up}, where
    set_aside = {
        n: a.pending_out for n, a in desk.sim.venue.domain.accounts.items() if a.pending_out
    }
    assert set_aside == {}, f"{where}: still set aside {set_aside}"


# --- choosing the crash points ------------------------------------------------------------------
_CENSUS: dict[Venue, Counter[str]] = {}


async def census(venue: Venue) -> Counter[str]:
    """How many calls of each kind the first life makes on `venue` without a crash."""
    if venue not in _CENSUS:
        calls: Counter[str] = Counter()
        await one_run(venue, None, None, calls)
        _CENSUS[venue] = calls
    return _CENSUS[venue]


async def choose(seed: int) -> tuple[Venue, CrashPoint, int | None]:
    """A venue (every one in turn), a first crash (before or after, alternating; a kind of call
    and its nth at random) and, every third run, a crash while the second life reconciles."""
    rng = random.Random(seed)
    venue = CONFIGS[(seed // 2) % len(CONFIGS)]
    calls = await census(venue)
    kind = rng.choice(sorted(k for k, n in calls.items() if n > 0))
    when: When = "before" if seed % 2 == 0 else "after"
    first = CrashPoint(kind, rng.randint(1, calls[kind]), when)
    return venue, first, rng.randint(0, 1 << 30) if seed % 3 == 2 else None


def reconciling_point(seed: int, left: list[TransferRecord]) -> CrashPoint:
    """A call that reconciling the records `left` open makes, before or after, at random."""
    kinds = ["open_records"]
    if left:
        kinds.append("update")
    for record in left:
        if record.state != "intent":
            kinds.extend(RECONCILE_KINDS[record.planned.kind])
    rng = random.Random(seed)
    when: When = "before" if rng.random() < 0.5 else "after"
    kind = rng.choice(sorted(set(kinds)))
    return CrashPoint(kind, rng.randint(1, 2) if kind in ("ledger", "update") else 1, when)


def describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


async def test_a_census_run_makes_every_kind_of_call_and_moves_everything_once() -> None:
    run = await one_run(CONFIGS[0], None, None)
    assert (run.duplicates, run.lost, run.transfers) == (0, 0, len(MOVES))
    calls = await census(CONFIGS[0])
    for kind in MUST_STRIKE:
        assert calls[kind] >= 1, f"no {kind} call to strike: {calls}"


async def test_killed_at_random_points_a_fresh_executor_settles_everything_once() -> None:
    started_s = time.monotonic()
    runs: list[Run] = []
    failures: list[str] = []
    for seed in range(SEEDS):
        venue, first, again = await choose(seed)
        try:
            runs.append(await one_run(venue, first, again))
        except Exception as exc:  # every seed's failure named, then all reported
            failures.append(f"seed {seed} {venue} {first} / {again}: {describe(exc)}")
    assert failures == [], "\n".join(failures)
    struck = [r.struck for r in runs if r.struck is not None]
    assert len(struck) >= MIN_STRUCK, f"only {len(struck)} of {SEEDS} runs were struck"
    ways = Counter((p.call, p.when) for p in struck)
    for kind in MUST_STRIKE:
        for when in ("before", "after"):
            assert ways[kind, when] >= 2, f"{kind} struck {when} {ways[kind, when]} times: {ways}"
    restarts_all = [(r.struck_again.call, r.struck_again.when) for r in runs if r.struck_again]
    restarts = {call for call, _ in restarts_all}
    assert {"open_records", "ledger", "update"} <= restarts, f"restarts struck at {restarts}"
    assert sum(r.duplicates for r in runs) == 0
    assert sum(r.lost for r in runs) == 0
    print(f"crash runs: {len(runs)}, struck {len(struck)} (again "
          f"{sum(1 for r in runs if r.struck_again)}), venue moves {sum(r.transfers for r in runs)}"
          f", duplicates 0, lost 0, {time.monotonic() - started_s:.1f} s; struck: "
          f"{sorted(ways.items())}; again: {sorted(Counter(restarts_all).items())}; records: "
          f"{sorted(sum((r.endings for r in runs), Counter()).items())}")  # fmt: skip

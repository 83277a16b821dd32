"""Sends one planned move exactly once, and settles every move whose outcome is open.

    executor = TransferExecutor(journal, domain.treasury, futures_treasury=domain.futures_treasury,
                                account_ids=..., readers=..., clock=clock, registry=registry,
                                on_event=publish)
    await executor.reconcile()                  # at start and before every cycle
    record = await executor.execute(planned, "band")

Kraken has no idempotency key for AccountTransfer, Withdraw or the futures transfers. So:
1. `intent` is journalled with the venue's high-water mark taken just before (the source's
   newest `transfer` ledger entry of the asset; the withdrawals listed; the witness's newest
   futures log entry). A refusal (an account and asset with an open move, ...) is journalled
   `failed` and never sent;
2. `sent` is journalled, and only once Redis acknowledged it is the venue called;
3. the answer: `complete` / `pending` (a transfer's status; a withdrawal is `pending` until
   WithdrawStatus says Success); `awaiting_approval` (an Organizations `approval_request_id`:
   never re-sent); `failed` with the venue's error for a refusal (nothing happened; the plan is
   made again); `AmbiguousOutcome` leaves it `sent`, "outcome unknown", for reconciliation.

Reconciliation reads the venue, never memory, so a fresh process settles what a dead one left;
when it concludes "not executed" is the Decision in transfers.py.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Final, Literal, Protocol

import msgspec

from orchestrator.clock import Clock
from orchestrator.errors import (
    AmbiguousOutcome,
    LimiterUnavailable,
    OrchestratorError,
    RateLimited,
    VenueError,
)
from orchestrator.exchange.kraken.futures.methods import ACCOUNT_LOG_MAX_COUNT
from orchestrator.exchange.kraken.futures.schemas import AccountLog
from orchestrator.exchange.kraken.futures.treasury import TRANSFER_INFOS, Leg
from orchestrator.exchange.protocol import AccountReader, LedgerEntry, Treasury, WithdrawalState
from orchestrator.logs import get_logger
from orchestrator.metrics import Registry
from orchestrator.rebalancer.journal import TransferJournal
from orchestrator.rebalancer.transfers import (
    OPEN_STATES,
    PlannedTransfer,
    TransferRecord,
    TransferState,
    utc_day,
)

log = get_logger(__name__)

SETTLE_AFTER_S: Final = 60.0
LEDGER_PAGE: Final = 50  # Kraken's Ledgers lists the newest 50 entries
FUTURES_WALLET: Final = "flex"  # margin top-ups go between flex wallets
_CONSISTENT_READS: Final = 3
_LOG_PAGES: Final = 8
# The venue could not be asked now: the record stays as it is until the next reconciliation.
_CANNOT_ASK: Final = (VenueError, RateLimited, LimiterUnavailable)

Verdict = Literal["complete", "pending", "awaiting_approval", "failed", "absent", "unknown"]
OnEvent = Callable[[TransferRecord], Awaitable[None]]


class FuturesLog(Protocol):
    async def account_log(
        self, *, from_id: int | None = None, sort: Literal["asc", "desc"] = "desc", count: int = 25
    ) -> AccountLog: ...  # fmt: skip


class FuturesMover(Protocol):
    """What the executor needs of `FuturesTreasury`: its transfer and the witnesses' logs."""

    @property
    def logs(self) -> Mapping[str, FuturesLog]: ...

    async def transfer_subaccount(
        self, *, from_user: str, to_user: str, from_account: str, to_account: str, unit: str,
        amount: Decimal,
    ) -> None: ...  # fmt: skip


class TransferExecutor:
    """One planned move at a time, exactly once (see the module). `account_ids`: each
    account's venue id (what `from` / `to` and the futures users name); `readers`: each
    account's own reader, by name (ledgers and balances)."""

    def __init__(
        self,
        journal: TransferJournal,
        treasury: Treasury,
        *,
        futures_treasury: FuturesMover | None,
        account_ids: Mapping[str, str],
        readers: Mapping[str, AccountReader],
        clock: Clock,
        registry: Registry,
        on_event: OnEvent | None,
        settle_after_s: float = SETTLE_AFTER_S,
    ) -> None:
        self.journal = journal
        self.treasury = treasury
        self.futures = futures_treasury
        self.account_ids = account_ids
        self.readers = readers
        self.clock = clock
        self.on_event = on_event
        self.settle_after_s = settle_after_s
        self._one_at_a_time = asyncio.Lock()
        self._moves = registry.counter(
            "orch_transfers_total", "Rebalancer moves entering a state", ("kind", "state")
        )
        self._open = registry.gauge("orch_transfers_open", "Rebalancer moves not final yet")

    # --- sending ---------------------------------------------------------------------------------
    async def execute(self, planned: PlannedTransfer, trigger: str) -> TransferRecord:
        """Journal, send once, journal the answer; the record as the venue left it."""
        async with self._one_at_a_time:
            now_s = self.clock.time()
            record = TransferRecord(id=uuid.uuid4().hex, planned=planned, state="intent",
                                    trigger=trigger, created_s=now_s, updated_s=now_s,
                                    day=utc_day(now_s))  # fmt: skip
            refused = self._refusal(planned, await self.journal.in_flight())
            if refused is not None:
                record = msgspec.structs.replace(record, state="failed", error=refused)
                await self.journal.create(record)
                await self._changed(record, None)
                return record
            record = msgspec.structs.replace(record, **await self._mark(planned))
            await self.journal.create(record)
            await self._changed(record, None)
            record = await self._move(record, "sent", sent_s=self.clock.time())
            if record.state != "sent":  # someone else settled it first: never send then
                return record
            try:
                state, venue_id, approval = await self._send(planned)
            except AmbiguousOutcome as exc:
                return await self._move(record, "sent", error=f"outcome unknown: {exc}")
            except OrchestratorError as exc:  # refused, or never left: nothing happened
                return await self._move(record, "failed", error=f"not executed: {exc}")
            log.info("rebalancer.answered", id=record.id, state=state, venue_id=venue_id,
                     approval_request_id=approval)  # fmt: skip
            record = await self._move(record, state, venue_id=venue_id,
                                      approval_request_id=approval)  # fmt: skip
            if record.state == "pending" and planned.kind == "transfer":
                record = await self._see_set_aside(record)
            return record

    async def _see_set_aside(self, record: TransferRecord) -> TransferRecord:
        """Whether the venue shows a pending transfer's amount set aside: the one sign that
        lets its later release without a ledger entry be read as a failure."""
        try:
            verdict, _, _ = await self._probe_transfer(record)
        except _CANNOT_ASK as exc:
            log.warning("rebalancer.set_aside_unknown", id=record.id, error=str(exc))
            return record
        if verdict == "pending":
            return await self._move(record, "pending", seen_set_aside=True)
        if verdict == "complete":
            return await self._move(record, "complete", error=None)
        return record

    def _refusal(self, planned: PlannedTransfer, busy: set[tuple[str, str]]) -> str | None:
        ends = {(planned.source, planned.asset), (planned.target, planned.asset)}
        if busy & ends:
            return f"refused: an open move of {sorted(busy & ends)} is not settled yet"
        if planned.amount <= 0:
            return f"refused: amount {planned.amount} is not positive"
        accounts = (
            [planned.source] if planned.kind == "withdrawal" else [planned.source, planned.target]
        )
        unknown = [a for a in accounts if a not in self.account_ids or a not in self.readers]
        if unknown:
            return f"refused: no account ids or readers for {unknown}"
        if planned.kind == "futures_transfer" and self._witness(planned) is None:
            return "refused: no futures account log to reconcile a futures transfer with"
        return None

    async def _mark(self, planned: PlannedTransfer) -> dict[str, object]:
        """The venue's high-water mark before the call, for reconciling without memory."""
        if planned.kind == "transfer":
            moves = await self.readers[planned.source].ledger(asset=planned.asset,
                                                              type_="transfer")  # fmt: skip
            newest = moves[0] if moves else None
            return {"ledger_mark": newest and newest.id, "ledger_mark_s": newest and newest.time_s}
        if planned.kind == "withdrawal":
            listed = await self.treasury.withdraw_status(planned.asset)
            return {"known_withdrawals": tuple(w.refid for w in listed)}
        witness = self._witness(planned)
        assert witness is not None  # noqa: S101 - refused before otherwise
        newest_log = (await witness[0].account_log(sort="desc", count=1)).logs
        return {"log_mark": newest_log[0].id if newest_log else 0}

    async def _send(self, p: PlannedTransfer) -> tuple[TransferState, str | None, str | None]:
        """(state, venue id, approval request id) from the venue's answer."""
        if p.kind == "transfer":
            ids = self.account_ids
            done = await self.treasury.account_transfer(p.asset, p.amount, ids[p.source],
                                                        ids[p.target])  # fmt: skip
            return done.status, done.transfer_id, None
        if p.kind == "withdrawal":
            out = await self.treasury.withdraw(p.asset, p.target, p.amount)
            gated = out.awaiting_approval or out.approval_request_id is not None
            return ("awaiting_approval" if gated else "pending"), out.refid, out.approval_request_id
        assert self.futures is not None  # noqa: S101 - refused before otherwise
        await self.futures.transfer_subaccount(
            from_user=self.account_ids[p.source], to_user=self.account_ids[p.target],
            from_account=FUTURES_WALLET, to_account=FUTURES_WALLET, unit=p.asset, amount=p.amount,
        )  # fmt: skip
        return "complete", None, None

    # --- settling --------------------------------------------------------------------------------
    async def reconcile(self) -> list[TransferRecord]:
        """Settle every open record against the venue; each as it is afterwards (open ones
        included: nothing is sent for their accounts and assets)."""
        async with self._one_at_a_time:
            settled = [await self._settle(record) for record in await self.journal.open_records()]
            self._open.set(float(sum(1 for r in settled if r.state in OPEN_STATES)))
            return settled

    async def _settle(self, record: TransferRecord) -> TransferRecord:
        if record.state == "intent":
            return await self._move(record, "failed", error="not executed: never sent")
        probe = {"transfer": self._probe_transfer, "withdrawal": self._probe_withdrawal,
                 "futures_transfer": self._probe_futures}[record.planned.kind]  # fmt: skip
        try:
            verdict, venue_id, note = await probe(record)
        except _CANNOT_ASK as exc:
            log.warning("rebalancer.reconcile_deferred", id=record.id, error=str(exc))
            return record
        venue_id = venue_id or record.venue_id
        if verdict == "complete":
            return await self._move(record, "complete", venue_id=venue_id, error=None)
        if verdict == "failed":
            return await self._move(record, "failed", venue_id=venue_id, error=note)
        transfer = record.planned.kind == "transfer"
        if verdict in ("pending", "awaiting_approval") and record.state == "sent":
            return await self._move(record, verdict, venue_id=venue_id, error=None,
                                    seen_set_aside=transfer and verdict == "pending")  # fmt: skip
        if verdict == "pending" and transfer and not record.seen_set_aside:
            return await self._move(record, "pending", seen_set_aside=True)
        if verdict == "absent" and record.state == "pending" and transfer:
            if not record.seen_set_aside:  # no sign either way: only its entry settles it
                note = (
                    "pending at the venue: not in the ledger yet, and the venue never showed "
                    "it set aside; its ledger entry (or an operator) settles it"
                )
                return record if record.error == note else await self._move(
                    record, "pending", error=note)  # fmt: skip
            return await self._move(record, "failed", error="failed at the venue: neither in "
                                    "the ledger nor set aside any more")  # fmt: skip
        if verdict == "absent" and record.state == "sent":
            waited_s = self.clock.time() - (record.sent_s or record.created_s)
            if waited_s >= self.settle_after_s:
                return await self._move(record, "failed", error="not executed: no trace at the "
                                        f"venue {waited_s:.0f} s after sending")  # fmt: skip
        if verdict == "unknown" and note is not None and note != record.error:
            return await self._move(record, record.state, error=note)
        return record

    async def _probe_transfer(self, record: TransferRecord) -> tuple[Verdict, str | None, None]:
        """Our entry in the ledger (one read); else the ledger and the set-aside balance, read
        between two reads of the asset's ledger that agree (nothing moved meanwhile)."""
        p = record.planned
        reader = self.readers[p.source]
        found = _found(record, await reader.ledger(asset=p.asset, type_="transfer"))
        if found is not None:
            return (*found, None)
        for _ in range(_CONSISTENT_READS):
            before = await reader.ledger(asset=p.asset)
            moves = await reader.ledger(asset=p.asset, type_="transfer")
            funds = await reader.balances()
            after = await reader.ledger(asset=p.asset)
            if (found := _found(record, moves)) is not None:
                return (*found, None)
            if before[:1] == after[:1]:
                break
        else:
            return "unknown", None, None
        ledger_balance = after[0].balance if after else Decimal(0)
        balance = funds.get(p.asset)
        set_aside = ledger_balance - (balance.total if balance is not None else Decimal(0))
        return ("pending" if set_aside >= p.amount else "absent"), None, None

    async def _probe_withdrawal(self, record: TransferRecord) -> tuple[Verdict, str | None, str]:
        p = record.planned
        listed = await self.treasury.withdraw_status(p.asset)
        if record.venue_id is not None:
            ours = [w for w in listed if w.refid == record.venue_id]
        else:
            known = set(record.known_withdrawals)
            ours = [w for w in listed if w.refid not in known and w.amount == p.amount]
        if len(ours) == 1:
            return _withdrawal_verdict(ours[0])
        if ours:
            return "unknown", None, f"{len(ours)} new withdrawals of {p.amount}: cannot tell"
        if record.venue_id is None:
            return "absent", None, "not listed"
        done = await self.readers[p.source].ledger(asset=p.asset, type_="withdrawal")
        if any(e.refid == record.venue_id for e in done):
            return "complete", record.venue_id, "in the ledger"
        return "unknown", None, f"withdrawal {record.venue_id} no longer listed, not in the ledger"

    async def _probe_futures(self, record: TransferRecord) -> tuple[Verdict, None, str | None]:
        witness = self._witness(record.planned)
        assert witness is not None  # noqa: S101 - refused before sending otherwise
        futures_log, legs = witness
        strangers: list[int] = []
        from_id = (record.log_mark or 0) + 1
        for _ in range(_LOG_PAGES):
            page = (await futures_log.account_log(from_id=from_id, sort="asc")).logs
            for entry in page:
                if entry.info not in TRANSFER_INFOS:
                    continue
                if any(leg.written_by(entry) for leg in legs):
                    return "complete", None, None
                strangers.append(entry.id)
            if len(page) < ACCOUNT_LOG_MAX_COUNT:
                break
            from_id = page[-1].id + 1
        else:
            return "unknown", None, "more new futures log entries than read"
        if strangers:
            return "unknown", None, f"other futures transfers since ({strangers}): cannot tell"
        return "absent", None, None

    def _witness(self, p: PlannedTransfer) -> tuple[FuturesLog, list[Leg]] | None:
        """The futures log that a transfer writes to (the source's, else the target's) and
        the legs it writes there."""
        if self.futures is None:
            return None
        source, target = self.account_ids.get(p.source), self.account_ids.get(p.target)
        unit = p.asset.lower()
        if source is not None and source in self.futures.logs:
            return self.futures.logs[source], [Leg(FUTURES_WALLET, unit, -p.amount)]
        if target is not None and target in self.futures.logs:
            return self.futures.logs[target], [Leg(FUTURES_WALLET, unit, p.amount)]
        return None

    # --- journal ---------------------------------------------------------------------------------
    async def _move(
        self, record: TransferRecord, state: TransferState, **changes: object
    ) -> TransferRecord:
        """Write `record` in `state` if no one moved it meanwhile; else the record as it is."""
        new = msgspec.structs.replace(record, state=state, updated_s=self.clock.time(), **changes)
        if not await self.journal.update(new, expected=record.state):
            current = await self.journal.get(record.id)
            log.warning("rebalancer.journal_conflict", id=record.id, wanted=state,
                        found=None if current is None else current.state)  # fmt: skip
            return current or record
        await self._changed(new, record.state)
        return new

    async def _changed(self, record: TransferRecord, before: TransferState | None) -> None:
        p = record.planned
        if record.state != before:
            self._moves.inc(p.kind, record.state)
        if self.journal.open_count is not None:
            self._open.set(float(self.journal.open_count))
        log.info("rebalancer.move", id=record.id, kind=p.kind, state=record.state,
                 asset=p.asset, amount=str(p.amount), source=p.source, target=p.target,
                 trigger=record.trigger, venue_id=record.venue_id, error=record.error)  # fmt: skip
        if self.on_event is not None:
            await self.on_event(record)


def _after_mark(
    entries: list[LedgerEntry], mark: str | None, mark_s: float | None
) -> tuple[list[LedgerEntry], bool]:
    """The entries listed (newest first) above the mark, and whether that is all of them:
    False when a whole page is newer than the mark (more may be hidden beyond it)."""
    new: list[LedgerEntry] = []
    for entry in entries:
        if entry.id == mark or (mark_s is not None and entry.time_s < mark_s):
            return new, True
        new.append(entry)
    return new, len(entries) < LEDGER_PAGE


def _found(record: TransferRecord, moves: list[LedgerEntry]) -> tuple[Verdict, str | None] | None:
    """Our transfer among the source's `transfer` entries after the mark: complete with its
    refid, unknown when we cannot tell, None when it is not there."""
    new, whole = _after_mark(moves, record.ledger_mark, record.ledger_mark_s)
    if record.venue_id is not None:
        ours = [e for e in new if e.refid == record.venue_id]
    else:
        ours = [e for e in new if -e.amount == record.planned.amount]
    if len(ours) == 1:
        return "complete", ours[0].refid
    return ("unknown", None) if ours or not whole else None


def _withdrawal_verdict(w: WithdrawalState) -> tuple[Verdict, str, str]:
    what = f"withdrawal {w.status}" + (f" ({w.status_prop})" if w.status_prop else "")
    if w.status == "Success":
        return "complete", w.refid, what
    if w.status == "Failure":
        return "failed", w.refid, f"failed at the venue: {what}"
    if w.status_prop == "onhold":
        return "awaiting_approval", w.refid, what
    return "pending", w.refid, what

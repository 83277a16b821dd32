"""What the rebalancer moves, as data: a planned move and its journal record.

A `PlannedTransfer` is what `plan.py` decides (pure); a `TransferRecord` is what `journal.py`
keeps of it in Redis from before the venue call until its outcome is final.

States (docs/rebalancing.md):
    intent -> sent -> complete | pending | awaiting_approval | failed
    pending -> complete | failed                 (polled until final)
    awaiting_approval -> complete | failed       (withdrawals under Organizations)
`intent` is written before the call; `sent` once the call went out (its reply may be lost). An
entry found in `intent` or `sent` after a crash or a timeout is *ambiguous*: it is reconciled
against the venue (ledgers, withdrawal status, futures wallets) before anything is sent again.

Reconciliation (executor.py) reads the venue, never memory, so a fresh process settles what a
dead one left. **Decision**, when "not executed" is concluded:
- `intent`: the call never went out (the executor calls the venue only once Redis acknowledged
  `sent`): failed, "not executed", at once;
- `sent`: executed if the source's ledger shows the one new `transfer` entry after the mark for
  minus the amount (refid = transfer id), WithdrawStatus one new withdrawal of the amount, the
  witness's futures log our leg after the mark; pending if the source has the amount set aside
  (its newest ledger balance of the asset minus what BalanceEx reports: Kraken's balance is net
  of pending withdrawals, and the simulator sets pending transfers aside so too). With no trace
  (no entry, nothing set aside) it is failed, "not executed", only `settle_after_s` (60 s, above
  any request timeout) after `sent`: a request still on its way could execute after a verdict;
- `pending` transfer: complete when its entry appears; failed ("failed at the venue") once it is
  neither in the ledger nor set aside, but only if it was seen set aside before (Kraken lists
  pending transfers nowhere: a venue that does not show the amount set aside gives no sign of a
  failure, and the move then stays pending until its entry appears or an operator settles it;
  a transfer the venue answered `pending` is probed once at once for that sign);
- `pending` / `awaiting_approval` withdrawal: WithdrawStatus until Success or Failure;
- what the venue cannot tell apart (two candidates, more new entries than a page, a ledger that
  kept moving while read) stays open, and nothing is sent for that account and asset until an
  operator settles it. Two ledger reads around the balance read must agree, so a move completing
  mid-read is not mistaken for a failure. A transfer made by hand for the same asset and amount
  in the moments after a mark is the one thing that could pass for ours (docs/outcomes.md).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Final, Literal

import msgspec

from orchestrator.config import Tier

MoveKind = Literal["transfer", "withdrawal", "futures_transfer"]
Reason = Literal["band_low", "band_high", "sweep", "margin", "request", "operator"]
TransferState = Literal["intent", "sent", "complete", "pending", "awaiting_approval", "failed"]
FINAL_STATES: Final[frozenset[str]] = frozenset({"complete", "failed"})
OPEN_STATES: Final[frozenset[str]] = frozenset({"intent", "sent", "pending", "awaiting_approval"})
# Kraken's tier table: Starter $5,000 a day in crypto, Pro $10,000,000+. **Decision**:
# Intermediate $500,000 (a summary of Kraken's account page; the simulator agrees), Pro exactly
# $10,000,000.
_TIER_LIMIT_USD: Final[Mapping[Tier, Decimal]] = MappingProxyType(
    {"starter": Decimal(5_000), "intermediate": Decimal(500_000), "pro": Decimal(10_000_000)}
)


class PlannedTransfer(msgspec.Struct, frozen=True, kw_only=True):
    """One move: `amount` of `asset` from account `source` to account `target` (our account
    names; for a withdrawal, `target` is the withdrawal key's name)."""

    kind: MoveKind = "transfer"
    asset: str
    amount: Decimal
    source: str
    target: str
    reason: Reason


class TransferRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str  # ours, written before the call
    planned: PlannedTransfer
    state: TransferState
    trigger: str  # what started the cycle: "period", "band", "request:<strategy>", ...
    created_s: float  # wall clock
    updated_s: float
    day: str  # the UTC day it counts against for the daily caps, "YYYY-MM-DD"
    venue_id: str | None = None  # transfer_id / withdrawal refid, once known
    approval_request_id: str | None = None
    error: str | None = None  # why it failed, or what is still unknown
    # What reconciliation needs once the process that sent it is gone (journal.py, executor.py):
    sent_s: float | None = None  # when `sent` was written: the call may have left from then on
    # The venue's high-water mark before the call, by kind: the source's newest `transfer`
    # ledger entry of the asset (None: none yet), the withdrawals the venue listed for the
    # asset, the futures account log's newest entry id of the witness account.
    ledger_mark: str | None = None
    ledger_mark_s: float | None = None
    known_withdrawals: tuple[str, ...] = ()
    log_mark: int | None = None
    # The venue was seen holding a pending transfer's amount aside: only then may the amount's
    # release without a ledger entry be read as the transfer having failed.
    seen_set_aside: bool = False

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES


def utc_day(time_s: float) -> str:
    """The UTC calendar day of a wall-clock time (`TransferRecord.day`, the daily caps)."""
    return dt.datetime.fromtimestamp(time_s, tz=dt.UTC).strftime("%Y-%m-%d")


def tier_withdrawal_limit_usd(tier: Tier) -> Decimal:
    """The most a domain of verification `tier` may withdraw in one UTC day, in USD."""
    return _TIER_LIMIT_USD[tier]

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
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final, Literal

import msgspec

MoveKind = Literal["transfer", "withdrawal", "futures_transfer"]
Reason = Literal["band_low", "band_high", "sweep", "margin", "request", "operator"]
TransferState = Literal["intent", "sent", "complete", "pending", "awaiting_approval", "failed"]
FINAL_STATES: Final[frozenset[str]] = frozenset({"complete", "failed"})
OPEN_STATES: Final[frozenset[str]] = frozenset({"intent", "sent", "pending", "awaiting_approval"})


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

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

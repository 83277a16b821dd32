"""The futures account log (Kraken's history API `GET /api/history/v3/account-log`). Pure.

Every change of a futures wallet's balance writes one entry to the log of the account that owns
the wallet: a transfer between two wallets writes two (one per side, sharing the transfer's uid
in `execution`). Kraken's futures transfers return no id and take no idempotency key, so this
log is what a client reconciles an ambiguous transfer with: note the newest entry id before
sending, and after a lost reply look for a matching entry (`info`, `asset`, `margin_account`,
`new_balance - old_balance`) above it.

Shape from Kraken's spec (`AccountLogEntry`): every field is present, `null` where it does not
apply. Choices where Kraken says nothing:
- `info` is `subaccount transfer` for `/transfer/subaccount` and `transfer` for `/transfer`
  (UNCONFIRMED: the enum has both, the docs do not say which endpoint writes which);
- `asset` is the lower-case altname (`usd`, `xbt`), `margin_account` the wallet (`cash`, `flex`);
- `since` is inclusive and `before` exclusive (milliseconds); `from`/`to` are inclusive ids.

Budget: the `/history` pool (docs/kraken/rest.md 5.4), 100 tokens refilled at 100 per 10
minutes; a call costs by `count` (1 up to 25, 2 up to 50, 3 up to 1000, 6 up to 5000, 10 up to
100000).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, Literal

import msgspec

from orchestrator.simulator.futures_accounts import server_time

SUBACCOUNT_TRANSFER: Final = "subaccount transfer"
WALLET_TRANSFER: Final = "transfer"
INFO_TYPES: Final = frozenset({
    "futures trade", "futures liquidation", "futures assignor", "futures assignee",
    "futures unwind counterparty", "futures unwind bankrupt", "covered liquidation",
    "funding rate change", "conversion", "interest payment", "transfer",
    "cross-exchange transfer", "kfee applied", "subaccount transfer", "settlement",
    "admin transfer", "tax withheld", "tax refund",
})  # fmt: skip
DEFAULT_COUNT: Final = 500
MAX_COUNT: Final = 100_000
HISTORY_TOKENS: Final = 100.0
HISTORY_REFILL_PER_S: Final = 100.0 / 600.0
_COST_BY_COUNT: Final = ((25, 1), (50, 2), (1000, 3), (5000, 6), (MAX_COUNT, 10))
_NULL_FIELDS: Final = (
    "collateral", "contract", "fee", "funding_rate", "mark_price", "new_average_entry_price",
    "old_average_entry_price", "realized_funding", "realized_pnl", "trade_price",
    "conversion_spread_percentage", "liquidation_fee",
)  # fmt: skip
Sort = Literal["asc", "desc"]


class LogEntry(msgspec.Struct, frozen=True, kw_only=True):
    id: int  # from 1, per account, in the order written
    booking_uid: str
    time_s: float
    info: str
    asset: str
    margin_account: str
    old_balance: Decimal
    new_balance: Decimal
    execution: str | None = None

    @property
    def date_ms(self) -> int:
        return round(self.time_s * 1000)


@dataclass(frozen=True, slots=True)
class Leg:
    """One wallet a movement touched: whose log, which wallet, its balance before and after."""

    log: list[LogEntry]
    wallet: str
    old_balance: Decimal
    new_balance: Decimal


def record(
    legs: list[Leg], *, info: str, asset: str, uids: list[str], execution: str | None,
    time_s: float,
) -> list[LogEntry]:  # fmt: skip
    """Write one entry per leg (`uids` gives each its booking uid) and return them."""
    written: list[LogEntry] = []
    for leg, booking_uid in zip(legs, uids, strict=True):
        entry = LogEntry(
            id=len(leg.log) + 1, booking_uid=booking_uid, time_s=time_s, info=info,
            asset=asset, margin_account=leg.wallet, old_balance=leg.old_balance,
            new_balance=leg.new_balance, execution=execution,
        )  # fmt: skip
        leg.log.append(entry)
        written.append(entry)
    return written


@dataclass(frozen=True, slots=True)
class Query:
    """`/account-log`'s filters, parsed."""

    since_ms: int | None = None
    before_ms: int | None = None
    from_id: int | None = None
    to_id: int | None = None
    info: str | None = None
    sort: Sort = "desc"
    count: int = DEFAULT_COUNT


def select(log: list[LogEntry], query: Query) -> list[LogEntry]:
    """The entries the query asks for, in its order, at most `count` of them."""
    chosen = [
        e
        for e in log
        if (query.since_ms is None or e.date_ms >= query.since_ms)
        and (query.before_ms is None or e.date_ms < query.before_ms)
        and (query.from_id is None or e.id >= query.from_id)
        and (query.to_id is None or e.id <= query.to_id)
        and (query.info is None or e.info == query.info)
    ]
    if query.sort == "desc":
        chosen.reverse()
    return chosen[: query.count]


def cost(count: int) -> int:
    """The `/history` tokens a call asking for `count` entries costs."""
    return next(price for most, price in _COST_BY_COUNT if count <= most)


def entry_json(entry: LogEntry) -> dict[str, Any]:
    """One entry as Kraken's `AccountLogEntry` (numbers as JSON numbers, as the spec has)."""
    item: dict[str, Any] = dict.fromkeys(_NULL_FIELDS)
    item.update(
        asset=entry.asset,
        booking_uid=entry.booking_uid,
        date=server_time(entry.time_s),
        execution=entry.execution,
        id=entry.id,
        info=entry.info,
        margin_account=entry.margin_account,
        new_balance=float(entry.new_balance),
        old_balance=float(entry.old_balance),
    )
    return item

"""What the core needs of a venue, split by power: trading, reading an account, moving money.

A strategy's worker is given a `TradingVenue` and an `AccountReader` for its own sub-account and
nothing else; the `Treasury` (transfers, withdrawals, sub-accounts) needs the master key and
belongs to the rebalancer. `exchange/kraken/` implements all three (spot/trading.py,
spot/reader.py, spot/treasury.py); a test double or another venue can stand in.

Amounts are `Decimal`, times are seconds of the service's `Clock`. Pairs are `Instrument`s of one
registry (instruments.py). Every method that acts resolves its own ambiguity: a lost or unreadable
reply is reconciled (orders by `cl_ord_id` or state, transfers by ledger) before it is sent again,
and `AmbiguousOutcome` reaches the caller only when the venue could not tell.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Literal, Protocol

import msgspec

from orchestrator.errors import VenueError
from orchestrator.exchange.instruments import Instrument

Side = Literal["buy", "sell"]
OrderType = Literal["limit", "market"]
TimeInForce = Literal["GTC", "IOC", "GTD"]
OrderStatus = Literal["pending", "open", "closed", "canceled", "expired"]


class OrderSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A new order, as a strategy means it. `cl_ord_id` is set before sending (exactly once)."""

    instrument: Instrument
    side: Side
    order_type: OrderType
    volume: Decimal
    cl_ord_id: str
    price: Decimal | None = None
    post_only: bool = False
    time_in_force: TimeInForce = "GTC"
    expire_s: float | None = None

    @property
    def rests(self) -> bool:
        """Whether the order can rest on the book (and so has an age that prices its cancel)."""
        return self.order_type == "limit" and self.time_in_force != "IOC"


class OrderRef(msgspec.Struct, frozen=True, kw_only=True):
    """What amending or cancelling an order needs, with no call to the venue: its id, its pair,
    and when it last rested (placed or amended), which is what Kraken prices cancels and amends
    by. `rested_s` is stamped when the venue's acknowledgement arrived: never earlier than the
    venue's own time, so the age is never overestimated and the cost never underestimated."""

    txid: str
    cl_ord_id: str | None
    instrument: Instrument
    rested_s: float | None  # None: never rested (IOC, market)

    def age_s(self, now_s: float) -> float | None:
        return None if self.rested_s is None else max(0.0, now_s - self.rested_s)


class OrderState(msgspec.Struct, frozen=True, kw_only=True):
    txid: str
    cl_ord_id: str | None
    pair: str  # the instrument's wsname
    side: Side
    order_type: str
    status: OrderStatus
    volume: Decimal
    executed: Decimal
    price: Decimal | None  # limit price
    avg_price: Decimal
    cost: Decimal
    fee: Decimal
    opened_s: float
    closed_s: float | None = None
    reason: str | None = None


class Balance(msgspec.Struct, frozen=True, kw_only=True):
    asset: str
    total: Decimal
    held: Decimal

    @property
    def available(self) -> Decimal:
        return self.total - self.held


class LedgerEntry(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    refid: str
    time_s: float
    type: str
    subtype: str
    asset: str
    amount: Decimal
    fee: Decimal
    balance: Decimal


class Transfer(msgspec.Struct, frozen=True, kw_only=True):
    transfer_id: str
    status: Literal["complete", "pending"]


class Withdrawal(msgspec.Struct, frozen=True, kw_only=True):
    refid: str
    approval_request_id: str | None  # Organizations: the approval it waits for, when known
    awaiting_approval: bool = False  # completion waits for an Organization approval


class WithdrawalState(msgspec.Struct, frozen=True, kw_only=True):
    refid: str
    asset: str
    amount: Decimal
    fee: Decimal
    status: str  # Initial, Pending, Settled, Success, Failure
    status_prop: str | None


class TradingVenue(Protocol):
    """Order entry for one account (its own key)."""

    async def place(self, spec: OrderSpec) -> OrderRef:
        """Place once (a lost reply is reconciled by `cl_ord_id`); the reference to amend or
        cancel it."""
        ...

    async def place_batch(self, specs: Sequence[OrderSpec]) -> list[OrderRef | VenueError]:
        """Place 2 to 15 orders of one pair at once (Kraken prices n of them at n/2); each
        slot is the order's reference or why it was not placed. A lost reply is reconciled
        order by order (`cl_ord_id`) after the batch's deadline: an order the venue does not
        show then was not placed (its slot says so; nothing is sent again)."""
        ...

    async def amend(
        self, ref: OrderRef, *, volume: Decimal | None = None, price: Decimal | None = None
    ) -> OrderRef:
        """Amend in place (queue priority kept where possible); the reference, rested anew."""
        ...

    async def cancel(self, ref: OrderRef) -> bool:
        """Cancel one order: True if this call cancelled it, False if it had already closed."""
        ...

    async def cancel_all(self, resting: Sequence[OrderRef]) -> int:
        """Cancel every open order; `resting` (the orders believed open) prices the request."""
        ...

    async def dead_man_switch(self, timeout_s: int) -> str:
        """Arm (or with 0 disarm) the venue-side cancel-all countdown; return the trigger time."""
        ...

    async def open_orders(self) -> list[OrderState]: ...

    async def find_order(self, cl_ord_id: str) -> OrderState | None:
        """The order with this client id, open or closed, or None."""
        ...


class AccountReader(Protocol):
    """What one account holds and did (its own key)."""

    async def balances(self) -> dict[str, Balance]: ...

    async def ledger(
        self, *, asset: str | None = None, type_: str | None = None
    ) -> list[LedgerEntry]: ...

    async def query_orders(self, txids: Sequence[str]) -> list[OrderState]: ...


class Treasury(Protocol):
    """Moving money between accounts and out (the master key only)."""

    async def account_transfer(
        self, asset: str, amount: Decimal, source_id: str, target_id: str
    ) -> Transfer:
        """Move funds once; a lost reply is reconciled through the source account's ledger."""
        ...

    async def withdraw(
        self, asset: str, key: str, amount: Decimal, max_fee: Decimal | None = None
    ) -> Withdrawal:
        """Withdraw once; a lost reply is reconciled through the withdrawal status list."""
        ...

    async def withdraw_status(self, asset: str | None = None) -> list[WithdrawalState]: ...

    async def create_subaccount(self, username: str, email: str) -> None: ...

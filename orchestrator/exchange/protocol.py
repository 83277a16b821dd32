"""What the core needs of a venue, whatever the venue: the `SpotVenue` protocol and its types.

Workers, the rebalancer and the control plane speak only this; `exchange/kraken/spot/venue.py` is
Kraken's implementation (REST), and a test double or another venue can stand in. Amounts are
`Decimal`, times are seconds; every method that acts may raise `AmbiguousOutcome`, which the
caller reconciles (`find_order`, `ledger`) before acting again.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal, Protocol

import msgspec

Side = Literal["buy", "sell"]
OrderType = Literal["limit", "market"]
TimeInForce = Literal["GTC", "IOC", "GTD"]
OrderStatus = Literal["pending", "open", "closed", "canceled", "expired"]


class OrderSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A new order, as a strategy means it. `cl_ord_id` is set before sending (exactly once)."""

    pair: str  # the venue's pair name (`XBTUSD`, `XBT/USD`)
    side: Side
    order_type: OrderType
    volume: Decimal
    cl_ord_id: str
    price: Decimal | None = None
    post_only: bool = False
    time_in_force: TimeInForce = "GTC"
    expire_s: float | None = None


class OrderState(msgspec.Struct, frozen=True, kw_only=True):
    txid: str
    cl_ord_id: str | None
    pair: str
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
    approval_request_id: str | None  # set: completion waits for an Organization approval


class WithdrawalState(msgspec.Struct, frozen=True, kw_only=True):
    refid: str
    asset: str
    amount: Decimal
    fee: Decimal
    status: str  # Initial, Pending, Settled, Success, Failure
    status_prop: str | None


class SpotVenue(Protocol):
    """One account's view of the venue (its own API key)."""

    async def place_order(self, spec: OrderSpec) -> str:
        """Place once; return the txid. Ambiguity is reconciled by `cl_ord_id` inside."""
        ...

    async def amend_order(
        self,
        txid: str,
        *,
        age_s: float,
        volume: Decimal | None = None,
        price: Decimal | None = None,
    ) -> str:
        """Amend in place (queue priority kept where possible); return the amend id."""
        ...

    async def cancel_order(self, txid: str, *, age_s: float | None) -> int:
        """Cancel one order; `age_s` since placed or amended prices it (None: never rested)."""
        ...

    async def cancel_all(self, open_orders: list[OrderState]) -> int:
        """Cancel every open order; the list (with ages) prices the request."""
        ...

    async def dead_man_switch(self, timeout_s: int) -> str:
        """Arm (or with 0 disarm) the venue-side cancel-all countdown; return the trigger time."""
        ...

    async def open_orders(self) -> list[OrderState]: ...

    async def find_order(self, cl_ord_id: str) -> OrderState | None:
        """The order with this client id, open or closed, or None."""
        ...

    async def query_orders(self, txids: list[str]) -> list[OrderState]: ...

    async def balances(self) -> dict[str, Balance]: ...

    async def ledger(
        self, *, asset: str | None = None, type_: str | None = None
    ) -> list[LedgerEntry]: ...

    async def account_transfer(
        self, asset: str, amount: Decimal, source_id: str, target_id: str
    ) -> Transfer:
        """Master key only. No idempotency key exists: reconcile by `ledger(type_='transfer')`."""
        ...

    async def withdraw(
        self, asset: str, key: str, amount: Decimal, max_fee: Decimal | None = None
    ) -> Withdrawal: ...

    async def withdraw_status(self, asset: str | None = None) -> list[WithdrawalState]: ...

    async def create_subaccount(self, username: str, email: str) -> None: ...

    async def websockets_token(self) -> str: ...

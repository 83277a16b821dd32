"""Typed private WS v2 events (`docs/kraken/websocket.md` section 5): `executions` and `balances`.

Numbers are decoded as `Decimal` (v2 sends JSON numbers at the engine's precision); unknown
fields are ignored, since Kraken adds fields; a frame that does not fit is counted, not raised.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import msgspec

ZERO = Decimal(0)


class Fee(msgspec.Struct):
    asset: str
    qty: Decimal


class Execution(msgspec.Struct, kw_only=True):
    """One `executions` element: an order's state after an event (`exec_type`). With
    `ratecounter: true` an element may carry `ratecount` (the account's trading counter on
    `symbol`); one with no `order_id` carries nothing else (docs/kraken/websocket.md)."""

    order_id: str = ""
    exec_type: str = ""  # pending_new, new, trade, filled, canceled, expired, amended, ...
    timestamp: str = ""
    ratecount: float | None = None
    order_status: str | None = None
    symbol: str | None = None
    side: str | None = None
    order_type: str | None = None
    order_qty: Decimal | None = None
    limit_price: Decimal | None = None
    cl_ord_id: str | None = None
    order_userref: int | None = None
    cum_qty: Decimal | None = None
    cum_cost: Decimal | None = None
    avg_price: Decimal | None = None
    reason: str | None = None
    # trade-only fields
    exec_id: str | None = None
    trade_id: int | None = None
    last_qty: Decimal | None = None
    last_price: Decimal | None = None
    cost: Decimal | None = None
    liquidity_ind: Literal["m", "t"] | None = None
    fees: list[Fee] = []


_EXECUTION_NUMBERS: tuple[str, ...] = (
    "order_qty", "limit_price", "cum_qty", "cum_cost", "avg_price", "last_qty", "last_price",
    "cost",
)  # fmt: skip


def execution_problem(execution: Execution) -> str | None:
    """What makes an execution unusable (a number that is not finite, or negative), or None.
    The type checks of the decoder let `NaN` and `-1` through; no order state may take them."""
    for name in _EXECUTION_NUMBERS:
        value = getattr(execution, name)
        if value is not None and (not value.is_finite() or value < 0):
            return f"{name} is {value}"
    for fee in execution.fees:
        if not fee.qty.is_finite() or fee.qty < 0:
            return f"a fee is {fee.qty}"
    return None


class ExecutionsMessage(msgspec.Struct):
    channel: Literal["executions"]
    type: Literal["snapshot", "update"]
    data: list[Execution]
    sequence: int | None = None


class Wallet(msgspec.Struct):
    type: str
    id: str
    balance: Decimal


class BalanceSnapshot(msgspec.Struct, kw_only=True):
    asset: str
    balance: Decimal
    asset_class: str = "currency"
    wallets: list[Wallet] = []


class LedgerUpdate(msgspec.Struct, kw_only=True):
    """A `balances` update: one ledger entry with the balance after it."""

    asset: str
    amount: Decimal
    balance: Decimal
    type: str
    ledger_id: str = ""
    ref_id: str = ""
    timestamp: str = ""
    fee: Decimal = ZERO
    subtype: str = ""
    wallet_type: str = "spot"


class BalancesMessage(msgspec.Struct):
    channel: Literal["balances"]
    type: Literal["snapshot", "update"]
    data: list[msgspec.Raw]  # snapshot: BalanceSnapshot; update: LedgerUpdate
    sequence: int | None = None


class RateCount(msgspec.Struct, frozen=True):
    """The venue's own trading counter of this account on `symbol` (WS v2 name), as it said."""

    symbol: str
    level: float


class _SubscribeResult(msgspec.Struct):
    channel: str = ""
    maxratecount: float | None = None


class SubscribeAck(msgspec.Struct):
    """A `subscribe` reply, for what it says of the `executions` rate counter."""

    result: _SubscribeResult | None = None


# Decimal-typed fields decode JSON numbers exactly from their text (no float on the way).
executions_decoder = msgspec.json.Decoder(ExecutionsMessage)
balances_decoder = msgspec.json.Decoder(BalancesMessage)
snapshot_decoder = msgspec.json.Decoder(BalanceSnapshot)
update_decoder = msgspec.json.Decoder(LedgerUpdate)
subscribe_ack_decoder = msgspec.json.Decoder(SubscribeAck)

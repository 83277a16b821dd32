"""Typed Kraken spot REST results (docs/kraken/rest.md section 2), decoded once with msgspec.

Amounts are `Decimal` (Kraken sends decimal strings; numbers are accepted too). Unknown fields are
ignored: Kraken adds fields, and a new one must never break decoding.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

ZERO = Decimal(0)


class _Result(msgspec.Struct, kw_only=True):
    """Base of venue payloads: tolerant of fields Kraken adds later."""


class OrderDescr(_Result):
    pair: str
    type: str
    ordertype: str
    price: Decimal = ZERO
    price2: Decimal = ZERO
    order: str = ""


class KrakenOrder(_Result):
    status: str  # pending, open, closed, canceled, expired
    opentm: float
    descr: OrderDescr
    vol: Decimal
    vol_exec: Decimal
    cost: Decimal = ZERO
    fee: Decimal = ZERO
    price: Decimal = ZERO  # average fill price
    refid: str | None = None
    userref: int | None = None
    cl_ord_id: str | None = None
    closetm: float | None = None
    reason: str | None = None
    misc: str = ""
    oflags: str = ""
    trades: list[str] = []


class OpenOrders(_Result):
    open: dict[str, KrakenOrder]


class ClosedOrders(_Result):
    closed: dict[str, KrakenOrder]
    count: int = 0


class AddOrderDescr(_Result):
    order: str
    close: str | None = None


class AddOrderResult(_Result):
    descr: AddOrderDescr
    txid: list[str] = []  # absent with validate=true


class BatchEntry(_Result):
    txid: str | None = None  # a scalar here, unlike AddOrder
    descr: AddOrderDescr | None = None
    error: str | None = None


class AddOrderBatchResult(_Result):
    orders: list[BatchEntry]


class AmendResult(_Result):
    amend_id: str


class CancelResult(_Result):
    count: int
    pending: bool = False


class DeadManResult(_Result):
    currentTime: str
    triggerTime: str


class BalanceEx(_Result):
    balance: Decimal
    hold_trade: Decimal = ZERO
    credit: Decimal = ZERO
    credit_used: Decimal = ZERO

    @property
    def available(self) -> Decimal:
        """Kraken's rule: balance + credit - credit_used - hold_trade."""
        return self.balance + self.credit - self.credit_used - self.hold_trade


class LedgerInfo(_Result):
    refid: str
    time: float
    type: str
    asset: str
    amount: Decimal
    fee: Decimal
    balance: Decimal
    subtype: str = ""
    aclass: str = "currency"


class Ledgers(_Result):
    ledger: dict[str, LedgerInfo]
    count: int = 0


class TransferResult(_Result):
    transfer_id: str
    status: str  # complete | pending


class WithdrawResult(_Result):
    refid: str
    approval_request_id: str | None = None  # Organizations: completion needs an approval


class WithdrawStatus(_Result):
    refid: str
    asset: str
    amount: Decimal
    status: str  # Initial, Pending, Settled, Success, Failure
    fee: Decimal = ZERO
    time: int = 0
    method: str = ""
    aclass: str = "currency"
    txid: str | None = None
    info: str | None = None
    key: str | None = None
    status_prop: str | None = msgspec.field(default=None, name="status-prop")


class WebSocketsToken(_Result):
    token: str
    expires: int


class Envelope(msgspec.Struct):
    error: list[str] = []
    result: msgspec.Raw = msgspec.Raw(b"null")


class AssetPair(_Result):
    """One entry of public AssetPairs: the source of the instrument registry."""

    altname: str
    wsname: str
    base: str
    quote: str
    pair_decimals: int
    lot_decimals: int
    ordermin: Decimal = ZERO
    costmin: Decimal = ZERO
    tick_size: Decimal | None = None  # absent in older replies: one unit of the last decimal
    status: str = "online"

"""Kraken's private methods in one table: names on each wire, whether they act, lane and costs.

Every request names a `Method` from this table, never a string, so the REST client (acting or
not: may a lost reply be retried?), the WS client (its v2 name), and the limiter (lane, REST-counter
cost, trading-counter rule) all read the same row. Costs and rules: docs/kraken/rate-limits.md.

- `acting`: the call changes state at the venue. A lost or unreadable reply is ambiguous
  (`AmbiguousOutcome`, reconciled before any retry); a query is simply retried.
- `lane`: `risk_reducing` requests (cancels, the dead man's switch) may use the headroom every
  counter keeps back from new risk.
- `rest_cost`: units on the API key's REST counter (0 for order entry, which Kraken charges on
  the trading counter instead; 2 for history queries). Not charged over WebSocket.
- `trading`: how the request is priced on the account's per-pair trading counter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

Lane = Literal["new_risk", "risk_reducing"]
TradingRule = Literal[
    "none", "add", "batch_add", "amend", "edit", "cancel", "batch_cancel", "cancel_all"
]


@dataclass(frozen=True, slots=True)
class Method:
    """One Kraken private method."""

    rest: str  # REST name, `/0/private/<rest>`
    ws: str | None  # WebSocket v2 `method`, when the method exists there
    acting: bool
    lane: Lane
    rest_cost: int
    trading: TradingRule = "none"

    def __str__(self) -> str:
        return self.rest


def _order_entry(rest: str, ws: str, lane: Lane, trading: TradingRule) -> Method:
    return Method(rest, ws, acting=True, lane=lane, rest_cost=0, trading=trading)


def _query(rest: str, cost: int = 1) -> Method:
    return Method(rest, None, acting=False, lane="new_risk", rest_cost=cost)


def _funding(rest: str) -> Method:
    return Method(rest, None, acting=True, lane="new_risk", rest_cost=1)


ADD_ORDER: Final = _order_entry("AddOrder", "add_order", "new_risk", "add")
ADD_ORDER_BATCH: Final = _order_entry("AddOrderBatch", "batch_add", "new_risk", "batch_add")
AMEND_ORDER: Final = _order_entry("AmendOrder", "amend_order", "new_risk", "amend")
EDIT_ORDER: Final = _order_entry("EditOrder", "edit_order", "new_risk", "edit")
CANCEL_ORDER: Final = _order_entry("CancelOrder", "cancel_order", "risk_reducing", "cancel")
CANCEL_ORDER_BATCH: Final = _order_entry(
    "CancelOrderBatch", "batch_cancel", "risk_reducing", "batch_cancel"
)
# Kraken does not say whether these two count on the REST counter: we charge 1 (Decision), and
# CancelAll also the age-based cancel cost of every order it cancels.
CANCEL_ALL: Final = Method(
    "CancelAll", "cancel_all", acting=True, lane="risk_reducing", rest_cost=1, trading="cancel_all"
)
CANCEL_ALL_AFTER: Final = Method(
    "CancelAllOrdersAfter", "cancel_all_orders_after", acting=True, lane="risk_reducing",
    rest_cost=1,
)  # fmt: skip

BALANCE: Final = _query("Balance")
BALANCE_EX: Final = _query("BalanceEx")
TRADE_BALANCE: Final = _query("TradeBalance")
OPEN_ORDERS: Final = _query("OpenOrders")
CLOSED_ORDERS: Final = _query("ClosedOrders")
QUERY_ORDERS: Final = _query("QueryOrders")
ORDER_AMENDS: Final = _query("OrderAmends")
TRADES_HISTORY: Final = _query("TradesHistory", 2)
QUERY_TRADES: Final = _query("QueryTrades", 2)
LEDGERS: Final = _query("Ledgers", 2)
QUERY_LEDGERS: Final = _query("QueryLedgers", 2)
WITHDRAW_STATUS: Final = _query("WithdrawStatus")
WEBSOCKETS_TOKEN: Final = _query("GetWebSocketsToken")

ACCOUNT_TRANSFER: Final = _funding("AccountTransfer")
WITHDRAW: Final = _funding("Withdraw")
WALLET_TRANSFER: Final = _funding("WalletTransfer")
CREATE_SUBACCOUNT: Final = _funding("CreateSubaccount")

METHODS: Final[Mapping[str, Method]] = MappingProxyType(
    {
        m.rest: m
        for m in (
            ADD_ORDER, ADD_ORDER_BATCH, AMEND_ORDER, EDIT_ORDER, CANCEL_ORDER, CANCEL_ORDER_BATCH,
            CANCEL_ALL, CANCEL_ALL_AFTER, BALANCE, BALANCE_EX, TRADE_BALANCE, OPEN_ORDERS,
            CLOSED_ORDERS, QUERY_ORDERS, ORDER_AMENDS, TRADES_HISTORY, QUERY_TRADES, LEDGERS,
            QUERY_LEDGERS, WITHDRAW_STATUS, WEBSOCKETS_TOKEN, ACCOUNT_TRANSFER, WITHDRAW,
            WALLET_TRANSFER, CREATE_SUBACCOUNT,
        )
    }
)  # fmt: skip
"""Every method by its REST name."""

BY_WS_NAME: Final[Mapping[str, Method]] = MappingProxyType(
    {m.ws: m for m in METHODS.values() if m.ws is not None}
)
"""The methods that exist over WebSocket v2, by their v2 name."""


def method(rest_name: str) -> Method:
    """The table's row for a REST name; a name outside the table is a programming error."""
    try:
        return METHODS[rest_name]
    except KeyError:
        raise ValueError(f"{rest_name!r} is not in Kraken's method table") from None

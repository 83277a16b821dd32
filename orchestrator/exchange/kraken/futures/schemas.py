"""Wire types of Kraken's futures (derivatives) REST replies (docs/kraken/rest.md section 5.3).

Shapes follow Kraken's documented examples: `GET /accounts` is the one in
docs/kraken/accounts-and-transfers.md section 5, `GET /subaccounts` Kraken's reference example.
Every amount decodes to `Decimal`, exactly as written on the wire, whether the venue sent a JSON
string (`"141.31756797"`) or a JSON number (`4998.721054420551`, `3.46e-9`): money never passes
through a float.

Unknown fields are ignored (the venue adds fields over time); a missing documented field or an
account of an unknown `type` fails decoding, which the client reports as a reply it does not
understand: a new account type is a contract change we want to hear about.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import msgspec


class _Wire(msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=False):
    """Base of every payload: snake_case here, camelCase on the wire, extra fields tolerated."""


class Envelope(_Wire, frozen=True):
    """What every reply carries. `error` is the venue's code when `result` is `"error"`."""

    result: Literal["success", "error"]
    server_time: str | None = None
    error: str | None = None
    errors: list[Any] = []


# --- GET /accounts -------------------------------------------------------------------------------
class CashAccount(_Wire, frozen=True, tag_field="type", tag="cashAccount"):
    """The holding wallet (`cash`): asset (lower-case altname) -> quantity."""

    balances: dict[str, Decimal]


class Auxiliary(_Wire, frozen=True):
    """Available funds, funding, PnL of open positions, portfolio value, USD value."""

    af: Decimal
    funding: Decimal
    pnl: Decimal
    pv: Decimal
    usd: Decimal


class MarginLevels(_Wire, frozen=True):
    """`marginRequirements` / `triggerEstimates`: initial, maintenance, liquidation, termination."""

    im: Decimal
    mm: Decimal
    lt: Decimal
    tt: Decimal


class MarginAccount(_Wire, frozen=True, tag_field="type", tag="marginAccount"):
    """A single-collateral wallet (`fi_xbtusd`)."""

    currency: str
    balances: dict[str, Decimal]
    auxiliary: Auxiliary
    margin_requirements: MarginLevels
    trigger_estimates: MarginLevels


class FlexCurrency(_Wire, frozen=True):
    quantity: Decimal
    value: Decimal
    collateral: Decimal
    available: Decimal


class FlexAccount(_Wire, frozen=True, tag_field="type", tag="multiCollateralMarginAccount"):
    """The multi-collateral wallet (`flex`); `currencies` keyed by upper-case altname."""

    currencies: dict[str, FlexCurrency]
    balance_value: Decimal
    portfolio_value: Decimal
    collateral_value: Decimal
    initial_margin: Decimal
    initial_margin_with_orders: Decimal
    maintenance_margin: Decimal
    pnl: Decimal
    unrealized_funding: Decimal
    total_unrealized: Decimal
    total_unrealized_as_margin: Decimal
    margin_equity: Decimal
    available_margin: Decimal


FuturesAccount = CashAccount | MarginAccount | FlexAccount


class AccountsResponse(_Wire, frozen=True):
    result: Literal["success"]
    server_time: datetime
    accounts: dict[str, FuturesAccount]


# --- GET /subaccounts ----------------------------------------------------------------------------
class HoldingAccount(_Wire, frozen=True):
    currency: str
    amount: Decimal


class MarginSummary(_Wire, frozen=True):
    """One single-collateral futures account of a sub-account (`f-xbt:usd`)."""

    name: str
    available_margin: Decimal


class SubaccountFlexCurrency(_Wire, frozen=True):
    currency: str
    quantity: Decimal
    value: Decimal
    collateral: Decimal
    available: Decimal


class SubaccountFlex(_Wire, frozen=True):
    """`flexAccount`: the flex figures of `/accounts`, currencies as a list and no `type`.

    Only `currencies` is required: Kraken's reference does not promise the summary figures."""

    currencies: list[SubaccountFlexCurrency]
    balance_value: Decimal | None = None
    portfolio_value: Decimal | None = None
    collateral_value: Decimal | None = None
    initial_margin: Decimal | None = None
    maintenance_margin: Decimal | None = None
    margin_equity: Decimal | None = None
    available_margin: Decimal | None = None


class Subaccount(_Wire, frozen=True):
    account_uid: str
    email: str
    full_name: str
    holding_accounts: list[HoldingAccount]
    futures_accounts: list[MarginSummary]
    flex_account: SubaccountFlex


class SubaccountsResponse(_Wire, frozen=True):
    result: Literal["success"]
    server_time: datetime
    master_account_uid: str
    subaccounts: list[Subaccount]


# --- GET|PUT /subaccount/{uid}/trading-enabled ---------------------------------------------------
class TradingEnabled(_Wire, frozen=True):
    result: Literal["success"]
    server_time: datetime
    trading_enabled: bool


# --- GET /api/history/v3/account-log -------------------------------------------------------------
class AccountLogEntry(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=False
):  # snake_case on the wire, unlike the derivatives replies
    """One change of a wallet of this account (Kraken's `AccountLogEntry`).

    Balances are JSON numbers (doubles) on the wire: decoded as written, but the venue may have
    rounded them to a double's 15-17 digits. Kraken's schema makes `asset`, `margin_account` and
    both balances required; we tolerate `null` there too and treat such an entry as unreadable.
    """

    id: int  # from 1, increasing in the order the log was written
    booking_uid: str
    date: datetime
    info: str  # `subaccount transfer`, `transfer`, `futures trade`, ...
    asset: str | None  # lower-case altname (`usd`, `xbt`)
    margin_account: str | None  # the wallet (`cash`, `flex`, `fi_xbtusd`)
    old_balance: Decimal | None
    new_balance: Decimal | None
    execution: str | None = None  # the transfer's or trade's uid


class AccountLog(_Wire, frozen=True):
    """The reply of the account log: no envelope, the caller's own log."""

    account_uid: str
    logs: list[AccountLogEntry]

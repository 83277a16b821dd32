"""The futures REST payloads built from the venue's state: `GET /accounts` (the shape of Kraken's
example and its unified-wallet formulas over the `flex` quantities,
`docs/kraken/accounts-and-transfers.md` sections 4 and 5) and the entries of `GET /subaccounts`.

Single-collateral wallets are not modelled: `/accounts` shows one idle `fi_xbtusd` margin account
with zero figures, `/subaccounts` the matching `f-xbt:usd` with zero available margin. Haircuts
are those Kraken's example implies (USD 0, XBT and EUR 2.245 %); other assets take 2.245 % too.

The flex wallet's margins and unrealized PnL are the account's `flex_risk` (set by tests and the
admin API, `Venue.set_flex_risk`); its margin level is section 4's formula with the maintenance
margin as the requirement (a Decision): marginEquity / maintenanceMargin x 100. A transfer out
of a flex wallet that would leave its available margin below zero is `insufficientFunds`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final

import msgspec

from orchestrator.simulator import futures_accounts as fa
from orchestrator.simulator.accounts import Account
from orchestrator.simulator.venue import Venue

IDLE_MARGIN_WALLET: Final = "fi_xbtusd"
IDLE_FUTURES_ACCOUNT: Final = "f-xbt:usd"
OTHER_HAIRCUT: Final = Decimal("0.02245")  # non-USD haircut of Kraken's example, for others
_ZERO: Final = Decimal(0)


def _haircuts(names: list[str]) -> dict[str, Decimal]:
    return {name: fa.DEFAULT_HAIRCUTS.get(name, OTHER_HAIRCUT) for name in names}


def _flex_inputs(
    venue: Venue, holdings: dict[str, Decimal]
) -> tuple[dict[str, Decimal], dict[str, Decimal], dict[str, Decimal]]:
    """Quantities, USD prices (the catalog's) and haircuts by upper-case name, from asset ids."""
    quantities: dict[str, Decimal] = {}
    prices: dict[str, Decimal] = {}
    for asset_id, quantity in holdings.items():
        asset = venue.catalog.assets[asset_id]
        quantities[asset.altname.upper()] = quantity
        prices[asset.altname.upper()] = asset.usd_price
    return quantities, prices, _haircuts(list(quantities))


def flex_wallet(venue: Venue, account: Account) -> fa.FlexAccount:
    """Kraken's unified-wallet formulas over the `flex` quantities, at the catalog's USD prices,
    with the account's positions and orders (`flex_risk`)."""
    quantities, prices, haircuts = _flex_inputs(venue, account.futures["flex"])
    risk = account.flex_risk
    return fa.flex_account(
        quantities, prices, haircuts,
        initial_margin=risk.initial_margin,
        initial_margin_with_orders=risk.initial_margin + risk.order_margin,
        maintenance_margin=risk.maintenance_margin,
        unrealized_pnl=risk.unrealized_pnl,
        unrealized_funding=risk.unrealized_funding,
    )  # fmt: skip


def flex_available_margin(venue: Venue, account: Account, holdings: dict[str, Decimal]) -> Decimal:
    """`availableMargin` in exact decimals, had the flex wallet `holdings` (by asset id):
    collateral + unrealized - initial margin with orders."""
    risk = account.flex_risk
    unrealized = risk.unrealized_pnl + risk.unrealized_funding
    return (
        fa.collateral_value(*_flex_inputs(venue, holdings))
        + unrealized
        - risk.initial_margin
        - risk.order_margin
    )


def flex_margin_level(wallet: fa.FlexAccount) -> Decimal | None:
    """A flex wallet's margin level in percent, from its payload figures (section 4, with the
    maintenance margin as the requirement); None while nothing is open."""
    return fa.margin_level(
        Decimal(str(wallet.collateral_value)),
        Decimal(str(wallet.total_unrealized_as_margin)),
        Decimal(str(wallet.maintenance_margin)),
    )


def _cash_balances(venue: Venue, account: Account) -> dict[str, Decimal]:
    return {
        venue.catalog.assets[asset_id].altname.lower(): quantity
        for asset_id, quantity in account.futures["cash"].items()
    }


def _idle_margin_account() -> fa.MarginAccount:
    zero = fa.MarginLevels(im=0.0, mm=0.0, lt=0.0, tt=0.0)
    return fa.margin_account(
        "xbt", {}, fa.Auxiliary(af=0.0, funding=0.0, pnl=0.0, pv=0.0, usd=0.0), zero, zero
    )


def accounts_payload(venue: Venue, account: Account) -> dict[str, Any]:
    """The `GET /accounts` body for one account, in the shape of Kraken's example."""
    wallets: dict[str, fa.Account] = {
        "cash": fa.cash_account(_cash_balances(venue, account)),
        "flex": flex_wallet(venue, account),
        IDLE_MARGIN_WALLET: _idle_margin_account(),
    }
    payload: dict[str, Any] = msgspec.to_builtins(fa.accounts_response(venue.clock.time(), wallets))
    return payload


def flex_summary(venue: Venue, account: Account) -> dict[str, Any]:
    """`flexAccount` of `/subaccounts`: the flex figures, currencies as a list, no `type`."""
    summary: dict[str, Any] = msgspec.to_builtins(flex_wallet(venue, account))
    summary.pop("type", None)
    summary["currencies"] = [
        {"currency": name.lower(), **figures} for name, figures in summary["currencies"].items()
    ]
    return summary


def subaccount_entry(venue: Venue, account: Account) -> dict[str, Any]:
    cash = account.futures["cash"]
    return {
        "accountUid": account.futures_uid,
        "email": account.email,
        "fullName": account.name,
        "holdingAccounts": [
            {"currency": asset.altname.lower(), "amount": float(cash.get(asset.id, _ZERO))}
            for asset in venue.catalog.assets.values()
        ],
        "futuresAccounts": [{"name": IDLE_FUTURES_ACCOUNT, "availableMargin": 0.0}],
        "flexAccount": flex_summary(venue, account),
    }

"""The futures `GET /derivatives/api/v3/accounts` payload, and the margin formulas behind it.

Shape from Kraken's documented example reply (`docs/kraken/accounts-and-transfers.md` section 5);
formulas from Kraken's unified-wallet articles (same file, section 4). Pure: arithmetic in
`Decimal`, converted to JSON numbers (floats) only at the edge, where Kraken's example has
numbers; cash and margin-account balances are decimal strings, as in the example.

Choices where Kraken says nothing: `portfolioValue` = `balanceValue` + `totalUnrealized`;
`totalUnrealized` = `pnl` + `unrealizedFunding`; `totalUnrealizedAsMargin` = `totalUnrealized` (no
haircut on gains is documented); a currency's `available` = quantity minus what open orders hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Final

import msgspec

ZERO: Final = Decimal(0)
# Kraken's example reply implies these (collateral / value = 1 - 0.02245 for XBT and EUR).
DEFAULT_HAIRCUTS: Final[Mapping[str, Decimal]] = MappingProxyType(
    {"USD": ZERO, "XBT": Decimal("0.02245"), "EUR": Decimal("0.02245")}
)
# Kraken's share of spot margin requirements that each available-margin formula subtracts.
MAINTENANCE_SPOT_MARGIN_RATE: Final = Decimal("0.8")
LIQUIDATION_SPOT_MARGIN_RATE: Final = Decimal("0.4")


class FlexRisk(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a flex wallet's open positions and orders weigh, in USD. The simulator matches no
    futures orders: tests and the admin API set these figures to drive the margin level.

    `order_margin` is the initial margin of open orders (`initialMarginWithOrders` - IM)."""

    initial_margin: Decimal = ZERO
    maintenance_margin: Decimal = ZERO
    unrealized_pnl: Decimal = ZERO
    unrealized_funding: Decimal = ZERO
    order_margin: Decimal = ZERO

    def __post_init__(self) -> None:
        for name in ("initial_margin", "maintenance_margin", "order_margin"):
            value: Decimal = getattr(self, name)
            if not value.is_finite() or value < 0:
                raise ValueError(f"{name} must be a finite amount >= 0, got {value}")
        for name in ("unrealized_pnl", "unrealized_funding"):
            if not getattr(self, name).is_finite():
                raise ValueError(f"{name} must be finite")
        if self.maintenance_margin > self.initial_margin:
            raise ValueError(
                f"maintenance_margin {self.maintenance_margin} is above initial_margin "
                f"{self.initial_margin}"
            )


NO_RISK: Final = FlexRisk()


class _Wire(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Base of the payload's structs: snake_case here, camelCase on the wire."""


class CashAccount(_Wire, frozen=True, tag_field="type", tag="cashAccount"):
    balances: dict[str, str]


class Auxiliary(_Wire, frozen=True):
    af: float
    funding: float
    pnl: float
    pv: float
    usd: float


class MarginLevels(_Wire, frozen=True):
    """`marginRequirements`/`triggerEstimates`: initial, maintenance, liquidation, termination."""

    im: float
    mm: float
    lt: float
    tt: float


class MarginAccount(_Wire, frozen=True, tag_field="type", tag="marginAccount"):
    currency: str
    balances: dict[str, str]
    auxiliary: Auxiliary
    margin_requirements: MarginLevels
    trigger_estimates: MarginLevels


class FlexCurrency(_Wire, frozen=True):
    quantity: float
    value: float
    collateral: float
    available: float


class FlexAccount(_Wire, frozen=True, tag_field="type", tag="multiCollateralMarginAccount"):
    currencies: dict[str, FlexCurrency]
    balance_value: float
    portfolio_value: float
    collateral_value: float
    initial_margin: float
    initial_margin_with_orders: float
    maintenance_margin: float
    pnl: float
    unrealized_funding: float
    total_unrealized: float
    total_unrealized_as_margin: float
    margin_equity: float
    available_margin: float


Account = CashAccount | MarginAccount | FlexAccount


class AccountsResponse(_Wire, frozen=True):
    result: str
    server_time: str
    accounts: dict[str, Account]


def decimal_text(amount: Decimal) -> str:
    """Plain decimal text (`141.31756797`, never `1E+2`)."""
    return format(amount, "f")


def server_time(now_s: float) -> str:
    """RFC 3339 in UTC with milliseconds, as in `serverTime`: `2016-02-25T09:45:53.818Z`."""
    at = datetime.fromtimestamp(round(now_s * 1000) / 1000, UTC)  # 0.818 is 0.81799... as a float
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def collateral(quantity: Decimal, price_usd: Decimal, haircut: Decimal) -> Decimal:
    """Kraken's collateral of one asset: balance x price x (1 - haircut)."""
    return quantity * price_usd * (1 - haircut)


def collateral_value(
    quantities: Mapping[str, Decimal],
    prices_usd: Mapping[str, Decimal],
    haircuts: Mapping[str, Decimal] = DEFAULT_HAIRCUTS,
) -> Decimal:
    """Kraken's collateral value: the sum of every asset's collateral. A missing price or
    haircut is a KeyError: guessing either would misstate margin."""
    return sum(
        (collateral(qty, prices_usd[asset], haircuts[asset]) for asset, qty in quantities.items()),
        ZERO,
    )


def margin_level(
    collateral_usd: Decimal, unrealized_pnl: Decimal, margin_requirement: Decimal
) -> Decimal | None:
    """Kraken's margin level: (collateral + unrealized PnL) / requirement x 100, in percent;
    None without a requirement (no positions: the level is unbounded)."""
    if margin_requirement == 0:
        return None
    return (collateral_usd + unrealized_pnl) / margin_requirement * 100


def available_maintenance_margin(
    liquidation_equity: Decimal,
    derivatives_unrealized_as_margin: Decimal,
    spot_margin: Decimal,
    derivatives_maintenance_margin: Decimal,
) -> Decimal:
    """Kraken's formula: liqEquity + unrealized-as-margin - spot margin x 0.8 - derivatives MM."""
    return (
        liquidation_equity
        + derivatives_unrealized_as_margin
        - spot_margin * MAINTENANCE_SPOT_MARGIN_RATE
        - derivatives_maintenance_margin
    )


def available_liquidation_margin(
    liquidation_equity: Decimal,
    derivatives_unrealized_as_margin: Decimal,
    spot_margin: Decimal,
    derivatives_liquidation_margin: Decimal,
) -> Decimal:
    """Kraken's formula: liqEquity + unrealized-as-margin - spot margin x 0.4 - derivatives LM."""
    return (
        liquidation_equity
        + derivatives_unrealized_as_margin
        - spot_margin * LIQUIDATION_SPOT_MARGIN_RATE
        - derivatives_liquidation_margin
    )


def available_margin(
    equity: Decimal,
    derivatives_unrealized_pnl: Decimal,
    initial_margin: Decimal,
    *,
    spot_margin: Decimal = ZERO,
    withheld: Decimal = ZERO,
    derivatives_order_margin: Decimal = ZERO,
) -> Decimal:
    """Kraken's formula: equity + unrealized PnL - initial margin; with open orders, also minus spot
    margin, withheld funds and the derivatives margin of the orders."""
    return (
        equity
        + derivatives_unrealized_pnl
        - spot_margin
        - withheld
        - initial_margin
        - derivatives_order_margin
    )


def flex_account(
    quantities: Mapping[str, Decimal],
    prices_usd: Mapping[str, Decimal],
    haircuts: Mapping[str, Decimal] = DEFAULT_HAIRCUTS,
    *,
    initial_margin: Decimal = ZERO,
    initial_margin_with_orders: Decimal | None = None,
    maintenance_margin: Decimal = ZERO,
    unrealized_pnl: Decimal = ZERO,
    unrealized_funding: Decimal = ZERO,
    held_by_orders: Mapping[str, Decimal] | None = None,
) -> FlexAccount:
    """The `flex` wallet from its holdings; margins are 0 while nothing is open.

    `initial_margin_with_orders` defaults to `initial_margin` (no open orders)."""
    held = held_by_orders or {}
    currencies: dict[str, FlexCurrency] = {}
    balance = ZERO
    collateral_usd = ZERO
    for asset, qty in quantities.items():
        value = qty * prices_usd[asset]
        asset_collateral = collateral(qty, prices_usd[asset], haircuts[asset])
        balance += value
        collateral_usd += asset_collateral
        currencies[asset] = FlexCurrency(
            quantity=float(qty),
            value=float(value),
            collateral=float(asset_collateral),
            available=float(qty - held.get(asset, ZERO)),
        )
    im_with_orders = initial_margin_with_orders
    if im_with_orders is None:
        im_with_orders = initial_margin
    total_unrealized = unrealized_pnl + unrealized_funding
    unrealized_as_margin = total_unrealized
    equity = collateral_usd + unrealized_as_margin
    return FlexAccount(
        currencies=currencies,
        balance_value=float(balance),
        portfolio_value=float(balance + total_unrealized),
        collateral_value=float(collateral_usd),
        initial_margin=float(initial_margin),
        initial_margin_with_orders=float(im_with_orders),
        maintenance_margin=float(maintenance_margin),
        pnl=float(unrealized_pnl),
        unrealized_funding=float(unrealized_funding),
        total_unrealized=float(total_unrealized),
        total_unrealized_as_margin=float(unrealized_as_margin),
        margin_equity=float(equity),
        available_margin=float(equity - im_with_orders),
    )


def cash_account(balances: Mapping[str, Decimal]) -> CashAccount:
    """The `cash` (holding) wallet; Kraken's example spells its assets in lower case (`xbt`)."""
    return CashAccount(balances={asset: decimal_text(qty) for asset, qty in balances.items()})


def margin_account(
    currency: str,
    balances: Mapping[str, Decimal],
    auxiliary: Auxiliary,
    margin_requirements: MarginLevels,
    trigger_estimates: MarginLevels,
) -> MarginAccount:
    """A single-collateral wallet (`fi_xbtusd`). Its figures come from the position engine;
    Kraken's example is not self-consistent enough to derive `af`/`pv` from balances."""
    return MarginAccount(
        currency=currency,
        balances={asset: decimal_text(qty) for asset, qty in balances.items()},
        auxiliary=auxiliary,
        margin_requirements=margin_requirements,
        trigger_estimates=trigger_estimates,
    )


def accounts_response(now_s: float, accounts: Mapping[str, Account]) -> AccountsResponse:
    """The whole success payload: `{"result": "success", "serverTime": ..., "accounts": ...}`."""
    return AccountsResponse(
        result="success", server_time=server_time(now_s), accounts=dict(accounts)
    )

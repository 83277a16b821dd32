"""A futures multi-collateral (`flex`) wallet's margin, and the top-up that restores it.

    figures = flex_figures(flex)                       # flex: the decoded `GET /accounts` wallet
    if figures.margin_level is not None and figures.margin_level < min_level:
        amount = top_up_amount(flex, target_level=target, asset="USD", price=Decimal(1),
                               haircut=haircut_of(flex, "USD"), max_amount=None)

Pure: no I/O. The formulas are Kraken's unified-wallet ones (docs/kraken/accounts-and-transfers.md
section 4); the fields those of the `flex` wallet (section 5). Levels are ratios (3 = 300%),
as `MarginTopUp.min_margin_level` and `target_margin_level` are.

Decisions:
- The margin requirement is the **maintenance** margin (`maintenanceMargin`), not the initial one.
  A top-up exists to keep the wallet away from liquidation, which Kraken triggers when equity
  falls under the maintenance requirement: a level of 1 is then the liquidation edge, which is
  why the config insists on `min_margin_level > 1`. The initial margin (with orders) governs what
  may still be opened, and is what `available_margin` subtracts. `basis="initial"` is there for a
  caller who wants the stricter reading.
- Collateral is the wallet's own `collateralValue` (Kraken applied its haircuts of the moment),
  not a sum over `currencies`: Kraken changes haircuts without notice, and its documented example
  shows the two need not agree.
- Unrealized PnL is `totalUnrealizedAsMargin`: PnL and funding as far as Kraken counts them toward
  margin (Kraken's available-margin formulas use that figure), so collateral + it = `marginEquity`.
- An asset's haircut is read from the wallet (1 - collateral / value of that currency) when the
  wallet holds some of it; otherwise 0 for USD and 2.245% for anything else, the haircut Kraken's
  example implies for XBT and EUR (the simulator makes the same choice).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal, localcontext
from typing import Final, Literal

from orchestrator.exchange.kraken.futures.schemas import FlexAccount

ZERO: Final = Decimal(0)
ONE: Final = Decimal(1)
DEFAULT_HAIRCUT: Final = Decimal("0.02245")
UNHAIRCUT_ASSETS: Final = frozenset({"USD"})
DEFAULT_DECIMALS: Final = 8

MarginBasis = Literal["maintenance", "initial"]


@dataclass(frozen=True, slots=True)
class FlexFigures:
    """What the rebalancer reads off a flex wallet, in USD. `margin_level` is None when there is
    no requirement (no position: the level is unbounded, nothing to top up)."""

    collateral: Decimal
    unrealized_pnl: Decimal
    margin_requirement: Decimal
    margin_level: Decimal | None
    available_margin: Decimal


def margin_requirement(flex: FlexAccount, basis: MarginBasis = "maintenance") -> Decimal:
    """The requirement the level is measured against (see the module's Decision). The initial
    basis counts open orders' margin too, as Kraken does before letting anything new open."""
    if basis == "maintenance":
        return flex.maintenance_margin
    return flex.initial_margin_with_orders


def margin_level(
    collateral: Decimal, unrealized_pnl: Decimal, requirement: Decimal
) -> Decimal | None:
    """Kraken's (collateral + unrealized PnL) / requirement, as a ratio; None without a
    requirement. A negative requirement is not a wallet Kraken sends: refused."""
    if requirement < 0:
        raise ValueError(f"a margin requirement below 0: {requirement}")
    if requirement == 0:
        return None
    return (collateral + unrealized_pnl) / requirement


def flex_figures(flex: FlexAccount, basis: MarginBasis = "maintenance") -> FlexFigures:
    """The wallet's figures. Available margin is Kraken's equity - initial margin (with orders),
    equity being collateral + unrealized PnL as margin (`marginEquity`)."""
    collateral = flex.collateral_value
    unrealized = flex.total_unrealized_as_margin
    requirement = margin_requirement(flex, basis)
    return FlexFigures(
        collateral=collateral,
        unrealized_pnl=unrealized,
        margin_requirement=requirement,
        margin_level=margin_level(collateral, unrealized, requirement),
        available_margin=collateral + unrealized - flex.initial_margin_with_orders,
    )


def haircut_of(flex: FlexAccount, asset: str) -> Decimal:
    """The share of `asset`'s value Kraken does not count as collateral (see the Decision).
    Read off the wallet, it is clamped into [0, 1]: the JSON numbers carry float noise."""
    currency = flex.currencies.get(asset)
    if currency is not None and currency.value != 0:
        haircut = ONE - currency.collateral / currency.value
        return min(max(haircut, ZERO), ONE)
    return ZERO if asset in UNHAIRCUT_ASSETS else DEFAULT_HAIRCUT


def collateral_needed(
    flex: FlexAccount, *, target_level: Decimal, basis: MarginBasis = "maintenance"
) -> Decimal:
    """Collateral (USD) the wallet lacks for `target_level`: target x requirement - unrealized
    PnL - collateral, or 0 when it is there already (or there is no requirement)."""
    figures = flex_figures(flex, basis)
    if figures.margin_requirement == 0:
        return ZERO
    needed = target_level * figures.margin_requirement - figures.unrealized_pnl
    shortfall = needed - figures.collateral
    return shortfall if shortfall > 0 else ZERO


def top_up_amount(
    flex: FlexAccount,
    *,
    target_level: Decimal,
    asset: str,
    price: Decimal,
    haircut: Decimal,
    max_amount: Decimal | None,
    decimals: int = DEFAULT_DECIMALS,
    basis: MarginBasis = "maintenance",
) -> Decimal:
    """How much `asset` to send so that the margin level reaches `target_level`.

    Each unit counts as price x (1 - haircut) of collateral, so the amount is the shortfall
    divided by that, rounded *up* to `decimals` (the asset's transfer precision: rounding down
    would land just under the target), then cut to `max_amount` (a bigger need is met over the
    next cycles). 0 when the level is reached or there is no position."""
    if not target_level > 0:
        raise ValueError(f"target_level must be above 0, got {target_level}")
    if not price > 0:
        raise ValueError(f"{asset}: price must be above 0, got {price}")
    if not ZERO <= haircut < ONE:
        raise ValueError(f"{asset}: haircut {haircut} leaves no collateral value")
    shortfall = collateral_needed(flex, target_level=target_level, basis=basis)
    if shortfall == 0:
        return ZERO
    exact = shortfall / (price * (ONE - haircut))
    with localcontext() as ctx:  # room for every digit the quantum asks for
        ctx.prec = max(ctx.prec, exact.adjusted() + decimals + 2)
        amount = exact.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_CEILING)
    if max_amount is not None and amount > max_amount:
        return max_amount
    return amount

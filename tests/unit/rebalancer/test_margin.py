"""Flex wallet margin figures and top-ups, refereed by the simulator's own formula functions
(orchestrator/simulator/futures_accounts.py) and checked against Kraken's documented example."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal as D
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.exchange.kraken.futures.schemas import AccountsResponse, FlexAccount, FlexCurrency
from orchestrator.rebalancer.margin import (
    DEFAULT_HAIRCUT,
    collateral_needed,
    flex_figures,
    haircut_of,
    margin_requirement,
    top_up_amount,
)
from orchestrator.simulator import futures_accounts as sim

EXAMPLE = Path(__file__).parents[2] / "fixtures" / "futures" / "accounts_example.json"
PRICES = {"USD": D(1), "XBT": D("60000.5"), "EUR": D("1.0875"), "ETH": D("3000.25")}
HAIRCUTS = {**sim.DEFAULT_HAIRCUTS, "ETH": D("0.02245")}  # the docs' default for other assets
ZERO = D(0)


def example_flex() -> FlexAccount:
    reply = msgspec.json.decode(EXAMPLE.read_bytes(), type=AccountsResponse)
    flex = reply.accounts["flex"]
    assert isinstance(flex, FlexAccount)
    return flex


def exact_wallet(
    quantities: Mapping[str, D], *, mm: D, im: D = ZERO, upnl: D = ZERO
) -> FlexAccount:
    """A flex wallet with exact Decimal figures, its collateral from the simulator's formulas."""
    currencies = {
        asset: FlexCurrency(
            quantity=qty,
            value=qty * PRICES[asset],
            collateral=sim.collateral(qty, PRICES[asset], HAIRCUTS[asset]),
            available=qty,
        )
        for asset, qty in quantities.items()
    }
    collateral = sim.collateral_value(quantities, PRICES, HAIRCUTS)
    balance = sum((qty * PRICES[a] for a, qty in quantities.items()), ZERO)
    return FlexAccount(
        currencies=currencies,
        balance_value=balance,
        portfolio_value=balance + upnl,
        collateral_value=collateral,
        initial_margin=im,
        initial_margin_with_orders=im,
        maintenance_margin=mm,
        pnl=upnl,
        unrealized_funding=ZERO,
        total_unrealized=upnl,
        total_unrealized_as_margin=upnl,
        margin_equity=collateral + upnl,
        available_margin=collateral + upnl - im,
    )


def wire_wallet(quantities: Mapping[str, D], *, mm: D, upnl: D = ZERO) -> FlexAccount:
    """The simulator's wallet as it goes on the wire (JSON numbers), decoded by the client."""
    payload = msgspec.json.encode(
        sim.flex_account(quantities, PRICES, HAIRCUTS, maintenance_margin=mm, unrealized_pnl=upnl)
    )
    return msgspec.json.decode(payload, type=FlexAccount)


def referee_level(quantities: Mapping[str, D], *, mm: D, upnl: D) -> D:
    """The simulator's margin level (a percentage) as a ratio."""
    collateral = sim.collateral_value(quantities, PRICES, HAIRCUTS)
    level = sim.margin_level(collateral, upnl, mm)
    assert level is not None
    return level / 100


def plus(quantities: Mapping[str, D], asset: str, amount: D) -> dict[str, D]:
    return {**quantities, asset: quantities.get(asset, ZERO) + amount}


# --- Kraken's documented example ----------------------------------------------------------------


def test_example_haircuts_are_derived_from_the_wallet() -> None:
    flex = example_flex()
    assert haircut_of(flex, "USD") == 0
    for asset in ("XBT", "EUR"):
        assert abs(haircut_of(flex, asset) - DEFAULT_HAIRCUT) < D("1e-12"), asset


def test_assets_absent_from_the_wallet_get_the_documented_default() -> None:
    flex = example_flex()
    assert haircut_of(flex, "ETH") == DEFAULT_HAIRCUT
    assert haircut_of(exact_wallet({"XBT": D(1)}, mm=ZERO), "USD") == 0


def test_example_figures_follow_kraken_formulas() -> None:
    """Where the example applies: equity = collateral + unrealized as margin, available margin =
    equity - initial margin, and no position means no level (nothing to top up)."""
    flex = example_flex()
    figures = flex_figures(flex)
    assert figures.collateral == D("34122.66")
    assert figures.collateral + figures.unrealized_pnl == flex.margin_equity
    assert figures.available_margin == flex.available_margin == D("34122.66")
    assert figures.margin_requirement == 0
    assert figures.margin_level is None
    top_up = top_up_amount(flex, target_level=D(3), asset="USD", price=D(1), haircut=ZERO,
                           max_amount=None)  # fmt: skip
    assert top_up == 0


def test_example_per_currency_collateral_is_value_less_haircut() -> None:
    flex = example_flex()
    for asset, currency in flex.currencies.items():
        price = currency.value / currency.quantity
        expected = sim.collateral(currency.quantity, price, HAIRCUTS[asset])
        assert abs(currency.collateral - expected) < D("1e-9"), asset


# --- figures -----------------------------------------------------------------------------------


def test_level_is_against_the_maintenance_margin_by_default() -> None:
    flex = exact_wallet({"USD": D(10_000)}, mm=D(2_000), im=D(4_000), upnl=D(-1_000))
    assert margin_requirement(flex) == D(2_000)
    assert flex_figures(flex).margin_level == D("4.5")
    assert flex_figures(flex, "initial").margin_level == D("2.25")
    assert flex_figures(flex).available_margin == D(10_000 - 1_000 - 4_000)


def test_top_up_in_usd_reaches_the_target() -> None:
    flex = exact_wallet({"USD": D(10_000)}, mm=D(5_000), upnl=D(-1_000))  # level 1.8
    assert collateral_needed(flex, target_level=D(3)) == D(6_000)
    amount = top_up_amount(flex, target_level=D(3), asset="USD", price=D(1),
                           haircut=haircut_of(flex, "USD"), max_amount=None)  # fmt: skip
    assert amount == D(6_000)
    assert referee_level(plus({"USD": D(10_000)}, "USD", amount), mm=D(5_000), upnl=D(-1_000)) == 3


def test_top_up_in_a_haircut_asset_is_grossed_up_and_rounded_up() -> None:
    flex = exact_wallet({"USD": D(10_000)}, mm=D(5_000))
    amount = top_up_amount(flex, target_level=D(3), asset="XBT", price=PRICES["XBT"],
                           haircut=haircut_of(flex, "XBT"), max_amount=None)  # fmt: skip
    exact = D(5_000) / (PRICES["XBT"] * (1 - DEFAULT_HAIRCUT))
    assert exact < amount <= exact + D("1e-8")
    assert amount == amount.quantize(D("1e-8"))


def test_top_up_is_cut_to_max_amount() -> None:
    flex = exact_wallet({"USD": D(1_000)}, mm=D(1_000))
    amount = top_up_amount(flex, target_level=D(3), asset="USD", price=D(1), haircut=ZERO,
                           max_amount=D(500))  # fmt: skip
    assert amount == D(500)


def test_nothing_to_top_up_above_the_target() -> None:
    flex = exact_wallet({"USD": D(10_000)}, mm=D(1_000))
    assert top_up_amount(flex, target_level=D(3), asset="USD", price=D(1), haircut=ZERO,
                         max_amount=None) == 0  # fmt: skip


@pytest.mark.parametrize(("price", "haircut"), [(D(0), ZERO), (D(1), D(1)), (D(1), D(-1))])
def test_unusable_price_or_haircut_is_refused(price: D, haircut: D) -> None:
    flex = exact_wallet({"USD": D(1)}, mm=D(1))
    with pytest.raises(ValueError, match="USD"):
        top_up_amount(flex, target_level=D(3), asset="USD", price=price, haircut=haircut,
                      max_amount=None)  # fmt: skip


# --- properties --------------------------------------------------------------------------------

amounts = st.decimals(min_value=0, max_value=10**6, places=4)
wallets = st.fixed_dictionaries(
    {"USD": amounts},
    optional={"XBT": st.decimals(min_value=0, max_value=50, places=8), "EUR": amounts},
)


@settings(max_examples=300, deadline=None)
@given(
    quantities=wallets,
    mm=st.decimals(min_value=1, max_value=10**6, places=2),
    upnl=st.decimals(min_value=-(10**5), max_value=10**5, places=2),
    target=st.decimals(min_value="1.01", max_value=10, places=2),
    asset=st.sampled_from(sorted(PRICES)),
    decimals=st.integers(min_value=2, max_value=10),
)
def test_top_up_brings_the_referee_level_to_target_and_no_further(
    quantities: dict[str, D], mm: D, upnl: D, target: D, asset: str, decimals: int
) -> None:
    flex = exact_wallet(quantities, mm=mm, upnl=upnl)
    amount = top_up_amount(flex, target_level=target, asset=asset, price=PRICES[asset],
                           haircut=haircut_of(flex, asset), max_amount=None,
                           decimals=decimals)  # fmt: skip
    before = referee_level(quantities, mm=mm, upnl=upnl)
    if before >= target:
        assert amount == 0
        return
    quantum = D(1).scaleb(-decimals)
    assert amount > 0
    assert amount == amount.quantize(quantum)
    assert referee_level(plus(quantities, asset, amount), mm=mm, upnl=upnl) >= target
    assert referee_level(plus(quantities, asset, amount - quantum), mm=mm, upnl=upnl) < target


@settings(max_examples=200, deadline=None)
@given(
    quantities=wallets,
    mm=st.decimals(min_value=1, max_value=10**6, places=2),
    upnl=st.decimals(min_value=-(10**5), max_value=10**5, places=2),
    target=st.decimals(min_value="1.01", max_value=10, places=2),
    asset=st.sampled_from(sorted(PRICES)),
)
def test_top_up_from_the_simulators_wire_wallet(
    quantities: dict[str, D], mm: D, upnl: D, target: D, asset: str
) -> None:
    """The wallet as the client decodes it (JSON numbers: float digits): the referee's level
    after the top-up is at the target, within the float noise of the wire's figures."""
    flex = wire_wallet(quantities, mm=mm, upnl=upnl)
    amount = top_up_amount(flex, target_level=target, asset=asset, price=PRICES[asset],
                           haircut=haircut_of(flex, asset), max_amount=None)  # fmt: skip
    noise = D("1e-9")
    if referee_level(quantities, mm=mm, upnl=upnl) >= target + noise:
        assert amount == 0
    else:
        assert referee_level(plus(quantities, asset, amount), mm=mm, upnl=upnl) >= target - noise


def test_no_requirement_no_level_no_top_up() -> None:
    flex = wire_wallet({"USD": D(5)}, mm=ZERO)
    assert flex_figures(flex).margin_level is None
    assert collateral_needed(flex, target_level=D(3)) == 0

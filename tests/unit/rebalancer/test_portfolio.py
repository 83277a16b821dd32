"""The portfolio: available never negative, domain totals, values in one quote currency."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from orchestrator.exchange.protocol import Balance
from orchestrator.rebalancer.portfolio import (
    AccountFunds,
    MissingPrice,
    Portfolio,
    mid_prices,
    portfolio_from,
)
from orchestrator.rebalancer.transfers import PlannedTransfer


def bal(asset: str, total: str, held: str = "0") -> Balance:
    return Balance(asset=asset, total=D(total), held=D(held))


BALANCES = {
    "master": {"ZUSD": bal("ZUSD", "10000"), "XXBT": bal("XXBT", "1.5")},
    "mm-xbt": {"ZUSD": bal("ZUSD", "2500", "500"), "XXBT": bal("XXBT", "0.25", "0.25")},
    "twap-eth": {"XETH": bal("XETH", "4", "1")},
}


def test_available_is_total_minus_held() -> None:
    portfolio = portfolio_from(BALANCES)
    assert portfolio.available("mm-xbt", "ZUSD") == D(2000)
    assert portfolio.available("mm-xbt", "XXBT") == 0
    assert portfolio.available("twap-eth", "XETH") == D(3)


def test_available_is_never_negative() -> None:
    """A hold read a moment after its balance can exceed it: that frees nothing."""
    funds = AccountFunds("a", {"ZUSD": D(5)}, {"ZUSD": D(7)})
    assert funds.available("ZUSD") == 0


def test_an_asset_the_account_lacks_is_zero() -> None:
    portfolio = portfolio_from(BALANCES)
    assert portfolio.available("twap-eth", "ZUSD") == 0
    assert portfolio.total("XXRP") == 0


def test_an_account_without_balances_is_an_error_naming_it() -> None:
    with pytest.raises(KeyError, match="ghost"):
        portfolio_from(BALANCES).available("ghost", "ZUSD")


def test_domain_total_counts_every_account_and_held_funds() -> None:
    portfolio = portfolio_from(BALANCES)
    assert portfolio.total("ZUSD") == D(12500)
    assert portfolio.total("XXBT") == D("1.75")
    assert portfolio.total_available("ZUSD") == D(12000)
    assert portfolio.assets() == {"ZUSD", "XXBT", "XETH"}


def test_value_in_one_quote_currency() -> None:
    portfolio = portfolio_from(BALANCES)
    prices = {"XXBT": D(60000), "XETH": D(3000)}
    assert portfolio.value(prices, quote="ZUSD") == D(12500) + D("1.75") * 60000 + 4 * 3000
    assert portfolio.value(prices, quote="ZUSD", account="twap-eth") == D(12000)


def test_value_names_the_asset_without_a_price() -> None:
    portfolio = portfolio_from(BALANCES)
    with pytest.raises(MissingPrice, match="XETH") as caught:
        portfolio.value({"XXBT": D(60000)}, quote="ZUSD")
    assert caught.value.asset == "XETH"
    assert caught.value.account == "twap-eth"


def test_an_empty_balance_needs_no_price() -> None:
    portfolio = portfolio_from({"a": {"XETH": bal("XETH", "0"), "ZUSD": bal("ZUSD", "3")}})
    assert portfolio.value({}, quote="ZUSD") == D(3)


def test_an_account_given_twice_is_refused() -> None:
    funds = AccountFunds("a", {}, {})
    with pytest.raises(ValueError, match="twice"):
        Portfolio([funds, funds])


def test_moved_moves_totals_and_keeps_holds() -> None:
    portfolio = portfolio_from(BALANCES)
    after = portfolio.moved(
        [
            PlannedTransfer(asset="ZUSD", amount=D(1000), source="master", target="mm-xbt",
                            reason="band_low"),
            PlannedTransfer(asset="XETH", amount=D(2), source="twap-eth", target="master",
                            reason="band_high"),
        ]
    )  # fmt: skip
    assert after.available("master", "ZUSD") == D(9000)
    assert after.available("mm-xbt", "ZUSD") == D(3000)
    assert after.funds("mm-xbt").held == {"ZUSD": D(500), "XXBT": D("0.25")}
    assert after.available("master", "XETH") == D(2)
    assert after.available("twap-eth", "XETH") == D(1)
    for asset in portfolio.assets():
        assert after.total(asset) == portfolio.total(asset)


def test_mid_prices() -> None:
    assert mid_prices({"XXBT": (D("59999.9"), D("60000.1"))}) == {"XXBT": D(60000)}


@pytest.mark.parametrize(("bid", "ask"), [("0", "1"), ("2", "1")])
def test_mid_prices_refuse_an_unusable_quote(bid: str, ask: str) -> None:
    with pytest.raises(ValueError, match="XXBT"):
        mid_prices({"XXBT": (D(bid), D(ask))})

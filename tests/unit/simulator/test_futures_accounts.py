"""The futures accounts payload against Kraken's example, and Kraken's margin formulas
(docs/kraken/accounts-and-transfers.md sections 4 and 5)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
import pytest

from orchestrator.simulator.futures_accounts import (
    DEFAULT_HAIRCUTS,
    AccountsResponse,
    Auxiliary,
    MarginAccount,
    MarginLevels,
    accounts_response,
    available_liquidation_margin,
    available_maintenance_margin,
    available_margin,
    cash_account,
    collateral_value,
    flex_account,
    margin_account,
    margin_level,
    server_time,
)

# Kraken's documented example response, verbatim (docs/kraken/accounts-and-transfers.md 5).
KRAKEN_EXAMPLE = """{
"accounts": {
"cash": {"balances": {"xbt": "141.31756797", "xrp": "52465.1254"}, "type": "cashAccount"},
"fi_xbtusd": {
"auxiliary": {"af": 100.73891563, "funding": 100.73891563, "pnl": 12.42134766, "pv": 153.73891563, "usd": 0},
"balances": {"xbt": "141.31756797"},
"currency": "xbt",
"marginRequirements": {"im": 52.8, "lt": 39.6, "mm": 23.76, "tt": 15.84},
"triggerEstimates": {"im": 3110, "lt": 2890, "mm": 3000, "tt": 2830},
"type": "marginAccount"
},
"flex": {
"type": "multiCollateralMarginAccount",
"currencies": {
"XBT": {"quantity": 0.1185308247, "value": 4998.721054420551, "collateral": 4886.49976674881, "available": 0.1185308247},
"USD": {"quantity": 5000, "value": 5000, "collateral": 5000, "available": 5000},
"EUR": {"quantity": 4540.5837374453, "value": 4999.137289089901, "collateral": 4886.906656949836, "available": 4540.5837374453}
},
"balanceValue": 34995.52,
"portfolioValue": 34995.52,
"collateralValue": 34122.66,
"initialMargin": 0,
"initialMarginWithOrders": 0,
"maintenanceMargin": 0,
"pnl": 0,
"unrealizedFunding": 0,
"totalUnrealized": 0,
"totalUnrealizedAsMargin": 0,
"marginEquity": 34122.66,
"availableMargin": 34122.66
}
},
"result": "success",
"serverTime": "2016-02-25T09:45:53.818Z"
}"""
SEED: dict[str, Any] = msgspec.json.decode(KRAKEN_EXAMPLE)
SEED_FLEX: dict[str, Any] = SEED["accounts"]["flex"]
QUANTITIES = {
    "XBT": Decimal("0.1185308247"),
    "USD": Decimal("5000"),
    "EUR": Decimal("4540.5837374453"),
}
# Prices implied by the seed: value / quantity.
PRICES_USD = {
    asset: Decimal(str(SEED_FLEX["currencies"][asset]["value"])) / qty
    for asset, qty in QUANTITIES.items()
}


def encoded(obj: object) -> dict[str, Any]:
    result: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(obj))
    return result


def shape(obj: object) -> object:
    """Key names and JSON types, all the way down; values dropped."""
    if isinstance(obj, dict):
        return {key: shape(value) for key, value in obj.items()}
    if isinstance(obj, bool | str):
        return type(obj).__name__
    if isinstance(obj, int | float):
        return "number"
    return type(obj).__name__


def seed_flex() -> dict[str, Any]:
    return encoded(flex_account(QUANTITIES, PRICES_USD))


def test_flex_currencies_match_the_seed() -> None:
    flex = seed_flex()
    for asset in QUANTITIES:
        ours, seed = flex["currencies"][asset], SEED_FLEX["currencies"][asset]
        for field in ("quantity", "value", "collateral", "available"):
            assert ours[field] == pytest.approx(seed[field], rel=1e-6), (asset, field)


def test_seed_haircuts_are_the_defaults() -> None:
    for asset, haircut in DEFAULT_HAIRCUTS.items():
        seed = SEED_FLEX["currencies"][asset]
        assert 1 - seed["collateral"] / seed["value"] == pytest.approx(float(haircut), abs=1e-12)


def test_flex_totals_from_these_three_holdings() -> None:
    # The seed's top-level figures (balanceValue 34995.52, collateralValue 34122.66) include
    # holdings its `currencies` example does not list, so they cannot be reproduced from it;
    # what can is the sum over the listed currencies.
    seed_collateral = sum(c["collateral"] for c in SEED_FLEX["currencies"].values())
    seed_value = sum(c["value"] for c in SEED_FLEX["currencies"].values())
    assert seed_collateral == pytest.approx(14773.406, abs=1e-3)
    flex = seed_flex()
    assert flex["collateralValue"] == pytest.approx(seed_collateral, rel=1e-9)
    assert flex["balanceValue"] == pytest.approx(seed_value, rel=1e-9)
    assert flex["portfolioValue"] == flex["balanceValue"]
    assert flex["marginEquity"] == flex["availableMargin"] == flex["collateralValue"]
    assert float(collateral_value(QUANTITIES, PRICES_USD)) == flex["collateralValue"]
    for field in ("initialMargin", "initialMarginWithOrders", "maintenanceMargin", "pnl",
                  "unrealizedFunding", "totalUnrealized", "totalUnrealizedAsMargin"):  # fmt: skip
        assert flex[field] == SEED_FLEX[field] == 0


def test_flex_with_positions_and_orders() -> None:
    flex = encoded(
        flex_account(
            {"USD": Decimal(10_000)},
            {"USD": Decimal(1)},
            initial_margin=Decimal(1000),
            initial_margin_with_orders=Decimal(1500),
            maintenance_margin=Decimal(500),
            unrealized_pnl=Decimal(-200),
            unrealized_funding=Decimal(-50),
            held_by_orders={"USD": Decimal(300)},
        )
    )
    assert flex["currencies"]["USD"]["available"] == 9700
    assert flex["totalUnrealized"] == flex["totalUnrealizedAsMargin"] == -250
    assert flex["portfolioValue"] == 9750
    assert flex["marginEquity"] == 9750
    assert flex["availableMargin"] == 8250


def test_missing_price_or_haircut_is_an_error() -> None:
    with pytest.raises(KeyError):
        flex_account({"ETH": Decimal(1)}, {"ETH": Decimal(3000)})
    with pytest.raises(KeyError):
        collateral_value({"XBT": Decimal(1)}, {})


def seed_margin_account() -> MarginAccount:
    fi = SEED["accounts"]["fi_xbtusd"]
    return margin_account(
        "xbt",
        {"xbt": Decimal("141.31756797")},
        msgspec.convert(fi["auxiliary"], Auxiliary),
        msgspec.convert(fi["marginRequirements"], MarginLevels),
        msgspec.convert(fi["triggerEstimates"], MarginLevels),
    )


def test_whole_payload_has_the_seeds_shape_and_pass_through_values() -> None:
    cash = cash_account({"xbt": Decimal("141.31756797"), "xrp": Decimal("52465.1254")})
    payload = accounts_response(
        1456393553.818,
        {
            "cash": cash,
            "fi_xbtusd": seed_margin_account(),
            "flex": flex_account(QUANTITIES, PRICES_USD),
        },
    )
    ours = encoded(payload)
    assert shape(ours) == shape(SEED)
    assert ours["accounts"]["cash"] == SEED["accounts"]["cash"]
    assert ours["accounts"]["fi_xbtusd"] == SEED["accounts"]["fi_xbtusd"]
    assert ours["serverTime"] == SEED["serverTime"]
    assert ours["result"] == "success"


def test_seed_decodes_into_our_types() -> None:
    decoded = msgspec.json.decode(KRAKEN_EXAMPLE, type=AccountsResponse)
    assert decoded.accounts["flex"] == msgspec.convert(
        SEED_FLEX, type=type(decoded.accounts["flex"])
    )
    assert encoded(decoded) == SEED


def test_decimal_text_and_server_time() -> None:
    cash = encoded(cash_account({"xbt": Decimal("1E+2"), "usd": Decimal("0.00000001")}))
    assert cash == {"type": "cashAccount", "balances": {"xbt": "100", "usd": "0.00000001"}}
    assert server_time(0.0) == "1970-01-01T00:00:00.000Z"
    assert server_time(1456393553.8179998) == "2016-02-25T09:45:53.818Z"
    assert server_time(59.9996) == "1970-01-01T00:01:00.000Z"


def test_margin_level() -> None:
    assert margin_level(Decimal(10_000), Decimal(-1000), Decimal(3000)) == 300
    assert margin_level(Decimal(10_000), Decimal(0), Decimal(0)) is None


def test_available_margin_formulas() -> None:
    assert available_margin(Decimal(10_000), Decimal(500), Decimal(2000)) == 8500
    assert available_margin(
        Decimal(10_000), Decimal(500), Decimal(2000),
        spot_margin=Decimal(1000), withheld=Decimal(100), derivatives_order_margin=Decimal(400),
    ) == 7000  # fmt: skip
    assert available_maintenance_margin(
        Decimal(10_000), Decimal(-500), Decimal(1000), Decimal(2000)
    ) == Decimal(6700)
    assert available_liquidation_margin(
        Decimal(10_000), Decimal(-500), Decimal(1000), Decimal(1000)
    ) == Decimal(8100)

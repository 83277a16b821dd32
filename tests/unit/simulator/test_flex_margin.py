"""Driving a futures flex wallet's margin level (docs/kraken/accounts-and-transfers.md section 4):
set what its positions weigh, read the level off `GET /accounts`, top it up with a transfer, and
recompute the level from the payload with section 4's formula."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from orchestrator.clock import ManualClock
from orchestrator.config import load_config
from orchestrator.simulator import futures_payloads as fp
from orchestrator.simulator.futures_accounts import NO_RISK, FlexRisk, margin_level
from orchestrator.simulator.settings import AccountSeed, SimSettings, settings_from_config
from orchestrator.simulator.venue import build_venue

from .test_futures_rest import Futures, flex, open_futures, uid
from .test_futures_rest import settings as futures_settings
from .test_settings_from_config import ROOT

THRESHOLD_PCT = Decimal(200)


@pytest.fixture
async def futures() -> AsyncIterator[Futures]:
    async with open_futures() as desk:
        yield desk


async def admin(futures: Futures, path: str, body: dict[str, Any] | None = None) -> Any:
    url = f"{futures.sim.rest_url}/admin/{path}"
    if body is None:
        async with futures.session.get(url) as resp:
            return resp.status, await resp.json()
    async with futures.session.post(url, json=body) as resp:
        return resp.status, await resp.json()


async def flex_payload(futures: Futures, account: str) -> dict[str, Any]:
    wallet: dict[str, Any] = (await futures.ok("GET", "/accounts", as_=account))["accounts"]["flex"]
    return wallet


def level_pct(wallet: dict[str, Any]) -> Decimal | None:
    """Section 4's margin level from the payload's own figures, the maintenance margin as the
    requirement (a Decision)."""
    return margin_level(
        Decimal(str(wallet["collateralValue"])),
        Decimal(str(wallet["totalUnrealizedAsMargin"])),
        Decimal(str(wallet["maintenanceMargin"])),
    )


def assert_consistent(wallet: dict[str, Any], risk: FlexRisk) -> None:
    """The payload's figures follow the risk set and section 4's formulas."""
    assert wallet["initialMargin"] == float(risk.initial_margin)
    assert wallet["initialMarginWithOrders"] == float(risk.initial_margin + risk.order_margin)
    assert wallet["maintenanceMargin"] == float(risk.maintenance_margin)
    assert wallet["pnl"] == float(risk.unrealized_pnl)
    assert wallet["unrealizedFunding"] == float(risk.unrealized_funding)
    total = risk.unrealized_pnl + risk.unrealized_funding
    assert wallet["totalUnrealized"] == float(total)
    assert wallet["totalUnrealizedAsMargin"] == float(total)
    equity = wallet["collateralValue"] + wallet["totalUnrealizedAsMargin"]
    assert wallet["marginEquity"] == pytest.approx(equity, rel=1e-12)
    assert wallet["availableMargin"] == pytest.approx(
        equity - wallet["initialMarginWithOrders"], rel=1e-12
    )
    assert wallet["portfolioValue"] == pytest.approx(wallet["balanceValue"] + float(total))


async def test_a_level_driven_under_the_threshold_is_restored_by_a_top_up(
    futures: Futures,
) -> None:
    before = await flex_payload(futures, "alpha")
    assert level_pct(before) is None  # nothing open: unbounded
    collateral = Decimal(str(before["collateralValue"]))  # about 16,835 USD
    status, view = await admin(futures, "futures/margin", {
        "account": "alpha", "initial_margin": "8000", "maintenance_margin": "4000",
        "unrealized_pnl": "-9000", "unrealized_funding": "-12.5",
    })  # fmt: skip
    assert status == 200, view
    risk = futures.venue.domain.accounts["alpha"].flex_risk
    assert risk == FlexRisk(
        initial_margin=Decimal(8000), maintenance_margin=Decimal(4000),
        unrealized_pnl=Decimal(-9000), unrealized_funding=Decimal("-12.5"),
    )  # fmt: skip
    low = await flex_payload(futures, "alpha")
    assert_consistent(low, risk)
    low_pct = level_pct(low)
    assert low_pct is not None
    assert low_pct < THRESHOLD_PCT
    assert low_pct == pytest.approx((collateral - Decimal("9012.5")) / 4000 * 100)
    assert Decimal(view["margin_level_pct"]) == low_pct
    assert view["flex"]["marginEquity"] == low["marginEquity"]

    reply = await futures.transfer_sub(
        fromUser=uid(futures.venue, "master"), toUser=uid(futures.venue, "alpha"),
        fromAccount="flex", toAccount="flex", unit="usd", amount="2000",
    )  # fmt: skip
    assert reply["result"] == "success", reply
    high = await flex_payload(futures, "alpha")
    assert_consistent(high, risk)
    assert high["collateralValue"] == pytest.approx(low["collateralValue"] + 2000)  # USD: no cut
    high_pct = level_pct(high)
    assert high_pct is not None
    assert high_pct > THRESHOLD_PCT
    assert high_pct == pytest.approx(low_pct + 50)  # 2,000 / 4,000 x 100
    _, view = await admin(futures, "futures/margin?account=alpha")
    assert Decimal(view["margin_level_pct"]) == high_pct


async def test_an_own_wallet_transfer_raises_the_level_too(futures: Futures) -> None:
    venue = futures.venue
    venue.set_flex_risk("master", initial_margin=20_000, maintenance_margin=10_000)
    low = level_pct(await flex_payload(futures, "master"))
    for body in ("fromAccount=flex&toAccount=cash&unit=usd&amount=1000",
                 "fromAccount=cash&toAccount=flex&unit=usd&amount=600"):  # fmt: skip
        await futures.ok("POST", "/transfer", body=body)
    after = level_pct(await flex_payload(futures, "master"))
    assert low is not None
    assert after is not None
    assert after == pytest.approx(low - Decimal(4))  # 400 USD less, over 10,000


async def test_collateral_backing_positions_cannot_leave(futures: Futures) -> None:
    """availableMargin may not go below zero by a transfer out of the flex wallet."""
    venue = futures.venue
    venue.set_flex_risk("alpha", initial_margin=4000, maintenance_margin=2000)
    wallet = fp.flex_wallet(venue, venue.domain.accounts["alpha"])
    free_usd = Decimal(str(wallet.available_margin))  # about 12,835 of 5,000 USD and others
    assert free_usd > 5000
    before = dict(flex(venue, "alpha"))
    venue.set_flex_risk("alpha", initial_margin=15_000, maintenance_margin=2000)
    free_usd = fp.flex_available_margin(venue, venue.domain.accounts["alpha"], before)
    assert 0 < free_usd < 5000
    too_much = (free_usd + Decimal("0.0001")).quantize(Decimal("0.0001"), rounding="ROUND_UP")
    reply = await futures.transfer_sub(
        fromUser="alpha", toUser="beta", fromAccount="flex", toAccount="flex", unit="usd",
        amount=str(too_much),
    )  # fmt: skip
    assert reply["error"] == "insufficientFunds"
    body = f"fromAccount=flex&toAccount=cash&unit=usd&amount={too_much}"
    assert await futures.error("POST", "/transfer", as_="alpha", body=body) == "insufficientFunds"
    assert flex(venue, "alpha") == before
    fits = free_usd.quantize(Decimal("0.0001"), rounding="ROUND_DOWN")
    alpha = venue.domain.accounts["alpha"]
    body = f"fromAccount=flex&toAccount=cash&unit=usd&amount={fits}"
    await futures.ok("POST", "/transfer", as_="alpha", body=body)
    assert fp.flex_available_margin(venue, alpha, flex(venue, "alpha")) >= 0
    venue.set_flex_risk("alpha", initial_margin=0, maintenance_margin=0)  # nothing open: free
    assert alpha.flex_risk == NO_RISK
    body = "fromAccount=flex&toAccount=cash&unit=usd&amount=1"
    await futures.ok("POST", "/transfer", as_="alpha", body=body)


async def test_subaccounts_show_the_flex_margins(futures: Futures) -> None:
    futures.venue.set_flex_risk("alpha", initial_margin=300, maintenance_margin=150,
                                unrealized_pnl=-20, order_margin=50)  # fmt: skip
    listing = (await futures.ok("GET", "/subaccounts"))["subaccounts"]
    [alpha] = [s["flexAccount"] for s in listing if s["fullName"] == "alpha"]
    assert (alpha["initialMargin"], alpha["initialMarginWithOrders"]) == (300, 350)
    assert (alpha["maintenanceMargin"], alpha["pnl"]) == (150, -20)


def test_set_flex_risk_keeps_what_is_left_out_and_refuses_nonsense() -> None:
    venue = build_venue(futures_settings(), ManualClock())
    venue.set_flex_risk("alpha", initial_margin="100", maintenance_margin=50, unrealized_pnl=-5)
    risk = venue.set_flex_risk("alpha", unrealized_pnl=Decimal("-7.25"))
    assert risk == FlexRisk(initial_margin=Decimal(100), maintenance_margin=Decimal(50),
                            unrealized_pnl=Decimal("-7.25"))  # fmt: skip
    for bad in ({"maintenance_margin": 101}, {"initial_margin": -1}, {"order_margin": "NaN"}):
        with pytest.raises(ValueError, match="margin"):
            venue.set_flex_risk("alpha", **bad)
    assert venue.domain.accounts["alpha"].flex_risk == risk  # unchanged
    with pytest.raises(KeyError):
        venue.set_flex_risk("_market", initial_margin=1)


async def test_admin_margin_refusals(futures: Futures) -> None:
    for body in (
        {"account": "nobody", "initial_margin": "1"},
        {"account": "alpha", "leverage": "10"},
        {"account": "alpha", "initial_margin": 1.5},
        {"account": "alpha", "initial_margin": "lots"},
        {"account": "alpha", "initial_margin": "1", "maintenance_margin": "2"},
    ):
        status, reply = await admin(futures, "futures/margin", body)
        assert status == 400, (body, reply)
    assert futures.venue.domain.accounts["alpha"].flex_risk == NO_RISK
    assert (await admin(futures, "futures/margin?account=_fees"))[0] == 400


async def test_admin_fund_credits_a_futures_wallet_and_logs_it(futures: Futures) -> None:
    status, reply = await admin(
        futures, "futures/fund", {"account": "beta", "wallet": "flex", "asset": "USD",
                                  "amount": "1500.5"},
    )  # fmt: skip
    assert (status, reply) == (200, {"wallet": "flex", "asset": "ZUSD", "balance": "1500.5"})
    [entry] = futures.venue.domain.accounts["beta"].futures_log
    assert (entry.info, entry.asset) == ("admin transfer", "usd")
    assert (entry.old_balance, entry.new_balance) == (Decimal(0), Decimal("1500.5"))
    for bad in ({"account": "beta", "wallet": "spot", "asset": "USD", "amount": "1"},
                {"account": "beta", "asset": "USD", "amount": "-1"},
                {"account": "beta", "asset": "DOGE", "amount": "1"}):  # fmt: skip
        assert (await admin(futures, "futures/fund", bad))[0] == 400


def test_the_demo_domains_have_futures_funds() -> None:
    demo = {seed.name: seed for seed in SimSettings().accounts}
    assert demo["master"].futures_flex["ZUSD"] > 0
    assert demo["master"].futures_cash["ZUSD"] > 0
    assert all(seed.futures_flex for seed in demo.values())
    served = settings_from_config(load_config(ROOT / "orchestrator.example.toml", environ={}))
    for seed in served.accounts:
        assert seed.futures_flex["ZUSD"] > 0, seed.name
    [master] = [s for s in served.accounts if s.role == "master"]
    assert master.futures_cash["ZUSD"] > 0
    venue = build_venue(SimSettings(accounts=(AccountSeed(
        name="m", role="master", futures_cash={"USD": Decimal(7)},
        flex_risk=FlexRisk(initial_margin=Decimal(2), maintenance_margin=Decimal(1)),
    ),)), ManualClock())  # fmt: skip
    account = venue.domain.accounts["m"]
    assert account.futures["cash"] == {"ZUSD": Decimal(7)}
    assert account.flex_risk.maintenance_margin == 1


async def test_admin_fund_credits_a_spot_balance_and_refuses_bad_amounts(futures: Futures) -> None:
    beta = futures.venue.domain.accounts["beta"]
    before = beta.balance("ZUSD")
    status, _ = await admin(futures, "fund", {"account": "beta", "asset": "USD", "amount": "25"})
    assert status == 200
    assert beta.balance("ZUSD") == before + 25
    for bad in ({"account": "beta", "asset": "USD", "amount": "0"},
                {"account": "beta", "asset": "USD", "amount": "NaN"},
                {"account": "beta", "asset": "DOGE", "amount": "1"},
                {"account": "nobody", "asset": "USD", "amount": "1"}):  # fmt: skip
        assert (await admin(futures, "fund", bad))[0] == 400
    assert beta.balance("ZUSD") == before + 25  # refused ones changed nothing

"""The tier's daily withdrawal limit (docs/kraken/accounts-and-transfers.md section 3): valued in
USD, shared by the domain, counted per UTC day on the simulator's clock; a withdrawal that would
pass it is refused and changes nothing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import aiohttp
import msgspec
import pytest

from orchestrator.simulator.app import RunningSimulator
from orchestrator.simulator.errors import FUNDING_DAILY_LIMIT
from orchestrator.simulator.funding import FundingSettings
from orchestrator.simulator.settings import SimSettings
from orchestrator.simulator.venue import Venue
from orchestrator.simulator.withdraw_limits import (
    DAILY_WITHDRAW_LIMIT_USD,
    DAY_S,
    Counted,
    book_mid,
    in_window,
    used_usd,
)

from .conftest import SimClient, client_for

LIMIT = "EFunding:Daily limit exceeded"


@pytest.fixture
def settings() -> SimSettings:
    return SimSettings(tier="starter")


@pytest.fixture
def sub(session: aiohttp.ClientSession, sim: RunningSimulator) -> SimClient:
    return client_for(session, sim, "mm-xbt")


def snapshot(venue: Venue) -> Any:
    """Everything a refused withdrawal must leave as it was."""
    accounts = {
        a.name: (dict(a.balances), dict(a.pending_out), len(a.ledger))
        for a in venue.domain.accounts.values()
    }
    return accounts, len(venue.funding.withdrawals)


async def withdraw(client: SimClient, asset: str, amount: str) -> dict[str, Any]:
    return await client.private("Withdraw", asset=asset, key="desk-wallet", amount=amount)


async def to_next_utc_day(sim: RunningSimulator) -> None:
    now_s = sim.venue.clock.time()
    await sim.advance((now_s // DAY_S + 1) * DAY_S - now_s)


def test_the_tiers_and_the_error() -> None:
    assert dict(DAILY_WITHDRAW_LIMIT_USD) == {
        "starter": Decimal(5_000), "intermediate": Decimal(500_000), "pro": Decimal(10_000_000),
    }  # fmt: skip
    assert FundingSettings().daily_withdraw_limit_usd == dict(DAILY_WITHDRAW_LIMIT_USD)
    assert LIMIT == FUNDING_DAILY_LIMIT


def test_windows() -> None:
    midnight_s = 1_700_006_400.0  # 2023-11-15T00:00:00Z
    assert midnight_s % DAY_S == 0
    assert in_window(midnight_s - 1, midnight_s - 0.5, "utc_day")
    assert not in_window(midnight_s - 1, midnight_s, "utc_day")
    assert in_window(midnight_s, midnight_s + DAY_S - 1, "utc_day")
    assert in_window(midnight_s - 1, midnight_s + DAY_S - 2, "rolling_24h")
    assert not in_window(midnight_s - 1, midnight_s + DAY_S - 1, "rolling_24h")  # 24 h old
    assert not in_window(midnight_s + 1, midnight_s, "utc_day")  # not made yet
    made = [Counted("a", midnight_s, Decimal(10)), Counted("b", midnight_s + 5, Decimal(7))]
    at_s = midnight_s + 10
    assert used_usd(made, account="a", now_s=at_s, scope="domain", window="utc_day") == 17
    assert used_usd(made, account="a", now_s=at_s, scope="account", window="utc_day") == 10


async def test_the_withdrawal_that_would_cross_the_limit_is_refused(
    sim: RunningSimulator, master: SimClient, sub: SimClient
) -> None:
    """Starter: $5,000 a day, shared by the master and its sub-accounts; fees do not count."""
    venue = sim.venue
    assert (await withdraw(master, "USD", "3000"))["error"] == []
    before = snapshot(venue)
    assert (await withdraw(sub, "USD", "2000.0001"))["error"] == [LIMIT]
    assert snapshot(venue) == before
    assert (await withdraw(sub, "USD", "2000"))["error"] == []  # exactly the limit
    assert (await withdraw(master, "USD", "0.0001"))["error"] == [LIMIT]
    state = await master.admin("withdraw_limit?account=mm-xbt")
    assert state == {
        "account": "mm-xbt", "tier": "starter", "scope": "domain", "window": "utc_day",
        "limit_usd": "5000", "withdrawn_usd": "5000", "headroom_usd": "0",
    }  # fmt: skip
    await sim.advance(3600)  # the withdrawals complete; still the same UTC day
    assert [w.status for w in venue.funding.withdrawals.values()] == ["Success", "Success"]
    assert (await withdraw(sub, "USD", "1"))["error"] == [LIMIT]
    await to_next_utc_day(sim)
    assert (await withdraw(sub, "USD", "4000"))["error"] == []
    assert venue.funding.withdrawn_usd("master") == 4000


async def test_crypto_is_valued_at_the_mid_of_its_usd_pair(
    sim: RunningSimulator, master: SimClient
) -> None:
    venue = sim.venue
    await sim.advance(60)  # the market moves away from its start
    pair = venue.catalog.pairs["XXBTZUSD"]
    mid = book_mid(venue.engine.books[pair.key], pair.pair_decimals)
    assert mid is not None
    assert mid != venue.catalog.assets["XXBT"].usd_price  # the book, not the reference price
    fits = (Decimal(5000) / mid).quantize(Decimal("0.00000001"), rounding="ROUND_DOWN")
    before = snapshot(venue)
    assert (await withdraw(master, "XBT", str(fits + Decimal("0.00000001"))))["error"] == [LIMIT]
    assert snapshot(venue) == before
    assert (await withdraw(master, "XBT", str(fits)))["error"] == []
    [made] = venue.funding.withdrawals.values()
    assert made.usd_value == fits * mid
    assert (await master.admin("transfers"))["withdrawals"][0]["usd_value"] == str(fits * mid)


async def test_per_account_scope(sim: RunningSimulator, master: SimClient, sub: SimClient) -> None:
    reply = await master.admin("settings", {"withdraw_limit_scope": "account"})
    assert reply == {"ok": True}
    assert (await withdraw(master, "USD", "5000"))["error"] == []
    assert (await withdraw(master, "USD", "1"))["error"] == [LIMIT]
    assert (await withdraw(sub, "USD", "5000"))["error"] == []


async def test_the_rolling_window(sim: RunningSimulator, master: SimClient) -> None:
    await master.admin("settings", {"withdraw_limit_window": "rolling_24h"})
    made_s = sim.venue.clock.time()
    assert (await withdraw(master, "USD", "5000"))["error"] == []
    await to_next_utc_day(sim)
    assert (await withdraw(master, "USD", "1"))["error"] == [LIMIT]
    await sim.advance(made_s + DAY_S - sim.venue.clock.time())
    assert (await withdraw(master, "USD", "1"))["error"] == []


async def test_a_denied_withdrawal_stops_counting(sim: RunningSimulator, master: SimClient) -> None:
    await master.admin("settings", {"organization_mode": True})
    gated = (await withdraw(master, "USD", "5000"))["result"]
    assert (await withdraw(master, "USD", "1"))["error"] == [LIMIT]  # awaiting approval counts
    await master.admin("approve", {"approval_request_id": gated["approval_request_id"],
                                   "approve": False})  # fmt: skip
    assert (await withdraw(master, "USD", "1"))["error"] == []


async def test_the_limit_is_a_setting(
    session: aiohttp.ClientSession, sim: RunningSimulator, master: SimClient
) -> None:
    assert (await master.admin("settings", {"daily_withdraw_limit_usd": "100"})) == {"ok": True}
    assert sim.venue.funding.daily_withdraw_limit_usd() == 100
    assert (await withdraw(master, "USD", "100.0001"))["error"] == [LIMIT]
    assert (await withdraw(master, "USD", "100"))["error"] == []
    url = f"{sim.rest_url}/admin/settings"
    for bad in (
        {"daily_withdraw_limit_usd": -1},
        {"daily_withdraw_limit_usd": 1.5},
        {"daily_withdraw_limit_usd": "lots"},
        {"withdraw_limit_scope": "planet"},
        {"withdraw_limit_window": "week"},
    ):
        async with session.post(url, json=bad) as resp:
            assert resp.status == 400, bad
    assert sim.venue.funding.settings.withdraw_limit_scope == "domain"


def test_the_limit_from_settings_at_start() -> None:
    funding = msgspec.convert(
        {"daily_withdraw_limit_usd": {"intermediate": "250"}, "withdraw_limit_scope": "account"},
        FundingSettings,
    )
    assert funding.daily_withdraw_limit_usd == {"intermediate": Decimal(250)}
    assert funding.withdraw_limit_scope == "account"

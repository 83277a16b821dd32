"""The futures client against the simulator over real HTTP: every call, each error code the
simulator produces mapped into our tree, the venue's own budget; with the shared limiter in
front, a burst that would overrun the key's budget is paced and never refused; and a transfer
whose reply is lost, garbled or reset after the venue executed it is executed exactly once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Coroutine
from decimal import Decimal
from typing import Any, TypeVar

import aiohttp
import fakeredis
import pytest

from orchestrator.clock import ManualClock
from orchestrator.config import LimitsConfig
from orchestrator.errors import (
    AmbiguousOutcome,
    AuthError,
    InsufficientFunds,
    InvalidNonce,
    InvalidRequest,
    VenueError,
    VenueRateLimited,
)
from orchestrator.exchange.kraken.common.key_lock import LocalKeyLock
from orchestrator.exchange.kraken.common.nonce import LocalNonce, NonceSource
from orchestrator.exchange.kraken.common.transport import AiohttpTransport
from orchestrator.exchange.kraken.futures.client import KrakenFutures
from orchestrator.exchange.kraken.futures.schemas import CashAccount, FlexAccount, MarginAccount
from orchestrator.exchange.kraken.futures.treasury import FuturesTreasury
from orchestrator.metrics import Registry
from orchestrator.ratelimit.permits import PermitSource, Unlimited
from orchestrator.ratelimit.policy import Policy, futures_scope
from orchestrator.ratelimit.redis import Limiter
from orchestrator.secrets import ApiCredentials, Secret
from orchestrator.simulator.app import RunningSimulator, open_simulator
from orchestrator.simulator.futures_rest import BUDGET_KEY
from orchestrator.simulator.settings import AccountSeed, KeySeed, SimSettings
from orchestrator.store.keys import Keys
from tests.sim_domains import credentials_of

T = TypeVar("T")
CENT = Decimal("0.01")


class FixedNonce:
    """The same nonce every time: what a second process on the key without a shared counter
    would send."""

    def __init__(self, value: int) -> None:
        self.value = value

    async def next(self) -> int:
        return self.value


def _settings() -> SimSettings:
    return SimSettings(
        accounts=(
            AccountSeed(name="master", role="master",
                        futures_flex={"ZUSD": Decimal(10_000), "XXBT": Decimal("0.5")}),
            AccountSeed(name="alpha", futures_flex={"ZUSD": Decimal(100)}),
            AccountSeed(name="beta"),
            AccountSeed(name="reader", keys=(KeySeed(permissions=("query_funds",)),)),
        )
    )  # fmt: skip


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with open_simulator(_settings(), clock=ManualClock()) as running:
        yield running


def client(
    session: aiohttp.ClientSession,
    sim: RunningSimulator,
    account: str = "master",
    *,
    nonce: NonceSource | None = None,
    permits: PermitSource | None = None,
    credentials: ApiCredentials | None = None,
) -> KrakenFutures:
    """A client of `account`'s key. Without `permits`, `Unlimited`: these tests are about the
    venue, and its own budget is what they see."""
    return KrakenFutures(
        AiohttpTransport(session, timeout_s=2.0), sim.futures_url, account=account,
        credentials=credentials or credentials_of(sim, account), nonce=nonce or LocalNonce(),
        key_lock=LocalKeyLock(), permits=permits or Unlimited(),
    )  # fmt: skip


def wallet(sim: RunningSimulator, account: str, name: str) -> dict[str, Decimal]:
    return sim.venue.domain.accounts[account].futures[name]


def uid(sim: RunningSimulator, account: str) -> str:
    return sim.venue.domain.accounts[account].futures_uid


def clock_of(sim: RunningSimulator) -> ManualClock:
    clock = sim.venue.clock
    assert isinstance(clock, ManualClock)
    return clock


async def drive(sim: RunningSimulator, call: Coroutine[Any, Any, T], step_s: float = 0.05) -> T:
    """Run `call`, moving the simulator's manual clock on whenever something sleeps on it (the
    limiter's pacing, reconciliation's backoff); otherwise let the real I/O proceed."""
    clock = clock_of(sim)
    task = asyncio.ensure_future(call)
    while not task.done():
        if clock.sleepers:
            await sim.advance(step_s)
        else:
            await asyncio.wait({task}, timeout=0.001)
    return await task


def shared_limiter(sim: RunningSimulator) -> Limiter:
    clock = clock_of(sim)
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    limits = LimitsConfig()
    return Limiter(redis, Keys(f"t{uuid.uuid4().hex[:8]}"), Policy("intermediate", limits), clock,
                   limits=limits, registry=Registry(), script_time=clock.time)  # fmt: skip


# --- every call, against the simulator -----------------------------------------------------------
async def test_accounts_from_the_simulator(
    session: aiohttp.ClientSession, sim: RunningSimulator
) -> None:
    reply = await client(session, sim).accounts()
    assert {n: type(a) for n, a in reply.accounts.items()} == {
        "cash": CashAccount, "flex": FlexAccount, "fi_xbtusd": MarginAccount,
    }  # fmt: skip
    flex = reply.accounts["flex"]
    assert isinstance(flex, FlexAccount)
    assert flex.currencies["USD"].quantity == 10_000
    assert flex.currencies["XBT"].quantity == Decimal("0.5")


async def test_wallet_transfer_moves_exact_amounts(
    session: aiohttp.ClientSession, sim: RunningSimulator
) -> None:
    futures = client(session, sim)
    await futures.transfer(
        from_account="flex", to_account="cash", unit="usd", amount=Decimal("1234.5678")
    )
    await futures.transfer(
        from_account="flex", to_account="cash", unit="xbt", amount=Decimal("0.1234567891")
    )
    cash = (await futures.accounts()).accounts["cash"]
    assert isinstance(cash, CashAccount)
    assert cash.balances == {"usd": Decimal("1234.5678"), "xbt": Decimal("0.1234567891")}
    assert wallet(sim, "master", "flex") == {
        "ZUSD": Decimal("8765.4322"),
        "XXBT": Decimal("0.3765432109"),
    }


async def test_subaccounts_and_the_trading_switch(
    session: aiohttp.ClientSession, sim: RunningSimulator
) -> None:
    futures = client(session, sim)
    listing = await futures.subaccounts()
    assert listing.master_account_uid == uid(sim, "master")
    by_name = {s.full_name: s for s in listing.subaccounts}
    assert set(by_name) == {"alpha", "beta", "reader"}
    alpha = by_name["alpha"]
    assert alpha.account_uid == uid(sim, "alpha")
    assert {c.currency: c.quantity for c in alpha.flex_account.currencies} == {"usd": 100}
    assert alpha.flex_account.balance_value == 100
    assert await futures.trading_enabled(alpha.account_uid) is True
    assert await futures.set_trading_enabled(alpha.account_uid, False) is False
    assert sim.venue.domain.accounts["alpha"].trading_enabled is False
    assert await futures.trading_enabled(alpha.account_uid) is False
    assert await futures.set_trading_enabled(alpha.account_uid, True) is True


async def test_subaccount_transfer_between_users_and_the_account_log(
    session: aiohttp.ClientSession, sim: RunningSimulator
) -> None:
    futures = client(session, sim)
    await futures.transfer_subaccount(
        from_user=uid(sim, "master"), to_user=uid(sim, "beta"), from_account="flex",
        to_account="flex", unit="USD", amount=Decimal("250.0001"),
    )  # fmt: skip
    await futures.transfer_subaccount(
        from_user="alpha", to_user="beta", from_account="flex", to_account="cash",
        unit="usd", amount=Decimal(100),
    )  # fmt: skip
    assert wallet(sim, "master", "flex")["ZUSD"] == Decimal("9749.9999")
    assert wallet(sim, "beta", "flex") == {"ZUSD": Decimal("250.0001")}
    assert wallet(sim, "beta", "cash") == {"ZUSD": Decimal(100)}
    assert wallet(sim, "alpha", "flex")["ZUSD"] == 0
    [entry] = (await futures.account_log()).logs  # the master's own side only
    assert (entry.info, entry.asset, entry.margin_account) == ("subaccount transfer", "usd", "flex")
    assert (entry.old_balance, entry.new_balance) == (Decimal(10_000), Decimal("9749.9999"))
    beta = (await client(session, sim, "beta").account_log(sort="asc")).logs
    assert [(e.margin_account, e.new_balance) for e in beta] == [
        ("flex", Decimal("250.0001")), ("cash", Decimal(100)),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "error", "code"),
    [
        ({"amount": Decimal(20_000)}, InsufficientFunds, "insufficientFunds"),
        ({"unit": "nope"}, InvalidRequest, "invalidUnit"),
        ({"amount": Decimal(0)}, InvalidRequest, None),  # refused before sending
        ({"amount": Decimal(-1)}, InvalidRequest, None),
        ({"amount": Decimal("0.00001")}, InvalidRequest, "invalidAmount"),  # USD has 4 decimals
        ({"from_account": "fi_ethusd"}, InvalidRequest, "invalidAccount"),
        ({"to_account": "flex"}, InvalidRequest, "invalidAccount"),  # flex -> flex
        ({"unit": ""}, InvalidRequest, "requiredArgumentMissing"),
    ],
)
async def test_transfer_refusals_map_and_move_nothing(
    session: aiohttp.ClientSession,
    sim: RunningSimulator,
    change: dict[str, Any],
    error: type[VenueError],
    code: str | None,
) -> None:
    before = dict(wallet(sim, "master", "flex"))
    args: dict[str, Any] = {"from_account": "flex", "to_account": "cash", "unit": "usd",
                            "amount": Decimal(1)} | change  # fmt: skip
    with pytest.raises(error) as raised:
        await client(session, sim).transfer(**args)
    assert raised.value.codes == ((code,) if code else ())
    assert wallet(sim, "master", "flex") == before
    assert wallet(sim, "master", "cash") == {}


async def test_subaccount_refusals(session: aiohttp.ClientSession, sim: RunningSimulator) -> None:
    futures = client(session, sim)
    with pytest.raises(InvalidRequest) as raised:
        await futures.trading_enabled(str(uuid.uuid4()))
    assert raised.value.codes == ("notFound",)
    with pytest.raises(InvalidRequest) as raised:
        await futures.set_trading_enabled("no/such uid", False)
    assert raised.value.codes == ("notFound",)
    with pytest.raises(InvalidRequest) as raised:
        await futures.transfer_subaccount(
            from_user="master", to_user="nobody", from_account="flex", to_account="flex",
            unit="usd", amount=Decimal(1),
        )  # fmt: skip
    assert raised.value.codes == ("invalidAccount",)


async def test_auth_errors(session: aiohttp.ClientSession, sim: RunningSimulator) -> None:
    key = sim.venue.keys_of("master")[0]
    for credentials in (
        ApiCredentials(key=Secret("nobody-at-all"), secret=Secret(key.secret_b64)),
        ApiCredentials(key=Secret(key.key), secret=Secret("c2VjcmV0IG9mIHNvbWVvbmUgZWxzZQ==")),
    ):
        with pytest.raises(AuthError) as raised:
            await client(session, sim, credentials=credentials).accounts()
        assert raised.value.codes == ("authenticationError",)
    with pytest.raises(AuthError):  # a sub-account key on a master-only call
        await client(session, sim, "alpha").subaccounts()
    with pytest.raises(AuthError):  # a read-only key cannot move funds
        await client(session, sim, "reader").transfer(
            from_account="flex", to_account="cash", unit="usd", amount=Decimal(1)
        )
    assert (await client(session, sim, "reader").accounts()).accounts["cash"] == CashAccount(
        balances={}
    )


async def test_stale_nonces_are_invalid_nonce(
    session: aiohttp.ClientSession, sim: RunningSimulator
) -> None:
    await client(session, sim, nonce=FixedNonce(1_000)).accounts()
    with pytest.raises(InvalidNonce) as raised:
        await client(session, sim, nonce=FixedNonce(1_000)).accounts()
    assert raised.value.codes == ("nonceDuplicate",)
    with pytest.raises(InvalidNonce) as raised:
        await client(session, sim, nonce=FixedNonce(999)).accounts()
    assert raised.value.codes == ("nonceBelowThreshold",)


async def test_the_venues_budget_refuses_then_recovers(
    session: aiohttp.ClientSession, sim: RunningSimulator
) -> None:
    """Without a limiter: 500 units per 10 s, fifty transfers (10 each) fill it; the next call is
    refused, moves nothing, and fits again once 0.2 s of decay (10 units) has passed."""
    futures = client(session, sim)
    for _ in range(50):
        await futures.transfer(from_account="flex", to_account="cash", unit="usd", amount=CENT)
    with pytest.raises(VenueRateLimited) as raised:
        await futures.transfer(from_account="flex", to_account="cash", unit="usd", amount=CENT)
    assert raised.value.codes == ("apiLimitExceeded",)
    with pytest.raises(VenueRateLimited):
        await futures.accounts()
    assert wallet(sim, "master", "cash") == {"ZUSD": Decimal("0.50")}
    await sim.advance(0.2)
    await futures.transfer(from_account="flex", to_account="cash", unit="usd", amount=CENT)
    assert wallet(sim, "master", "cash") == {"ZUSD": Decimal("0.51")}


# --- with the shared limiter ---------------------------------------------------------------------
async def test_the_limiter_paces_a_burst_the_venue_would_refuse(
    session: aiohttp.ClientSession, sim: RunningSimulator
) -> None:
    """Sixty transfers (600 units) at once: the venue would refuse the 51st (above); through the
    limiter none is refused, and the burst takes at least what the conservative bucket allows:
    about 224 units at once, then 25 a second."""
    limiter = shared_limiter(sim)
    futures = client(session, sim, permits=limiter)
    clock = clock_of(sim)
    start_s = clock.monotonic()

    async def burst() -> None:
        for _ in range(60):
            await futures.transfer(from_account="flex", to_account="cash", unit="usd", amount=CENT)

    await drive(sim, burst())
    assert sim.app[BUDGET_KEY].refusals == 0
    assert wallet(sim, "master", "cash") == {"ZUSD": Decimal("0.60")}
    assert clock.monotonic() - start_s >= (600 - 250 * 0.9) / 25 - 0.5
    assert await limiter.level(futures_scope(futures.key_id)) <= 250


async def test_api_limit_exceeded_fills_the_keys_futures_scope(
    session: aiohttp.ClientSession, sim: RunningSimulator
) -> None:
    """Another process on the key, outside the limiter, spent the venue's budget: the venue's
    refusal fills the limiter's scope of the key, for every process that shares it."""
    limiter = shared_limiter(sim)
    stray = client(session, sim)
    for _ in range(50):
        await stray.transfer(from_account="flex", to_account="cash", unit="usd", amount=CENT)
    futures = client(session, sim, permits=limiter)
    with pytest.raises(VenueRateLimited):
        await futures.transfer(from_account="flex", to_account="cash", unit="usd", amount=CENT)
    assert await limiter.level(futures_scope(futures.key_id)) == pytest.approx(250)


# --- exactly once --------------------------------------------------------------------------------
@pytest.mark.parametrize("fault", ["lost", "garbled", "reset"])
async def test_a_transfer_whose_reply_fails_after_execution_executes_once(
    session: aiohttp.ClientSession, sim: RunningSimulator, fault: str
) -> None:
    faults = sim.venue.settings.faults
    setattr(faults, f"{fault}_reply_next", 1)
    setattr(faults, f"{fault}_reply_methods", ("transfer/subaccount",))
    limiter = shared_limiter(sim)
    master = client(session, sim, permits=limiter)
    treasury = FuturesTreasury(master, clock_of(sim), {"master": master}, confirm_delay_s=0.0)
    await drive(sim, treasury.transfer_subaccount(
        from_user="master", to_user=uid(sim, "beta"), from_account="flex", to_account="flex",
        unit="usd", amount=Decimal("250.0001"),
    ))  # fmt: skip
    counts = sim.venue.request_counts
    assert counts[f"fault:{fault}_reply"] == 1
    assert counts["futures:transfer/subaccount"] == 1  # never sent again
    assert wallet(sim, "master", "flex")["ZUSD"] == Decimal("9749.9999")
    assert wallet(sim, "beta", "flex") == {"ZUSD": Decimal("250.0001")}


async def test_a_transfer_whose_outcome_is_unknown_is_never_sent_again(
    session: aiohttp.ClientSession, sim: RunningSimulator
) -> None:
    """`Unavailable` on a transfer is ambiguous to the client, and the log showing nothing new
    is no proof (it may lag a transfer still being processed): the treasury raises
    `AmbiguousOutcome` after one send, and whoever journalled the move settles it later."""
    sim.venue.settings.faults.unavailable_next = 1
    master = client(session, sim)
    alpha = client(session, sim, "alpha")
    treasury = FuturesTreasury(master, clock_of(sim), {"alpha": alpha}, confirm_delay_s=0.0)
    with pytest.raises(AmbiguousOutcome, match="no transfer in the log yet"):
        await drive(sim, treasury.transfer_subaccount(
            from_user="alpha", to_user="master", from_account="flex", to_account="cash",
            unit="usd", amount=Decimal(40),
        ))  # fmt: skip
    assert sim.venue.request_counts["futures:transfer/subaccount"] == 1
    assert wallet(sim, "alpha", "flex") == {"ZUSD": Decimal(100)}  # nothing moved, nothing twice


# --- a flex wallet's margin, driven for the rebalancer -------------------------------------------
async def test_a_flex_margin_level_driven_low_is_raised_by_a_subaccount_top_up(
    session: aiohttp.ClientSession, sim: RunningSimulator
) -> None:
    """The margin a test sets reaches our client's decoded `flex` wallet; the level, recomputed
    from those figures with section 4's formula (maintenance margin as the requirement), rises
    by exactly the collateral a top-up from the master adds (USD: no haircut)."""

    def level_pct(flex: FlexAccount) -> Decimal:
        equity = flex.collateral_value + flex.total_unrealized_as_margin
        return equity / flex.maintenance_margin * 100

    async def alpha_flex() -> FlexAccount:
        flex = (await client(session, sim, "alpha").accounts()).accounts["flex"]
        assert isinstance(flex, FlexAccount)
        return flex

    sim.venue.set_flex_risk("alpha", initial_margin=80, maintenance_margin=40, unrealized_pnl=-30)
    low = await alpha_flex()
    assert [low.initial_margin, low.maintenance_margin, low.pnl] == [80, 40, -30]
    assert low.margin_equity == low.collateral_value + low.total_unrealized_as_margin == 70
    assert low.available_margin == low.margin_equity - low.initial_margin_with_orders == -10
    assert level_pct(low) == 175
    await client(session, sim).transfer_subaccount(
        from_user=uid(sim, "master"), to_user=uid(sim, "alpha"), from_account="flex",
        to_account="flex", unit="usd", amount=Decimal(30),
    )  # fmt: skip
    high = await alpha_flex()
    assert high.collateral_value == 130
    assert level_pct(high) == 250

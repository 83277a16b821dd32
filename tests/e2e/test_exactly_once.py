"""Every acting spot call, as the product wires it, against the simulator's three ambiguous
outcomes (reply lost, reply garbled, connection reset, each after the venue acted): the call is
reconciled and executed exactly once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import fakeredis
import pytest

from orchestrator.clock import RealClock
from orchestrator.errors import AmbiguousOutcome
from orchestrator.exchange.kraken.account import KrakenDomain
from orchestrator.exchange.protocol import OrderSpec
from orchestrator.simulator.app import RunningSimulator, open_simulator
from orchestrator.simulator.settings import AccountSeed, SimSettings
from tests.sim_domains import open_sim_domain

FAULTS = ("lost", "garbled", "reset")


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with open_simulator() as running:
        yield running


@pytest.fixture
async def domain(sim: RunningSimulator) -> AsyncIterator[KrakenDomain]:
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    async with open_sim_domain(sim, redis, RealClock()) as opened:
        for account in opened.accounts.values():  # reconcile without waiting half a second
            account.trading.confirm_delay_s = 0.01
        opened.treasury.confirm_delay_s = 0.01
        yield opened
    await redis.aclose()


def strike(sim: RunningSimulator, fault: str, method: str) -> None:
    """The next `method` request is executed and its reply suffers `fault`."""
    faults = sim.venue.settings.faults
    if fault == "lost":
        faults.lost_reply_next, faults.lost_reply_methods = 1, (method,)
    elif fault == "garbled":
        faults.garbled_reply_next, faults.garbled_reply_methods = 1, (method,)
    else:
        faults.reset_reply_next, faults.reset_reply_methods = 1, (method,)


def sent(sim: RunningSimulator, method: str) -> int:
    """How many `method` requests reached the venue; also checks the fault did strike."""
    faults = sim.venue.settings.faults
    assert (faults.lost_reply_next, faults.garbled_reply_next, faults.reset_reply_next) == (0, 0, 0)
    return sim.venue.request_counts.get(f"private:{method}", 0)


def order(domain: KrakenDomain, cl_ord_id: str, price: str = "50000.0") -> OrderSpec:
    return OrderSpec(instrument=domain.instruments.get("XBT/USD"), side="buy", order_type="limit",
                     volume=Decimal("0.01"), price=Decimal(price), cl_ord_id=cl_ord_id)  # fmt: skip


@pytest.mark.parametrize("fault", FAULTS)
async def test_order_entry_executes_once(
    fault: str, domain: KrakenDomain, sim: RunningSimulator
) -> None:
    trading = domain.account("mm-xbt").trading
    strike(sim, fault, "AddOrder")
    ref = await trading.place(order(domain, f"once-{fault}"))
    placed = [o for o in sim.venue.engine.orders.values() if o.cl_ord_id == f"once-{fault}"]
    assert [o.txid for o in placed] == [ref.txid]
    assert sent(sim, "AddOrder") == 1

    strike(sim, fault, "AmendOrder")
    ref = await trading.amend(ref, price=Decimal("50001.0"))
    assert sent(sim, "AmendOrder") == 1
    state = await trading.find_order(f"once-{fault}")
    assert state is not None
    assert state.price == Decimal("50001.0")

    strike(sim, fault, "CancelOrder")
    assert await trading.cancel(ref) is True
    assert sent(sim, "CancelOrder") == 1

    refs = [await trading.place(order(domain, f"all-{fault}-{i}")) for i in range(2)]
    strike(sim, fault, "CancelAll")
    assert await trading.cancel_all(refs) == 2
    assert sent(sim, "CancelAll") == 1
    assert await trading.open_orders() == []
    assert sim.venue.limits.rejections() == {}


@pytest.mark.parametrize("fault", FAULTS)
async def test_transfer_and_withdrawal_execute_once(
    fault: str, domain: KrakenDomain, sim: RunningSimulator
) -> None:
    before = (await domain.account("mm-xbt").reader.balances())["ZUSD"].total
    strike(sim, fault, "AccountTransfer")
    transfer = await domain.treasury.account_transfer("ZUSD", Decimal("12.5"), "master", "mm-xbt")
    assert sent(sim, "AccountTransfer") == 1
    assert list(sim.venue.funding.transfers) == [transfer.transfer_id]
    after = (await domain.account("mm-xbt").reader.balances())["ZUSD"].total
    assert after - before == Decimal("12.5")

    strike(sim, fault, "Withdraw")
    withdrawal = await domain.treasury.withdraw("XBT", "desk-wallet", Decimal("0.1"))
    assert sent(sim, "Withdraw") == 1
    assert list(sim.venue.funding.withdrawals) == [withdrawal.refid]


async def test_a_pending_transfer_whose_reply_is_lost_is_never_sent_again(
    domain: KrakenDomain, sim: RunningSimulator
) -> None:
    """A pending transfer shows in no ledger yet: a miss is not a certain "not executed", so
    the outcome stays ambiguous (for the journal) instead of a second transfer."""
    sim.venue.funding.settings.transfer_mode = "pending"
    strike(sim, "lost", "AccountTransfer")
    with pytest.raises(AmbiguousOutcome, match="never re-sent on a guess"):
        await domain.treasury.account_transfer("ZUSD", Decimal("12.5"), "master", "mm-xbt")
    assert sent(sim, "AccountTransfer") == 1
    assert len(sim.venue.funding.transfers) == 1


async def test_a_withdrawal_awaiting_approval_is_reported_so_after_reconciling(
    domain: KrakenDomain, sim: RunningSimulator
) -> None:
    sim.venue.funding.settings.organization_mode = True
    strike(sim, "lost", "Withdraw")
    withdrawal = await domain.treasury.withdraw("XBT", "desk-wallet", Decimal("0.1"))
    assert sent(sim, "Withdraw") == 1
    assert withdrawal.awaiting_approval


@pytest.mark.parametrize("fault", FAULTS)
async def test_a_futures_transfer_through_the_wiring_executes_once(fault: str) -> None:
    """The wiring builds every account's futures client (on the shared limiter's futures
    budget) and the master's futures treasury; its transfer is reconciled from the account log."""
    funded = SimSettings(accounts=(
        AccountSeed(name="master", role="master", futures_flex={"ZUSD": Decimal(1000)}),
        AccountSeed(name="mm-xbt"),
    ))  # fmt: skip
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    async with open_simulator(funded) as sim, open_sim_domain(sim, redis, RealClock()) as domain:
        treasury = domain.futures_treasury
        assert treasury is not None
        treasury.confirm_delay_s = 0.01
        strike(sim, fault, "transfer/subaccount")
        await treasury.transfer_subaccount(from_user="master", to_user="mm-xbt",
                                           from_account="flex", to_account="flex", unit="usd",
                                           amount=Decimal(7))  # fmt: skip
        counts = sim.venue.request_counts
        assert counts.get("fault:lost_reply", 0) + counts.get("fault:garbled_reply", 0) + \
            counts.get("fault:reset_reply", 0) == 1  # fmt: skip
        transfers = [n for n in counts if "transfer/subaccount" in n]
        assert [counts[n] for n in transfers] == [1], counts
        master = domain.account("master").futures
        assert master is not None
        flex = (await master.accounts()).accounts["flex"]
        assert flex.currencies["USD"].quantity == Decimal(993)  # type: ignore[union-attr]
    await redis.aclose()

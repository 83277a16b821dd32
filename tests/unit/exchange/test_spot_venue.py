"""`KrakenSpot` (the SpotVenue protocol over REST) against the simulator, with the limiter."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import fakeredis
import pytest

from orchestrator.clock import ManualClock
from orchestrator.config import LimitsConfig
from orchestrator.exchange.kraken.common.nonce import LocalNonce
from orchestrator.exchange.kraken.spot.rest import KrakenRest
from orchestrator.exchange.kraken.spot.venue import KrakenSpot, PairNames
from orchestrator.exchange.protocol import OrderSpec, SpotVenue
from orchestrator.metrics import Registry
from orchestrator.ratelimit.policy import Policy
from orchestrator.ratelimit.redis import Limiter
from orchestrator.simulator.app import RunningSimulator, open_simulator
from orchestrator.store.keys import Keys
from tests.sim_domains import credentials_of


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with open_simulator(clock=ManualClock()) as running:
        yield running


@pytest.fixture
async def venues(sim: RunningSimulator) -> AsyncIterator[tuple[KrakenSpot, KrakenSpot, Limiter]]:
    redis = fakeredis.FakeAsyncRedis()
    limits = LimitsConfig()
    clock = sim.venue.clock
    limiter = Limiter(redis, Keys("spot"), Policy("intermediate", limits), clock, limits=limits,
                      registry=Registry(), script_time=clock.time)  # fmt: skip
    async with aiohttp.ClientSession() as session:
        made = []
        for account in ("mm-xbt", "master"):
            rest = KrakenRest(session, sim.rest_url, account=account, nonce=LocalNonce(), limiter=limiter,
                              credentials=credentials_of(sim, account))  # fmt: skip
            made.append(KrakenSpot(rest, clock, await PairNames.load(rest)))
        yield made[0], made[1], limiter
    await redis.aclose()


async def test_order_lifecycle(
    venues: tuple[KrakenSpot, KrakenSpot, Limiter], sim: RunningSimulator
) -> None:
    trader, _, limiter = venues
    venue: SpotVenue = trader  # the protocol is satisfied
    spec = OrderSpec(pair="XBT/USD", side="buy", order_type="limit", volume=Decimal("0.01"),
                     price=Decimal("50000.0"), cl_ord_id="life-1")  # fmt: skip
    txid = await venue.place_order(spec)
    [opened] = await venue.open_orders()
    assert (opened.txid, opened.cl_ord_id, opened.status, opened.price) == (
        txid,
        "life-1",
        "open",
        Decimal("50000.0"),
    )
    assert (await venue.find_order("life-1")) == opened
    await venue.amend_order(txid, age_s=0.0, volume=Decimal("0.02"))
    [amended] = await venue.query_orders([txid])
    assert amended.volume == Decimal("0.02")
    assert await venue.cancel_order(txid, age_s=0.0) == 1
    closed = await venue.find_order("life-1")
    assert closed is not None
    assert closed.status == "canceled"
    # The limiter charged the same counters the venue did: add 1, amend 1+3, cancel 8.
    levels = sim.venue.limits.levels(sim.venue.clock.time())
    assert levels["trade:mm-xbt:XBT/USD"] == 13
    assert await limiter.level(limiter.policy.trade_scope("mm-xbt", "XBT/USD")) == pytest.approx(13)


async def test_balances_ledger_cancel_all_and_dead_man(
    venues: tuple[KrakenSpot, KrakenSpot, Limiter],
) -> None:
    trader, _, _ = venues
    balances = await trader.balances()
    assert balances["ZUSD"].available == Decimal(10000)
    for i in range(3):
        await trader.place_order(OrderSpec(pair="XBTUSD", side="buy", order_type="limit", volume=Decimal("0.01"),
                                           price=Decimal("50000.0"), cl_ord_id=f"all-{i}"))  # fmt: skip
    assert (await trader.balances())["ZUSD"].held > 0
    assert await trader.cancel_all(await trader.open_orders()) == 3
    assert await trader.dead_man_switch(60) != "0"
    assert await trader.dead_man_switch(0) == "0"
    await trader.place_order(OrderSpec(pair="XBT/USD", side="buy", order_type="market", volume=Decimal("0.001"),
                                       cl_ord_id="mkt-1"))  # fmt: skip
    trades = await trader.ledger(type_="trade")
    assert {e.asset for e in trades} == {"XXBT", "ZUSD"}
    assert len(await trader.websockets_token()) > 10


async def test_transfers_and_withdrawals(venues: tuple[KrakenSpot, KrakenSpot, Limiter]) -> None:
    trader, master, _ = venues
    transfer = await master.account_transfer("ZUSD", Decimal("12.5"), "master", "mm-xbt")
    assert transfer.status == "complete"
    [entry] = await trader.ledger(type_="transfer")
    assert (entry.refid, entry.amount) == (transfer.transfer_id, Decimal("12.5"))
    withdrawal = await master.withdraw("XBT", "desk-wallet", Decimal("0.1"))
    assert withdrawal.approval_request_id is None
    [state] = await master.withdraw_status("XBT")
    assert (state.refid, state.status) == (withdrawal.refid, "Initial")
    await master.create_subaccount("desk-2", "desk2@example.com")

"""The Kraken spot clients, as the product wires them (`open_kraken`), against the simulator:
order lifecycle, prices that need no venue query, the limiter's counters equal to the venue's,
account reading and the treasury."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import fakeredis
import pytest
import redis.asyncio as aioredis

from orchestrator.clock import ManualClock
from orchestrator.exchange.kraken.account import KrakenDomain
from orchestrator.exchange.kraken.ws.book_store import BookStore
from orchestrator.exchange.protocol import AccountReader, OrderSpec, TradingVenue, Treasury
from orchestrator.ratelimit.policy import trading_cost
from orchestrator.simulator.app import RunningSimulator, open_simulator
from tests.sim_domains import open_sim_domain, sim_config


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with open_simulator(clock=ManualClock()) as running:
        yield running


@pytest.fixture
async def domain(sim: RunningSimulator) -> AsyncIterator[KrakenDomain]:
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    clock = sim.venue.clock
    assert isinstance(clock, ManualClock)
    async with open_sim_domain(sim, redis, clock, manual_time=True) as opened:
        yield opened
    await redis.aclose()


def spec(domain: KrakenDomain, cl_ord_id: str, **kw: object) -> OrderSpec:
    fields: dict[str, object] = {"side": "buy", "order_type": "limit", "volume": Decimal("0.01"),
                                 "price": Decimal("50000.0")} | kw  # fmt: skip
    return OrderSpec(instrument=domain.instruments.get("XBT/USD"), cl_ord_id=cl_ord_id, **fields)  # type: ignore[arg-type]


def venue_levels(sim: RunningSimulator) -> dict[str, float]:
    return sim.venue.limits.levels(sim.venue.clock.time())


async def limiter_level(domain: KrakenDomain, scope_name: str) -> float:
    policy = domain.limiter.policy
    kind, _, rest = scope_name.partition(":")
    if kind == "trade":
        account, _, pair = rest.partition(":")
        return await domain.limiter.level(policy.trade_scope(account, pair))
    if kind == "domain":
        return await domain.limiter.level(policy.domain_scope(rest))
    return await domain.limiter.level(policy.rest_scope(rest))


async def test_order_lifecycle(domain: KrakenDomain, sim: RunningSimulator) -> None:
    trading: TradingVenue = domain.account("mm-xbt").trading
    reader: AccountReader = domain.account("mm-xbt").reader
    ref = await trading.place(spec(domain, "life-1"))
    [opened] = await trading.open_orders()
    assert (opened.txid, opened.cl_ord_id, opened.status, opened.pair, opened.price) == (
        ref.txid, "life-1", "open", "XBT/USD", Decimal("50000.0"),
    )  # fmt: skip
    assert (await trading.find_order("life-1")) == opened
    amended = await trading.amend(ref, volume=Decimal("0.02"))
    [state] = await reader.query_orders([ref.txid])
    assert state.volume == Decimal("0.02")
    assert await trading.cancel(amended) is True
    assert await trading.cancel(amended) is False  # already closed: nothing to do, no error
    closed = await trading.find_order("life-1")
    assert closed is not None
    assert closed.status == "canceled"


async def test_amends_spend_no_rest_budget_and_counters_match_the_venue(
    domain: KrakenDomain, sim: RunningSimulator
) -> None:
    """8 amends cost 0 REST-counter units (no query to price them); an amended order's cancel is
    priced from the amend; after places, amends and cancels the limiter equals the venue."""
    clock = sim.venue.clock
    assert isinstance(clock, ManualClock)
    account = domain.account("mm-xbt")
    trading = account.trading
    rest_scope = f"rest:{account.rest.key_id}"  # the limiter names keys by a fingerprint
    venue_rest_scope = f"rest:{account.rest.credentials.key.reveal()}"

    first = await trading.place(spec(domain, "seq-1"))
    await clock.advance(6.0)  # old enough that a cancel priced from placement would cost 6
    first = await trading.amend(first, price=Decimal("50001.0"))  # 1 + 2 (6 s old)
    await clock.advance(1.0)
    assert await trading.cancel(first) is True  # 1 s after the amend: 8, not 6

    second = await trading.place(spec(domain, "seq-2"))
    third = await trading.place(spec(domain, "seq-3", price=Decimal("49000.0")))
    rest_before = await limiter_level(domain, rest_scope)
    for i in range(8):
        second = await trading.amend(second, price=Decimal(50002 + i))
    assert await limiter_level(domain, rest_scope) == pytest.approx(rest_before)  # 0 units
    assert venue_levels(sim).get(venue_rest_scope, 0.0) == pytest.approx(rest_before)
    assert await trading.cancel_all([second, third]) == 2

    venue = venue_levels(sim)
    assert sim.venue.limits.rejections() == {}
    for ours, theirs in [("trade:mm-xbt:XBT/USD",) * 2, ("domain:XBT/USD",) * 2,
                         (rest_scope, venue_rest_scope)]:  # fmt: skip
        assert await limiter_level(domain, ours) == pytest.approx(venue.get(theirs, 0.0)), ours
    # The add (1) decays away in 6 s; amend 1 + 2, 1 s of decay, cancel 8 (priced from the
    # placement it would be 6); then 1 + 1 + 8 amends x (1 + 3) + cancel-all of two young orders.
    assert venue["trade:mm-xbt:XBT/USD"] == pytest.approx(3 - 2.34 + 8 + 1 + 1 + 8 * 4 + 16)


async def test_the_cancel_of_an_amended_order_is_charged_from_the_amend(
    sim: RunningSimulator, any_redis: aioredis.Redis
) -> None:
    """Kraken prices a cancel by the order's age since placed *or last amended*: a cancel 1 s
    after an amend costs 8 on the trading counter, not the 6 of the 7 s since placement."""
    clock = sim.venue.clock
    assert isinstance(clock, ManualClock)
    config = sim_config(sim, namespace=f"t{uuid.uuid4().hex[:12]}")  # a namespace of its own
    async with open_sim_domain(sim, any_redis, clock, config=config, manual_time=True) as domain:
        trading = domain.account("mm-xbt").trading
        ref = await trading.place(spec(domain, "amend-then-cancel"))
        await clock.advance(6.0)
        ref = await trading.amend(ref, price=Decimal("50001.0"))
        await clock.advance(1.0)
        ours_before = await limiter_level(domain, "trade:mm-xbt:XBT/USD")
        venue_before = venue_levels(sim)["trade:mm-xbt:XBT/USD"]
        assert await trading.cancel(ref) is True  # the manual clock stands still: no decay
        charged = await limiter_level(domain, "trade:mm-xbt:XBT/USD") - ours_before
        venue_charged = venue_levels(sim)["trade:mm-xbt:XBT/USD"] - venue_before
    assert (trading_cost("cancel", 1.0), trading_cost("cancel", 7.0)) == (8, 6)
    assert charged == pytest.approx(trading_cost("cancel", 1.0))
    assert venue_charged == pytest.approx(charged)
    assert sim.venue.limits.rejections() == {}


async def test_balances_ledger_cancel_all_and_dead_man(domain: KrakenDomain) -> None:
    account = domain.account("mm-xbt")
    trading, reader = account.trading, account.reader
    assert (await reader.balances())["ZUSD"].available == Decimal(10000)
    refs = [await trading.place(spec(domain, f"all-{i}")) for i in range(3)]
    assert (await reader.balances())["ZUSD"].held > 0
    assert await trading.cancel_all(refs) == 3
    assert await trading.dead_man_switch(60) != "0"
    assert await trading.dead_man_switch(0) == "0"
    market = await trading.place(spec(domain, "mkt-1", order_type="market", price=None,
                                      volume=Decimal("0.001")))  # fmt: skip
    assert market.rested_s is None  # a market order never rests: its cancel costs no age part
    trades = await reader.ledger(type_="trade")
    assert {e.asset for e in trades} == {"XXBT", "ZUSD"}


async def test_transfers_and_withdrawals(domain: KrakenDomain) -> None:
    treasury: Treasury = domain.treasury
    transfer = await treasury.account_transfer("ZUSD", Decimal("12.5"), "master", "mm-xbt")
    assert transfer.status == "complete"
    [entry] = await domain.account("mm-xbt").reader.ledger(type_="transfer")
    assert (entry.refid, entry.amount) == (transfer.transfer_id, Decimal("12.5"))
    withdrawal = await treasury.withdraw("XBT", "desk-wallet", Decimal("0.1"))
    assert withdrawal.approval_request_id is None
    [state] = await treasury.withdraw_status("XBT")
    assert (state.refid, state.status) == (withdrawal.refid, "Initial")
    await treasury.create_subaccount("desk-2", "desk2@example.com")


def test_one_registry_names_every_pair_for_rest_ws_limiter_and_books(
    domain: KrakenDomain, sim: RunningSimulator
) -> None:
    xbt = domain.instruments.get("XBTUSD")
    assert (xbt.rest_name, xbt.altname, xbt.wsname, xbt.symbol) == (
        "XXBTZUSD", "XBTUSD", "XBT/USD", "BTC/USD",
    )  # fmt: skip
    for name in ("XXBTZUSD", "XBT/USD", "BTC/USD"):
        assert domain.instruments.get(name) is xbt
    assert domain.instruments.get("ETH/XBT").symbol == "ETH/BTC"
    for instrument in domain.instruments:  # the simulator's own v2 names agree with ours
        assert instrument.symbol == sim.venue.catalog.pair(instrument.wsname).symbol
    book = BookStore().add_instrument(xbt, 10)
    assert (book.symbol, book.precision.price_decimals) == ("BTC/USD", xbt.price_decimals)


def test_a_strategy_account_has_no_treasury(domain: KrakenDomain) -> None:
    """What a worker is handed cannot move money: no transfer or withdrawal method exists."""
    account = domain.account("mm-xbt")
    for power in (account.trading, account.reader):
        assert not hasattr(power, "account_transfer")
        assert not hasattr(power, "withdraw")

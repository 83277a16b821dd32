"""The in-process venue: the simulator's order entry and reads, as the live clients see them.

No sockets, a manual clock. What a WS client hears (tests/e2e/test_ws_client.py) is what these
handlers hear: `pending_new` then `new` with the order's terms, `amended`, `canceled`; a fill's
`trade` with its fees, then `filled`, and `balances` ledger updates.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from orchestrator.clock import ManualClock
from orchestrator.errors import (
    AmbiguousOutcome,
    InsufficientFunds,
    InvalidRequest,
    UnknownOrder,
    VenueRateLimited,
    VenueUnavailable,
)
from orchestrator.exchange.instruments import Instrument, Instruments
from orchestrator.exchange.kraken.common.transport import HttpReply, HttpRequest, MockTransport
from orchestrator.exchange.kraken.spot.instruments import load_instruments
from orchestrator.exchange.kraken.spot.rest import KrakenPublic
from orchestrator.exchange.kraken.ws.schemas import BalanceSnapshot, Execution, LedgerUpdate
from orchestrator.exchange.protocol import AccountReader, OrderSpec, TradingVenue
from orchestrator.simulator import http, rest_public
from orchestrator.simulator.params import Params
from orchestrator.simulator.settings import SimSettings
from orchestrator.simulator.venue import Venue
from orchestrator.testing.venue import Delivery, InProcessVenue, build_inprocess_domain

ACCOUNT = "mm-xbt"  # demo domain: 10 000 USD, 0.5 XBT


class Heard:
    """Everything one venue delivered, in order, with the replies its caller got between."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []
        self.executions: list[Execution] = []
        self.balances: list[BalanceSnapshot | LedgerUpdate] = []

    def on_execution(self, execution: Execution) -> None:
        self.executions.append(execution)
        self.log.append(("execution", execution.exec_type))

    def on_balance(self, balance: BalanceSnapshot | LedgerUpdate) -> None:
        self.balances.append(balance)

    def reply(self, what: str) -> None:
        self.log.append(("reply", what))

    def exec_types(self, order_id: str) -> list[str]:
        return [e.exec_type for e in self.executions if e.order_id == order_id]


@pytest.fixture
def domain(clock: ManualClock) -> tuple[Venue, Instruments]:
    return build_inprocess_domain(SimSettings(seed=3), clock)


@pytest.fixture
def sim(domain: tuple[Venue, Instruments]) -> Venue:
    return domain[0]


@pytest.fixture
def btc(domain: tuple[Venue, Instruments]) -> Instrument:
    return domain[1].get("XBT/USD")


def open_venue(
    domain: tuple[Venue, Instruments], account: str = ACCOUNT, delivery: Delivery = "before_reply"
) -> tuple[InProcessVenue, Heard]:
    venue = InProcessVenue(domain[0], account, domain[1], delivery=delivery)
    heard = Heard()
    venue.subscribe_executions(heard.on_execution)
    venue.subscribe_balances(heard.on_balance)
    return venue, heard


@pytest.fixture
async def trader(
    domain: tuple[Venue, Instruments],
) -> AsyncIterator[tuple[InProcessVenue, Heard]]:
    venue, heard = open_venue(domain)
    await asyncio.sleep(0)  # the subscription snapshots
    heard.log.clear()
    yield venue, heard
    venue.close()


def best(sim: Venue, pair: Instrument, side: str) -> Decimal:
    [(price, _)] = sim.public_books[pair.rest_name].top(side, 1)  # type: ignore[arg-type]
    return Decimal(price).scaleb(-pair.price_decimals)


def limit(pair: Instrument, side: str, volume: str, price: Decimal, cl_ord_id: str) -> OrderSpec:
    return OrderSpec(instrument=pair, side=side, order_type="limit",  # type: ignore[arg-type]
                     volume=Decimal(volume), price=price, cl_ord_id=cl_ord_id)  # fmt: skip


def market(pair: Instrument, side: str, volume: str, cl_ord_id: str) -> OrderSpec:
    return OrderSpec(instrument=pair, side=side, order_type="market",  # type: ignore[arg-type]
                     volume=Decimal(volume), cl_ord_id=cl_ord_id)  # fmt: skip


def test_it_is_the_protocols_venue_and_reader_of_one_account(
    domain: tuple[Venue, Instruments],
) -> None:
    sim, instruments = domain
    venue = InProcessVenue(sim, ACCOUNT, instruments)
    trading: TradingVenue = venue  # mypy checks the signatures against the protocols
    reader: AccountReader = venue
    assert [trading, reader] == [venue, venue]
    with pytest.raises(ValueError, match="no account"):
        InProcessVenue(sim, "nobody", instruments)


async def test_instruments_are_what_live_loads_from_asset_pairs(
    domain: tuple[Venue, Instruments],
) -> None:
    sim, instruments = domain

    async def asset_pairs(request: HttpRequest) -> HttpReply:  # the simulator's HTTP reply
        response = http.envelope(rest_public.asset_pairs(sim, Params({})))
        assert isinstance(response.body, bytes)
        return HttpReply(200, response.body)

    live = await load_instruments(KrakenPublic(MockTransport(asset_pairs), "http://sim"))
    assert list(instruments) == list(live)
    assert [i.rest_name for i in instruments] == list(sim.catalog.pairs)
    for pair in sim.catalog.pairs.values():
        got = instruments.get(pair.key)
        assert (got.altname, got.wsname, got.symbol) == (pair.altname, pair.wsname, pair.symbol)
        assert (got.price_decimals, got.qty_decimals) == (pair.pair_decimals, pair.lot_decimals)
        assert (got.tick_size, got.ordermin) == (pair.tick_size, pair.ordermin)


async def test_place_amend_cancel_as_a_ws_client_hears_them(
    sim: Venue, btc: Instrument, trader: tuple[InProcessVenue, Heard], clock: ManualClock
) -> None:
    venue, heard = trader
    price = best(sim, btc, "bid") - 100
    ref = await venue.place(limit(btc, "buy", "0.01", price, "ws-1"))
    assert ref.rested_s == sim.clock.time()
    assert heard.exec_types(ref.txid) == ["pending_new", "new"]
    new = heard.executions[-1]
    assert (new.cl_ord_id, new.symbol, new.limit_price, new.order_qty, new.order_status) == (
        "ws-1", "BTC/USD", price, Decimal("0.01"), "new",
    )  # fmt: skip
    await clock.advance(7.0)
    amended = await venue.amend(ref, price=price - 1, volume=Decimal("0.02"))
    assert amended.rested_s == clock.time() == (ref.rested_s or 0) + 7.0
    last = heard.executions[-1]
    assert (last.exec_type, last.limit_price, last.order_qty) == (
        "amended",
        price - 1,
        Decimal("0.02"),
    )
    [state] = await venue.open_orders()
    assert (state.txid, state.cl_ord_id, state.price, state.volume) == (
        ref.txid, "ws-1", price - 1, Decimal("0.02"),
    )  # fmt: skip
    assert await venue.cancel(amended) is True
    last = heard.executions[-1]
    assert (last.exec_type, last.order_status, last.reason) == (
        "canceled",
        "canceled",
        "User requested",
    )
    assert await venue.cancel(amended) is False  # already closed: not this call's doing
    with pytest.raises(UnknownOrder):
        await venue.amend(amended, price=price)
    assert heard.exec_types(ref.txid) == ["pending_new", "new", "amended", "canceled"]
    [closed] = await venue.query_orders([ref.txid])
    assert (closed.status, closed.reason) == ("canceled", "User requested")
    assert await venue.open_orders() == []


async def test_cancel_all_cancels_every_open_order(
    sim: Venue, btc: Instrument, trader: tuple[InProcessVenue, Heard]
) -> None:
    venue, heard = trader
    price = best(sim, btc, "bid") - 50
    refs = [await venue.place(limit(btc, "buy", "0.01", price - i, f"all-{i}")) for i in range(3)]
    assert await venue.cancel_all(refs) == 3
    assert await venue.open_orders() == []
    for ref in refs:
        assert heard.exec_types(ref.txid)[-1] == "canceled"
    assert await venue.cancel_all([]) == 0


async def test_a_crossing_order_fills_and_the_balances_follow(
    sim: Venue, btc: Instrument, trader: tuple[InProcessVenue, Heard]
) -> None:
    venue, heard = trader
    before = await venue.balances()
    ask = best(sim, btc, "ask")
    ref = await venue.place(limit(btc, "buy", "0.001", ask + 10, "take-1"))
    types = heard.exec_types(ref.txid)
    assert types[0] == "pending_new"
    assert types[-1] == "filled"
    [trade] = [e for e in heard.executions if e.exec_type == "trade"]
    assert (trade.last_qty, trade.last_price, trade.liquidity_ind) == (Decimal("0.001"), ask, "t")
    assert trade.cost is not None
    [fee] = trade.fees
    assert fee.asset == "USD"
    assert fee.qty > 0
    after = await venue.balances()
    assert after["XXBT"].total == before["XXBT"].total + Decimal("0.001")
    assert after["ZUSD"].total == before["ZUSD"].total - trade.cost - fee.qty
    assert after["ZUSD"].held == 0  # the order's hold released once filled
    ledger = [b for b in heard.balances if isinstance(b, LedgerUpdate)]
    assert {(u.asset, u.type) for u in ledger} == {("BTC", "trade"), ("USD", "trade")}
    usd = next(u for u in ledger if u.asset == "USD")
    assert usd.balance == after["ZUSD"].total
    entries = await venue.ledger(type_="trade")
    assert {e.asset for e in entries} == {"XXBT", "ZUSD"}
    found = await venue.find_order("take-1")
    assert found is not None
    assert (found.txid, found.status, found.executed) == (ref.txid, "closed", Decimal("0.001"))


async def test_a_resting_orders_hold_shows_in_the_balances(
    sim: Venue, btc: Instrument, trader: tuple[InProcessVenue, Heard]
) -> None:
    venue, _ = trader
    await venue.place(limit(btc, "sell", "0.2", best(sim, btc, "ask") + 100, "hold-1"))
    xbt = (await venue.balances())["XXBT"]
    assert (xbt.total, xbt.held, xbt.available) == (Decimal("0.5"), Decimal("0.2"), Decimal("0.3"))


async def test_a_cl_ord_id_is_refused_while_an_open_order_holds_it(
    sim: Venue, btc: Instrument, trader: tuple[InProcessVenue, Heard]
) -> None:
    venue, heard = trader
    price = best(sim, btc, "bid") - 100
    first = await venue.place(limit(btc, "buy", "0.01", price, "dup-1"))
    with pytest.raises(InvalidRequest, match="cl_ord_id") as refused:
        await venue.place(limit(btc, "buy", "0.01", price - 1, "dup-1"))
    assert refused.value.codes[0].startswith("EGeneral:Invalid arguments:cl_ord_id")
    assert [e.order_id for e in heard.executions] == [first.txid, first.txid]  # nothing new
    await venue.cancel(first)
    again = await venue.place(limit(btc, "buy", "0.01", price, "dup-1"))  # free once closed
    assert again.txid != first.txid


async def test_refusals_are_the_simulators_and_nothing_is_sent_for_a_bad_number(
    sim: Venue, btc: Instrument, trader: tuple[InProcessVenue, Heard]
) -> None:
    venue, heard = trader
    with pytest.raises(InvalidRequest, match="decimals"):  # refused by the instrument: not sent
        await venue.place(limit(btc, "buy", "0.01", Decimal("50000.05"), "bad-1"))
    assert sim.limits.levels(sim.clock.time()) == {}  # not even an add's fixed cost
    with pytest.raises(InsufficientFunds) as funds:  # the engine's refusal, in Kraken's words
        await venue.place(limit(btc, "sell", "5", best(sim, btc, "ask"), "big-1"))
    assert funds.value.codes == ("EOrder:Insufficient funds",)
    assert sim.limits.levels(sim.clock.time())[f"trade:{ACCOUNT}:XBT/USD"] == 1  # on receipt
    assert heard.executions == []


async def test_the_trading_counter_refuses_as_kraken_does(
    sim: Venue, btc: Instrument, trader: tuple[InProcessVenue, Heard]
) -> None:
    venue, _ = trader
    price = best(sim, btc, "bid") - 100
    with pytest.raises(VenueRateLimited) as limited:  # noqa: PT012 - the loop is the point
        for i in range(100):  # a young order's cancel costs 8, its add 1: 125 is soon spent
            ref = await venue.place(limit(btc, "buy", "0.01", price, f"rl-{i}"))
            await venue.cancel(ref)
    assert limited.value.codes == ("EOrder:Rate limit exceeded",)
    assert sim.limits.rejections() == {f"trade:{ACCOUNT}:XBT/USD": 1}


async def test_a_lost_add_order_reply_is_ambiguous_and_the_order_exists(
    sim: Venue, btc: Instrument, trader: tuple[InProcessVenue, Heard]
) -> None:
    venue, heard = trader
    venue.fail_next("add_order", "lost")
    with pytest.raises(AmbiguousOutcome):
        await venue.place(limit(btc, "buy", "0.01", best(sim, btc, "bid") - 100, "lost-1"))
    found = await venue.find_order("lost-1")
    assert found is not None
    assert found.status == "open"
    assert [o.txid for o in await venue.open_orders()] == [found.txid]
    assert heard.exec_types(found.txid) == ["pending_new", "new"]  # the channel still tells
    ref = await venue.place(limit(btc, "buy", "0.01", best(sim, btc, "bid") - 99, "lost-2"))
    assert ref.cl_ord_id == "lost-2"  # one fault, one call
    venue.fail_next("add_order", "lost")
    with pytest.raises(InvalidRequest):  # refused: answered as usual, the fault kept
        await venue.place(limit(btc, "buy", "0.01", best(sim, btc, "bid") - 98, "lost-2"))
    with pytest.raises(AmbiguousOutcome):
        await venue.place(limit(btc, "buy", "0.01", best(sim, btc, "bid") - 98, "lost-3"))


async def test_lost_cancel_and_unavailable_calls(
    sim: Venue, btc: Instrument, trader: tuple[InProcessVenue, Heard]
) -> None:
    venue, heard = trader
    venue.fail_next("add_order", "unavailable")
    with pytest.raises(VenueUnavailable):
        await venue.place(limit(btc, "buy", "0.01", best(sim, btc, "bid") - 100, "un-1"))
    assert await venue.find_order("un-1") is None
    assert heard.executions == []
    ref = await venue.place(limit(btc, "buy", "0.01", best(sim, btc, "bid") - 100, "un-1"))
    venue.fail_next("cancel_order", "lost")
    with pytest.raises(AmbiguousOutcome):
        await venue.cancel(ref)
    assert await venue.open_orders() == []  # it was cancelled all the same
    venue.fail_next("OpenOrders", "unavailable")
    venue.fail_next("OpenOrders", "lost")
    for _ in range(2):
        with pytest.raises(VenueUnavailable):
            await venue.open_orders()
    assert await venue.open_orders() == []
    with pytest.raises(ValueError, match="none of"):
        venue.fail_next("AddOrder", "lost")


async def test_the_simulators_own_reply_faults_strike_too(
    sim: Venue, btc: Instrument, trader: tuple[InProcessVenue, Heard]
) -> None:
    venue, _ = trader
    sim.settings.faults.lost_reply_next = 1
    with pytest.raises(AmbiguousOutcome):
        await venue.place(limit(btc, "buy", "0.01", best(sim, btc, "bid") - 100, "sf-1"))
    assert await venue.find_order("sf-1") is not None
    assert sim.settings.faults.lost_reply_next == 0


@pytest.mark.parametrize(
    ("delivery", "at_reply", "after_a_turn"),
    [
        # Live over WS: frames read together are handled before the placer resumes.
        ("before_reply", ["pending_new", "new", "reply"], ["pending_new", "new", "reply"]),
        # REST order entry, or a reply read alone: the caller has the reply first.
        ("after_reply", ["reply"], ["reply", "pending_new", "new"]),
    ],
)
async def test_executions_come_before_or_after_the_reply(
    domain: tuple[Venue, Instruments],
    btc: Instrument,
    delivery: Delivery,
    at_reply: list[str],
    after_a_turn: list[str],
) -> None:
    venue, heard = open_venue(domain, delivery=delivery)
    await asyncio.sleep(0)
    heard.log.clear()
    ref = await venue.place(limit(btc, "buy", "0.01", best(domain[0], btc, "bid") - 100, "o-1"))
    heard.reply(ref.txid)
    assert [what if kind == "execution" else "reply" for kind, what in heard.log] == at_reply
    await asyncio.sleep(0)
    assert [what if kind == "execution" else "reply" for kind, what in heard.log] == after_a_turn
    venue.close()


async def test_what_no_call_of_ours_caused_arrives_on_the_next_turn(
    domain: tuple[Venue, Instruments],
    sim: Venue,
    btc: Instrument,
    trader: tuple[InProcessVenue, Heard],
) -> None:
    venue, heard = trader
    bid, ask = best(sim, btc, "bid"), best(sim, btc, "ask")
    inside = bid + (ask - bid) / 2
    ours = await venue.place(limit(btc, "buy", "0.01", inside.quantize(btc.tick_size), "m-1"))
    other = InProcessVenue(sim, "master", domain[1])
    await other.place(market(btc, "sell", "0.01", "hit-1"))
    assert heard.exec_types(ours.txid) == ["pending_new", "new"]  # not yet: no call of ours
    await asyncio.sleep(0)
    assert heard.exec_types(ours.txid) == ["pending_new", "new", "trade", "filled"]
    trade = next(e for e in heard.executions if e.exec_type == "trade")
    assert trade.liquidity_ind == "m"
    other.close()


async def test_the_dead_mans_switch_cancels_on_venue_time(
    sim: Venue, btc: Instrument, trader: tuple[InProcessVenue, Heard], clock: ManualClock
) -> None:
    venue, heard = trader
    ref = await venue.place(limit(btc, "buy", "0.01", best(sim, btc, "bid") - 100, "dms-1"))
    trigger = await venue.dead_man_switch(60)
    assert trigger.endswith("Z")
    await clock.advance(59)
    sim.tick()
    await asyncio.sleep(0)
    assert heard.exec_types(ref.txid)[-1] == "new"
    await clock.advance(1)
    sim.tick()
    await asyncio.sleep(0)
    assert heard.executions[-1].exec_type == "canceled"
    assert heard.executions[-1].reason == "Dead man's switch"
    assert await venue.dead_man_switch(0) == "0"


async def test_the_subscription_snapshots(
    domain: tuple[Venue, Instruments], sim: Venue, btc: Instrument
) -> None:
    first, _ = open_venue(domain)
    ref = await first.place(limit(btc, "buy", "0.01", best(sim, btc, "bid") - 100, "snap-1"))
    first.close()
    venue, heard = open_venue(domain)  # a restarted worker: its open orders, its balances
    await asyncio.sleep(0)
    assert [(e.order_id, e.exec_type, e.cl_ord_id) for e in heard.executions] == [
        (ref.txid, "new", "snap-1")
    ]
    totals = {b.asset: b.balance for b in heard.balances if isinstance(b, BalanceSnapshot)}
    assert totals["BTC"] == Decimal("0.5")
    assert totals["USD"] == Decimal(10_000)
    venue.close()


async def test_a_handlers_error_stops_delivery_and_surfaces(
    domain: tuple[Venue, Instruments], sim: Venue, btc: Instrument
) -> None:
    class HandlerBug(Exception):
        pass

    def broken(execution: Execution) -> None:
        raise HandlerBug(execution.exec_type)

    venue = InProcessVenue(sim, ACCOUNT, domain[1])
    venue.subscribe_executions(broken, snapshot=False)
    ref = await venue.place(limit(btc, "buy", "0.01", best(sim, btc, "bid") - 100, "bug-1"))
    assert ref.cl_ord_id == "bug-1"  # the venue acted; the reply is not the handler's to spoil
    assert isinstance(venue.failure, HandlerBug)
    with pytest.raises(HandlerBug, match="pending_new"):
        await venue.open_orders()
    with pytest.raises(HandlerBug):
        venue.close()


async def test_a_closed_venue_hears_nothing_and_refuses_calls(
    domain: tuple[Venue, Instruments], sim: Venue, btc: Instrument
) -> None:
    venue, heard = open_venue(domain)
    venue.close()
    assert venue._engine_execution not in sim.engine.execution_listeners
    other = InProcessVenue(sim, ACCOUNT, domain[1])
    await other.place(limit(btc, "buy", "0.01", best(sim, btc, "bid") - 100, "c-1"))
    await asyncio.sleep(0)
    assert heard.executions == []
    with pytest.raises(VenueUnavailable, match="closed"):
        await venue.open_orders()
    other.close()


async def test_a_cancelled_call_never_reached_the_venue(
    sim: Venue, btc: Instrument, trader: tuple[InProcessVenue, Heard]
) -> None:
    venue, _ = trader
    task = asyncio.create_task(
        venue.place(limit(btc, "buy", "0.01", best(sim, btc, "bid") - 100, "cx-1"))
    )
    await asyncio.sleep(0)  # the task starts and is in flight
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await venue.find_order("cx-1") is None

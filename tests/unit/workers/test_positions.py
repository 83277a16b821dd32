"""Positions and PnL from a strategy's fills: average cost, exact to the last digit.

The last test books the fills the order state machine made of the simulator engine's frames and
finds the PnL the simulator's own balances say.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.exchange.instruments import Instrument
from orchestrator.strategy import Fill, Side
from orchestrator.workers.positions import PositionBook, fee_in_quote
from tests.unit.workers.test_order_states import XBT_USD, run_on_simulator

ETH_USD = Instrument(rest_name="XETHZUSD", altname="ETHUSD", wsname="ETH/USD", symbol="ETH/USD", base="XETH",
                     quote="ZUSD", price_decimals=2, qty_decimals=8, tick_size=Decimal("0.01"),
                     ordermin=Decimal("0.001"), costmin=Decimal("0.5"))  # fmt: skip
INSTRUMENTS = {"XBT/USD": XBT_USD, "ETH/USD": ETH_USD}
D = Decimal
_ids = iter(range(10**9))


def fill(side: Side, qty: str | Decimal, price: str | Decimal, *, fee: str | Decimal = "0",
         fee_asset: str = "USD", pair: str = "XBT/USD") -> Fill:  # fmt: skip
    return Fill(cl_ord_id="c-1", pair=pair, side=side, price=D(price), qty=D(qty), fee=D(fee),
                fee_asset=fee_asset, liquidity="maker", exec_id=f"E{next(_ids)}", time_s=0.0)  # fmt: skip


def book_of(*fills: Fill) -> PositionBook:
    book = PositionBook()
    for f in fills:
        book.on_fill(f, INSTRUMENTS[f.pair])
    return book


def test_adding_moves_the_average() -> None:
    book = book_of(fill("buy", "1", "100"), fill("buy", "3", "200"))
    position = book.position("XBT/USD", D(250))
    assert (position.qty, position.avg_price) == (D(4), D(175))
    assert (position.realized_pnl, position.unrealized_pnl) == (D(0), D(4) * (D(250) - D(175)))


@pytest.mark.parametrize(("opening", "closing", "sign"), [("buy", "sell", 1), ("sell", "buy", -1)])
def test_reducing_realizes_by_side(opening: Side, closing: Side, sign: int) -> None:
    book = book_of(fill(opening, "2", "100"), fill(closing, "0.5", "120"))
    position = book.position("XBT/USD", None)
    assert position.qty == sign * D("1.5")
    assert position.avg_price == D(100)  # a reduction leaves the average where it was
    assert position.realized_pnl == sign * (D(120) - D(100)) * D("0.5")
    assert position.unrealized_pnl == 0  # no mark


def test_crossing_through_zero_realizes_the_closed_part_and_opens_the_rest() -> None:
    book = book_of(fill("buy", "1", "100"), fill("sell", "3", "90"))
    position = book.position("XBT/USD", D(80))
    assert (position.qty, position.avg_price) == (D(-2), D(90))
    assert position.realized_pnl == (D(90) - D(100)) * 1
    assert position.unrealized_pnl == (D(90) - D(80)) * 2  # short 2 from 90, marked at 80


def test_fees_in_quote_or_base_are_counted_in_quote() -> None:
    book = book_of(fill("buy", "1", "100", fee="0.26"), fill("buy", "1", "300", fee="0.001", fee_asset="BTC"),
                   fill("buy", "1", "200", fee="0.002", fee_asset="XXBT"))  # fmt: skip
    position = book.position("XBT/USD", D(200))
    assert position.fees == D("0.26") + D("0.001") * 300 + D("0.002") * 200
    assert book.pnl({"XBT/USD": D(200)}) == position.unrealized_pnl - position.fees
    assert book.unpriced_fees() == {}


def test_a_fee_in_a_third_asset_is_kept_apart() -> None:
    book = book_of(fill("buy", "1", "100", fee="7", fee_asset="KFEE"))
    assert book.position("XBT/USD", None).fees == 0
    assert book.unpriced_fees() == {"KFEE": D(7)}
    assert fee_in_quote(D(7), "KFEE", D(100), XBT_USD) is None
    for name in ("ZUSD", "USD"):
        assert fee_in_quote(D(7), name, D(100), XBT_USD) == D(7)
    for name in ("XXBT", "XBT", "BTC"):
        assert fee_in_quote(D(7), name, D(100), XBT_USD) == D(700)


def test_an_unknown_pair_is_flat() -> None:
    book = book_of(fill("buy", "1", "100"))
    position = book.position("ETH/USD", D(5))
    assert (position.qty, position.avg_price, position.realized_pnl, position.unrealized_pnl,
            position.fees) == (D(0), None, D(0), D(0), D(0))  # fmt: skip
    assert book.pairs() == ["XBT/USD"]


def test_pnl_sums_every_pair_and_skips_unmarked_ones() -> None:
    book = book_of(fill("buy", "1", "100", fee="1"), fill("sell", "2", "10", fee="0.5", pair="ETH/USD"),
                   fill("buy", "1", "8", pair="ETH/USD"))  # fmt: skip
    assert book.pairs() == ["ETH/USD", "XBT/USD"]
    eth = book.position("ETH/USD", D(9))
    assert (eth.qty, eth.realized_pnl, eth.unrealized_pnl) == (D(-1), D(2), D(1))
    assert book.pnl({"ETH/USD": D(9)}) == D(2) + D(1) - D("0.5") - D(1)  # XBT unmarked


# --- properties ----------------------------------------------------------------------------------
quantities = st.integers(1, 5000).map(lambda n: D(n) / 1000)
prices = st.integers(1, 10**7).map(lambda n: D(n) / 100)
fees = st.integers(0, 10**4).map(lambda n: D(n) / 10**5)
fills = st.builds(
    fill, st.sampled_from(["buy", "sell"]), quantities, prices, fee=fees,
    fee_asset=st.sampled_from(["USD", "BTC", "ETH"]), pair=st.sampled_from(list(INSTRUMENTS)),
)  # fmt: skip


def quote_fee(f: Fill) -> Decimal | None:
    """What a fee is worth in USD, computed here from the fill alone; None: not priceable."""
    base = INSTRUMENTS[f.pair].symbol.split("/")[0]
    return f.fee if f.fee_asset == "USD" else f.fee * f.price if f.fee_asset == base else None


@settings(max_examples=300, deadline=None)
@given(
    trades=st.lists(fills, max_size=30),
    marks=st.fixed_dictionaries(dict.fromkeys(INSTRUMENTS, prices)),
)
def test_pnl_is_the_cash_flows_plus_the_position_at_the_mark(
    trades: list[Fill], marks: dict[str, Decimal]
) -> None:
    book = book_of(*trades)
    cash = held = D(0)
    unpriced: dict[str, Decimal] = {}
    for pair in INSTRUMENTS:
        qty = D(0)
        for f in (f for f in trades if f.pair == pair):
            signed = f.qty if f.side == "buy" else -f.qty
            qty += signed
            cash -= signed * f.price
            fee = quote_fee(f)
            if fee is None:
                unpriced[f.fee_asset] = unpriced.get(f.fee_asset, D(0)) + f.fee
            else:
                cash -= fee
        held += qty * marks[pair]
        assert book.position(pair, marks[pair]).qty == qty
    assert book.pnl(marks) == cash + held
    assert book.unpriced_fees() == unpriced


@settings(max_examples=300, deadline=None)
@given(lots=st.lists(st.tuples(st.sampled_from(["buy", "sell"]), quantities, fees), min_size=1, max_size=20),
       price=prices, data=st.data())  # fmt: skip
def test_a_round_trip_at_one_price_realizes_exactly_minus_fees(
    lots: list[tuple[Side, Decimal, Decimal]], price: Decimal, data: st.DataObject
) -> None:
    trades = [fill(side, qty, price, fee=fee) for side, qty, fee in lots]
    net = sum((f.qty if f.side == "buy" else -f.qty for f in trades), D(0))
    if net:  # close what is left, in one fill: every path crosses and reduces at one price
        trades.append(fill("sell" if net > 0 else "buy", abs(net), price, fee=data.draw(fees)))
    book = book_of(*trades)
    position = book.position("XBT/USD", data.draw(prices))
    assert (position.qty, position.avg_price, position.unrealized_pnl) == (D(0), None, D(0))
    assert position.realized_pnl == 0
    assert book.pnl({"XBT/USD": price}) == -sum((f.fee for f in trades), D(0)) == -position.fees


# --- against the simulator's ledger ----------------------------------------------------------------
@pytest.mark.parametrize("ending", ["amend_to_filled", "cancel"])
def test_pnl_from_fills_is_what_the_simulators_balances_say(ending: str) -> None:
    sim, venue = run_on_simulator(ending)
    before = sim.balances_before
    account = venue.domain.accounts["master"]
    after = {asset: account.balance(asset) for asset in ("ZUSD", "XXBT")}
    book = PositionBook()
    for f in sim.fills:
        book.on_fill(f, XBT_USD)
    mark = D("61234.5")
    by_ledger = (after["ZUSD"] - before["ZUSD"]) + (after["XXBT"] - before["XXBT"]) * mark
    assert book.pnl({"XBT/USD": mark}) == by_ledger
    assert (
        book.position("XBT/USD", mark).qty == after["XXBT"] - before["XXBT"] == sim.engine_executed
    )

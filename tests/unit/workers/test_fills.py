"""The fill tally: what a reconnect missed is told once, and a trade frame arriving after REST
already told its quantity is not counted again."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from orchestrator.exchange.instruments import Instrument
from orchestrator.strategy import Fill
from orchestrator.workers.fills import FillTally
from orchestrator.workers.order_states import TrackedOrder

XBT = Instrument(rest_name="XXBTZUSD", altname="XBTUSD", wsname="XBT/USD", symbol="BTC/USD",
                 base="XXBT", quote="ZUSD", price_decimals=1, qty_decimals=8,
                 tick_size=Decimal("0.1"), ordermin=Decimal("0.0001"),
                 costmin=Decimal("0.5"))  # fmt: skip


def order(filled: str, cost: str, fees: str = "0") -> TrackedOrder:
    return TrackedOrder(cl_ord_id="c1", instrument=XBT, side="buy", order_type="limit",
                        time_in_force="GTC", post_only=False, volume=Decimal(1),
                        price=Decimal(100), status="partially_filled", txid="T1",
                        filled=Decimal(filled), cum_cost=Decimal(cost), fees=Decimal(fees),
                        rested_s=1.0)  # fmt: skip


def trade(qty: str, exec_id: str = "E1") -> Fill:
    return Fill(cl_ord_id="c1", pair="XBT/USD", side="buy", price=Decimal(100),
                qty=Decimal(qty), fee=Decimal("0.26") * Decimal(qty), fee_asset="USD",
                liquidity="maker", exec_id=exec_id, time_s=1.0)  # fmt: skip


def test_what_no_trade_told_is_one_fill_at_the_average_price() -> None:
    tally = FillTally()
    tally.record(trade("0.25"), XBT)
    missed = tally.missed(order("1", "100", "0.26"), now_s=5.0)
    assert missed is not None
    assert missed.qty == Decimal("0.75")
    assert missed.price == Decimal(100)
    assert missed.fee == Decimal("0.26") - Decimal("0.065")
    assert missed.exec_id == "reconciled:T1:1"
    tally.record(missed, XBT)
    assert tally.missed(order("1", "100", "0.26"), now_s=6.0) is None  # told once


def test_a_trade_frame_after_rest_told_its_quantity_is_not_counted_again() -> None:
    tally = FillTally()
    after_rest = order("1", "100", "0.26")
    missed = tally.missed(after_rest, now_s=5.0)
    assert missed is not None
    tally.record(missed, XBT)
    assert tally.unseen(trade("1"), after_rest) is None
    # partly ahead: only the part REST did not tell counts, with its share of the fee
    tally2 = FillTally()
    tally2.record(trade("0.5"), XBT)
    late = trade("0.75", "E2")
    assert tally2.unseen(late, order("1", "100")) == msgspec.structs.replace(
        late, qty=Decimal("0.5"), fee=late.fee * Decimal("0.5") / Decimal("0.75")
    )


def test_a_normal_trade_passes_unchanged() -> None:
    tally = FillTally()
    fill = trade("0.4")
    assert tally.unseen(fill, order("0.4", "40")) is fill

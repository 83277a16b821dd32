"""The order state machine: every input source, in any arrival order, tells one story.

Frames are built as the private `executions` channel sends them (docs/kraken/websocket.md
section 5); the last tests feed the simulator engine's own frames through the JSON decoder.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.clock import ManualClock
from orchestrator.exchange.instruments import Instrument
from orchestrator.exchange.kraken.ws.schemas import Execution, Fee, executions_decoder
from orchestrator.exchange.protocol import OrderRef, OrderState
from orchestrator.simulator.events import rfc3339
from orchestrator.simulator.orders import OrderRequest
from orchestrator.simulator.settings import SimSettings
from orchestrator.simulator.venue import Venue, build_venue
from orchestrator.simulator.ws_session import encode, plain
from orchestrator.strategy import Fill
from orchestrator.workers.order_states import (
    Applied,
    TrackedOrder,
    apply_execution,
    execution_time_s,
    on_amend_refused,
    on_amended,
    on_cancel_refused,
    on_cancelled,
    on_place_failed,
    on_placed,
    on_reconciled,
)

XBT_USD = Instrument(rest_name="XXBTZUSD", altname="XBTUSD", wsname="XBT/USD", symbol="BTC/USD", base="XXBT",
                     quote="ZUSD", price_decimals=1, qty_decimals=8, tick_size=Decimal("0.1"),
                     ordermin=Decimal("0.0001"), costmin=Decimal("0.5"))  # fmt: skip
T0 = 1_700_000_000.0
TXID = "OABCDE-FGHIJ-KLMNOP"
D = Decimal


def tracked(**fields: Any) -> TrackedOrder:
    defaults: dict[str, Any] = {
        "cl_ord_id": "c-1", "instrument": XBT_USD, "side": "buy", "order_type": "limit",
        "time_in_force": "GTC", "post_only": False, "volume": D("1"), "price": D("60000.0"),
    }  # fmt: skip
    return TrackedOrder(**(defaults | fields))


def frame(exec_type: str, *, at_s: float = T0, **fields: Any) -> Execution:
    return Execution(order_id=TXID, exec_type=exec_type, timestamp=rfc3339(at_s), **fields)


def trade(exec_id: str, qty: str, price: str, cum_qty: str, cum_cost: str, *, fee: str = "0.1",
          fee_asset: str = "USD", status: str = "partially_filled", at_s: float = T0) -> Execution:  # fmt: skip
    return frame(
        "trade", at_s=at_s, order_status=status, exec_id=exec_id, last_qty=D(qty),
        last_price=D(price), cost=D(qty) * D(price), cum_qty=D(cum_qty), cum_cost=D(cum_cost),
        liquidity_ind="m", fees=[Fee(asset=fee_asset, qty=D(fee))],
    )  # fmt: skip


def ref(rested_s: float | None = T0) -> OrderRef:
    return OrderRef(txid=TXID, cl_ord_id="c-1", instrument=XBT_USD, rested_s=rested_s)


def test_lifecycle_pending_new_new_partially_filled_filled() -> None:
    order = tracked()
    steps = [
        (frame("pending_new", order_status="pending_new", cum_qty=D(0)), "pending_new", D(0)),
        (frame("new", order_status="new", cum_qty=D(0)), "new", D(0)),
        (trade("E1", "0.4", "60000.0", "0.4", "24000.00"), "partially_filled", D("0.4")),
        (trade("E2", "0.6", "59990.0", "1", "59994.00"), "partially_filled", D(1)),
        (frame("filled", order_status="filled", cum_qty=D(1), cum_cost=D("59994.00")), "filled", D(1)),
    ]  # fmt: skip
    fills: list[Fill] = []
    for ex, status, filled in steps:
        before = (order.status, order.filled)
        applied = apply_execution(order, ex, now_s=T0 + 1)
        assert applied.changed == (before != (status, filled))  # pending_new at first: no news
        assert (order.status, order.filled) == (status, filled)
        fills += applied.fills
    assert [f.exec_id for f in fills] == ["E1", "E2"]
    assert sum(f.qty for f in fills) == order.filled
    update = order.update()
    assert update.avg_price == D("59994.00")
    assert (update.pair, update.txid, update.is_open) == ("XBT/USD", TXID, False)
    assert update.remaining == 0
    assert order.rested_s == T0 + 1  # stamped when the `new` frame arrived


@pytest.mark.parametrize("closing", ["canceled", "expired"])
def test_a_closed_order_ignores_late_frames(closing: str) -> None:
    order = tracked()
    apply_execution(order, frame("new", order_status="new"), now_s=T0)
    closed = apply_execution(order, frame(closing, order_status=closing, reason="why"), now_s=T0)
    assert closed.changed
    assert order.status == closing
    assert order.reason == "why"
    for late in ("new", "pending_new"):
        assert apply_execution(order, frame(late, order_status=late), now_s=T0) == Applied(False)
    assert (order.status, order.reason) == (closing, "why")


def test_a_rejected_order_ignores_late_frames_and_replies() -> None:
    order = tracked()
    rejected = on_place_failed(order, "EOrder:Insufficient funds")
    assert rejected.changed
    assert order.status == "rejected"
    assert order.reason == "EOrder:Insufficient funds"
    assert not apply_execution(order, frame("pending_new"), now_s=T0).changed
    assert not on_amended(order, price=D(1), volume=None, rested_s=T0).changed
    assert order.status == "rejected"
    assert order.price == D("60000.0")


def test_a_refused_place_after_executions_saw_the_order_is_not_rejected() -> None:
    order = tracked()
    apply_execution(order, frame("pending_new", order_status="pending_new"), now_s=T0)
    assert on_place_failed(order, "lost reply, read as a refusal") == Applied(False)
    assert order.status == "pending_new"


def test_executions_before_the_place_reply() -> None:
    order = tracked()
    apply_execution(order, frame("pending_new", order_status="pending_new"), now_s=T0)
    apply_execution(order, frame("new", order_status="new"), now_s=T0 + 0.2)
    assert (order.status, order.txid) == ("new", TXID)
    before = order.update()
    assert on_placed(order, ref(rested_s=T0 + 0.1)) == Applied(False)
    assert order.update() == before
    assert order.rested_s == T0 + 0.2  # the later stamp: a cancel's cost is never underestimated


def test_the_place_reply_first_names_the_order_and_keeps_it_pending() -> None:
    order = tracked()
    with pytest.raises(ValueError, match="no txid"):
        order.ref()
    assert on_placed(order, ref(rested_s=T0)) == Applied(False)
    assert order.status == "pending_new"
    assert order.ref() == ref(rested_s=T0)


def test_an_ioc_never_rests() -> None:
    order = tracked(time_in_force="IOC")
    on_placed(order, ref(rested_s=T0))
    apply_execution(order, frame("new", order_status="new"), now_s=T0)
    assert order.rested_s is None


def test_a_duplicated_trade_counts_once() -> None:
    order = tracked()
    first = apply_execution(order, trade("E1", "0.5", "60000.0", "0.5", "30000.0"), now_s=T0)
    again = apply_execution(order, trade("E1", "0.5", "60000.0", "0.5", "30000.0"), now_s=T0)
    assert len(first.fills) == 1
    assert again == Applied(False)
    assert (order.filled, order.cum_cost, order.fees) == (D("0.5"), D("30000.0"), D("0.1"))


def test_a_duplicated_trade_without_running_totals_counts_once() -> None:
    order = tracked()
    bare = frame("trade", exec_id="E1", last_qty=D("0.5"), last_price=D("60000.0"),
                 cost=D("30000.0"), fees=[Fee(asset="USD", qty=D("0.1"))])  # fmt: skip
    assert len(apply_execution(order, bare, now_s=T0).fills) == 1
    assert apply_execution(order, bare, now_s=T0) == Applied(False)
    assert (order.filled, order.cum_cost, order.status) == (
        D("0.5"),
        D("30000.0"),
        "partially_filled",
    )


@pytest.mark.parametrize("closing", ["canceled", "filled"])
def test_a_fill_after_a_cancel_request_counts(closing: str) -> None:
    order = tracked()
    apply_execution(order, frame("new", order_status="new"), now_s=T0)
    order.cancel_requested = True
    qty = "1" if closing == "filled" else "0.3"
    cost = str(D(qty) * D("60000.0"))
    filled = apply_execution(order, trade("E1", qty, "60000.0", qty, cost), now_s=T0)
    assert len(filled.fills) == 1
    assert order.filled == D(qty)
    apply_execution(order, frame(closing, order_status=closing, cum_qty=D(qty)), now_s=T0)
    assert (order.status, order.filled, order.cum_cost) == (closing, D(qty), D(cost))


def test_a_trade_arriving_after_the_cancel_frame_still_counts() -> None:
    order = tracked()
    apply_execution(order, frame("canceled", order_status="canceled", cum_qty=D("0.3"),
                                 cum_cost=D("18000.0")), now_s=T0)  # fmt: skip
    late = apply_execution(order, trade("E1", "0.3", "60000.0", "0.3", "18000.0"), now_s=T0)
    assert [f.exec_id for f in late.fills] == ["E1"]
    assert (order.status, order.filled, order.fees) == ("canceled", D("0.3"), D("0.1"))


@pytest.mark.parametrize("stale", ["status", "restated", "new"])
def test_cum_qty_never_goes_backwards(stale: str) -> None:
    order = tracked()
    apply_execution(order, trade("E2", "0.3", "60000.0", "0.5", "30000.0"), now_s=T0)
    older = frame(stale, order_status="partially_filled", cum_qty=D("0.2"), cum_cost=D("12000.0"),
                  order_qty=D(1), limit_price=D("60000.0"))  # fmt: skip
    assert apply_execution(order, older, now_s=T0) == Applied(False)
    assert (order.filled, order.cum_cost, order.status) == (
        D("0.5"),
        D("30000.0"),
        "partially_filled",
    )


def test_a_trade_fee_comes_from_its_fees_list() -> None:
    order = tracked()
    quote = apply_execution(
        order, trade("E1", "0.1", "60000.0", "0.1", "6000.0", fee="15.6"), now_s=T0
    )
    base = apply_execution(order, trade("E2", "0.1", "50000.0", "0.2", "11000.0", fee="0.0002",
                                        fee_asset="BTC"), now_s=T0)  # fmt: skip
    assert (quote.fills[0].fee, quote.fills[0].fee_asset) == (D("15.6"), "USD")
    assert (base.fills[0].fee, base.fills[0].fee_asset) == (D("0.0002"), "BTC")
    assert order.fees == D("15.6") + D("0.0002") * D("50000.0")  # quote units
    assert quote.fills[0].liquidity == "maker"
    assert quote.fills[0].time_s == T0


def test_fees_in_several_assets_are_reported_in_the_quote() -> None:
    order = tracked()
    two = frame("trade", exec_id="E1", last_qty=D("0.1"), last_price=D("60000.0"), cum_qty=D("0.1"),
                cum_cost=D("6000.0"), fees=[Fee(asset="USD", qty=D(1)), Fee(asset="XBT", qty=D("0.0001"))])  # fmt: skip
    fill = apply_execution(order, two, now_s=T0).fills[0]
    assert (fill.fee, fill.fee_asset) == (D(1) + D("0.0001") * D("60000.0"), "USD")


def test_an_amended_frame_moves_price_volume_and_rest_time() -> None:
    order = tracked()
    on_placed(order, ref(rested_s=T0))
    apply_execution(order, frame("new", order_status="new"), now_s=T0)
    amended = frame("amended", order_status="new", order_qty=D("0.8"), limit_price=D("60010.0"))
    assert apply_execution(order, amended, now_s=T0 + 5).changed
    assert (order.volume, order.price, order.rested_s) == (D("0.8"), D("60010.0"), T0 + 5)
    assert order.ref().age_s(T0 + 6) == 1.0


def test_the_amend_reply_moves_price_volume_and_rest_time() -> None:
    order = tracked(volume=D(2))
    apply_execution(order, frame("new", order_status="new"), now_s=T0)
    assert on_amended(order, price=D("59000.0"), volume=None, rested_s=T0 + 3).changed
    assert (order.volume, order.price, order.rested_s) == (D(2), D("59000.0"), T0 + 3)
    assert not on_amended(order, price=D("59000.0"), volume=None, rested_s=T0 + 3).changed


def test_amended_down_to_what_filled_is_filled() -> None:
    by_reply, by_frame = tracked(), tracked()
    for order in (by_reply, by_frame):
        apply_execution(order, trade("E1", "0.4", "60000.0", "0.4", "24000.0"), now_s=T0)
    assert on_amended(by_reply, price=None, volume=D("0.4"), rested_s=T0).changed
    amended = frame(
        "amended", order_status="partially_filled", order_qty=D("0.3"), cum_qty=D("0.4")
    )
    apply_execution(by_frame, amended, now_s=T0)
    for order in (by_reply, by_frame):
        assert (order.status, order.volume, order.remaining) == ("filled", D("0.4"), D(0))


def test_a_late_amended_frame_after_the_close_changes_nothing() -> None:
    order = tracked()
    apply_execution(order, frame("canceled", order_status="canceled", order_qty=D(1)), now_s=T0)
    late = frame("amended", order_status="new", order_qty=D("0.5"), limit_price=D("1.0"))
    assert apply_execution(order, late, now_s=T0 + 1) == Applied(False)
    assert (order.volume, order.price, order.rested_s) == (D(1), D("60000.0"), None)


def test_a_trade_that_outran_the_amend_raising_the_volume() -> None:
    order = tracked()
    apply_execution(order, trade("E1", "1.5", "60000.0", "1.5", "90000.0"), now_s=T0)
    assert order.filled == order.volume == D("1.5")  # filled never exceeds the volume
    apply_execution(order, frame("amended", order_status="partially_filled", order_qty=D(2),
                                 cum_qty=D("1.5")), now_s=T0)  # fmt: skip
    assert (order.volume, order.remaining, order.status) == (D(2), D("0.5"), "partially_filled")


def test_the_closing_frame_carries_the_volume_it_closed_with() -> None:
    order = tracked()
    apply_execution(order, trade("E1", "0.4", "60000.0", "0.4", "24000.0"), now_s=T0)
    closing = frame("filled", order_status="filled", order_qty=D("0.4"), cum_qty=D("0.4"))
    apply_execution(order, closing, now_s=T0)
    assert (order.status, order.volume) == ("filled", D("0.4"))


@pytest.mark.parametrize(
    ("exec_type", "order_status"), [("filled", None), ("trade", "filled"), ("status", "filled")]
)
def test_filled_by_exec_type_or_by_order_status(exec_type: str, order_status: str | None) -> None:
    order = tracked()
    extra: dict[str, Any] = {}
    if exec_type == "trade":
        extra = {"exec_id": "E1", "last_qty": D(1), "last_price": D(60000)}
    ex = frame(exec_type, order_status=order_status, cum_qty=D(1), cum_cost=D(60000), **extra)
    apply_execution(order, ex, now_s=T0)
    assert (order.status, order.filled) == ("filled", D(1))


def test_a_trade_alone_never_completes_the_order() -> None:
    order = tracked()
    apply_execution(order, trade("E1", "1", "60000.0", "1", "60000.0"), now_s=T0)
    assert order.status == "partially_filled"
    assert order.filled == order.volume


def test_an_unknown_exec_type_is_ignored() -> None:
    order = tracked()
    ex = frame("liquidated", order_status="canceled", cum_qty=D(1), order_qty=D(5))
    assert apply_execution(order, ex, now_s=T0) == Applied(False)
    assert (order.status, order.txid, order.filled, order.volume) == (
        "pending_new",
        None,
        D(0),
        D(1),
    )


def test_an_amend_refused_leaves_the_order_and_tells_why() -> None:
    order = tracked()
    apply_execution(order, frame("new", order_status="new"), now_s=T0)
    before = order.update()
    refused = on_amend_refused(order, "EOrder:Post only order")
    assert refused.changed
    assert refused.fills == ()
    assert order.update() == msgspec.structs.replace(before, reason="EOrder:Post only order")


def test_a_cancel_refused_clears_the_request() -> None:
    order = tracked()
    apply_execution(order, frame("new", order_status="new"), now_s=T0)
    order.cancel_requested = True
    assert on_cancel_refused(order, "EOrder:Unknown order").changed
    assert not order.cancel_requested
    assert order.status == "new"
    closed = tracked(status="filled", cancel_requested=True, reason=None)
    assert on_cancel_refused(closed, "EOrder:Unknown order") == Applied(False)
    assert not closed.cancel_requested
    assert closed.reason is None


def test_a_confirmed_cancel_closes_the_order_and_a_racing_fill_still_counts() -> None:
    order = tracked()
    apply_execution(order, frame("new", order_status="new"), now_s=T0)
    order.cancel_requested = True
    assert on_cancelled(order, "cancelled on request").changed
    assert (order.status, order.reason) == ("canceled", "cancelled on request")
    racing = apply_execution(order, trade("E1", "0.2", "60000.0", "0.2", "12000.0"), now_s=T0)
    assert [f.exec_id for f in racing.fills] == ["E1"]
    assert (order.status, order.filled) == ("canceled", D("0.2"))
    apply_execution(
        order, frame("canceled", order_status="canceled", reason="User requested"), now_s=T0
    )
    assert order.reason == "cancelled on request"  # the final status and its reason stay
    filled = tracked(status="filled")
    assert on_cancelled(filled, "cancel_all") == Applied(False)
    assert filled.status == "filled"


def state(status: str, executed: str, cost: str, *, fee: str = "0", volume: str = "1",
          price: str | None = "60000.0", reason: str | None = None) -> OrderState:  # fmt: skip
    return OrderState(
        txid=TXID, cl_ord_id="c-1", pair="XBT/USD", side="buy", order_type="limit",
        status=status, volume=D(volume), executed=D(executed),  # type: ignore[arg-type]
        price=None if price is None else D(price), avg_price=D(0), cost=D(cost), fee=D(fee),
        opened_s=T0 - 10, reason=reason,
    )  # fmt: skip


def test_reconciliation_takes_the_venues_totals_and_invents_no_fills() -> None:
    order = tracked()
    applied = on_reconciled(order, state("open", "0.25", "15000.0", fee="39", price="60100.0"))
    assert applied == Applied(True)
    assert (order.status, order.txid, order.filled, order.cum_cost, order.fees) == (
        "partially_filled", TXID, D("0.25"), D("15000.0"), D(39))  # fmt: skip
    assert (order.price, order.rested_s) == (D("60100.0"), T0 - 10)
    # The WS replay of a trade REST already counted: a fill for positions, no double count.
    late = apply_execution(
        order, trade("E1", "0.25", "60000.0", "0.25", "15000.0", fee="39"), now_s=T0
    )
    assert len(late.fills) == 1
    assert not late.changed
    assert (order.filled, order.fees) == (D("0.25"), D(39))


@pytest.mark.parametrize(("status", "final"), [("closed", "filled"), ("canceled", "canceled"),
                                               ("expired", "expired"), ("pending", "pending_new")])  # fmt: skip
def test_reconciled_statuses(status: str, final: str) -> None:
    order = tracked()
    executed = "1" if status == "closed" else "0"
    on_reconciled(order, state(status, executed, str(D(executed) * 60000), reason="r"))
    assert order.status == final
    assert order.reason == ("r" if final in ("canceled", "expired") else None)


def test_reconciliation_never_moves_an_order_back() -> None:
    order = tracked()
    apply_execution(order, trade("E1", "0.5", "60000.0", "0.5", "30000.0"), now_s=T0)
    apply_execution(order, frame("canceled", order_status="canceled", cum_qty=D("0.5")), now_s=T0)
    assert on_reconciled(order, state("open", "0.2", "12000.0", volume="3")) == Applied(False)
    assert (order.status, order.filled, order.cum_cost, order.volume) == (
        "canceled",
        D("0.5"),
        D(30000),
        D(1),
    )


def test_execution_time_reads_rfc3339() -> None:
    assert execution_time_s(frame("new", at_s=T0 + 0.25)) == T0 + 0.25
    naive = Execution(order_id=TXID, exec_type="new", timestamp="2023-11-14T22:13:20")
    assert execution_time_s(naive) == T0  # no zone named: UTC
    nanos = Execution(order_id=TXID, exec_type="new", timestamp="2023-11-14T22:13:20.123456789Z")
    assert execution_time_s(nanos) == pytest.approx(T0 + 0.123456, abs=1e-6)
    with pytest.raises(ValueError):
        execution_time_s(Execution(order_id=TXID, exec_type="new", timestamp="yesterday"))
    bad = frame("trade", exec_id="E1", last_qty=D(1), last_price=D(1), cum_qty=D(1))
    bad.timestamp = "garbled"
    assert apply_execution(tracked(), bad, now_s=T0 + 9).fills[0].time_s == T0 + 9


# --- any arrival order, any duplication: the same order ----------------------------------------
Event = Execution | OrderRef


class Story(msgspec.Struct, frozen=True):
    """A valid sequence of one order's frames (and its place reply) and what it adds up to."""

    events: list[Event]
    volume: Decimal
    price: Decimal
    filled: Decimal
    cost: Decimal
    fees: Decimal
    status: str
    exec_ids: list[str]


@st.composite
def stories(draw: st.DrawFn) -> Story:
    volume = D(draw(st.integers(2, 12))) / 10
    lots = draw(st.lists(st.integers(1, 4), max_size=5))
    events: list[Event] = [frame("pending_new", order_status="pending_new", cum_qty=D(0), order_qty=volume),
                           ref(), frame("new", order_status="new", cum_qty=D(0), order_qty=volume)]  # fmt: skip
    filled = cost = fees = D(0)
    exec_ids: list[str] = []
    amend_after = draw(st.integers(0, len(lots)))
    for i, lot in enumerate(lots):
        qty = min(D(lot) / 10, volume - filled)
        if qty > 0:
            price = D(60000) + draw(st.integers(-20, 20)) / D(10)
            fee = draw(st.integers(0, 50)) / D(100)
            filled, cost, fees = filled + qty, cost + qty * price, fees + fee
            exec_ids.append(f"E{i}")
            events.append(
                trade(f"E{i}", str(qty), str(price), str(filled), str(cost), fee=str(fee))
            )
        if i + 1 == amend_after:
            planned = filled + sum((D(lot) / 10 for lot in lots[i + 1 :]), D(0))
            volume = max(filled, min(volume, planned + D(draw(st.integers(0, 3))) / 10))
            events.append(frame("amended", order_status="partially_filled" if filled else "new",
                                order_qty=volume, limit_price=D("60001.0"), cum_qty=filled,
                                cum_cost=cost))  # fmt: skip
    status = "filled" if filled == volume else draw(st.sampled_from(["canceled", "expired"]))
    price = D("60001.0") if amend_after else D("60000.0")
    events.append(frame(status, order_status=status, order_qty=volume, limit_price=price,
                        cum_qty=filled, cum_cost=cost))  # fmt: skip
    return Story(events, volume, price, filled, cost, fees, status, exec_ids)


def feed(events: list[Event]) -> tuple[TrackedOrder, list[str]]:
    """Apply every event; check at each step that filled never shrinks nor passes the volume."""
    order = tracked(volume=events[0].order_qty if isinstance(events[0], Execution) else D(1))
    exec_ids: list[str] = []
    for event in events:
        before = (RANKS.index(order.status), order.filled)
        if isinstance(event, OrderRef):
            applied = on_placed(order, event)
        else:
            applied = apply_execution(order, event, now_s=T0)
        exec_ids += [f.exec_id for f in applied.fills]
        assert before[1] <= order.filled <= order.volume
        assert before[0] <= RANKS.index(order.status) <= len(RANKS) - 1
    return order, exec_ids


RANKS = ["pending_new", "new", "partially_filled", "filled", "canceled", "expired"]


@settings(max_examples=300, deadline=None)
@given(story=stories(), data=st.data())
def test_any_arrival_order_tells_the_same_story(story: Story, data: st.DataObject) -> None:
    clean, clean_ids = feed(story.events)
    outcome = (clean.filled, clean.cum_cost, clean.fees, clean.status)
    assert outcome == (story.filled, story.cost, story.fees, story.status)
    assert clean_ids == story.exec_ids

    head, *rest = story.events  # the order exists (journalled) before any frame: keep its volume
    shuffled: list[Event] = [head, *data.draw(st.permutations(rest))]
    for copy in data.draw(st.lists(st.sampled_from(story.events), max_size=6)):
        shuffled.insert(data.draw(st.integers(1, len(shuffled))), copy)
    order, exec_ids = feed(shuffled)
    assert (order.filled, order.cum_cost, order.fees, order.status) == outcome
    assert (order.volume, order.price) == (clean.volume, clean.price) == (story.volume, story.price)
    assert sorted(exec_ids) == sorted(story.exec_ids)  # every trade once


# --- the simulator engine's own frames, through the JSON decoder -------------------------------
class SimOrder(msgspec.Struct):
    """What the engine says about one of our orders, and what our machine made of its frames."""

    tracked: TrackedOrder
    fills: list[Fill]
    engine_status: str
    engine_executed: Decimal
    engine_cost: Decimal
    engine_fee: Decimal
    engine_price: Decimal
    balances_before: dict[str, Decimal]  # master's, as the simulator's ledger holds them


def _decoded(event: dict[str, Any]) -> Execution:
    wire = encode({"channel": "executions", "type": "update", "data": [plain(event)]})
    return executions_decoder.decode(wire).data[0]


def run_on_simulator(ending: str) -> tuple[SimOrder, Venue]:
    """`master` rests a bid on the simulator, is filled twice by `mm-xbt`, amends, then
    `ending` ("amend_to_filled", "cancel") closes it; every frame of ours goes to a machine."""
    clock = ManualClock(start_s=T0)
    venue = build_venue(SimSettings(seed=7), clock)
    engine = venue.engine
    master = venue.domain.accounts["master"]
    balances_before = {asset: master.balance(asset) for asset in ("ZUSD", "XXBT")}
    frames: list[Execution] = []
    engine.execution_listeners.append(
        lambda account, event: frames.append(_decoded(event)) if account == "master" else None
    )
    best_ask = engine.books["XXBTZUSD"].best_ask()
    assert best_ask is not None
    bid = D(best_ask - 2) / 10  # inside the spread: ours is the best bid
    placed = engine.add_order("master", OrderRequest(pair="XBT/USD", side="buy", ordertype="limit",
                                                     volume="1", price=str(bid), cl_ord_id="c-1"))  # fmt: skip
    sim_order = placed.order
    order = tracked(volume=D(1), price=bid)
    fills: list[Fill] = []

    def drain() -> None:
        while frames:
            fills.extend(apply_execution(order, frames.pop(0), now_s=clock.time()).fills)

    drain()
    on_placed(
        order,
        OrderRef(txid=sim_order.txid, cl_ord_id="c-1", instrument=XBT_USD, rested_s=clock.time()),
    )
    clock._now_s += 2
    engine.amend("master", sim_order, limit_price=str(bid + D("0.1")))
    drain()
    for volume in ("0.1", "0.15"):
        engine.add_order("mm-xbt", OrderRequest(pair="XBT/USD", side="sell", ordertype="limit",
                                                volume=volume, price=str(bid + D("0.1"))))  # fmt: skip
        drain()
    if ending == "amend_to_filled":
        engine.amend("master", sim_order, order_qty="0.25")
    else:
        engine.cancel("master", [sim_order])
    drain()
    scale = D(1).scaleb(-8)
    assert sim_order.price is not None
    result = SimOrder(order, fills, sim_order.status, sim_order.executed * scale, sim_order.cost,
                      sim_order.fee, D(sim_order.price).scaleb(-1), balances_before)  # fmt: skip
    return result, venue


@pytest.mark.parametrize(
    ("ending", "final"), [("amend_to_filled", "filled"), ("cancel", "canceled")]
)
def test_the_simulators_frames_end_where_its_engine_does(ending: str, final: str) -> None:
    sim, _ = run_on_simulator(ending)
    order = sim.tracked
    assert (order.status, order.filled, order.cum_cost, order.fees) == (
        final, sim.engine_executed, sim.engine_cost, sim.engine_fee)  # fmt: skip
    assert order.price == sim.engine_price
    assert order.rested_s == T0 + 2
    assert [f.qty for f in sim.fills] == [D("0.1"), D("0.15")]
    assert all(f.liquidity == "maker" and f.fee_asset == "USD" for f in sim.fills)
    assert sum(f.qty * f.price for f in sim.fills) == sim.engine_cost
    assert order.volume == (D("0.25") if final == "filled" else D(1))
    assert order.reason == (None if final == "filled" else "User requested")


def test_a_taker_sweeping_several_levels_on_the_simulator() -> None:
    """One match, several trades: the engine's trade frames all carry the match's final
    `cum_qty` with a running `cum_cost`; the machine still ends on the engine's totals."""
    clock = ManualClock(start_s=T0)
    venue = build_venue(SimSettings(seed=7), clock)
    frames: list[Execution] = []
    venue.engine.execution_listeners.append(lambda _account, event: frames.append(_decoded(event)))
    best_ask = venue.engine.books["XXBTZUSD"].best_ask()
    assert best_ask is not None
    limit = D(best_ask + 300) / 10
    placed = venue.engine.add_order("master", OrderRequest(pair="XBT/USD", side="buy", ordertype="limit",
                                                           volume="2", price=str(limit), timeinforce="IOC"))  # fmt: skip
    order = tracked(volume=D(2), price=limit, time_in_force="IOC")
    fills = [f for ex in frames for f in apply_execution(order, ex, now_s=T0).fills]
    engine_order = placed.order
    executed = D(engine_order.executed).scaleb(-8)
    assert len(fills) > 1
    assert sum(f.qty for f in fills) == executed == order.filled
    assert (order.cum_cost, order.fees) == (engine_order.cost, engine_order.fee)
    assert order.status == ("filled" if executed == 2 else "canceled")
    assert all(f.liquidity == "taker" for f in fills)
    assert order.rested_s is None

"""Pre-trade risk: each check refuses with a reason naming the check and its numbers, an order
inside every limit passes, and hostile numbers are refused, never raised."""

from __future__ import annotations

import dataclasses
import decimal
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from orchestrator.config import RiskConfig
from orchestrator.exchange.instruments import Instrument
from orchestrator.workers.risk import (
    DailyLoss,
    PlaceIntent,
    RiskState,
    check_amend,
    check_place,
    order_hold,
)

XBT_USD = Instrument(rest_name="XXBTZUSD", altname="XBTUSD", wsname="XBT/USD", symbol="BTC/USD",
                     base="XXBT", quote="ZUSD", price_decimals=1, qty_decimals=8,
                     tick_size=Decimal("0.1"), ordermin=Decimal("0.0001"),
                     costmin=Decimal("0.5"))  # fmt: skip
HALF_TICK = msgspec.structs.replace(XBT_USD, tick_size=Decimal("0.5"))
LIMITS = RiskConfig(
    max_order_notional=Decimal(10_000),
    max_open_orders=5,
    max_position={"XBT/USD": Decimal(2)},
    price_band_pct=5.0,
    max_daily_loss=Decimal(100),
)
STATE = RiskState(
    trading_state="ACTIVE",
    paused=False,
    book_whole=True,
    mid=Decimal(30_000),
    open_orders=0,
    position=Decimal(0),
    open_buy=Decimal(0),
    open_sell=Decimal(0),
    available={"ZUSD": Decimal(100_000), "XXBT": Decimal(10)},
    daily_pnl=Decimal(0),
)
# Limits that leave only the position check binding (for volumes far above the notional).
POSITION_ONLY = msgspec.structs.replace(LIMITS, max_order_notional=None)
RICH = dataclasses.replace(STATE, available={"ZUSD": Decimal(10**9), "XXBT": Decimal(10**6)})


def order(
    side: str = "buy", volume: Any = "0.1", price: Any = "30000", **changes: Any
) -> PlaceIntent:
    return PlaceIntent(
        instrument=changes.pop("instrument", XBT_USD),
        side=side,  # type: ignore[arg-type]
        order_type=changes.pop("order_type", "limit" if price is not None else "market"),
        volume=Decimal(volume) if isinstance(volume, str) else volume,
        price=Decimal(price) if isinstance(price, str) else price,
        **changes,
    )


def state(**changes: Any) -> RiskState:
    return dataclasses.replace(STATE, **changes)


@pytest.mark.parametrize(
    "intent",
    [
        order("buy"),
        order("sell", "0.3", "29000"),
        order("buy", price=None),
        order("sell", "0.3", None),
        order("buy", time_in_force="IOC"),
        order("buy", post_only=True),
    ],
)
def test_an_order_inside_every_limit_passes(intent: PlaceIntent) -> None:
    assert check_place(LIMITS, intent, STATE) is None


# --- trading state, pause, daily loss, book ---------------------------------------------------


def test_halted_refuses_every_place_and_amend() -> None:
    halted = state(trading_state="HALTED")
    assert check_place(LIMITS, order(), halted) == "trading_state: HALTED, only cancels are allowed"
    assert check_place(LIMITS, order("sell"), halted) is not None
    was = order(price="29000")
    assert check_amend(LIMITS, order(), halted, was=was) == (
        "trading_state: HALTED, only cancels are allowed"
    )


@pytest.mark.parametrize(
    ("position", "open_buy", "open_sell", "side", "volume", "allowed"),
    [
        ("1", "0", "0", "sell", "0.5", True),
        ("1", "0", "0", "sell", "1", True),  # to flat
        ("1", "0", "0", "sell", "1.5", False),  # crosses zero
        ("1", "0", "0.6", "sell", "0.5", False),  # with the open sell, crosses zero
        ("1", "0", "0", "buy", "0.1", False),  # grows
        ("0", "0", "0", "sell", "0.1", False),
        ("0", "0", "0", "buy", "0.1", False),
        ("-1", "0", "0", "buy", "1", True),
        ("-1", "0.5", "0", "buy", "0.6", False),
    ],
)
def test_reducing_allows_only_orders_that_shrink_the_position_without_crossing_zero(
    position: str, open_buy: str, open_sell: str, side: str, volume: str, allowed: bool
) -> None:
    reducing = dataclasses.replace(
        RICH,
        trading_state="REDUCING",
        position=Decimal(position),
        open_buy=Decimal(open_buy),
        open_sell=Decimal(open_sell),
    )
    reason = check_place(POSITION_ONLY, order(side, volume, "30000"), reducing)
    if allowed:
        assert reason is None
    else:
        assert reason is not None
        assert reason.startswith("trading_state: REDUCING allows only orders that shrink")


def test_reducing_names_the_numbers() -> None:
    reducing = state(trading_state="REDUCING", position=Decimal(1), open_sell=Decimal("0.6"))
    assert check_place(LIMITS, order("sell", "0.5"), reducing) == (
        "trading_state: REDUCING allows only orders that shrink the position; position 1 with "
        "open sells 0.6 and this 0.5 would be -0.1"
    )


def test_a_paused_strategy_places_nothing() -> None:
    assert check_place(LIMITS, order(), state(paused=True)) == (
        "paused: the strategy is paused (daily loss limit); only cancels are allowed"
    )


def test_past_the_daily_loss_nothing_is_placed() -> None:
    assert check_place(LIMITS, order(), state(daily_pnl=Decimal("-100.01"))) == (
        "daily_loss: lost 100.01 today, limit 100"
    )
    assert check_place(LIMITS, order(), state(daily_pnl=Decimal(-100))) is None
    unlimited = msgspec.structs.replace(LIMITS, max_daily_loss=None)
    assert check_place(unlimited, order(), state(daily_pnl=Decimal(-(10**6)))) is None


def test_without_a_daily_loss_limit_the_days_pnl_is_not_needed() -> None:
    unlimited = msgspec.structs.replace(LIMITS, max_daily_loss=None)
    assert check_place(unlimited, order(), state(daily_pnl=None)) is None
    # With the limit set the worker always gives it; a state without it is refused, not let go.
    assert check_place(LIMITS, order(), state(daily_pnl=None)) == (
        "daily_loss: today's PnL is not known"
    )


def test_a_book_that_is_not_whole_refuses_orders() -> None:
    assert check_place(LIMITS, order(), state(book_whole=False)) == (
        "book: the XBT/USD book is not whole"
    )


def test_a_market_order_needs_a_mid_and_a_limit_order_a_band() -> None:
    no_mid = state(mid=None)
    assert check_place(LIMITS, order(price=None), no_mid) == (
        "mid: a market order on XBT/USD needs a mid, and the book has none"
    )
    assert check_place(LIMITS, order(), no_mid) == (
        "price_band: no mid on XBT/USD to check price 30000 against"
    )


# --- the instrument ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("intent", "reason"),
    [
        (order(price="30000.05"), "instrument: XBT/USD: price 30000.05 has more than 1 decimals"),
        (order(price="30000.1", instrument=HALF_TICK),
         "instrument: XBT/USD: price 30000.1 is not a positive multiple of the tick 0.5"),
        (order(volume="0.123456789"),
         "instrument: XBT/USD: volume 0.123456789 has more than 8 decimals"),
        (order(volume="0.00009"), "instrument: XBT/USD: volume 0.00009 is below ordermin 0.0001"),
    ],
)  # fmt: skip
def test_decimals_tick_and_ordermin_are_the_instruments(intent: PlaceIntent, reason: str) -> None:
    assert check_place(LIMITS, intent, STATE) == reason


def test_costmin_counts_a_limit_at_its_price_and_a_market_order_at_the_mid() -> None:
    cheap = state(mid=Decimal(3000))
    assert check_place(LIMITS, order(volume="0.0001", price="3000"), cheap) == (
        "costmin: XBT/USD cost 0.3 (0.0001 x 3000) is below costmin 0.5"
    )
    assert check_place(LIMITS, order(volume="0.0001", price=None), cheap) == (
        "costmin: XBT/USD cost 0.3 (0.0001 x 3000) is below costmin 0.5"
    )
    assert check_place(LIMITS, order(volume="0.0002", price="3000"), cheap) is None


# --- price band, notional, open orders ----------------------------------------------------------


def test_a_price_outside_the_band_around_mid_is_refused() -> None:
    assert check_place(LIMITS, order(price="31600"), STATE) == (
        "price_band: price 31600 is 5.33% from mid 30000, band 5%"
    )
    assert check_place(LIMITS, order("sell", price="28400"), STATE) == (
        "price_band: price 28400 is 5.33% from mid 30000, band 5%"
    )
    assert check_place(LIMITS, order(price="31500"), STATE) is None  # exactly 5%: inside
    assert check_place(LIMITS, order(price="28500"), STATE) is None


def test_an_order_above_the_max_notional_is_refused() -> None:
    assert check_place(LIMITS, order(volume="0.4"), STATE) == (
        "max_order_notional: 0.4 x 30000 = 12000 ZUSD above 10000"
    )
    assert check_place(LIMITS, order(volume="0.4", price=None), state(mid=Decimal(25_001))) == (
        "max_order_notional: 0.4 x 25001 = 10000.4 ZUSD above 10000"
    )
    assert check_place(POSITION_ONLY, order(volume="0.4"), STATE) is None


def test_max_open_orders_counts_open_and_pending_orders() -> None:
    assert check_place(LIMITS, order(), state(open_orders=5)) == (
        "max_open_orders: 5 open or pending, limit 5"
    )
    assert check_place(LIMITS, order(), state(open_orders=4)) is None
    none_allowed = msgspec.structs.replace(LIMITS, max_open_orders=0)
    assert (
        check_place(none_allowed, order(), STATE) == "max_open_orders: 0 open or pending, limit 0"
    )


# --- position and balance ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("position", "open_buy", "open_sell", "side", "volume", "after"),
    [
        ("1.8", "0", "0", "buy", "0.3", "2.1"),
        ("1.8", "0.15", "0", "buy", "0.1", "2.05"),  # the open buy counts
        ("-1", "0", "0", "buy", "3.5", "2.5"),  # crosses zero and past the limit
        ("-1.9", "0", "0", "sell", "0.2", "-2.1"),
        ("0", "0", "1.5", "sell", "0.6", "-2.1"),
    ],
)
def test_an_order_that_would_grow_the_position_past_its_limit_is_refused(
    position: str, open_buy: str, open_sell: str, side: str, volume: str, after: str
) -> None:
    held = dataclasses.replace(
        RICH, position=Decimal(position), open_buy=Decimal(open_buy), open_sell=Decimal(open_sell)
    )
    open_same = open_buy if side == "buy" else open_sell
    assert check_place(POSITION_ONLY, order(side, volume), held) == (
        f"max_position: XBT/USD position {position} with open {side}s {open_same} and this "
        f"{volume} would be {after}, limit 2"
    )


@pytest.mark.parametrize(
    ("position", "side", "volume"),
    [
        ("1.8", "buy", "0.2"),  # to the limit exactly
        ("1.8", "sell", "3.8"),  # to the other limit exactly
        ("-2.5", "buy", "0.5"),  # past the limit already: reducing it is allowed
        ("2.5", "sell", "0.1"),
    ],
)
def test_orders_within_the_position_limit_or_back_toward_it_pass(
    position: str, side: str, volume: str
) -> None:
    held = dataclasses.replace(RICH, position=Decimal(position))
    assert check_place(POSITION_ONLY, order(side, volume), held) is None


def test_the_position_limit_may_name_the_pair_by_its_v2_symbol() -> None:
    limits = msgspec.structs.replace(POSITION_ONLY, max_position={"BTC/USD": Decimal(1)})
    reason = check_place(limits, order(volume="1.5"), RICH)
    assert reason is not None
    assert reason.startswith("max_position:")
    assert reason.endswith("would be 1.5, limit 1")


@pytest.mark.parametrize(
    ("intent", "available", "reason"),
    [
        (order(volume="0.1"), {"ZUSD": Decimal("2999.9")},
         "balance: buy 0.1 XBT/USD needs 3000 ZUSD, 2999.9 available"),
        (order(volume="0.1", time_in_force="IOC"), {"ZUSD": Decimal("2999.9")},
         "balance: buy 0.1 XBT/USD needs 3000 ZUSD, 2999.9 available"),
        (order(volume="0.1", price=None), {"ZUSD": Decimal(2000)},  # market: at the mid
         "balance: buy 0.1 XBT/USD needs 3000 ZUSD, 2000 available"),
        (order("sell", volume="0.3"), {"XXBT": Decimal("0.2")},
         "balance: sell 0.3 XBT/USD needs 0.3 XXBT, 0.2 available"),
        (order("sell", volume="0.3", price=None), {},
         "balance: sell 0.3 XBT/USD needs 0.3 XXBT, 0 available"),
    ],
)  # fmt: skip
def test_an_order_needs_its_hold_available(
    intent: PlaceIntent, available: dict[str, Decimal], reason: str
) -> None:
    assert check_place(LIMITS, intent, state(available=available)) == reason


def test_a_market_orders_price_is_an_estimate_priced_not_banded_nor_ticked() -> None:
    """The worker prices a market order at the band's edge: off the tick, at the edge, it is
    not refused for that; its cost, notional and hold are counted at it."""
    edge = order(volume="0.1", price="31500.05", order_type="market")
    assert check_place(LIMITS, edge, STATE) is None
    assert check_place(LIMITS, edge, state(available={"ZUSD": Decimal(3000)})) == (
        "balance: buy 0.1 XBT/USD needs 3150.005 ZUSD, 3000 available"
    )
    assert check_place(LIMITS, order(volume="0.3", price="34000", order_type="market"), STATE) == (
        "max_order_notional: 0.3 x 34000 = 10200 ZUSD above 10000"
    )
    assert check_place(LIMITS, order(price=Decimal("NaN"), order_type="market"), STATE) == (
        "price: NaN is not a positive finite number"
    )
    no_mid = state(mid=None)  # an estimate is no book: a market order still needs a mid
    assert check_place(LIMITS, edge, no_mid) == (
        "mid: a market order on XBT/USD needs a mid, and the book has none"
    )


def test_order_hold() -> None:
    assert order_hold(order(volume="0.25", price="30000")) == ("ZUSD", Decimal(7500))
    assert order_hold(order("sell", volume="0.25")) == ("XXBT", Decimal("0.25"))
    assert order_hold(order(volume="0.5", price=None), Decimal(100)) == ("ZUSD", Decimal(50))
    with pytest.raises(ValueError, match="estimated price"):
        order_hold(order(price=None))


# --- hostile numbers and shapes -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("volume", "check"),
    [
        (Decimal("NaN"), "volume: NaN is not a positive finite number"),
        (Decimal("sNaN"), "volume: sNaN is not a positive finite number"),
        (Decimal("Infinity"), "volume: Infinity is not a positive finite number"),
        (Decimal("-Infinity"), "volume: -Infinity is not a positive finite number"),
        (Decimal(-1), "volume: -1 is not a positive finite number"),
        (Decimal(0), "volume: 0 is not a positive finite number"),
        (Decimal("1e400"), "instrument: XBT/USD: volume 1E+400 is out of range"),
        (Decimal("1e-400"), "instrument: XBT/USD: volume 1E-400 has more than 8 decimals"),
        (0.1, "volume: 0.1 is a float, not a Decimal"),
    ],
)
def test_hostile_volumes_are_refused(volume: Any, check: str) -> None:
    assert check_place(LIMITS, order(volume=volume), STATE) == check
    was = order(volume="0.1")
    assert check_amend(LIMITS, order(volume=volume), STATE, was=was) == check


@pytest.mark.parametrize(
    ("price", "check"),
    [
        (Decimal("NaN"), "price: NaN is not a positive finite number"),
        (Decimal("Infinity"), "price: Infinity is not a positive finite number"),
        (Decimal(-30000), "price: -30000 is not a positive finite number"),
        (Decimal(0), "price: 0 is not a positive finite number"),
        (Decimal("1e400"), "instrument: XBT/USD: price 1E+400 is out of range"),
        (30000, "price: 30000 is a int, not a Decimal"),
    ],
)
def test_hostile_prices_are_refused(price: Any, check: str) -> None:
    assert check_place(LIMITS, order(price=price, order_type="limit"), STATE) == check


@pytest.mark.parametrize(
    ("intent", "reason"),
    [
        (order(price=None, order_type="limit"), "price: a limit order needs a price"),
        (order(price=None, post_only=True), "post_only: a market order cannot be post-only"),
        (order("BUY"), "side: 'BUY' is not one of buy, sell"),
        (order(order_type="stop"), "order_type: 'stop' is not one of limit, market"),
        (order(time_in_force="FOK"), "time_in_force: 'FOK' is not one of GTC, IOC"),
    ],
)
def test_malformed_intents_are_refused(intent: PlaceIntent, reason: str) -> None:
    assert check_place(LIMITS, intent, STATE) == reason


@pytest.mark.parametrize(
    ("changes", "check"),
    [
        ({"mid": Decimal("NaN")}, "mid:"),
        ({"mid": Decimal(0)}, "mid:"),
        ({"daily_pnl": Decimal("NaN")}, "daily_loss:"),
        ({"position": Decimal("NaN")}, "numbers:"),
        ({"available": {"ZUSD": Decimal("sNaN")}}, "numbers:"),
    ],
)
def test_unusable_numbers_in_the_state_refuse_rather_than_raise(
    changes: dict[str, Any], check: str
) -> None:
    reason = check_place(LIMITS, order(), state(**changes))
    assert reason is not None
    assert reason.startswith(check)


hostile = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True),
    st.sampled_from([Decimal("1e400"), Decimal("-1e-400"), Decimal("sNaN"), Decimal(0)]),
)
volumes = st.one_of(hostile, st.decimals(min_value=0, max_value=Decimal("0.4"), places=9))
prices = st.one_of(st.none(), hostile, st.decimals(min_value=28_000, max_value=32_000, places=2))


@example(volume=Decimal("0.1"), price=Decimal("30000"))
@example(volume=Decimal("0.1"), price=None)
@given(volume=volumes, price=prices)
def test_any_number_is_refused_or_is_what_the_venue_takes(
    volume: Decimal, price: Decimal | None
) -> None:
    """Never raises; what passes is within every limit and leaves through the instrument."""
    intent = order(volume=volume, price=price)
    reason = check_place(LIMITS, intent, STATE)
    if reason is not None:
        assert reason.split(":", 1)[0].isidentifier()
        return
    XBT_USD.qty_text(volume)
    cost = volume * (price if price is not None else Decimal(30_000))
    assert XBT_USD.costmin <= cost <= Decimal(10_000)
    if price is not None:
        XBT_USD.price_text(price)
        assert abs(price - 30_000) <= 1500


def test_the_callers_decimal_context_does_not_change_the_verdict() -> None:
    with decimal.localcontext(prec=3):
        assert check_place(LIMITS, order(volume="0.12345678"), STATE) is None
        assert check_place(LIMITS, order(volume="0.4"), STATE) is not None


# --- amend ------------------------------------------------------------------------------------


def test_an_amend_is_checked_in_the_place_of_the_order_it_changes() -> None:
    """The state is without the amended order: its 3000 ZUSD hold is available to the amend,
    and it adds no order, so five others open do not refuse it."""
    was = order(volume="0.1", price="30000")
    others = state(available={"ZUSD": Decimal(3000)}, open_orders=5)
    assert check_amend(LIMITS, order(volume="0.1", price="29000"), others, was=was) is None
    assert check_amend(LIMITS, order(volume="0.2", price="30000"), others, was=was) == (
        "balance: buy 0.2 XBT/USD needs 6000 ZUSD, 3000 available"
    )
    assert check_place(LIMITS, order(), others) == "max_open_orders: 5 open or pending, limit 5"


def test_an_amend_counts_the_position_without_its_own_volume() -> None:
    was = order(volume="0.5")
    held = dataclasses.replace(RICH, position=Decimal("1.4"))
    assert check_amend(POSITION_ONLY, order(volume="0.6"), held, was=was) is None
    assert check_amend(POSITION_ONLY, order(volume="0.7"), held, was=was) == (
        "max_position: XBT/USD position 1.4 with open buys 0 and this 0.7 would be 2.1, limit 2"
    )


def test_an_amend_is_banded_at_its_new_price() -> None:
    was = order(price="30000")
    assert check_amend(LIMITS, order(price="32000"), STATE, was=was) == (
        "price_band: price 32000 is 6.67% from mid 30000, band 5%"
    )


@pytest.mark.parametrize(
    ("after", "reason"),
    [
        (order("sell"), "amend: only price and volume change, not side"),
        (order(post_only=True, time_in_force="IOC"),
         "amend: only price and volume change, not time_in_force, post_only"),
        (order(instrument=HALF_TICK), "amend: only price and volume change, not instrument"),
    ],
)  # fmt: skip
def test_an_amend_changes_only_price_and_volume(after: PlaceIntent, reason: str) -> None:
    assert check_amend(LIMITS, after, STATE, was=order()) == reason


def test_a_market_order_cannot_be_amended() -> None:
    was = order(price=None)
    assert check_amend(LIMITS, order(price=None), STATE, was=was) == (
        "amend: a market order cannot be amended"
    )


# --- the daily loss -------------------------------------------------------------------------------

DAY_S = 86_400
NOON_S = 19_723 * DAY_S + DAY_S / 2  # 2024-01-01 12:00 UTC


def test_the_daily_loss_counts_from_the_days_first_reading_and_latches() -> None:
    daily = DailyLoss(Decimal(100))
    assert not daily.breached(Decimal(50), NOON_S)  # the day's first reading
    assert daily.today_pnl(Decimal(40), NOON_S + 1) == Decimal(-10)
    assert not daily.breached(Decimal(-50), NOON_S + 2)  # lost exactly 100: not past it
    assert daily.breached(Decimal("-50.01"), NOON_S + 3)
    assert daily.breached(Decimal(50), NOON_S + 4)  # back up: still paused today


def test_the_daily_loss_resets_at_midnight_utc() -> None:
    daily = DailyLoss(Decimal(100))
    assert daily.breached(Decimal(-200), NOON_S) is False  # first reading: no loss yet
    assert daily.breached(Decimal(-301), NOON_S + 1)
    last_moment_s = NOON_S + DAY_S / 2 - 0.001
    assert daily.breached(Decimal(-301), last_moment_s)
    midnight_s = NOON_S + DAY_S / 2
    assert not daily.breached(Decimal(-301), midnight_s)  # a new day: -301 is its start
    assert daily.today_pnl(Decimal(-350), midnight_s + 1) == Decimal(-49)
    assert daily.breached(Decimal(-402), midnight_s + 2)


def test_an_unknown_pnl_counts_as_breached_and_no_limit_never_breaches() -> None:
    daily = DailyLoss(Decimal(100))
    daily.breached(Decimal(0), NOON_S)
    assert daily.breached(Decimal("NaN"), NOON_S + 1)
    assert daily.today_pnl(Decimal("NaN"), NOON_S + 2).is_nan()
    unlimited = DailyLoss(None)
    assert not unlimited.breached(Decimal(0), NOON_S)
    assert not unlimited.breached(Decimal(-(10**9)), NOON_S + 1)

"""Money is conserved: any sequence of orders, cancels, transfers and market moves leaves every
asset's total over all accounts (fees and the synthetic market included) unchanged, and no client
balance or hold goes negative."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.clock import ManualClock
from orchestrator.simulator.errors import KrakenError
from orchestrator.simulator.limits import DomainSettings
from orchestrator.simulator.orders import OrderRequest
from orchestrator.simulator.settings import SimSettings
from orchestrator.simulator.venue import build_venue

ACCOUNTS = ["master", "mm-xbt", "twap-eth", "mm-sol"]
PAIRS = {
    "XBT/USD": ("60000.0", "0.1"),
    "ETH/USD": ("3000.00", "0.01"),
    "SOL/USD": ("150.00", "0.01"),
}

order_step = st.tuples(
    st.just("order"),
    st.sampled_from(ACCOUNTS),
    st.sampled_from(list(PAIRS)),
    st.sampled_from(["buy", "sell"]),
    st.sampled_from(["limit", "market"]),
    st.integers(min_value=-30, max_value=30),  # ticks away from the reference price x 10
    st.integers(min_value=1, max_value=400),  # volume in units of 0.001
    st.booleans(),  # post-only
)
cancel_step = st.tuples(
    st.just("cancel"), st.sampled_from(ACCOUNTS), st.integers(min_value=0, max_value=10)
)
transfer_step = st.tuples(
    st.just("transfer"),
    st.sampled_from(ACCOUNTS),
    st.sampled_from(["ZUSD", "XXBT"]),
    st.integers(1, 5000),
)
time_step = st.tuples(st.just("time"), st.floats(min_value=0.05, max_value=30))
steps = st.lists(st.one_of(order_step, cancel_step, transfer_step, time_step), max_size=40)


@settings(max_examples=40, deadline=None)
@given(steps=steps, seed=st.integers(0, 1000))
def test_totals_are_conserved(steps: list[tuple[object, ...]], seed: int) -> None:
    clock = ManualClock()
    venue = build_venue(SimSettings(seed=seed, domain=DomainSettings(multiplier=50)), clock)
    engine = venue.engine
    totals = venue.domain.totals()
    for step in steps:
        kind = step[0]
        try:
            if kind == "order":
                _, account, pair, side, ordertype, offset, volume, post = step
                price, tick = PAIRS[str(pair)]
                limit = Decimal(price) + Decimal(tick) * 10 * int(str(offset))
                engine.add_order(str(account), OrderRequest(
                    pair=str(pair), side=str(side), ordertype=str(ordertype), volume=str(Decimal(int(str(volume))) / 1000),
                    price=str(limit) if ordertype == "limit" else None, post_only=bool(post) and ordertype == "limit",
                ))  # fmt: skip
            elif kind == "cancel":
                _, account, index = step
                opened = list(engine.open_orders(str(account)).values())
                if opened:
                    engine.cancel(str(account), [opened[int(str(index)) % len(opened)]])
            elif kind == "transfer":
                _, target, asset, amount = step
                if target != "master":
                    venue.funding.account_transfer(
                        venue.domain.master, str(asset), str(amount), "master", str(target)
                    )
            else:
                dt_s = float(str(step[1]))
                clock._now_s += dt_s  # no sleepers here: move time without an event loop
                venue.step_markets(dt_s)
        except KrakenError:
            pass  # refusals are fine; they must not move money
        assert venue.domain.totals() == totals
    for account in venue.domain.clients():
        for asset, amount in account.balances.items():
            assert amount >= 0, (account.name, asset, amount)
            assert account.held(asset) <= amount, (account.name, asset)
        open_holds: dict[str, Decimal] = {}
        for order in engine.open_orders(account.name).values():
            open_holds[order.hold_asset] = (
                open_holds.get(order.hold_asset, Decimal(0)) + order.hold_left
            )
        for asset, held in account.holds.items():
            assert held == open_holds.get(asset, Decimal(0)), (account.name, asset)

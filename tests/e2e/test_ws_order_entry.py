"""Order entry over the private WebSocket v2 (`WsOrderEntry`), as the product wires it, against
the simulator on a manual clock: orders placed, amended and cancelled over the socket with their
executions arriving on it and no unit of the key's REST counter spent; the socket down -> every
call over REST; a reply lost, garbled or cut by a reset -> reconciled, exactly one order; a cancel
of a filled order -> False; a cancel the socket refuses -> sent over REST.

Waiting is on frames, never on time (`barrier`, `until` from test_ws_client); time passes only
where the test says so (`pass_time`), a ping round trip after each step keeping the link alive.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal

import fakeredis
import pytest

from orchestrator.clock import ManualClock
from orchestrator.errors import AuthError
from orchestrator.exchange.kraken.account import KrakenAccount, KrakenDomain
from orchestrator.exchange.kraken.ws.client import KrakenWs
from orchestrator.exchange.kraken.ws.order_entry import WsOrderEntry
from orchestrator.exchange.kraken.ws.private import open_private_ws
from orchestrator.exchange.kraken.ws.schemas import BalanceSnapshot, Execution, LedgerUpdate
from orchestrator.exchange.kraken.ws.trading import KrakenWsTrading
from orchestrator.exchange.protocol import OrderSpec, TradingVenue
from orchestrator.simulator.app import RunningSimulator, open_simulator
from tests.e2e.test_ws_client import barrier, io, until
from tests.sim_domains import open_sim_domain

ACCOUNT = "mm-xbt"
REQUEST_TIMEOUT_S = 2.0
WS_TRADING = ("add_order", "amend_order", "cancel_order", "cancel_all", "cancel_all_orders_after")


@dataclass
class Desk:
    """One account's order entry over its private socket, and what the socket heard."""

    sim: RunningSimulator
    clock: ManualClock
    domain: KrakenDomain
    account: KrakenAccount
    ws: KrakenWs
    entry: WsOrderEntry
    run: asyncio.Task[None]
    executions: list[Execution] = field(default_factory=list)
    balances: list[BalanceSnapshot | LedgerUpdate] = field(default_factory=list)

    def spec(self, cl_ord_id: str, price: str | None = "50000.0", **kw: object) -> OrderSpec:
        fields: dict[str, object] = {"side": "buy", "order_type": "limit", "volume": Decimal("0.01"),
                                     "price": None if price is None else Decimal(price)} | kw  # fmt: skip
        return OrderSpec(instrument=self.domain.instruments.get("XBT/USD"), cl_ord_id=cl_ord_id,
                         **fields)  # type: ignore[arg-type]  # fmt: skip

    def sent(self, name: str) -> int:
        """Requests named `name` the venue received: `ws:add_order`, `private:AddOrder`."""
        return self.sim.venue.request_counts.get(name, 0)

    def heard(self, order_id: str) -> list[str]:
        return [e.exec_type for e in self.executions if e.order_id == order_id]

    async def rest_levels(self) -> tuple[float, float]:
        """The key's REST counter, by our limiter and by the venue (one clock: no decay)."""
        ours = await self.domain.limiter.level(
            self.domain.limiter.policy.rest_scope(self.account.rest.key_id)
        )
        venue_scope = f"rest:{self.account.rest.credentials.key.reveal()}"
        return ours, self.sim.venue.limits.levels(self.clock.time()).get(venue_scope, 0.0)

    async def pass_time(self, total_s: float, step_s: float = 0.5) -> None:
        for _ in range(round(total_s / step_s)):
            await self.sim.advance(step_s)
            await barrier(self.ws)

    async def socket_down(self) -> None:
        await self.ws.close()
        await io(self.run)


@pytest.fixture
async def desk(clock: ManualClock) -> AsyncIterator[Desk]:
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    async with (
        open_simulator(clock=clock) as sim,
        open_sim_domain(sim, redis, clock, manual_time=True) as domain,
    ):
        sim.venue.markets_frozen = True  # resting orders stay resting while time passes
        account = domain.account(ACCOUNT)
        account.trading.confirm_delay_s = 0.0
        executions: list[Execution] = []
        balances: list[BalanceSnapshot | LedgerUpdate] = []
        ws = open_private_ws(account, sim.ws_private_url, clock=clock,
                             on_execution=executions.append, on_balance=balances.append,
                             request_timeout_s=REQUEST_TIMEOUT_S)  # fmt: skip
        trading = KrakenWsTrading(ws, permits=domain.limiter, account=ACCOUNT, strategy=None)
        entry = WsOrderEntry(ws, trading, account.trading, clock, confirm_delay_s=0.0)
        run = asyncio.create_task(ws.run())
        try:
            await io(ws.wait_connected())
            desk = Desk(sim, clock, domain, account, ws, entry, run, executions, balances)
            await barrier(ws)  # the snapshots are in
            yield desk
        finally:
            await ws.close()
            with contextlib.suppress(Exception):
                await io(run)
    await redis.aclose()


async def test_orders_placed_amended_cancelled_over_ws_with_executions_and_no_rest_units(
    desk: Desk,
) -> None:
    entry: TradingVenue = desk.entry
    assert desk.entry.connected
    assert any(isinstance(b, BalanceSnapshot) and b.asset == "USD" for b in desk.balances)
    rest_before = await desk.rest_levels()

    ref = await io(entry.place(desk.spec("ws-1")))
    assert ref.rested_s == desk.clock.time()
    await barrier(desk.ws)
    new = next(e for e in desk.executions if e.order_id == ref.txid and e.exec_type == "new")
    assert (new.cl_ord_id, new.limit_price, new.order_qty) == ("ws-1", Decimal(50000),
                                                               Decimal("0.01"))  # fmt: skip

    assert await desk.rest_levels() == pytest.approx(rest_before)  # no REST unit for a place

    await desk.pass_time(6.0)  # an amend of a 6 s old order costs 1 + 2, not 1 + 3
    rest_before = await desk.rest_levels()  # decayed meanwhile; from here no time passes
    ref = await io(entry.amend(ref, volume=Decimal("0.02"), price=Decimal("50001.0")))
    assert ref.rested_s == desk.clock.time()  # priced from the amend from now on
    await barrier(desk.ws)
    amended = next(
        e for e in desk.executions if e.order_id == ref.txid and e.exec_type == "amended"
    )
    assert (amended.limit_price, amended.order_qty) == (Decimal("50001.0"), Decimal("0.02"))
    [order] = [o for o in desk.sim.venue.engine.orders.values() if o.cl_ord_id == "ws-1"]
    assert order.txid == ref.txid  # in place: the same order

    assert await io(entry.cancel(ref)) is True
    await barrier(desk.ws)
    assert desk.heard(ref.txid)[-1] == "canceled"

    refs = [await io(entry.place(desk.spec(f"ws-all-{i}"))) for i in range(2)]
    assert await io(entry.cancel_all(refs)) == 2
    await barrier(desk.ws)
    assert [desk.heard(r.txid)[-1] for r in refs] == ["canceled", "canceled"]

    trigger = await io(entry.dead_man_switch(60))
    assert desk.sim.venue.engine.dead_man[ACCOUNT] == desk.clock.time() + 60
    assert trigger.endswith("Z")
    assert await io(entry.dead_man_switch(0)) == "0"
    assert ACCOUNT not in desk.sim.venue.engine.dead_man

    sent = {n: desk.sent(f"ws:{n}") for n in WS_TRADING}
    assert sent == {"add_order": 3, "amend_order": 1, "cancel_order": 1, "cancel_all": 1,
                    "cancel_all_orders_after": 2}  # fmt: skip
    rest_calls = [n for n in desk.sim.venue.request_counts if n.startswith("private:")]
    assert rest_calls == ["private:GetWebSocketsToken"]  # the token only, at connect
    assert desk.entry.counters == {"ws": 8, "rest": 0}
    # Not a unit of the key's REST counter, by our limiter or the venue; the trading counter
    # charged as the venue charged it.
    assert await desk.rest_levels() == pytest.approx(rest_before)
    venue_trade = desk.sim.venue.limits.levels(desk.clock.time())[f"trade:{ACCOUNT}:XBT/USD"]
    policy = desk.domain.limiter.policy
    ours = await desk.domain.limiter.level(policy.trade_scope(ACCOUNT, "XBT/USD"))
    assert ours == pytest.approx(venue_trade, abs=1e-3)
    assert desk.sim.venue.limits.rejections() == {}


async def test_socket_down_every_call_goes_over_rest(desk: Desk) -> None:
    entry = desk.entry
    await desk.socket_down()
    assert not entry.connected
    ref = await io(entry.place(desk.spec("down-1")))
    ref = await io(entry.amend(ref, price=Decimal("50002.0")))
    state = await io(entry.find_order("down-1"))
    assert state is not None
    assert (state.txid, state.price) == (ref.txid, Decimal("50002.0"))
    assert await io(entry.cancel(ref)) is True
    others = [await io(entry.place(desk.spec(f"down-all-{i}"))) for i in range(2)]
    assert await io(entry.cancel_all(others)) == 2
    await io(entry.dead_man_switch(60))
    assert ACCOUNT in desk.sim.venue.engine.dead_man
    assert await io(entry.open_orders()) == []
    rest = {n: desk.sent(f"private:{n}") for n in ("AddOrder", "AmendOrder", "CancelOrder",
                                                    "CancelAll", "CancelAllOrdersAfter")}  # fmt: skip
    assert rest == {"AddOrder": 3, "AmendOrder": 1, "CancelOrder": 1, "CancelAll": 1,
                    "CancelAllOrdersAfter": 1}  # fmt: skip
    assert [n for n in desk.sim.venue.request_counts if n.removeprefix("ws:") in WS_TRADING] == []
    assert entry.counters == {"ws": 0, "rest": 7}


@pytest.mark.parametrize("fault", ["lost", "garbled", "reset"])
async def test_an_add_order_whose_reply_never_comes_is_placed_exactly_once(
    desk: Desk, fault: str
) -> None:
    faults = desk.sim.venue.settings.faults
    if fault == "lost":
        faults.lost_reply_next, faults.lost_reply_methods = 1, ("add_order",)
    elif fault == "garbled":
        faults.garbled_reply_next, faults.garbled_reply_methods = 1, ("add_order",)
    else:
        faults.reset_reply_next, faults.reset_reply_methods = 1, ("add_order",)
    placing = asyncio.create_task(desk.entry.place(desk.spec(f"once-{fault}")))
    await until(lambda: desk.sent("ws:add_order") == 1)
    if fault != "reset":  # a reset ends the link at once; otherwise the reply is waited for
        await desk.pass_time(REQUEST_TIMEOUT_S)
    ref = await io(placing)
    placed = [o for o in desk.sim.venue.engine.orders.values() if o.cl_ord_id == f"once-{fault}"]
    assert [o.txid for o in placed] == [ref.txid]
    assert desk.sent(f"fault:{fault}_reply") == 1
    assert desk.sent("ws:add_order") == 1  # never sent again, over either link
    assert desk.sent("private:AddOrder") == 0
    assert desk.sent("private:OpenOrders") >= 1  # reconciled by cl_ord_id over REST


async def test_cancel_of_a_filled_order_is_false(desk: Desk) -> None:
    ref = await io(desk.entry.place(desk.spec("fill-1", order_type="market", price=None,
                                              volume=Decimal("0.001"))))  # fmt: skip
    assert ref.rested_s is None  # a market order never rests: its cancel has no age part
    await barrier(desk.ws)
    assert "filled" in desk.heard(ref.txid)
    assert await io(desk.entry.cancel(ref)) is False
    assert desk.sent("ws:cancel_order") == 1
    assert desk.sent("private:CancelOrder") == 0  # Unknown order is an answer, not a failure


async def test_a_cancel_the_socket_refuses_reaches_the_venue_over_rest(desk: Desk) -> None:
    """The socket's token revoked: new orders are refused (not resent elsewhere), but a
    cancel, which must reach the venue, is sent again over REST."""
    ref = await io(desk.entry.place(desk.spec("refused-1")))
    desk.sim.venue.ws_tokens.clear()
    assert desk.entry.connected
    with pytest.raises(AuthError):
        await io(desk.entry.place(desk.spec("refused-2")))
    assert await io(desk.entry.cancel(ref)) is True
    assert desk.sent("ws:cancel_order") == 1
    assert desk.sent("private:CancelOrder") == 1
    assert desk.sent("private:AddOrder") == 0
    state = await io(desk.entry.find_order("refused-1"))
    assert state is not None
    assert state.status == "canceled"


async def test_lost_amend_and_cancel_replies_are_reconciled_not_resent(desk: Desk) -> None:
    faults = desk.sim.venue.settings.faults
    ref = await io(desk.entry.place(desk.spec("lost-2")))
    faults.lost_reply_next, faults.lost_reply_methods = 1, ("amend_order",)
    amending = asyncio.create_task(desk.entry.amend(ref, price=Decimal("50003.0")))
    await until(lambda: desk.sent("ws:amend_order") == 1)
    await desk.pass_time(REQUEST_TIMEOUT_S)
    ref = await io(amending)
    state = await io(desk.entry.find_order("lost-2"))
    assert state is not None
    assert state.price == Decimal("50003.0")

    faults.lost_reply_next, faults.lost_reply_methods = 1, ("cancel_order",)
    cancelling = asyncio.create_task(desk.entry.cancel(ref))
    await until(lambda: desk.sent("ws:cancel_order") == 1)
    await desk.pass_time(REQUEST_TIMEOUT_S)
    assert await io(cancelling) is True  # the venue shows it cancelled: ours took effect
    assert desk.sent("fault:lost_reply") == 2
    assert (desk.sent("ws:amend_order"), desk.sent("ws:cancel_order")) == (1, 1)
    assert (desk.sent("private:AmendOrder"), desk.sent("private:CancelOrder")) == (0, 0)
    assert desk.sent("private:QueryOrders") >= 2  # each settled from the order's state


async def test_an_order_refused_at_its_ws_deadline_is_placed_over_rest(desk: Desk) -> None:
    """The WS `deadline` is sent (the engine refuses the order at it: nothing executed), and
    the order then goes over REST, whose deadline is further out."""
    desk.entry.order_deadline_s = 1.0
    desk.sim.venue.settings.faults.engine_delay_s = 3.0  # REST's deadline is 5 s ahead
    ref = await io(desk.entry.place(desk.spec("late-1")))
    placed = [o for o in desk.sim.venue.engine.orders.values() if o.cl_ord_id == "late-1"]
    assert [o.txid for o in placed] == [ref.txid]
    assert (desk.sent("ws:add_order"), desk.sent("private:AddOrder")) == (1, 1)
    assert desk.sent("error:EService:Deadline elapsed") == 1
    assert desk.entry.counters == {"ws": 1, "rest": 1}


async def test_order_flags_reach_the_venue_over_ws(desk: Desk) -> None:
    """post_only, IOC and GTD (its expiry as RFC 3339) in the venue's own terms."""
    expire_s = desk.clock.time() + 30
    refs = [
        await io(desk.entry.place(desk.spec("flag-post", post_only=True))),
        await io(desk.entry.place(desk.spec("flag-ioc", time_in_force="IOC"))),
        await io(desk.entry.place(desk.spec("flag-gtd", time_in_force="GTD", expire_s=expire_s))),
    ]
    orders = {o.cl_ord_id: o for o in desk.sim.venue.engine.orders.values()}
    post, ioc, gtd = (orders[c] for c in ("flag-post", "flag-ioc", "flag-gtd"))
    assert (post.post_only, post.timeinforce, post.status) == (True, "GTC", "open")
    assert (ioc.timeinforce, ioc.status) == ("IOC", "canceled")  # far from the market: gone
    assert (gtd.timeinforce, gtd.expire_s) == ("GTD", int(expire_s))
    assert [r.rested_s is None for r in refs] == [False, True, False]
    assert desk.sent("ws:add_order") == 3
    assert desk.sent("private:AddOrder") == 0


async def test_a_batch_goes_as_one_batch_add_at_half_the_cost(desk: Desk) -> None:
    specs = [desk.spec("batch-1"), desk.spec("batch-2", price="49000.0"),
             desk.spec("batch-3", side="sell", price="90000.0")]  # fmt: skip
    refs = await io(desk.entry.place_batch(specs))
    assert all(not isinstance(r, Exception) for r in refs)
    venue_orders = {o.cl_ord_id: o for o in desk.sim.venue.engine.open_orders(ACCOUNT).values()}
    assert set(venue_orders) == {"batch-1", "batch-2", "batch-3"}
    assert [getattr(r, "txid", None) for r in refs] == [
        venue_orders[s.cl_ord_id].txid for s in specs
    ]
    assert desk.sent("ws:batch_add") == 1
    assert desk.sent("ws:add_order") == 0
    # three orders of one pair cost ceil(3/2) = 2 on the trading counter, not 3
    levels = desk.sim.venue.limits.levels(desk.clock.time())
    [used] = [v for k, v in levels.items() if ACCOUNT in k and "XBT/USD" in k]
    assert used == 2


async def test_a_batch_whose_reply_is_lost_is_placed_exactly_once(desk: Desk) -> None:
    faults = desk.sim.venue.settings.faults
    faults.lost_reply_next, faults.lost_reply_methods = 1, ("batch_add",)
    specs = [desk.spec("lost-1"), desk.spec("lost-2", price="49000.0")]
    placing = asyncio.create_task(desk.entry.place_batch(specs))
    await until(lambda: desk.sent("ws:batch_add") == 1)
    await desk.pass_time(REQUEST_TIMEOUT_S)
    refs = await io(placing)
    placed = [o for o in desk.sim.venue.engine.orders.values() if o.account == ACCOUNT]
    assert sorted(o.cl_ord_id or "" for o in placed) == ["lost-1", "lost-2"]
    assert [getattr(r, "txid", None) for r in refs] == [
        next(o.txid for o in placed if o.cl_ord_id == s.cl_ord_id) for s in specs
    ]
    assert desk.sent("ws:batch_add") == 1  # reconciled by cl_ord_id, never sent again
    assert desk.sent("private:AddOrder") == 0


async def test_a_batch_with_the_socket_down_goes_order_by_order_over_rest(desk: Desk) -> None:
    await desk.socket_down()
    refs = await io(desk.entry.place_batch([desk.spec("rest-1"), desk.spec("rest-2")]))
    assert all(not isinstance(r, Exception) for r in refs)
    assert desk.sent("private:AddOrder") == 2
    assert desk.sent("ws:batch_add") == 0

"""Containment holds whatever a strategy throws: BaseExceptions, `async def` callbacks, a raising
constructor, hostile numbers in intents, and a market buy whose book went stale."""

from __future__ import annotations

import asyncio
import sys
from decimal import Decimal
from typing import Any

import pytest

from orchestrator.errors import ConfigError, StrategyError
from orchestrator.exchange.kraken.ws.schemas import Execution
from orchestrator.metrics import Registry
from orchestrator.simulator.settings import SimSettings
from orchestrator.strategy import BookView, OrderUpdate, Strategy, StrategyParams
from orchestrator.strategy_loader import load_strategy_class
from orchestrator.testing.harness import ReplayHarness
from orchestrator.workers.containment import CallbackGuard

PAIR = "XBT/USD"


def config(name: str = "s", account: str = "mm-xbt") -> dict[str, Any]:
    return {"name": name, "module": "x", "account": account, "pairs": [PAIR]}


@pytest.mark.parametrize("error", [SystemExit(3), KeyboardInterrupt(), GeneratorExit()])
def test_a_base_exception_from_a_callback_is_contained(error: BaseException) -> None:
    failures: list[tuple[str, str]] = []
    guard = CallbackGuard("s", 1.0, Registry(), on_failure=lambda *f: failures.append(f))

    def callback() -> None:
        raise error

    assert guard.call("on_book", callback) is False
    [(kind, reason)] = failures
    assert kind == "raised"
    assert type(error).__name__ in reason


def test_a_callback_returning_a_coroutine_fails_instead_of_never_running() -> None:
    failures: list[tuple[str, str]] = []
    guard = CallbackGuard("s", 1.0, Registry(), on_failure=lambda *f: failures.append(f))

    async def callback() -> None:  # pragma: no cover - never awaited, closed
        return None

    assert guard.call("on_book", callback) is False
    assert "awaitable" in failures[0][1]


def test_the_loader_refuses_async_callbacks(tmp_path: Any, monkeypatch: Any) -> None:
    (tmp_path / "async_strategy.py").write_text(
        "from orchestrator.strategy import Strategy, StrategyParams\n"
        "class A(Strategy[StrategyParams]):\n"
        "    async def on_book(self, book):\n"
        "        pass\n",
        encoding="utf-8",
    )
    (tmp_path / "exits.py").write_text("import sys\nsys.exit(4)\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match=r"A\.on_book is `async def`"):
        load_strategy_class("async_strategy", entry_points=list)
    with pytest.raises(ConfigError, match="called exit"):
        load_strategy_class("exits", entry_points=list)
    sys.modules.pop("async_strategy", None)
    sys.modules.pop("exits", None)


async def test_a_constructor_that_raises_is_a_strategy_error() -> None:
    class Broken(Strategy[StrategyParams]):
        def __init__(self, ctx: Any) -> None:
            raise SystemExit("no")

    async with ReplayHarness(SimSettings()) as replay:
        with pytest.raises(StrategyError, match="__init__ raised SystemExit"):
            replay.add(config(), Broken)


async def test_strategy_exit_in_a_callback_stops_it_alone() -> None:
    class Exits(Strategy[StrategyParams]):
        def on_book(self, book: BookView) -> None:
            sys.exit(1)

    class Quiet(Strategy[StrategyParams]):
        pass

    async with ReplayHarness(SimSettings()) as replay:
        bad = replay.add(config("bad"), Exits)
        good = replay.add(config("good", "mm-sol"), Quiet)
        await replay.start()
        await replay.run_for(1.0)
        assert bad.state == "failed"
        assert bad.failure is not None
        assert "SystemExit" in bad.failure
        assert good.state == "running"


@pytest.mark.parametrize("volume", [Decimal("NaN"), Decimal("sNaN"), Decimal("Infinity")])
async def test_a_non_finite_amend_is_refused_not_raised(volume: Decimal) -> None:
    class Amends(Strategy[StrategyParams]):
        def on_start(self) -> None:
            self.placed: str | None = None
            self.updates: list[OrderUpdate] = []

        def on_book(self, book: BookView) -> None:
            if self.placed is None and book.mid is not None:
                price = self.ctx.instrument(PAIR).round_price(book.mid * Decimal("0.99"))
                self.placed = self.ctx.place(PAIR, "buy", Decimal("0.01"), price)
            elif self.placed is not None and self.ctx.order(self.placed) is not None:
                self.ctx.amend(self.placed, volume=volume)

        def on_order(self, order: OrderUpdate) -> None:
            self.updates.append(order)

    async with ReplayHarness(SimSettings()) as replay:
        worker = replay.add(config(), Amends)
        await replay.start()
        await replay.run_for(2.0)
        assert worker.state == "running"
        strategy = worker.strategy
        assert isinstance(strategy, Amends)
        assert any(u.reason and "finite" in u.reason for u in strategy.updates)


class HoldsPlaces:
    """The venue takes its time over places: they stay in flight until released."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.release = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def place(self, spec: Any) -> Any:
        await self.release.wait()
        return await self._inner.place(spec)


async def test_a_pending_market_buy_on_a_stale_book_does_not_break_balances() -> None:
    class Buys(Strategy[StrategyParams]):
        def on_start(self) -> None:
            self.sent: str | None = None
            self.seen: list[dict[str, Decimal]] = []

        def on_book(self, book: BookView) -> None:
            if self.sent is None:
                self.sent = self.ctx.place(PAIR, "buy", Decimal("0.01"), order_type="market")

        def on_timer(self, name: str) -> None:
            self.seen.append(dict(self.ctx.balances()))

    venues: list[HoldsPlaces] = []

    def hold(venue: Any) -> Any:
        venues.append(HoldsPlaces(venue))
        return venues[0]

    async with ReplayHarness(SimSettings()) as replay:
        worker = replay.add(config(), Buys, wrap_venue=hold)
        await replay.start()
        await replay.run_for(0.5)
        strategy = worker.strategy
        assert isinstance(strategy, Buys)
        assert strategy.sent is not None
        assert worker.manager.orders[strategy.sent].status == "pending_new"  # held in flight
        replay.market.mark_stale(PAIR)  # no mid to price its hold by any more
        worker.context.set_timer("look", 0.1)
        await replay.run_for(1.0)
        assert worker.state == "running", worker.failure
        [balances] = strategy.seen
        total_usd = replay.venue.domain.accounts["mm-xbt"].balances["ZUSD"]
        assert balances["ZUSD"] < total_usd  # still held at the price it was accepted at
        venues[0].release.set()


@pytest.mark.parametrize(
    "numbers",
    [{"cum_qty": Decimal("NaN")}, {"last_qty": Decimal("-0.5")}, {"last_price": Decimal("Inf")}],
)
async def test_an_execution_with_unusable_numbers_is_refused_not_applied(
    numbers: dict[str, Decimal],
) -> None:
    class Rests(Strategy[StrategyParams]):
        def on_start(self) -> None:
            self.placed: str | None = None

        def on_book(self, book: BookView) -> None:
            if self.placed is None and book.mid is not None:
                price = self.ctx.instrument(PAIR).round_price(book.mid * Decimal("0.99"))
                self.placed = self.ctx.place(PAIR, "buy", Decimal("0.01"), price)

    async with ReplayHarness(SimSettings()) as replay:
        worker = replay.add(config(), Rests)
        await replay.start()
        await replay.run_for(1.0)
        [order] = worker.manager.open_orders()
        before = order.update()
        fields: dict[str, Decimal] = {"last_qty": Decimal("0.01"), "last_price": Decimal(100)}
        garbage = Execution(order_id=order.txid or "", exec_type="trade", cl_ord_id=order.cl_ord_id,
                            timestamp="2026-12-01T00:00:00Z", exec_id="E-bad",
                            **(fields | numbers))  # type: ignore[arg-type]  # fmt: skip
        worker.on_execution(garbage)
        assert order.update() == before
        assert worker.positions.position(PAIR, None).qty == 0
        assert worker.state == "running"

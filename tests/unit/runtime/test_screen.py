"""The status screen's pure rendering: every figure of a snapshot reaches the screen, and the
summary says what a stop left behind."""

from __future__ import annotations

from decimal import Decimal

import msgspec
from rich.console import Console

from orchestrator.runtime.screen import render, render_summary, summary_lines
from orchestrator.runtime.status import (
    MoveStatus,
    PoolStatus,
    PositionStatus,
    RebalancerStatus,
    ServiceStatus,
    StrategyStatus,
)


def snapshot(*, venue_rejections: int | None = 0, redis_up: bool = True,
             rebalancer: RebalancerStatus | None = None) -> ServiceStatus:  # fmt: skip
    position = PositionStatus(qty=Decimal("0.03"), avg_price=Decimal(50_000),
                              realized_pnl=Decimal("1.5"), unrealized_pnl=Decimal("-0.25"),
                              fees=Decimal("0.1"), mark=Decimal(50_010))  # fmt: skip
    maker = StrategyStatus(name="mm-xbt", state="running", account="sub-1", open_orders=2,
                           placed=17, amended=41, fills=9, pnl=Decimal("1.25"), failure=None,
                           positions={"XBT/USD": position},
                           balances={"XXBT": Decimal("0.53"), "ZUSD": Decimal("9876.5")},
                           weight_share=0.5, pool_share=0.62, mean_wait_s=0.0021,
                           max_wait_s=0.012)  # fmt: skip
    failed = StrategyStatus(name="grid-sol", state="failed", open_orders=0, fills=0,
                            pnl=Decimal(-3), failure="on_book raised ValueError")  # fmt: skip
    return ServiceStatus(time_s=0.0, uptime_s=42.0, trading_state="ACTIVE", redis_up=redis_up,
                         venue="simulator", strategies=[maker, failed],
                         pools=[PoolStatus(scope="domain:XBT/USD", level_ratio=0.37,
                                           rate_ratio=0.81),
                                PoolStatus(scope="domain:SOL/USD", level_ratio=None,
                                           rate_ratio=0.0)],
                         venue_rejections=venue_rejections, rate_limit_errors=0,
                         usage_window_s=10.0, loop_lag_p99_s=0.00042,
                         rebalancer=rebalancer)  # fmt: skip


def text_of(renderable: object, width: int = 200) -> str:
    console = Console(width=width, record=True, force_terminal=False)
    console.print(renderable)
    return console.export_text()


def test_every_figure_of_a_strategy_and_a_pool_is_on_the_screen() -> None:
    screen = text_of(render(snapshot()))
    assert "up 42 s" in screen
    assert "ACTIVE" in screen
    assert "rate-limit rejections: venue 0, answered us 0" in screen
    assert "loop lag p99 0.42 ms" in screen
    row = next(line for line in screen.splitlines() if "mm-xbt" in line)
    for shown in ("sub-1", "running", "17", "41", "9", "XBT 0.03", "1.25", "XXBT 0.5300",
                  "ZUSD 9,876.50", "62% / 50%", "2.1 (max 12)"):  # fmt: skip
        assert shown in row, (shown, row)
    assert "on_book raised ValueError" in screen
    pool = next(line for line in screen.splitlines() if "domain:XBT/USD" in line)
    assert "37%" in pool
    assert "81%" in pool
    assert "unknown" in next(line for line in screen.splitlines() if "domain:SOL/USD" in line)


def test_the_status_page_is_named_on_the_screen_once_served() -> None:
    assert "status page" not in text_of(render(snapshot()))
    served = msgspec.structs.replace(snapshot(), status_page="http://127.0.0.1:9464/")
    assert "status page http://127.0.0.1:9464/  Ctrl-C stops" in text_of(render(served))


def test_a_dead_redis_and_a_kraken_venue_say_so() -> None:
    screen = text_of(render(snapshot(venue_rejections=None, redis_up=False)))
    assert "redis DOWN" in screen
    assert "venue n/a" in screen


def test_the_summary_names_what_was_left() -> None:
    summary = text_of(render_summary(snapshot(), open_orders_left=3))
    assert "stopped: 3 open orders left at the venue" in summary
    assert "rate-limit rejections: venue 0" in summary
    lines = summary_lines(snapshot(venue_rejections=2), open_orders_left=0)
    assert lines[-2] == "rate-limit rejections: venue 2, answered us 0"
    assert lines[-1] == "stopped: 0 open orders left at the venue"
    assert lines[0].startswith("mm-xbt")


def test_the_rebalancers_moves_are_on_the_screen_and_in_the_summary() -> None:
    moves = [MoveStatus(id="a1b2c3d4e5", kind="transfer", asset="ZUSD", amount=Decimal("2500"),
                        source="master", target="twap-eth", reason="band_low", state="complete",
                        updated_s=0.0),
             MoveStatus(id="f6f6f6f6f6", kind="transfer", asset="ZUSD", amount=Decimal(40),
                        source="grid-sol", target="master", reason="band_high", state="failed",
                        updated_s=0.0, error="EFunding:Insufficient funds")]  # fmt: skip
    rebalancer = RebalancerStatus(paused=False, last_cycle_s=-12.0, last_trigger="period",
                                  last_error=None, moves=moves)  # fmt: skip
    screen = text_of(render(snapshot(rebalancer=rebalancer)))
    assert "rebalancer: last cycle 12 s ago (period)" in screen
    row = next(line for line in screen.splitlines() if "a1b2c3d4" in line)
    for shown in ("ZUSD", "2500", "master", "twap-eth", "band_low", "complete"):
        assert shown in row, (shown, row)
    assert "EFunding:Insufficient funds" in screen
    lines = summary_lines(snapshot(rebalancer=rebalancer), open_orders_left=0)
    assert "rebalancer moves: 1 complete, 1 failed" in lines
    assert "rebalancer" not in text_of(render(snapshot()))  # not enabled: no table

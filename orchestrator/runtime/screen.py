"""What the service shows while it runs: a live screen on a terminal, status lines otherwise.

On a terminal (stdout is a TTY) a `rich` screen is redrawn in place every `refresh_s` (a
maintained library: it handles terminal width, colour support and redraw without flicker):
a header (uptime, trading state, Redis, venue, rate-limit rejections), one row per strategy
(state, open orders, fills, position, PnL, balance, limiter share against weight, wait) and one
row per domain pool (its counter's level across every process, and the rate this process was
granted against the pool's decay). Anywhere else (a pipe, a log file, CI) it prints plain status
lines every `interval_s`. Either way the snapshot also goes to Redis every `interval_s` (what
operators' tools read) and to the log. At the end, a summary: what each strategy did, the open
orders left and the rate-limit rejections seen.
"""

from __future__ import annotations

import contextlib
from decimal import Decimal
from typing import TYPE_CHECKING, Final, TextIO

import msgspec
import redis.asyncio as aioredis
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from orchestrator.clock import Clock
from orchestrator.errors import StoreError
from orchestrator.logs import get_logger
from orchestrator.runtime.status import (
    RebalancerStatus,
    ServiceStatus,
    StrategyStatus,
    format_line,
    format_pool_line,
    service_status,
)
from orchestrator.store.errors import redis_errors
from orchestrator.store.keys import Keys

if TYPE_CHECKING:
    from orchestrator.service import Service

log = get_logger(__name__)

SCREEN_REFRESH_S: Final = 0.5
_STATE_STYLE: Final = {"running": "green", "starting": "yellow", "stopping": "yellow",
                       "stopped": "dim", "failed": "bold red", "not_started": "red",
                       "disabled": "dim"}  # fmt: skip
_encode = msgspec.json.Encoder(decimal_format="string").encode


def _num(value: Decimal, places: int = 2) -> str:
    return f"{value:,.{places}f}"


def _qty(value: Decimal) -> str:
    return f"{value.normalize():f}" if value else "0"


def _position(status: StrategyStatus) -> str:
    parts = [f"{pair.split('/')[0]} {_qty(p.qty)}" for pair, p in status.positions.items()]
    return ", ".join(parts) or "-"


def _balances(status: StrategyStatus) -> str:
    return "  ".join(f"{asset} {_num(v, 4 if v < 100 else 2)}"
                     for asset, v in status.balances.items()) or "-"  # fmt: skip


def _pnl(value: Decimal) -> Text:
    return Text(_num(value), style="green" if value > 0 else "red" if value < 0 else "")


def _rejections(status: ServiceStatus) -> Text:
    venue = "n/a" if status.venue_rejections is None else str(status.venue_rejections)
    bad = bool(status.venue_rejections) or status.rate_limit_errors > 0
    return Text(f"rate-limit rejections: venue {venue}, answered us {status.rate_limit_errors}",
                style="bold red" if bad else "green")  # fmt: skip


def _loop_lag(status: ServiceStatus) -> Text:
    lag_s = status.loop_lag_p99_s
    if lag_s is None:
        return Text("")
    return Text(f"  loop lag p99 {lag_s * 1000:.2f} ms", style="yellow" if lag_s > 0.005 else "")


def render(status: ServiceStatus) -> RenderableType:
    """The whole screen for one snapshot (pure: tests render it to text)."""
    header = Text.assemble(
        ("orchestrator", "bold"),
        f"  up {status.uptime_s:,.0f} s  trading ",
        (status.trading_state, "green" if status.trading_state == "ACTIVE" else "bold red"),
        "  redis ", ("up", "green") if status.redis_up else ("DOWN", "bold red"),
        f"  venue {status.venue}  ", _rejections(status), _loop_lag(status),
    )  # fmt: skip
    strategies = Table(title="strategies", title_justify="left", expand=True)
    for column in ("strategy", "account", "state"):
        strategies.add_column(column, no_wrap=True)
    numbers = ("open", "placed", "amended", "fills", "position", "PnL", "balance",
               "share / weight", "wait ms")  # fmt: skip
    for column in numbers:
        strategies.add_column(column, justify="right", no_wrap=column != "balance")
    for s in status.strategies:
        state = Text(s.state, style=_STATE_STYLE.get(s.state, ""))
        if s.failure:
            state.append(f" ({s.failure})", style="red")
        strategies.add_row(
            s.name, s.account, state, str(s.open_orders), str(s.placed), str(s.amended),
            str(s.fills), _position(s),
            _pnl(s.pnl), _balances(s), f"{s.pool_share:.0%} / {s.weight_share:.0%}",
            f"{s.mean_wait_s * 1000:.1f} (max {s.max_wait_s * 1000:.0f})",
        )  # fmt: skip
    pools = Table(title="domain pools (shared by every sub-account)", title_justify="left")
    pools.add_column("pool", no_wrap=True)
    pools.add_column("counter level (all processes)", justify="right")
    pools.add_column(f"granted rate / decay (this process, last {status.usage_window_s:g} s)",
                     justify="right")  # fmt: skip
    for p in status.pools:
        level = "unknown" if p.level_ratio is None else f"{p.level_ratio:.0%}"
        pools.add_row(p.scope, level, f"{p.rate_ratio:.0%}")
    parts: list[RenderableType] = [header, strategies, pools]
    if status.rebalancer is not None:
        parts.append(_moves(status, status.rebalancer))
    page = f"status page {status.status_page}  " if status.status_page else ""
    parts.append(Text(f"{page}Ctrl-C stops: every order is cancelled", style="dim"))
    return Group(*parts)


_MOVE_STYLE: Final = {"complete": "green", "failed": "bold red", "pending": "yellow",
                      "awaiting_approval": "yellow", "sent": "yellow",
                      "intent": "yellow"}  # fmt: skip


def _moves(status: ServiceStatus, rebalancer: RebalancerStatus) -> RenderableType:
    if rebalancer.last_cycle_s is None:
        last = "no cycle yet"
    else:
        ago_s = max(0.0, status.time_s - rebalancer.last_cycle_s)
        last = f"last cycle {ago_s:,.0f} s ago ({rebalancer.last_trigger})"
        if rebalancer.last_error:
            last += f": {rebalancer.last_error}"
    title = f"rebalancer{' (PAUSED)' if rebalancer.paused else ''}: {last}"
    table = Table(title=title, title_justify="left")
    for column in ("move", "asset", "amount", "from", "to", "why", "state"):
        table.add_column(column, justify="right" if column == "amount" else "left", no_wrap=True)
    for m in rebalancer.moves[:8]:
        state = Text(m.state, style=_MOVE_STYLE.get(m.state, ""))
        if m.error and m.state != "complete":
            state.append(f" ({m.error})", style="red")
        table.add_row(m.id[:8], m.asset, _qty(m.amount), m.source, m.target, m.reason, state)
    if not rebalancer.moves:
        table.add_row("-", "", "", "", "", "nothing to move", "")
    return table


def render_summary(status: ServiceStatus, open_orders_left: int) -> RenderableType:
    table = Table(title="summary", title_justify="left")
    for column in ("strategy", "state", "placed", "amended", "fills", "PnL", "open orders left"):
        table.add_column(column, justify="left" if column in ("strategy", "state") else "right")
    for s in status.strategies:
        table.add_row(s.name, s.state, str(s.placed), str(s.amended), str(s.fills),
                      _pnl(s.pnl), str(s.open_orders))  # fmt: skip
    left = Text(f"stopped: {open_orders_left} open orders left at the venue",
                style="green" if open_orders_left == 0 else "bold red")  # fmt: skip
    moved = _moves_line(status)
    return Group(table, *([Text(moved)] if moved else []), _rejections(status), left)


def _moves_line(status: ServiceStatus) -> str | None:
    if status.rebalancer is None:
        return None
    states: dict[str, int] = {}
    for move in status.rebalancer.moves:
        states[move.state] = states.get(move.state, 0) + 1
    counted = ", ".join(f"{n} {state}" for state, n in sorted(states.items())) or "none"
    return f"rebalancer moves: {counted}"


def summary_lines(status: ServiceStatus, open_orders_left: int) -> list[str]:
    venue = "n/a" if status.venue_rejections is None else str(status.venue_rejections)
    moved = _moves_line(status)
    return [*(format_line(s) for s in status.strategies), *([moved] if moved else []),
            f"rate-limit rejections: venue {venue}, answered us {status.rate_limit_errors}",
            f"stopped: {open_orders_left} open orders left at the venue"]  # fmt: skip


class StatusReporter:
    """Shows the status (`screen`: live on a terminal; else lines) and stores it in Redis."""

    def __init__(
        self, service: Service, clock: Clock, *, redis: aioredis.Redis, keys: Keys,
        interval_s: float, out: TextIO, screen: bool, refresh_s: float = SCREEN_REFRESH_S,
    ) -> None:  # fmt: skip
        self.service = service
        self.clock = clock
        self.redis = redis
        self.key = keys.strategy_status()
        self.interval_s = interval_s
        self.refresh_s = refresh_s
        self.out = out
        self.screen = screen
        self.console = Console(file=out, force_terminal=screen or None, highlight=False)

    async def snapshot(self) -> ServiceStatus:
        return await service_status(self.service, now_s=self.clock.time(),
                                    monotonic_s=self.clock.monotonic())  # fmt: skip

    async def run(self) -> None:
        if self.screen:
            await self._live()
        else:
            while True:
                await self.clock.sleep(self.interval_s)
                await self.report()

    async def _live(self) -> None:
        # `auto_refresh=False`: rich would redraw from its own thread; we redraw on the loop.
        with Live(console=self.console, auto_refresh=False, transient=False) as live:
            stored_s = self.clock.monotonic()
            while True:
                status = await self.snapshot()
                live.update(render(status), refresh=True)
                if self.clock.monotonic() - stored_s >= self.interval_s:
                    stored_s = self.clock.monotonic()
                    await self._store(status)
                await self.clock.sleep(self.refresh_s)

    async def report(self) -> ServiceStatus:
        """One snapshot, printed as lines, logged and stored."""
        status = await self.snapshot()
        lines = [format_line(s) for s in status.strategies]
        lines += [format_pool_line(p) for p in status.pools]
        if lines:
            print("\n".join(lines), file=self.out, flush=True)
        await self._store(status)
        return status

    async def _store(self, status: ServiceStatus) -> None:
        for s in status.strategies:
            log.info("service.status", strategy=s.name, state=s.state, open_orders=s.open_orders,
                     fills=s.fills, pnl=str(s.pnl), pool_share=round(s.pool_share, 4))  # fmt: skip
        if not status.strategies:
            return
        mapping = {s.name: _encode(s) for s in status.strategies}
        try:
            async with redis_errors(self.redis, "status.write"):
                await self.redis.hset(self.key, mapping=mapping)  # type: ignore[arg-type]
        except StoreError as exc:
            log.warning("service.status_not_written", error=str(exc))

    async def final(self, open_orders_left: int) -> None:
        status = await self.snapshot()
        await self._store(status)
        if self.screen:
            self.console.print(render_summary(status, open_orders_left))
        else:
            print("\n".join(summary_lines(status, open_orders_left)), file=self.out, flush=True)


def is_terminal(out: TextIO) -> bool:
    with contextlib.suppress(AttributeError, ValueError):
        return out.isatty()
    return False

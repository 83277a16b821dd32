"""The service's state as Prometheus families read at each scrape (`Registry.sampled`): the
strategies, their orders and PnL, the books, the sockets, the dead man's switches.

What changes on events (permits, fills, commands, transfers, reconnects) is counted where it
happens; what is a state of live objects is read here when Prometheus asks, so it is never out
of date and never left behind by an object that went away. Each reader walks the service's
handful of strategies and pairs: microseconds per scrape.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from orchestrator.metrics import LabelValues, Registry
from orchestrator.rebalancer.transfers import OPEN_STATES

if TYPE_CHECKING:
    from orchestrator.service import Service


def register_service_metrics(service: Service, registry: Registry) -> None:
    """Every sampled family of `service` into `registry`."""

    def strategy_states() -> dict[LabelValues, float]:
        states: dict[LabelValues, float] = {
            (name, unit.worker.state): 1.0 for name, unit in service.units.items()
        }
        states.update({(name, "not_started"): 1.0 for name in service.not_started})
        return states

    def open_orders() -> dict[LabelValues, float]:
        counts: dict[LabelValues, float] = {}
        for name, unit in service.units.items():
            for order in unit.worker.manager.open_orders():
                key = (name, order.status)
                counts[key] = counts.get(key, 0.0) + 1.0
        return counts

    def pnl() -> dict[LabelValues, float]:
        return {(name,): float(unit.worker.pnl()) for name, unit in service.units.items()}

    def books_whole() -> dict[LabelValues, float]:
        hub = service.hub
        return {(pair,): float(hub.is_whole(pair)) for pair in hub.pairs}

    def reconnects() -> dict[LabelValues, float]:
        counts: dict[LabelValues, float] = {
            ("public",): float(service.hub.ws.counters["reconnects"])
        }
        for name, unit in service.units.items():
            counts[(f"private:{name}",)] = float(unit.ws.counters["reconnects"])
        return counts

    def armed_at() -> dict[LabelValues, float]:
        return {(name,): unit.dead_man.last_armed_s for name, unit in service.units.items()
                if unit.dead_man.last_armed_s is not None}  # fmt: skip

    def refresh_interval() -> dict[LabelValues, float]:
        return {(name,): unit.dead_man.refresh_s for name, unit in service.units.items()}

    def refreshes() -> dict[LabelValues, float]:
        return {(name, outcome): float(count) for name, unit in service.units.items()
                for outcome, count in (("armed", unit.dead_man.refreshes),
                                       ("withheld", unit.dead_man.misses),
                                       ("failed", unit.dead_man.failures))}  # fmt: skip

    def oldest_open_move() -> dict[LabelValues, float]:
        oldest: dict[LabelValues, float] = {}
        for record in service.rebalancer.recent if service.rebalancer is not None else ():
            if record.state in OPEN_STATES:
                key = (record.state,)
                oldest[key] = min(oldest.get(key, math.inf), record.created_s)
        return oldest

    def pool_shares() -> dict[LabelValues, float]:
        limiter = service.domain.limiter
        view = limiter.usage.view(limiter.clock.monotonic())
        total_weight = sum(limiter.weights.values()) or 1.0
        shares: dict[LabelValues, float] = {}
        for name in service.units:
            took = view.strategies.get(name)
            shares[(name, "taken")] = took.share if took else 0.0
            shares[(name, "weight")] = limiter.weights.get(name, 0.0) / total_weight
        return shares

    def halted() -> dict[LabelValues, float]:
        return {(): float(service.trading_state.state == "HALTED")}

    r = registry
    r.sampled("orch_strategy_state", "1 for each strategy's state (running, paused, failed...)",
              ["strategy", "state"], strategy_states)  # fmt: skip
    r.sampled("orch_orders_open", "Open orders by strategy and status", ["strategy", "status"],
              open_orders)  # fmt: skip
    r.sampled("orch_strategy_pnl", "Realized + unrealized PnL, quote units", ["strategy"], pnl)
    r.sampled("orch_feed_book_whole", "1 while a subscribed book is whole (verified)", ["pair"],
              books_whole)  # fmt: skip
    r.sampled("orch_ws_reconnects", "WebSocket reconnects", ["socket"], reconnects,
              kind="counter")  # fmt: skip
    r.sampled("orch_deadman_last_armed_timestamp_seconds",
              "When the venue last took a dead man's switch refresh (Unix time)", ["strategy"],
              armed_at)  # fmt: skip
    r.sampled("orch_deadman_refresh_interval_seconds", "How often the switch is refreshed",
              ["strategy"], refresh_interval)  # fmt: skip
    r.sampled("orch_deadman_refreshes", "Dead man's switch refreshes by outcome",
              ["strategy", "outcome"], refreshes, kind="counter")  # fmt: skip
    r.sampled("orch_transfers_oldest_open_timestamp_seconds",
              "When the oldest move not final yet in each state was created (Unix time)",
              ["state"], oldest_open_move)  # fmt: skip
    r.sampled("orch_strategy_pool_share",
              "A strategy's share of the domain pools: what its weight entitles it to, and "
              "what it took of this process's permits over the usage window",
              ["strategy", "kind"], pool_shares)  # fmt: skip
    r.sampled("orch_trading_halted", "1 while the desk is halted", [], halted)

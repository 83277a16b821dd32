"""Each operator command against the running service: a real redis-server, the simulator as the
venue, the command signed and sent by `ControlClient` as `orchestrator ctl` sends it.

What a command changed is read from the venue (the simulator in this process) and from Redis
where it can be, not only from the reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from orchestrator.control.client import ControlClient
from orchestrator.control.replies import Reply
from orchestrator.control.trading import TradingSwitch
from orchestrator.service import Service
from orchestrator.simulator.app import RunningSimulator, open_simulator
from orchestrator.simulator.settings import SimSettings, domain_accounts
from orchestrator.store.keys import Keys
from orchestrator.testing.service import open_orders, until
from tests.service_harness import (
    ServiceSetup,
    StrategySpec,
    operator_client,
    running_service,
    write_config,
)

pytestmark = pytest.mark.e2e

FUNDS = {"ZUSD": Decimal(50_000), "XXBT": Decimal(2), "XETH": Decimal(20)}
WIDE = {"size": "0.01", "spread_bps": 80, "requote_bps": 40}  # rests, never fills
MAKERS = [
    StrategySpec("mm0", "s0", "XBT/USD", WIDE),
    StrategySpec("mm1", "s1", "ETH/USD", {"size": "0.1", "spread_bps": 80, "requote_bps": 40}),
]


@contextlib.asynccontextmanager
async def desk(
    tmp: Path, redis_url: str, keys: Keys, *, rebalancer: dict[str, Any] | None = None,
    strategies: list[StrategySpec] = MAKERS,
) -> AsyncIterator[tuple[RunningSimulator, Service, ControlClient]]:  # fmt: skip
    async with open_simulator(SimSettings(accounts=domain_accounts(3, FUNDS))) as sim:
        setup = ServiceSetup(tmp, sim, redis_url, keys.namespace, strategies,
                             rebalancer=rebalancer is not None,
                             extra={"rebalancer": rebalancer or {}})  # fmt: skip
        async with running_service(write_config(setup)) as service, \
                operator_client(redis_url, keys.namespace) as client:  # fmt: skip
            accounts = [spec.account for spec in strategies]
            await until(lambda: all(open_orders(sim, a) == 2 for a in accounts), what="quotes")
            yield sim, service, client


async def ask(client: ControlClient, type_name: str, **fields: Any) -> Reply:
    reply = await client.request(client.command(type_name, **fields), timeout_s=15)
    assert reply.ok, reply.error
    return reply


async def test_reads_show_the_desk(tmp_path: Path, redis_server: str, keys: Keys) -> None:
    async with desk(tmp_path, redis_server, keys) as (_sim, _service, client):
        status = (await ask(client, "status")).result
        assert status["trading_state"] == "ACTIVE"
        assert [p["process"] for p in status["processes"]] == ["proc-a"]
        strategies = (await ask(client, "list_strategies")).result
        assert {r["strategy"]: (r["state"], r["open_orders"]) for r in strategies} == {
            "mm0": ("running", 2), "mm1": ("running", 2)}  # fmt: skip
        limits = (await ask(client, "limits")).result
        scopes = {s["scope"] for s in limits["scopes"]}
        assert {"domain:XBT/USD", "domain:ETH/USD"} <= scopes
        assert {s["strategy"] for s in limits["strategies"]} >= {"mm0", "mm1"}
        assert limits["weights"] == {"mm0": 1.0, "mm1": 1.0}
        assert (await ask(client, "list_transfers")).result == []
        assert (await ask(client, "approve_status")).result == []


async def test_strategy_commands_act_on_that_strategy_alone(
    tmp_path: Path, redis_server: str, keys: Keys
) -> None:
    async with desk(tmp_path, redis_server, keys) as (sim, service, client):
        mm0, mm1 = service.units["mm0"].worker, service.units["mm1"].worker

        await ask(client, "pause_strategy", strategy="mm0")
        await until(
            lambda: open_orders(sim, "s0") == 0, what="a paused strategy's orders cancelled"
        )
        assert mm0.state == "paused"
        assert open_orders(sim, "s1") == 2
        refused = await client.request(client.command("pause_strategy", strategy="mm0"))
        assert not refused.ok
        assert "paused, not running" in (refused.error or "")

        await ask(client, "resume_strategy", strategy="mm0")
        assert service.units["mm0"].worker.state == "running"  # read again: mypy narrowed it
        await until(lambda: open_orders(sim, "s0") == 2, what="quotes again after resume")

        reply = await ask(client, "set_params", strategy="mm1",
                          params={"size": "0.2", "spread_bps": "90", "requote_bps": "40"})  # fmt: skip
        assert mm1.context.params.size == Decimal("0.2")
        assert reply.result["params"]["spread_bps"] == "90"
        bad = await client.request(client.command("set_params", strategy="mm1",
                                                  params={"size": "0.2", "sprad_bps": 3}))  # fmt: skip
        assert not bad.ok
        assert "sprad_bps" in (bad.error or "")
        assert mm1.context.params.size == Decimal("0.2")  # a refused set_params changes nothing

        cancelled = await ask(client, "cancel_all", strategy="mm1")
        assert cancelled.result["open_orders_left"] == 0
        assert open_orders(sim, "s0") == 2  # the other strategy's orders are untouched
        await until(lambda: open_orders(sim, "s1") == 2, what="mm1 quotes again (it still runs)")

        stopped = await ask(client, "stop_strategy", strategy="mm1")
        assert stopped.result == {"strategy": "mm1", "state": "stopped", "open_orders_left": 0}
        assert open_orders(sim, "s1") == 0
        assert open_orders(sim, "s0") == 2

        await ask(client, "start_strategy", strategy="mm1")
        await until(lambda: open_orders(sim, "s1") == 2, what="restarted strategy quotes")
        # Params an operator set outlive the stop.
        assert service.units["mm1"].worker.context.params.size == Decimal("0.2")
        again = await client.request(client.command("start_strategy", strategy="mm1"))
        assert not again.ok
        assert "already running" in (again.error or "")


async def test_halt_cancels_everything_and_refuses_new_orders_until_resumed(
    tmp_path: Path, redis_server: str, keys: Keys
) -> None:
    async with desk(tmp_path, redis_server, keys) as (sim, service, client):
        engine = sim.venue.engine
        sent_s = time.monotonic()
        reply = await ask(client, "halt", reason="test: fat finger")
        assert time.monotonic() - sent_s < 1.0
        assert open_orders(sim, "s0") == open_orders(sim, "s1") == 0
        assert reply.result["trading_state"] == "HALTED"
        assert set(reply.result["processes"]["proc-a"]["accounts"]) == {"s0", "s1"}
        record = await TradingSwitch(client.redis, keys, service.domain.limiter.clock).read()
        assert (record.state, record.reason, record.operator) == ("HALTED", "test: fat finger",
                                                                   "alice")  # fmt: skip
        orders_at_halt = len(engine.orders)
        await asyncio.sleep(2.0)  # the market moves: the makers would requote
        assert len(engine.orders) == orders_at_halt, "no order reached the venue while halted"

        await ask(client, "resume_trading")
        assert service.trading_state.state == "ACTIVE"
        await until(
            lambda: open_orders(sim, "s0") == open_orders(sim, "s1") == 2, what="quotes again"
        )


async def test_cancel_all_of_an_account_and_of_everything(
    tmp_path: Path, redis_server: str, keys: Keys
) -> None:
    async with desk(tmp_path, redis_server, keys) as (sim, service, client):
        reply = await ask(client, "cancel_all", account="s0")
        assert reply.result["processes"]["proc-a"]["strategies"] == ["mm0"]
        assert open_orders(sim, "s0") == 0
        assert open_orders(sim, "s1") == 2
        unknown = await client.request(client.command("cancel_all", account="nobody"))
        assert not unknown.ok
        assert "unknown account" in (unknown.error or "")
        await until(lambda: open_orders(sim, "s0") == 2, what="mm0 quotes again")
        everything = await ask(client, "cancel_all")
        assert set(everything.result["processes"]["proc-a"]["accounts"]) == {"s0", "s1"}
        assert "master" in everything.result["swept"]  # an account without a strategy
        assert open_orders(sim, "s0") == open_orders(sim, "s1") == 0
        assert service.trading_state.state == "ACTIVE"  # cancel_all is not a halt


async def test_set_limit_shares_changes_the_weights_and_persists(
    tmp_path: Path, redis_server: str, keys: Keys
) -> None:
    async with desk(tmp_path, redis_server, keys) as (_sim, service, client):
        await ask(client, "set_limit_shares", weights={"mm0": 3.0})
        assert service.domain.limiter.configured_weights == {"mm0": 3.0, "mm1": 1.0}
        assert await client.redis.hgetall(keys.limit_shares()) == {b"mm0": b"3.0"}
        bad = await client.request(client.command("set_limit_shares", weights={"ghost": 1.0}))
        assert not bad.ok
        assert "ghost" in (bad.error or "")
        limits = (await ask(client, "limits")).result
        assert limits["weights"] == {"mm0": 3.0, "mm1": 1.0}


async def test_rebalancer_commands(tmp_path: Path, redis_server: str, keys: Keys) -> None:
    rebalancer = {
        "interval_s": 600.0,
        "targets": [
            {"account": "s2", "asset": "ZUSD", "target": "50000", "low": "40000", "high": "60000"}
        ],
    }
    async with desk(tmp_path, redis_server, keys, rebalancer=rebalancer) as (_sim, service, client):
        await ask(client, "rebalance_now")
        await until(lambda: service.rebalancer is not None and service.rebalancer.last is not None,
                    what="a cycle ran")  # fmt: skip
        assert (await ask(client, "list_transfers")).result == []  # s2 is inside its band

        reply = await ask(
            client,
            "set_targets",
            targets=[
                {
                    "account": "s2",
                    "asset": "ZUSD",
                    "target": "30000",
                    "low": "25000",
                    "high": "35000",
                }
            ],
        )
        assert [(t["account"], t["target"]) for t in reply.result] == [("s2", "30000")]
        await ask(client, "rebalance_now")

        async def moved() -> list[dict[str, Any]]:
            return list((await ask(client, "list_transfers")).result)

        deadline = time.monotonic() + 15
        transfers = await moved()
        while not any(t["state"] == "complete" for t in transfers):
            assert time.monotonic() < deadline, transfers
            await asyncio.sleep(0.2)
            transfers = await moved()
        [done] = [t for t in transfers if t["state"] == "complete"]
        assert (done["source"], done["asset"], Decimal(done["amount"])) == ("s2", "ZUSD",
                                                                             Decimal(20000))  # fmt: skip
        bad = await client.request(client.command("set_targets", targets=[
            {"account": "ghost", "asset": "ZUSD", "target": "1", "low": "0", "high": "2"}]))  # fmt: skip
        assert not bad.ok
        assert "ghost" in (bad.error or "")


async def test_roles_decide_who_may_send_what(
    tmp_path: Path, redis_server: str, keys: Keys
) -> None:
    async with (
        desk(tmp_path, redis_server, keys) as (_sim, service, _),
        operator_client(redis_server, keys.namespace, "vera") as viewer,
        operator_client(redis_server, keys.namespace, "tom") as trader,
    ):
        assert (await viewer.request(viewer.command("status"))).ok
        refused = await viewer.request(viewer.command("pause_strategy", strategy="mm0"))
        assert not refused.ok
        assert "needs trader" in (refused.error or "")
        halt = await trader.request(trader.command("halt", reason="not mine to pull"))
        assert not halt.ok
        assert "needs admin" in (halt.error or "")
        assert service.trading_state.state == "ACTIVE"
        assert service.units["mm0"].worker.state == "running"
        assert (await trader.request(trader.command("pause_strategy", strategy="mm0"))).ok


async def test_a_command_for_a_strategy_in_another_process_is_routed_there(
    tmp_path: Path, redis_server: str, keys: Keys
) -> None:
    async with open_simulator(SimSettings(accounts=domain_accounts(3, FUNDS))) as sim:
        a = ServiceSetup(
            tmp_path, sim, redis_server, keys.namespace, [MAKERS[0]], instance="proc-a"
        )
        b = ServiceSetup(
            tmp_path, sim, redis_server, keys.namespace, [MAKERS[1]], instance="proc-b"
        )
        async with running_service(write_config(a)) as service_a, \
                running_service(write_config(b)) as service_b, \
                operator_client(redis_server, keys.namespace) as client:  # fmt: skip
            await until(
                lambda: open_orders(sim, "s0") == open_orders(sim, "s1") == 2, what="quotes"
            )
            paused = await ask(client, "pause_strategy", strategy="mm1")
            assert paused.process == "proc-b"
            assert service_b.units["mm1"].worker.state == "paused"
            assert service_a.units["mm0"].worker.state == "running"
            status = (await ask(client, "status")).result
            assert sorted(p["process"] for p in status["processes"]) == ["proc-a", "proc-b"]
            halted = await ask(client, "halt", reason="both")
            assert set(halted.result["processes"]) == {"proc-a", "proc-b"}
            assert service_a.trading_state.state == service_b.trading_state.state == "HALTED"
            assert open_orders(sim, "s0") == open_orders(sim, "s1") == 0
            await ask(client, "resume_trading")
            ghost = await client.request(client.command("stop_strategy", strategy="ghost"))
            assert not ghost.ok
            assert "no running service process" in (ghost.error or "")

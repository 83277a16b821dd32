"""Three service processes share one config of six strategies (`service.replicas = 3`): each runs
the strategies placed on its ordinal and no strategy runs twice; all six trade; a command for a
strategy reaches the process that runs it, wherever it is sent."""

from __future__ import annotations

import contextlib
from decimal import Decimal
from pathlib import Path

from orchestrator.service import Service
from orchestrator.simulator.app import open_simulator
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

FUNDS = {"ZUSD": Decimal(50_000), "XXBT": Decimal(2)}
WIDE = {"size": "0.01", "spread_bps": 80, "requote_bps": 40}  # rests, never fills
STRATEGIES = [StrategySpec(f"mm{i}", f"s{i}", "XBT/USD", WIDE) for i in range(6)]
REPLICAS = 3


async def test_three_replicas_share_six_strategies_each_in_one_place(
    tmp_path: Path, redis_server: str, keys: Keys
) -> None:
    async with open_simulator(SimSettings(accounts=domain_accounts(6, FUNDS))) as sim:
        configs = [
            write_config(ServiceSetup(tmp_path, sim, redis_server, keys.namespace, STRATEGIES,
                                      instance=f"orchestrator-{i}",
                                      extra={"service": {"replicas": REPLICAS}}))
            for i in range(REPLICAS)
        ]  # fmt: skip
        async with contextlib.AsyncExitStack() as stack:
            services: list[Service] = [
                await stack.enter_async_context(running_service(path)) for path in configs
            ]
            hosted = [sorted(s.units) for s in services]
            everywhere = [name for names in hosted for name in names]
            assert sorted(everywhere) == [s.name for s in STRATEGIES]  # each exactly once
            assert all(names for names in hosted), hosted  # 6 over 3: none left idle
            for service in services:
                assert set(service.elsewhere) == {s.name for s in STRATEGIES} - set(service.units)
            await until(lambda: all(open_orders(sim, s.account) == 2 for s in STRATEGIES),
                        timeout_s=20, what="every strategy quoting")  # fmt: skip

            # A command sent anywhere reaches the strategy's own process.
            owner = services[-1]
            target = sorted(owner.units)[0]
            async with operator_client(redis_server, keys.namespace) as client:
                stopped = await client.request(client.command("stop_strategy", strategy=target),
                                               timeout_s=15)  # fmt: skip
                assert stopped.ok, stopped.error
                await until(lambda: owner.units[target].worker.state == "stopped",
                            timeout_s=10, what=f"{target} stopped by its owner")  # fmt: skip
                started = await client.request(client.command("start_strategy", strategy=target),
                                               timeout_s=15)  # fmt: skip
                assert started.ok, started.error
                await until(lambda: owner.units[target].worker.state == "running",
                            timeout_s=10, what=f"{target} started again by its owner")  # fmt: skip
            for other in services[:-1]:
                assert target not in other.units  # never started anywhere else

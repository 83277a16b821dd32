"""The service's endpoint as a probe sees it: `/readyz` is ready while Redis answers, the books
are whole and the strategies run, turns unready (503, naming Redis) when Redis goes away, and
ready again once it is back; `/healthz` stays alive throughout."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest

from orchestrator.service import Service
from orchestrator.simulator.app import open_simulator
from orchestrator.simulator.settings import SimSettings, domain_accounts
from orchestrator.store.keys import Keys
from tests.http_poll import fetch, until_status
from tests.redis_process import own_redis_server
from tests.service_harness import ServiceSetup, StrategySpec, running_service, write_config

pytestmark = pytest.mark.e2e

FUNDS = {"ZUSD": Decimal(50_000), "XXBT": Decimal(2)}
MAKER = StrategySpec("mm0", "s0", "XBT/USD", {"size": "0.01", "spread_bps": 80, "requote_bps": 40})


def _http(service: Service) -> str:
    assert service.http is not None, "the endpoint did not start"
    return service.http.url


async def test_readyz_follows_redis_and_healthz_stays_alive(tmp_path: Path, keys: Keys) -> None:
    with own_redis_server() as redis:
        async with open_simulator(SimSettings(accounts=domain_accounts(1, FUNDS))) as sim:
            setup = ServiceSetup(tmp_path, sim, redis.url, keys.namespace, [MAKER])
            async with running_service(write_config(setup)) as service, \
                    aiohttp.ClientSession() as session:  # fmt: skip
                base = _http(service)
                ready = await until_status(session, f"{base}/readyz", 200)
                assert ready["ready"] is True
                assert {c["name"] for c in ready["checks"]} == {"redis", "feeds", "strategies"}
                redis.kill()
                unready = await until_status(session, f"{base}/readyz", 503)
                checks = {c["name"]: c for c in unready["checks"]}
                assert checks["redis"]["ok"] is False
                assert "Redis" in checks["redis"]["detail"]
                assert await fetch(session, f"{base}/healthz") == (200, "ok\n")
                metrics = (await fetch(session, f"{base}/metrics"))[1]
                assert "orch_strategy_state" in metrics  # still served without Redis
                redis.start()
                await until_status(session, f"{base}/readyz", 200, timeout_s=30)

"""The service on a Redis Cluster (3 masters on loopback ports, real `redis-server`): the same
code trades (the limiter's scripts, the order journals), moves money (the rebalancer's journal)
and answers operator commands (the control streams), and no call meets a CROSSSLOT error."""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import redis

from orchestrator.simulator.app import open_simulator
from orchestrator.simulator.settings import SimSettings, domain_accounts
from orchestrator.store.embedded import free_port
from orchestrator.store.keys import Keys
from orchestrator.testing.service import until
from tests.children import stop_child
from tests.service_harness import (
    ServiceSetup,
    StrategySpec,
    operator_client,
    running_service,
    write_config,
)

FUNDS = {"ZUSD": Decimal(50_000), "XXBT": Decimal(2), "XETH": Decimal(20)}
MAKERS = [
    StrategySpec("mm0", "s0", "XBT/USD", {"size": "0.01", "spread_bps": 4, "requote_bps": 1}),
    StrategySpec("mm1", "s1", "ETH/USD", {"size": "0.1", "spread_bps": 4, "requote_bps": 1}),
]
# s2 holds 50,000 USD against a band of 60,000-80,000: the first cycle tops it up from the master.
REBALANCER = {
    "interval_s": 600.0,
    "targets": [{"account": "s2", "asset": "ZUSD", "target": "70000", "low": "60000",
                 "high": "80000"}],
}  # fmt: skip


@pytest.fixture
def cluster_url(tmp_path: Path) -> Iterator[str]:
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        pytest.skip("redis-server and redis-cli are not installed (.ci/run installs them)")
    ports: list[int] = []
    while len(ports) < 3:
        ports.append(_node_port(taken=ports))
    procs = []
    for port in ports:
        workdir = tmp_path / f"node-{port}"
        workdir.mkdir()
        procs.append(subprocess.Popen(
            [server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
             "--cluster-config-file", "nodes.conf", "--save", "", "--appendonly", "no"],
            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
    try:
        _until(lambda: all(_answers(port) for port in ports), "the nodes to start")
        created = subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert created.returncode == 0, created.stdout + created.stderr
        _until(lambda: all(_cluster_ok(port) for port in ports), "the cluster to be ok")
        yield "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports)
    finally:
        for proc in procs:
            stop_child(proc, timeout_s=10)


def _node_port(*, taken: list[int]) -> int:
    """A free port whose cluster bus port (+10000) is a port too, and free."""
    while True:
        port = free_port()
        if port <= 55535 and port not in taken and port + 10000 not in taken:
            with contextlib.suppress(OSError), socket.socket() as probe:
                probe.bind(("127.0.0.1", port + 10000))
                return port


def _answers(port: int) -> bool:
    with contextlib.suppress(redis.RedisError):
        return bool(redis.Redis(port=port, socket_timeout=0.5).ping())
    return False


def _cluster_ok(port: int) -> bool:
    with contextlib.suppress(redis.RedisError):
        info = redis.Redis(port=port, socket_timeout=0.5).cluster("INFO")  # parsed: a dict
        return isinstance(info, dict) and info.get("cluster_state") == "ok"
    return False


def _until(check: Callable[[], bool], what: str) -> None:
    deadline_s = time.monotonic() + 20
    while not check():
        assert time.monotonic() < deadline_s, f"never: {what}"
        time.sleep(0.1)


async def test_trading_transfers_and_commands_run_unchanged_on_a_cluster(
    tmp_path: Path, keys: Keys, cluster_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with open_simulator(SimSettings(accounts=domain_accounts(3, FUNDS))) as sim:
        setup = ServiceSetup(tmp_path, sim, cluster_url, keys.namespace, MAKERS,
                             rebalancer=True, extra={"rebalancer": REBALANCER})  # fmt: skip
        async with running_service(write_config(setup)) as service, \
                operator_client(cluster_url, keys.namespace) as client:  # fmt: skip
            managers = [unit.worker.manager for unit in service.units.values()]
            await until(lambda: sum(m.counted("place", "ok") + m.counted("amend", "ok")
                                    for m in managers) >= 20,
                        timeout_s=30, what="trading on the cluster")  # fmt: skip
            status = await client.request(client.command("status"), timeout_s=15)
            assert status.ok, status.error
            limits = await client.request(client.command("limits"), timeout_s=15)
            assert limits.ok, limits.error
            assert service.rebalancer is not None
            rebalancer = service.rebalancer
            now = await client.request(client.command("rebalance_now"), timeout_s=15)
            assert now.ok, now.error
            await until(lambda: any(r.state == "complete" for r in rebalancer.recent),
                        timeout_s=30, what=f"a top-up transfer completed: {rebalancer.recent}, "
                        f"last cycle {rebalancer.last}")  # fmt: skip
            transfers = await client.request(client.command("list_transfers"), timeout_s=15)
            assert transfers.ok, transfers.error
    assert sum(sim.venue.limits.rejections().values()) == 0
    crossslot = [r.getMessage() for r in caplog.records if "CROSSSLOT" in str(r.__dict__)]
    assert crossslot == []
    store_errors = [r.getMessage() for r in caplog.records
                    if r.levelno >= logging.WARNING and "Redis error" in str(r.__dict__)]  # fmt: skip
    assert store_errors == []

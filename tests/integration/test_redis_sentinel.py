"""The service on Redis Sentinel (real `redis-server` in sentinel mode: a master, a replica, three
sentinels on loopback ports): the master is killed while the strategies trade. The limiter fails
closed while there is no master, the service carries on on the promoted replica, and the venue
saw no rate-limit rejection and no order twice."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import redis

from orchestrator.errors import LimiterUnavailable
from orchestrator.ratelimit.policy import Charge
from orchestrator.simulator.app import open_simulator
from orchestrator.simulator.settings import SimSettings, domain_accounts
from orchestrator.store.embedded import free_port
from orchestrator.store.keys import Keys
from orchestrator.testing.service import until
from tests.children import stop_child
from tests.service_harness import ServiceSetup, StrategySpec, running_service, write_config

SERVICE = "desk"
FUNDS = {"ZUSD": Decimal(50_000), "XXBT": Decimal(2), "XETH": Decimal(20)}
# Tight quotes that follow the market: a steady flow of amends and placements through Redis.
MAKERS = [
    StrategySpec("mm0", "s0", "XBT/USD", {"size": "0.01", "spread_bps": 4, "requote_bps": 1}),
    StrategySpec("mm1", "s1", "ETH/USD", {"size": "0.1", "spread_bps": 4, "requote_bps": 1}),
]


class Cluster:
    """A master, a replica and three sentinels, each a child process on a free port."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.master_port, self.replica_port = free_port(), free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}"

    def start(self, binary: str) -> None:
        base = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self._spawn(binary, "master", [*base, "--port", str(self.master_port)])
        self._spawn(binary, "replica", [*base, "--port", str(self.replica_port),
                                        "--replicaof", "127.0.0.1", str(self.master_port)])  # fmt: skip
        for i, port in enumerate(self.sentinel_ports):
            conf = self.workdir / f"sentinel-{i}.conf"  # a sentinel rewrites its own file
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.workdir}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.master_port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 5000\n"
                f"sentinel parallel-syncs {SERVICE} 1\n",
                encoding="utf-8",
            )
            self._spawn(binary, f"sentinel-{i}", [str(conf), "--sentinel"])

    def _spawn(self, binary: str, name: str, args: list[str]) -> None:
        self.procs[name] = subprocess.Popen([binary, *args], cwd=self.workdir,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    def master_seen_by_sentinels(self) -> set[int]:
        ports = set()
        for port in self.sentinel_ports:
            with contextlib.suppress(redis.RedisError):
                client = redis.Redis(port=port, socket_timeout=0.5)
                found = client.sentinel_get_master_addr_by_name(SERVICE)
                client.close()
                if isinstance(found, tuple):
                    ports.add(int(found[1]))
        return ports

    def replica_in_sync(self) -> bool:
        with contextlib.suppress(redis.RedisError):
            client = redis.Redis(port=self.replica_port, socket_timeout=0.5)
            info = client.info("replication")
            client.close()
            return bool(info.get("master_link_status") == "up")
        return False

    def sentinels_know_the_replica(self) -> bool:
        with contextlib.suppress(redis.RedisError):
            client = redis.Redis(port=self.sentinel_ports[0], socket_timeout=0.5)
            replicas = client.sentinel_slaves(SERVICE)
            client.close()
            return any(int(r["port"]) == self.replica_port for r in replicas)
        return False

    def kill_master(self) -> None:
        self.procs["master"].send_signal(signal.SIGKILL)
        self.procs["master"].wait()

    def stop(self) -> None:
        for proc in self.procs.values():
            stop_child(proc, timeout_s=10)


@pytest.fixture
def sentinel_cluster(tmp_path: Path) -> Iterator[Cluster]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    cluster = Cluster(tmp_path)
    cluster.start(binary)
    try:
        deadline_s = time.monotonic() + 20
        while not (cluster.replica_in_sync() and cluster.sentinels_know_the_replica()
                   and cluster.master_seen_by_sentinels() == {cluster.master_port}):  # fmt: skip
            assert time.monotonic() < deadline_s, "the Sentinel setup never settled"
            time.sleep(0.1)
        yield cluster
    finally:
        cluster.stop()


async def test_the_master_dies_during_trading_and_the_service_carries_on_on_the_new_one(
    tmp_path: Path, keys: Keys, sentinel_cluster: Cluster
) -> None:
    async with open_simulator(SimSettings(accounts=domain_accounts(3, FUNDS))) as sim:
        setup = ServiceSetup(tmp_path, sim, sentinel_cluster.url, keys.namespace, MAKERS)
        async with running_service(write_config(setup)) as service:
            managers = [unit.worker.manager for unit in service.units.values()]

            def placed() -> int:
                return sum(m.counted("place", "ok") + m.counted("amend", "ok") for m in managers)

            await until(lambda: placed() >= 10, timeout_s=20, what="trading on the master")
            limiter = service.domain.limiter
            sentinel_cluster.kill_master()
            await until(limiter.health.is_down, timeout_s=10,
                        what="the limiter failing closed without a master")  # fmt: skip
            # Without a master: new risk refused, a cancel granted on the local budget.
            pool = limiter.policy.domain_scope("XBT/USD")
            with pytest.raises(LimiterUnavailable):
                await limiter.acquire([Charge(pool, 1.0)], lane="new_risk", deadline_s=1.0)
            cancel = await limiter.acquire([Charge(pool, 0.0)], lane="risk_reducing",
                                           deadline_s=1.0)  # fmt: skip
            assert cancel.fallback
            deadline_s = time.monotonic() + 30
            while sentinel_cluster.master_seen_by_sentinels() != {sentinel_cluster.replica_port}:
                assert time.monotonic() < deadline_s, "the sentinels never promoted the replica"
                await asyncio.sleep(0.1)
            after_failover = placed()
            await until(lambda: placed() >= after_failover + 10, timeout_s=30,
                        what="trading again on the promoted replica")  # fmt: skip
            assert not limiter.health.is_down()
    rejections = sum(sim.venue.limits.rejections().values())
    cl_ord_ids = collections.Counter(o.cl_ord_id for o in sim.venue.engine.orders.values())
    assert rejections == 0
    assert [c for c, n in cl_ord_ids.items() if n > 1] == []  # no order sent twice

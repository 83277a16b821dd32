"""Redis killed mid-run: new risk stops (nothing reaches the venue), cancels still flow on the
local budget, the venue sees no rate-limit rejection, and service resumes soon after Redis
returns, with the counters no emptier than this process knew them."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import aiohttp
import pytest
import redis.asyncio as aioredis

from orchestrator.clock import RealClock
from orchestrator.config import LimitsConfig
from orchestrator.errors import LimiterUnavailable
from orchestrator.exchange.kraken.common.key_lock import LocalKeyLock
from orchestrator.exchange.kraken.common.methods import ADD_ORDER, CANCEL_ORDER
from orchestrator.exchange.kraken.common.nonce import LocalNonce
from orchestrator.exchange.kraken.common.transport import AiohttpTransport
from orchestrator.exchange.kraken.spot.rest import KrakenRest
from orchestrator.metrics import Registry
from orchestrator.ratelimit.policy import Policy, VenueRequest
from orchestrator.ratelimit.redis import Limiter
from orchestrator.simulator.app import open_simulator
from orchestrator.store.embedded import free_port
from orchestrator.store.keys import Keys
from tests.sim_domains import credentials_of, domain_settings

ORDER = {
    "pair": "XBTUSD",
    "type": "buy",
    "ordertype": "limit",
    "volume": "0.0001",
    "price": "30000.0",
}
ADD = VenueRequest(method=ADD_ORDER, pair="XBT/USD")


class RedisProcess:
    def __init__(self, port: int, workdir: str) -> None:
        self.port = port
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.workdir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    with tempfile.TemporaryDirectory() as workdir:
        server = RedisProcess(free_port(), workdir)
        server.start()
        try:
            yield server
        finally:
            server.kill()


async def test_redis_outage(own_redis: RedisProcess) -> None:
    async with open_simulator(domain_settings(2)) as sim, aiohttp.ClientSession() as session:
        redis = aioredis.Redis.from_url(f"redis://127.0.0.1:{own_redis.port}/0", socket_connect_timeout=0.3,
                                        socket_timeout=0.5)  # fmt: skip
        limits = LimitsConfig()
        limiter = Limiter(redis, Keys("outage"), Policy("intermediate", limits), RealClock(), limits=limits,
                          registry=Registry(), retry_after_s=0.5)  # fmt: skip
        rest = KrakenRest(AiohttpTransport(session, timeout_s=5.0), sim.rest_url, account="s0",
                          credentials=credentials_of(sim, "s0"), nonce=LocalNonce(),
                          key_lock=LocalKeyLock(), permits=limiter)  # fmt: skip
        txids = [(await rest.call(ADD_ORDER, ORDER, request=ADD))["txid"][0] for _ in range(6)]
        placed_s = time.monotonic()

        own_redis.kill()
        with pytest.raises(LimiterUnavailable):
            await rest.call(ADD_ORDER, ORDER, request=ADD)
        orders_before = len(sim.venue.engine.orders)
        for txid in txids[:3]:  # cancels still flow, paced by the local budget
            cancel = VenueRequest(
                method=CANCEL_ORDER, pair="XBT/USD", order_ages_s=(time.monotonic() - placed_s,)
            )
            assert (await rest.call(CANCEL_ORDER, {"txid": txid}, request=cancel))["count"] == 1
        assert limiter.metrics.permits.get("risk_reducing", "local") == 3
        assert len(sim.venue.engine.orders) == orders_before  # no new risk reached the venue

        own_redis.start()
        returned_s = time.monotonic()
        while True:
            try:
                await rest.call(ADD_ORDER, ORDER, request=ADD)
                break
            except LimiterUnavailable:
                assert time.monotonic() - returned_s < 5.0, "service did not resume within 5 s"
                await asyncio.sleep(0.1)
        assert time.monotonic() - returned_s < 5.0
        # The restarted Redis holds this process's last view: nothing below what was spent.
        level = await limiter.level(limiter.policy.trade_scope("s0", "XBT/USD"))
        assert level > 0
        assert sim.venue.limits.rejections() == {}
        await redis.aclose()

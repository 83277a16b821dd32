"""Two processes, one API key, 200 requests in flight: never `EAPI:Invalid nonce`.

Nonces come from one Redis counter per key and a Redis mutex sends one request per key at a
time, so they reach the venue in allocation order even with a nonce window of 0.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
from pathlib import Path

import aiohttp
import redis.asyncio as aioredis
import uvloop

from orchestrator.errors import VenueError
from orchestrator.exchange.kraken.common.nonce import RedisNonce
from orchestrator.exchange.kraken.spot.rest import KrakenRest, key_fingerprint
from orchestrator.secrets import ApiCredentials, Secret
from orchestrator.simulator.app import open_simulator
from orchestrator.store.keys import Keys
from orchestrator.store.mutex import RedisMutex
from tests.sim_domains import domain_settings

PER_PROCESS = 100
# Spread over pairs: each pair's trading counter (125) and open-order cap (80) stay clear.
ORDERS = {
    "XBTUSD": ("30000.0", "0.01"),
    "ETHUSD": ("1500.00", "0.01"),
    "SOLUSD": ("75.00", "0.1"),
    "ETHXBT": ("0.04000", "0.01"),
}
PAIRS = list(ORDERS)


def _worker(
    rest_url: str, redis_url: str, namespace: str, key: str, secret: str, index: int, out: str
) -> None:
    async def main() -> dict[str, int]:
        redis = aioredis.Redis.from_url(redis_url)
        keys = Keys(namespace)
        fingerprint = key_fingerprint(key)
        outcomes: dict[str, int] = {}
        async with aiohttp.ClientSession() as session:
            rest = KrakenRest(session, rest_url, account="s0",
                              credentials=ApiCredentials(key=Secret(key), secret=Secret(secret)),
                              nonce=RedisNonce(redis, keys, fingerprint),
                              key_mutex=RedisMutex(redis, keys.key_mutex(fingerprint)))  # fmt: skip

            async def one(i: int) -> None:
                pair = PAIRS[(i + index) % len(PAIRS)]
                price, volume = ORDERS[pair]
                order = {"pair": pair, "type": "buy", "ordertype": "limit"}
                order |= {"volume": volume, "price": price}
                try:
                    await rest.private("AddOrder", order)
                    outcome = "ok"
                except VenueError as exc:
                    outcome = exc.codes[0] if exc.codes else type(exc).__name__
                outcomes[outcome] = outcomes.get(outcome, 0) + 1

            await asyncio.gather(*(one(i) for i in range(PER_PROCESS)))
        await redis.aclose()
        return outcomes

    Path(out).write_text(json.dumps(uvloop.run(main())))


async def test_two_processes_one_key_no_invalid_nonce(
    redis_server: str, keys: Keys, tmp_path: Path
) -> None:
    async with open_simulator(domain_settings(1, usd=100_000)) as sim:
        key = sim.venue.keys_of("s0")[0]
        ctx = multiprocessing.get_context("spawn")
        outs = [tmp_path / f"{i}.json" for i in range(2)]
        procs = [ctx.Process(target=_worker, args=(sim.rest_url, redis_server, keys.namespace, key.key,
                                                   key.secret_b64, i, str(outs[i]))) for i in range(2)]  # fmt: skip
        for proc in procs:
            proc.start()
        # Join in threads: the simulator keeps serving on this loop meanwhile.
        await asyncio.gather(*(asyncio.to_thread(p.join, 120) for p in procs))
        assert all(p.exitcode == 0 for p in procs)
        totals: dict[str, int] = {}
        for out in outs:
            for outcome, count in json.loads(out.read_text()).items():
                totals[outcome] = totals.get(outcome, 0) + count
        assert totals == {"ok": 2 * PER_PROCESS}, (totals, sim.venue.limits.rejections())
        assert sim.venue.spot_auth.failures() == {}

"""Processes sharing one API key through Redis (the shared nonce and the key mutex), each wired
as the product wires it (`open_kraken`): never `EAPI:Invalid nonce`; a slow venue raises no raw
Redis error; a mutex holder killed with -9 delays the others by at most one lease."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import uvloop

from orchestrator.clock import RealClock
from orchestrator.config import Config, parse_config
from orchestrator.errors import VenueUnavailable
from orchestrator.exchange.instruments import Instrument
from orchestrator.exchange.kraken.account import open_kraken
from orchestrator.exchange.kraken.common.key_lock import SharedKeyLock
from orchestrator.exchange.kraken.common.methods import BALANCE
from orchestrator.exchange.protocol import OrderSpec
from orchestrator.logs import configure_logging
from orchestrator.metrics import Registry
from orchestrator.secrets import ApiCredentials, Secret
from orchestrator.simulator.app import RunningSimulator, open_simulator
from orchestrator.store.connection import redis_client
from orchestrator.store.health import RedisHealth
from orchestrator.store.keys import Keys
from tests.sim_domains import domain_settings

PER_PROCESS = 100
# Spread over pairs: each pair's trading counter (125) and open-order cap (80) stay clear.
ORDERS = {"XBT/USD": ("30000.0", "0.01"), "ETH/USD": ("1500.00", "0.01"),
          "SOL/USD": ("75.00", "0.1"), "ETH/XBT": ("0.04000", "0.01")}  # fmt: skip
PAIRS = list(ORDERS)


def _config(rest_url: str, namespace: str, timeout_s: float) -> Config:
    return parse_config({
        "redis": {"namespace": namespace},
        "venue": {"kind": "simulator", "embedded": True, "rest_url": rest_url,
                  "request_timeout_s": timeout_s},
        "accounts": [{"name": "master", "role": "master"}, {"name": "s0", "role": "sub"}],
    })  # fmt: skip


def _credentials(sim: RunningSimulator) -> dict[str, tuple[str, str]]:
    return {name: (sim.venue.keys_of(name)[0].key, sim.venue.keys_of(name)[0].secret_b64)
            for name in ("master", "s0")}  # fmt: skip


def _worker(job: str, config: Config, redis_url: str, creds: dict[str, tuple[str, str]],
            index: int, out: str) -> None:  # fmt: skip
    """One process using the key of `s0`: `orders` places PER_PROCESS orders at once, `slow`
    asks for the balance, places one order, asks again; outcomes by error type (or code) into
    `out`, and everything the process logs or writes to stderr beside it, in `<name>.stderr`."""
    stderr = Path(out).with_suffix(".stderr").open("w")  # open for the life of the process
    os.dup2(stderr.fileno(), 2)  # also what is written below Python: the fd, not sys.stderr
    configure_logging("debug")  # the product's JSON lines, to stderr

    async def main() -> dict[str, int]:
        redis = redis_client(redis_url, socket_timeout=2.0, socket_connect_timeout=1.0)
        credentials = {
            n: ApiCredentials(key=Secret(k), secret=Secret(s)) for n, (k, s) in creds.items()
        }
        outcomes: dict[str, int] = {}

        async def tally(call: Any) -> None:
            try:
                await call
                outcome = "ok"
            except Exception as exc:
                codes = getattr(exc, "codes", ())
                outcome = codes[0] if codes else f"{type(exc).__module__}.{type(exc).__name__}"
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

        async with open_kraken(config, credentials, redis=redis, clock=RealClock(),
                               registry=Registry()) as domain:  # fmt: skip
            account = domain.account("s0")
            if job == "orders":

                def spec(i: int) -> OrderSpec:
                    pair = PAIRS[(i + index) % len(PAIRS)]
                    instrument: Instrument = domain.instruments.get(pair)
                    price, volume = ORDERS[pair]
                    return OrderSpec(instrument=instrument, side="buy", order_type="limit",
                                     volume=Decimal(volume), price=Decimal(price),
                                     cl_ord_id=f"p{index}-{i}")  # fmt: skip

                await asyncio.gather(*(tally(account.trading.place(spec(i)))
                                       for i in range(PER_PROCESS)))  # fmt: skip
            else:
                order = OrderSpec(instrument=domain.instruments.get("XBT/USD"), side="buy",
                                  order_type="limit", volume=Decimal("0.001"),
                                  price=Decimal("30000.0"), cl_ord_id=f"slow-{index}")  # fmt: skip
                await tally(account.rest.call(BALANCE, deadline_s=60.0))
                await tally(account.trading.place(order))  # acting: sent once, never retried
                await tally(account.rest.call(BALANCE, deadline_s=60.0))
        await redis.aclose()
        return outcomes

    Path(out).write_text(json.dumps(uvloop.run(main())))
    sys.stderr.flush()


async def _run_two(job: str, sim: RunningSimulator, config: Config, redis_url: str,
                   tmp_path: Path) -> dict[str, int]:  # fmt: skip
    ctx = multiprocessing.get_context("spawn")
    outs = [tmp_path / f"{job}-{i}.json" for i in range(2)]
    procs = [ctx.Process(target=_worker, args=(job, config, redis_url, _credentials(sim), i,
                                               str(outs[i]))) for i in range(2)]  # fmt: skip
    for proc in procs:
        proc.start()
    # Join in threads: the simulator keeps serving on this loop meanwhile.
    await asyncio.gather(*(asyncio.to_thread(p.join, 120) for p in procs))
    assert all(p.exitcode == 0 for p in procs)
    totals: dict[str, int] = {}
    for out in outs:
        for outcome, count in json.loads(out.read_text()).items():
            totals[outcome] = totals.get(outcome, 0) + count
    return totals


async def test_two_processes_one_key_no_invalid_nonce(
    redis_server: str, keys: Keys, tmp_path: Path
) -> None:
    async with open_simulator(domain_settings(1, usd=100_000)) as sim:
        config = _config(sim.rest_url, keys.namespace, timeout_s=10.0)
        totals = await _run_two("orders", sim, config, redis_server, tmp_path)
        assert totals == {"ok": 2 * PER_PROCESS}, (totals, sim.venue.limits.rejections())
        assert sim.venue.spot_auth.failures() == {}


async def test_slow_venue_raises_no_raw_redis_error(
    redis_server: str, keys: Keys, tmp_path: Path
) -> None:
    """The venue answers in 2.5 s, longer than Redis's 2 s socket timeout, while the other
    process waits for the key: no call fails (the mutex is polled, never a long blocking read),
    and nothing else meets a Redis error either: no renewal, no fallback, no stray task."""
    async with open_simulator(domain_settings(1)) as sim:
        sim.venue.settings.faults.latency_s = 2.5
        config = _config(sim.rest_url, keys.namespace, timeout_s=10.0)
        totals = await _run_two("slow", sim, config, redis_server, tmp_path)
        assert totals == {"ok": 6}, totals  # 2 processes x (Balance, AddOrder, Balance)
        assert len(sim.venue.engine.open_orders("s0")) == 2  # each order placed once
    for i in range(2):
        stderr = tmp_path / f"slow-{i}.stderr"
        assert _redis_errors_written(stderr) == [], stderr


def _redis_errors_written(stderr: Path) -> list[str]:
    """Lines of a worker's stderr that show something went wrong: a raw `redis.exceptions`
    name, anything not a log line (a traceback printed raw), or any warning or error logged (an
    unretrieved task's exception, a renewal or release that failed, Redis marked down, a local
    fallback). With Redis healthy, a slow venue must cause none of them."""
    found = []
    for line in stderr.read_text().splitlines():
        try:
            level = json.loads(line)["level"]
        except (ValueError, KeyError):
            level = "not a log line"
        if "redis.exceptions" in line or level not in ("debug", "info"):
            found.append(line)
    return found


def _hold_forever(redis_url: str, namespace: str, key_id: str, lease_s: float, ready: str) -> None:
    async def main() -> None:
        redis = redis_client(redis_url)
        lock = SharedKeyLock(
            redis,
            Keys(namespace),
            key_id,
            lease_s=lease_s,
            health=RedisHealth(RealClock(), Registry()),
        )
        async with lock.hold(wait_s=5.0):
            Path(ready).write_text("held")  # noqa: ASYNC240 - a tiny file, once
            await asyncio.sleep(3600)

    uvloop.run(main())


async def test_a_holder_killed_with_minus_9_delays_others_by_at_most_one_lease(
    redis_server: str, keys: Keys, tmp_path: Path
) -> None:
    lease_s = 1.5
    ready = tmp_path / "ready"
    ctx = multiprocessing.get_context("spawn")
    holder = ctx.Process(target=_hold_forever,
                         args=(redis_server, keys.namespace, "k1", lease_s, str(ready)))  # fmt: skip
    holder.start()
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert time.monotonic() < deadline, "the holder never took the lock"
        await asyncio.sleep(0.02)
    redis: aioredis.Redis = redis_client(redis_server)
    lock = SharedKeyLock(
        redis, keys, "k1", lease_s=lease_s, health=RedisHealth(RealClock(), Registry())
    )
    await asyncio.sleep(lease_s * 1.5)  # past one lease: the live holder renewed it
    with pytest.raises(VenueUnavailable, match="busy"):
        async with lock.hold(wait_s=0.1):
            pass
    assert holder.pid is not None
    os.kill(holder.pid, signal.SIGKILL)
    killed_s = time.monotonic()
    async with lock.hold(wait_s=10.0):
        resumed_s = time.monotonic() - killed_s
    await asyncio.to_thread(holder.join, 10)
    await redis.aclose()
    assert resumed_s <= lease_s + 0.2, resumed_s

"""How fast the simulator serves, so that it is known not to be the bottleneck of other benchmarks.

The simulator runs in its own process (one core); the load comes from this process (the other):
- public REST: `Ticker` requests, 32 in flight;
- private REST: signed `Balance` calls over many keys (each key stays under Kraken's REST counter,
  so every call does the full work: signature, nonce, counter, handler);
- WebSocket: book subscribers at depth 10 on every pair while the markets step every 5 ms;
  messages/s received.

    python -m benchmarks.simulator [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import statistics
import tempfile
import time
import urllib.parse
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

from orchestrator.exchange.kraken.common.auth import spot_sign
from orchestrator.simulator.app import open_simulator
from orchestrator.simulator.settings import SimSettings, domain_accounts
from orchestrator.simulator.standalone import write_keys
from orchestrator.store.embedded import free_port

ACCOUNTS = 64
CALLS_PER_KEY = 15  # intermediate REST counter: 20 max, +1 per Balance


def _serve(port: int, keys_path: str, step_s: float) -> None:
    async def main() -> None:
        accounts = domain_accounts(ACCOUNTS, {"ZUSD": Decimal(1000)}, prefix="a")
        settings = SimSettings(accounts=accounts, market_step_s=step_s)
        async with open_simulator(settings, port=port) as sim:
            write_keys(sim, Path(keys_path))
            await asyncio.Event().wait()

    uvloop.run(main())


async def _wait_up(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(f"{url}/0/public/Time") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError("simulator did not start")


async def public_rest(url: str, requests: int, in_flight: int = 32) -> float:
    counter = itertools.count()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight)) as session:

        async def worker() -> None:
            while next(counter) < requests:
                async with session.get(f"{url}/0/public/Ticker", params={"pair": "XBTUSD"}) as resp:
                    body = await resp.json()
                    assert not body["error"], body

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        return requests / (time.perf_counter() - start)


async def private_rest(url: str, keys: dict[str, Any], in_flight: int = 32) -> tuple[float, int]:
    accounts = [keys[f"a{i}"][0] for i in range(ACCOUNTS)]
    nonces = itertools.count(int(time.time() * 1000))
    errors = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight)) as session:

        async def one_key(key: dict[str, str]) -> None:
            nonlocal errors
            for _ in range(CALLS_PER_KEY):
                nonce = next(nonces)
                body = urllib.parse.urlencode({"nonce": nonce}).encode()
                headers = {
                    "API-Key": key["key"],
                    "API-Sign": spot_sign(key["secret"], "/0/private/Balance", nonce, body),
                    "Content-Type": "application/x-www-form-urlencoded",
                }
                async with session.post(
                    f"{url}/0/private/Balance", data=body, headers=headers
                ) as resp:
                    errors += bool((await resp.json())["error"])

        start = time.perf_counter()
        await asyncio.gather(*(one_key(key) for key in accounts))
        elapsed = time.perf_counter() - start
    return ACCOUNTS * CALLS_PER_KEY / elapsed, errors


async def websocket(ws_url: str, connections: int, duration_s: float) -> tuple[float, int]:
    received = 0
    stop_at = time.monotonic() + duration_s

    async def subscriber(session: aiohttp.ClientSession) -> None:
        nonlocal received
        async with session.ws_connect(ws_url) as ws:
            await ws.send_json(
                {"method": "subscribe", "params": {"channel": "book", "depth": 10,
                 "symbol": ["BTC/USD", "ETH/USD", "SOL/USD", "ETH/BTC"]}}
            )  # fmt: skip
            while time.monotonic() < stop_at:
                try:
                    await asyncio.wait_for(ws.receive(), max(0.01, stop_at - time.monotonic()))
                except TimeoutError:
                    break
                received += 1

    async with aiohttp.ClientSession() as session:
        start = time.perf_counter()
        await asyncio.gather(*(subscriber(session) for _ in range(connections)))
        return received / (time.perf_counter() - start), received


async def run(quick: bool) -> list[tuple[str, str]]:
    port = free_port()
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        keys_path = Path(tmp) / "keys.json"
        proc = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(port, str(keys_path), 0.005), daemon=True
        )
        proc.start()
        try:
            url = f"http://127.0.0.1:{port}"
            await _wait_up(url)
            for _ in range(100):
                if keys_path.exists() and keys_path.stat().st_size:
                    break
                await asyncio.sleep(0.05)
            keys = json.loads(keys_path.read_text())["accounts"]
            samples = [
                await public_rest(url, 1000 if quick else 4000) for _ in range(1 if quick else 3)
            ]
            rows.append(("public REST (Ticker)", f"{statistics.median(samples):,.0f} req/s"))
            rate, errors = await private_rest(url, keys)
            rows.append(("private REST (signed Balance)", f"{rate:,.0f} req/s, {errors} errors"))
            for connections in (1, 8):
                msg_rate, total = await websocket(
                    f"ws://127.0.0.1:{port}/v2", connections, 2 if quick else 5
                )
                rows.append(
                    (
                        f"WS book depth 10, 4 pairs, {connections} conn",
                        f"{msg_rate:,.0f} msg/s ({total} msgs)",
                    )
                )
        finally:
            proc.terminate()
            proc.join(5)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a short run")
    args = parser.parse_args(argv)
    rows = uvloop.run(run(args.quick))
    width = max(len(name) for name, _ in rows)
    print("simulator throughput (simulator in its own process, load from this one)")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

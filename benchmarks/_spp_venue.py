"""The venue of `strategies_per_process`: the simulator in a process of its own, and the service
config that trades against it as a desk's would (`venue.embedded = false`, keys by reference).

The simulator's CPU must not land in the measured process, so it runs in a spawned child (its
own interpreter and event loop), provisioned with a master and `subs` sub-accounts; it tells the
parent its URLs and every account's API key over a pipe, and serves until told to stop. The
service reads those keys the supported way for a venue it does not embed: `file:` references to
0600 files, resolved at start by `orchestrator.secrets`.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import aiohttp
import uvloop

from orchestrator.config import Config, parse_config
from orchestrator.logs import configure_logging
from orchestrator.simulator.app import open_simulator
from orchestrator.simulator.settings import SimSettings, domain_accounts

FUNDS: Final = {"ZUSD": "10000", "XXBT": "0.5", "XETH": "5", "SOL": "100"}
# Each strategy quotes one pair (strategy i: PAIRS[i % 4]); sizes clear every pair's minimums.
PAIRS: Final = ("XBT/USD", "ETH/USD", "SOL/USD", "ETH/XBT")
SIZES: Final = {"XBT/USD": "0.001", "ETH/USD": "0.02", "SOL/USD": "0.5", "ETH/XBT": "0.02"}
SPREAD_BPS: Final = 5
REQUOTE_BPS: Final = 3  # the market maker's default
_START_TIMEOUT_S: Final = 60.0
_STOP_TIMEOUT_S: Final = 10.0


@dataclass(frozen=True, slots=True)
class SimProcess:
    """The running simulator, as the service and the benchmark reach it."""

    rest_url: str
    ws_public_url: str
    ws_private_url: str
    futures_url: str
    keys: dict[str, tuple[str, str]]  # account -> (API key, base64 secret)
    pid: int


def _serve(subs: int, step_s: float, log_path: str, conn: Any) -> None:
    """The child: serve a fresh domain until the parent sends anything (or goes away)."""
    with Path(log_path).open("a", encoding="utf-8") as log_file:
        configure_logging("warning", stream=log_file)
        uvloop.run(_serve_async(subs, step_s, conn))


async def _serve_async(subs: int, step_s: float, conn: Any) -> None:
    funds = {asset: Decimal(amount) for asset, amount in FUNDS.items()}
    settings = SimSettings(accounts=domain_accounts(subs, funds), market_step_s=step_s)
    async with open_simulator(settings, host="127.0.0.1", port=0, strict=False) as sim:
        keys = {}
        for account in settings.accounts:
            key = sim.venue.keys_of(account.name)[0]
            keys[account.name] = (key.key, key.secret_b64)
        conn.send({"rest_url": sim.rest_url, "ws_public_url": sim.ws_public_url,
                   "ws_private_url": sim.ws_private_url, "futures_url": sim.futures_url,
                   "keys": keys})  # fmt: skip
        with contextlib.suppress(EOFError):
            await asyncio.to_thread(conn.recv)


@contextlib.asynccontextmanager
async def open_sim_process(
    subs: int, *, step_s: float, log_path: Path
) -> AsyncIterator[SimProcess]:
    """A simulator child with a master and `subs` sub-accounts `s0..`, for the block's life."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(subs, step_s, str(log_path), child), daemon=True)
    proc.start()
    child.close()
    try:
        ready = await asyncio.to_thread(parent.poll, _START_TIMEOUT_S)
        if not ready:
            raise RuntimeError(f"the simulator did not start in {_START_TIMEOUT_S:g} s")
        try:
            info = parent.recv()
        except EOFError:
            raise RuntimeError(f"the simulator died at start (exit {proc.exitcode}); "
                               f"see {log_path}") from None  # fmt: skip
        keys = {name: (key, secret) for name, (key, secret) in info.pop("keys").items()}
        yield SimProcess(keys=keys, pid=proc.pid or 0, **info)
    finally:
        with contextlib.suppress(OSError):
            parent.send("stop")
        await asyncio.to_thread(proc.join, _STOP_TIMEOUT_S)
        if proc.is_alive():
            proc.kill()
            await asyncio.to_thread(proc.join, _STOP_TIMEOUT_S)
        parent.close()


async def venue_state(sim: SimProcess) -> dict[str, Any]:
    """The simulator's `/admin/state`: requests by method, orders, rate-limit rejections."""
    state: dict[str, Any] = await _get_json(f"{sim.rest_url}/admin/state")
    return state


async def venue_orders(sim: SimProcess) -> list[dict[str, Any]]:
    """Every order the venue has seen, with its account."""
    orders: list[dict[str, Any]] = await _get_json(f"{sim.rest_url}/admin/orders")
    return orders


async def _get_json(url: str) -> Any:
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as resp:
        resp.raise_for_status()
        return await resp.json()


def strategy_name(index: int) -> str:
    return f"mm{index}"


def build_config(
    sim: SimProcess, *, strategies: int, redis_url: str, namespace: str, secrets_dir: Path
) -> Config:
    """The service's config: every account of the simulator by `file:` key references, and one
    market maker per sub-account (`mm<i>` on `s<i>`), spread over `PAIRS`. Everything else is
    the production default (order entry over WS, dead man's switch, status every 5 s)."""
    secrets_dir.mkdir(parents=True, exist_ok=True)
    accounts = []
    for name, (key, secret) in sim.keys.items():
        refs = {}
        for field, value in (("api_key", key), ("api_secret", secret)):
            path = secrets_dir / f"{name}.{field}"
            path.write_text(value, encoding="utf-8")
            path.chmod(0o600)
            refs[field] = f"file:{path}"
        accounts.append({"name": name, "role": "master" if name == "master" else "sub", **refs})
    makers = []
    for i in range(strategies):
        pair = PAIRS[i % len(PAIRS)]
        size = Decimal(SIZES[pair])
        params = {"size": str(size), "spread_bps": SPREAD_BPS, "requote_bps": REQUOTE_BPS,
                  "max_inventory": str(size * 10)}  # fmt: skip
        makers.append({"name": strategy_name(i), "module": "strategies.market_maker",
                       "account": f"s{i}", "pairs": [pair], "params": params})  # fmt: skip
    venue = {"kind": "simulator", "embedded": False, "rest_url": sim.rest_url,
             "futures_url": sim.futures_url, "ws_public_url": sim.ws_public_url,
             "ws_private_url": sim.ws_private_url}  # fmt: skip
    raw: dict[str, Any] = {
        "log_level": "info",
        "redis": {"url": redis_url, "namespace": namespace},
        "venue": venue,
        "accounts": accounts,
        "strategies": makers,
    }
    return parse_config(raw, source="benchmarks.strategies_per_process")

"""`orchestrator sim`: the simulator as a process, with the demo domain and live counters.

The demo's API keys are written to a local file (mode 0600) so that other processes can trade
against it; they belong to nobody and protect no money. Counters are printed to stdout every
`report_every_s` until SIGINT/SIGTERM (or `duration_s`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from decimal import Decimal
from pathlib import Path
from typing import Final

import msgspec

from orchestrator.simulator.admin import state
from orchestrator.simulator.app import RunningSimulator, open_simulator
from orchestrator.simulator.settings import SimSettings
from orchestrator.simulator.venue import demo_key_file

DEFAULT_KEYS_FILE: Final = Path(".run/sim-keys.json")


def write_keys(sim: RunningSimulator, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "rest_url": sim.rest_url,
        "ws_public_url": sim.ws_public_url,
        "ws_private_url": sim.ws_private_url,
        "accounts": demo_key_file(sim.venue),
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # O_CREAT's mode applies to a new file only; an old one keeps its own
    with os.fdopen(fd, "wb") as f:
        f.write(msgspec.json.format(msgspec.json.encode(data)))


def report_line(sim: RunningSimulator, started_s: float) -> str:
    """One line of live counters: activity, rejections and each pair's mid."""
    venue = sim.venue
    snapshot = state(venue)
    mids = []
    for pair in venue.catalog.pairs.values():
        mid = venue.engine.books[pair.key].mid()
        if mid is not None:
            mids.append(f"{pair.wsname}={Decimal(mid).scaleb(-pair.pair_decimals)}")
    requests = sum(v for k, v in snapshot["requests"].items() if not k.startswith("error:"))
    return (
        f"sim t={venue.clock.monotonic() - started_s:6.1f}s requests={requests} "
        f"orders={snapshot['orders']} open={snapshot['open_orders']} trades={snapshot['trades']} "
        f"transfers={snapshot['transfers']} "
        f"rate_limit_rejections={snapshot['rate_limit_rejections']} " + " ".join(mids)
    )


async def run_standalone(
    settings: SimSettings,
    *,
    host: str,
    port: int,
    keys_file: Path = DEFAULT_KEYS_FILE,
    report_every_s: float = 5.0,
    duration_s: float | None = None,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with open_simulator(settings, host=host, port=port, strict=False) as sim:
        write_keys(sim, keys_file)
        print(f"simulator REST    {sim.rest_url}/0/public/Time", flush=True)
        print(f"simulator WS      {sim.ws_public_url}  (private: {sim.ws_private_url})", flush=True)
        print(f"simulator admin   {sim.rest_url}/admin/state", flush=True)
        print(f"demo API keys     {keys_file} (demo only)", flush=True)
        started_s = sim.venue.clock.monotonic()
        deadline_s = None if duration_s is None else started_s + duration_s
        while not stop.is_set():
            timeout_s = report_every_s
            if deadline_s is not None:
                timeout_s = min(timeout_s, max(0.0, deadline_s - sim.venue.clock.monotonic()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout_s)
            print(report_line(sim, started_s), flush=True)
            if deadline_s is not None and sim.venue.clock.monotonic() >= deadline_s:
                break
    print("simulator stopped", flush=True)

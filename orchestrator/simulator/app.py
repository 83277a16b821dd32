"""The simulator as a running server: one aiohttp app for REST, WebSocket v2, futures and admin.

    async with open_simulator(SimSettings(), port=0) as sim:
        sim.rest_url, sim.ws_public_url, sim.ws_private_url, sim.venue

With the real clock a background task moves the synthetic markets every `market_step_s`; with a
`ManualClock`, markets move only when a test advances time (`sim.advance(dt_s)` or the admin API).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from orchestrator.clock import Clock, ManualClock, RealClock
from orchestrator.logs import get_logger
from orchestrator.simulator import admin, admin_futures, futures_history, http, ws
from orchestrator.simulator.errors import SimulatorBug
from orchestrator.simulator.futures_rest import add_routes as add_futures_routes
from orchestrator.simulator.http import STEP_LISTENERS_KEY
from orchestrator.simulator.settings import SimSettings
from orchestrator.simulator.venue import Venue, build_venue

log = get_logger(__name__)


def build_app(venue: Venue) -> web.Application:
    app = web.Application(client_max_size=venue.settings.max_body_bytes)
    app[http.VENUE_KEY] = venue
    app[STEP_LISTENERS_KEY] = []
    http.add_routes(app)
    admin.add_routes(app)
    admin_futures.add_routes(app)
    ws.add_routes(app, app[STEP_LISTENERS_KEY])
    add_futures_routes(app)
    futures_history.add_routes(app)
    return app


@dataclass(slots=True)
class RunningSimulator:
    venue: Venue
    app: web.Application
    host: str
    port: int

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_public_url(self) -> str:
        return f"ws://{self.host}:{self.port}/v2"

    @property
    def ws_private_url(self) -> str:
        return f"ws://{self.host}:{self.port}/auth/v2"

    @property
    def futures_url(self) -> str:
        return self.rest_url

    def step(self, dt_s: float) -> None:
        """Move the markets and timers, then let feeds publish."""
        http.step_venue(self.app, dt_s)

    async def advance(self, dt_s: float) -> None:
        """Manual clock only: move time and the markets by `dt_s`."""
        clock = self.venue.clock
        if not isinstance(clock, ManualClock):
            raise TypeError("advance() needs a simulator started with a ManualClock")
        await clock.advance(dt_s)
        self.step(dt_s)


async def _run_markets(sim: RunningSimulator) -> None:
    step_s = sim.venue.settings.market_step_s
    clock = sim.venue.clock
    last_s = clock.monotonic()
    while True:
        await clock.sleep(step_s)
        now_s = clock.monotonic()
        try:
            sim.step(now_s - last_s)
        except Exception as exc:
            sim.venue.record_internal_error("market_step_failed", exc)
        last_s = now_s


@contextlib.asynccontextmanager
async def open_simulator(
    settings: SimSettings | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    clock: Clock | None = None,
    strict: bool = True,
) -> AsyncIterator[RunningSimulator]:
    """Serve a fresh venue for the life of the block (port 0: any free port).

    `strict`: a bug of the simulator met while serving (answered `EGeneral:Internal error`, as
    Kraken would) raises `SimulatorBug` when the block ends, so the test that met it fails
    naming it, instead of as a timeout somewhere in the client. The standalone server logs them.
    """
    venue = build_venue(settings or SimSettings(), clock or RealClock())
    app = build_app(venue)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_port = port
    if runner.addresses:
        bound_port = int(runner.addresses[0][1])
    sim = RunningSimulator(venue=venue, app=app, host=host, port=bound_port)
    stepper = (
        None if isinstance(venue.clock, ManualClock) else asyncio.create_task(_run_markets(sim))
    )
    log.info("sim.started", url=sim.rest_url, tier=settings.tier if settings else "intermediate")
    try:
        yield sim
    finally:
        if stepper is not None:
            stepper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stepper
        await runner.cleanup()
        log.info("sim.stopped", url=sim.rest_url)
    if strict and venue.internal_errors:
        raise SimulatorBug(venue.internal_errors)

"""Where the venue is: the embedded simulator (demo, tests) or Kraken; the code is the same.

`open_venue` yields the config the clients should use (the embedded simulator's URLs put in
place of Kraken's) and each account's credentials: the simulator's own keys when it is embedded,
the resolved secret references otherwise. Nothing downstream knows which venue it talks to.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import msgspec

from orchestrator.clock import Clock
from orchestrator.config import Config
from orchestrator.logs import get_logger
from orchestrator.secrets import ApiCredentials, Secret, resolve_credentials
from orchestrator.simulator.app import RunningSimulator, open_simulator
from orchestrator.simulator.settings import settings_from_config

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class VenueSetup:
    config: Config  # with the venue's URLs as the clients must use them
    credentials: Mapping[str, ApiCredentials]
    simulator: RunningSimulator | None
    futures_credentials: Mapping[str, ApiCredentials]  # the Derivatives keys, by account


@contextlib.asynccontextmanager
async def open_venue(config: Config, *, base_dir: Path, clock: Clock) -> AsyncIterator[VenueSetup]:
    venue = config.venue
    if not venue.is_embedded:
        credentials = resolve_credentials(config, base_dir=base_dir)
        futures = resolve_credentials(config, base_dir=base_dir, futures=True)
        yield VenueSetup(config=config, credentials=credentials, simulator=None,
                         futures_credentials=futures)  # fmt: skip
        return
    sim_config = venue.simulator
    # The standalone service's simulator logs its own bugs rather than raising them at exit.
    async with open_simulator(settings_from_config(config), host=sim_config.host,
                              port=sim_config.port, clock=clock, strict=False) as sim:  # fmt: skip
        urls = msgspec.structs.replace(
            venue, rest_url=sim.rest_url, futures_url=sim.futures_url,
            ws_public_url=sim.ws_public_url, ws_private_url=sim.ws_private_url,
        )  # fmt: skip
        credentials = {}
        for account in config.accounts:
            key = sim.venue.keys_of(account.name)[0]
            credentials[account.name] = ApiCredentials(key=Secret(key.key),
                                                       secret=Secret(key.secret_b64))  # fmt: skip
        log.info("venue.embedded_simulator", rest_url=sim.rest_url)
        # The simulator's keys serve its futures API too (Kraken issues separate Derivatives
        # keys: then they are the accounts' futures_api_key / futures_api_secret).
        yield VenueSetup(config=msgspec.structs.replace(config, venue=urls),
                         credentials=credentials, simulator=sim,
                         futures_credentials=credentials)  # fmt: skip

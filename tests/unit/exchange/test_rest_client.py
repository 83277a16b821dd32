"""The REST client against the simulator: calls, every error mapping, venue feedback into the
limiter, ambiguous outcomes and exactly-once order entry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import fakeredis
import pytest

from orchestrator.clock import ManualClock, RealClock
from orchestrator.config import LimitsConfig
from orchestrator.errors import (
    AmbiguousOutcome,
    AuthError,
    InsufficientFunds,
    InvalidNonce,
    InvalidRequest,
    UnknownOrder,
    VenueRateLimited,
    VenueUnavailable,
)
from orchestrator.exchange.kraken.common.nonce import LocalNonce
from orchestrator.exchange.kraken.spot.reconcile import add_order_once
from orchestrator.exchange.kraken.spot.rest import KrakenRest
from orchestrator.metrics import Registry
from orchestrator.ratelimit.policy import Policy, VenueRequest
from orchestrator.ratelimit.redis import Limiter
from orchestrator.secrets import ApiCredentials, Secret
from orchestrator.simulator.app import RunningSimulator, open_simulator
from orchestrator.store.keys import Keys
from tests.sim_domains import credentials_of

ORDER = {
    "pair": "XBTUSD",
    "type": "buy",
    "ordertype": "limit",
    "volume": "0.01",
    "price": "50000.0",
}
ADD = VenueRequest(method="AddOrder", pair="XBT/USD")


class FixedNonce:
    def __init__(self, value: int) -> None:
        self.value = value

    async def next(self) -> int:
        return self.value


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with open_simulator(clock=ManualClock()) as running:
        yield running


def client(
    session: aiohttp.ClientSession, sim: RunningSimulator, account: str = "mm-xbt", **kw: object
) -> KrakenRest:
    credentials = credentials_of(sim, account)
    options: dict[str, object] = {"nonce": LocalNonce(), "timeout_s": 2.0} | kw
    return KrakenRest(session, sim.rest_url, account=account, credentials=credentials, **options)  # type: ignore[arg-type]


async def test_public_and_private_calls(
    session: aiohttp.ClientSession, sim: RunningSimulator
) -> None:
    rest = client(session, sim)
    assert (await rest.public("SystemStatus"))["status"] == "online"
    assert "XXBTZUSD" in await rest.public("AssetPairs", {"pair": "XBTUSD"})
    balance = await rest.private("Balance")
    assert Decimal(balance["ZUSD"]) == 10000
    txid = (await rest.private("AddOrder", ORDER, request=ADD))["txid"][0]
    assert (await rest.private("CancelOrder", {"txid": txid}))["count"] == 1


async def test_error_mapping_against_the_venue(
    session: aiohttp.ClientSession, sim: RunningSimulator
) -> None:
    rest = client(session, sim)
    with pytest.raises(InsufficientFunds):
        await rest.private("AddOrder", ORDER | {"volume": "100"}, request=ADD)
    with pytest.raises(UnknownOrder):
        await rest.private("CancelOrder", {"txid": "OAAAAA-BBBBB-CCCCCC"})
    with pytest.raises(InvalidRequest):
        await rest.private("AddOrder", ORDER | {"price": "50000.05"}, request=ADD)
    with pytest.raises(InvalidRequest):
        await rest.public("Depth", {"pair": "NOPE"})
    stale = client(session, sim, "twap-eth", nonce=FixedNonce(1))
    await stale.private("Balance")
    with pytest.raises(InvalidNonce):
        await stale.private("Balance")
    wrong = KrakenRest(session, sim.rest_url, account="mm-xbt", nonce=LocalNonce(),
                       credentials=ApiCredentials(key=Secret("nobody-at-all"), secret=Secret("c2VjcmV0")))  # fmt: skip
    with pytest.raises(AuthError):
        await wrong.private("Balance")


async def test_unavailable_is_ambiguous_only_for_acting_calls(
    session: aiohttp.ClientSession, sim: RunningSimulator
) -> None:
    sim.venue.settings.faults.unavailable_rate = 1.0
    rest = client(session, sim)
    with pytest.raises(VenueUnavailable):
        await rest.private("Balance")
    with pytest.raises(AmbiguousOutcome):
        await rest.private("AddOrder", ORDER, request=ADD)


async def test_lost_reply_is_ambiguous_and_reconciled_without_duplicate(
    session: aiohttp.ClientSession, sim: RunningSimulator
) -> None:
    sim.venue.settings.faults.lost_reply_next = 1
    rest = client(session, sim)
    txid = await add_order_once(
        rest, ORDER | {"cl_ord_id": "once-1"}, request=ADD, clock=RealClock(), confirm_delay_s=0
    )
    orders = [o for o in sim.venue.engine.orders.values() if o.cl_ord_id == "once-1"]
    assert [o.txid for o in orders] == [txid]  # the venue acted once; we did not send again


async def test_lost_request_is_retried_once_confirmed_absent(
    session: aiohttp.ClientSession, sim: RunningSimulator
) -> None:
    # AddOrder refused before acting, then the first lookup too: reconciliation backs off, finds
    # no such order (twice, to be sure), and only then sends again.
    sim.venue.settings.faults.unavailable_next = 2
    rest = client(session, sim)
    txid = await add_order_once(rest, ORDER | {"cl_ord_id": "once-2"}, request=ADD,
                                clock=RealClock(), confirm_delay_s=0.01)  # fmt: skip
    orders = [o for o in sim.venue.engine.orders.values() if o.cl_ord_id == "once-2"]
    assert [o.txid for o in orders] == [txid]
    assert sim.venue.request_counts["private:AddOrder"] == 2
    assert sim.venue.request_counts["error:EService:Unavailable"] == 2


async def test_venue_rate_limit_feeds_back_into_the_limiter(
    session: aiohttp.ClientSession, sim: RunningSimulator
) -> None:
    redis = fakeredis.FakeAsyncRedis()
    limits = LimitsConfig()
    clock = sim.venue.clock
    limiter = Limiter(redis, Keys("fb"), Policy("intermediate", limits), clock, limits=limits,
                      registry=Registry(), script_time=clock.time)  # fmt: skip
    rest = client(session, sim, limiter=limiter)
    # Another client (not through our limiter) exhausts the key's REST counter at the venue.
    rogue = client(session, sim)
    for _ in range(20):
        await rogue.private("Balance")
    with pytest.raises(VenueRateLimited):
        await rest.private("Balance")
    level = await limiter.level(limiter.policy.rest_scope(rest.key_id))
    assert level == pytest.approx(20.0)  # assumed full: every process now waits for decay
    assert limiter.metrics.cooldowns.get(f"rest:{rest.key_id}") == 1
    await redis.aclose()

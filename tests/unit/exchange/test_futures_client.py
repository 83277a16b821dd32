"""The futures REST client: every call against the simulator, each error code the simulator can
produce mapped into our tree, and what it cannot produce (Unavailable, Server Error, lost or
dropped replies, non-envelope bodies) served by a small stub venue that also records the exact
bytes signed. Recorded payloads and the full code table: `test_futures_payloads.py`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp import web

from orchestrator.clock import ManualClock
from orchestrator.errors import (
    AmbiguousOutcome,
    AuthError,
    InsufficientFunds,
    InvalidNonce,
    InvalidRequest,
    VenueError,
    VenueRateLimited,
    VenueUnavailable,
)
from orchestrator.exchange.kraken.common.nonce import LocalNonce
from orchestrator.exchange.kraken.futures.client import KrakenFutures
from orchestrator.exchange.kraken.futures.schemas import (
    CashAccount,
    FlexAccount,
    MarginAccount,
)
from orchestrator.secrets import ApiCredentials, Secret
from orchestrator.simulator.app import RunningSimulator, open_simulator
from orchestrator.simulator.auth import futures_authent
from orchestrator.simulator.settings import AccountSeed, KeySeed, SimSettings
from tests.sim_domains import credentials_of

FIXTURES = Path(__file__).parents[2] / "fixtures" / "futures"
KRAKEN_EXAMPLE = (FIXTURES / "accounts_example.json").read_bytes()


# --- against the simulator -------------------------------------------------------------------------
class FixedNonce:
    def __init__(self, value: int) -> None:
        self.value = value

    async def next(self) -> int:
        return self.value


def _settings() -> SimSettings:
    return SimSettings(
        accounts=(
            AccountSeed(name="master", role="master",
                        futures_flex={"ZUSD": Decimal(10_000), "XXBT": Decimal("0.5")}),
            AccountSeed(name="alpha", futures_flex={"ZUSD": Decimal(100)}),
            AccountSeed(name="beta"),
            AccountSeed(name="reader", keys=(KeySeed(permissions=("query_funds",)),)),
        )
    )  # fmt: skip


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with open_simulator(_settings(), clock=ManualClock()) as running:
        yield running


def client(
    session: aiohttp.ClientSession, sim: RunningSimulator, account: str = "master", **kw: Any
) -> KrakenFutures:
    credentials = credentials_of(sim, account)
    options: dict[str, Any] = {"nonce": LocalNonce(), "timeout_s": 2.0} | kw
    return KrakenFutures(
        session, sim.futures_url, account=account, credentials=credentials, **options
    )


def wallet(sim: RunningSimulator, account: str, name: str) -> dict[str, Decimal]:
    return sim.venue.domain.accounts[account].futures[name]


def uid(sim: RunningSimulator, account: str) -> str:
    return sim.venue.domain.accounts[account].futures_uid


async def test_accounts_from_the_simulator(
    session: aiohttp.ClientSession, sim: RunningSimulator
) -> None:
    reply = await client(session, sim).accounts()
    assert {n: type(a) for n, a in reply.accounts.items()} == {
        "cash": CashAccount, "flex": FlexAccount, "fi_xbtusd": MarginAccount,
    }  # fmt: skip
    flex = reply.accounts["flex"]
    assert isinstance(flex, FlexAccount)
    assert flex.currencies["USD"].quantity == 10_000
    assert flex.currencies["XBT"].quantity == Decimal("0.5")


async def test_wallet_transfer_moves_exact_amounts(
    session: aiohttp.ClientSession, sim: RunningSimulator
) -> None:
    futures = client(session, sim)
    await futures.transfer(
        from_account="flex", to_account="cash", unit="usd", amount=Decimal("1234.5678")
    )
    await futures.transfer(
        from_account="flex", to_account="cash", unit="xbt", amount=Decimal("0.1234567891")
    )
    cash = (await futures.accounts()).accounts["cash"]
    assert isinstance(cash, CashAccount)
    assert cash.balances == {"usd": Decimal("1234.5678"), "xbt": Decimal("0.1234567891")}
    assert wallet(sim, "master", "flex") == {
        "ZUSD": Decimal("8765.4322"),
        "XXBT": Decimal("0.3765432109"),
    }


async def test_subaccounts_and_the_trading_switch(
    session: aiohttp.ClientSession, sim: RunningSimulator
) -> None:
    futures = client(session, sim)
    listing = await futures.subaccounts()
    assert listing.master_account_uid == uid(sim, "master")
    by_name = {s.full_name: s for s in listing.subaccounts}
    assert set(by_name) == {"alpha", "beta", "reader"}
    alpha = by_name["alpha"]
    assert alpha.account_uid == uid(sim, "alpha")
    assert {c.currency: c.quantity for c in alpha.flex_account.currencies} == {"usd": 100}
    assert alpha.flex_account.balance_value == 100
    assert await futures.trading_enabled(alpha.account_uid) is True
    assert await futures.set_trading_enabled(alpha.account_uid, False) is False
    assert sim.venue.domain.accounts["alpha"].trading_enabled is False
    assert await futures.trading_enabled(alpha.account_uid) is False
    assert await futures.set_trading_enabled(alpha.account_uid, True) is True


async def test_subaccount_transfer_between_users(
    session: aiohttp.ClientSession, sim: RunningSimulator
) -> None:
    futures = client(session, sim)
    await futures.transfer_subaccount(
        from_user=uid(sim, "master"), to_user=uid(sim, "beta"), from_account="flex",
        to_account="flex", unit="USD", amount=Decimal("250.0001"),
    )  # fmt: skip
    await futures.transfer_subaccount(
        from_user="alpha", to_user="beta", from_account="flex", to_account="cash",
        unit="usd", amount=Decimal(100),
    )  # fmt: skip
    assert wallet(sim, "master", "flex")["ZUSD"] == Decimal("9749.9999")
    assert wallet(sim, "beta", "flex") == {"ZUSD": Decimal("250.0001")}
    assert wallet(sim, "beta", "cash") == {"ZUSD": Decimal(100)}
    assert wallet(sim, "alpha", "flex")["ZUSD"] == 0


@pytest.mark.parametrize(
    ("change", "error", "code"),
    [
        ({"amount": Decimal(20_000)}, InsufficientFunds, "insufficientFunds"),
        ({"unit": "nope"}, InvalidRequest, "invalidUnit"),
        ({"amount": Decimal(0)}, InvalidRequest, "invalidAmount"),
        ({"amount": Decimal(-1)}, InvalidRequest, "invalidAmount"),
        ({"amount": Decimal("0.00001")}, InvalidRequest, "invalidAmount"),  # USD has 4 decimals
        ({"from_account": "fi_ethusd"}, InvalidRequest, "invalidAccount"),
        ({"to_account": "flex"}, InvalidRequest, "invalidAccount"),  # flex -> flex
        ({"unit": ""}, InvalidRequest, "requiredArgumentMissing"),
    ],
)
async def test_transfer_refusals_map_and_move_nothing(
    session: aiohttp.ClientSession,
    sim: RunningSimulator,
    change: dict[str, Any],
    error: type[VenueError],
    code: str,
) -> None:
    before = dict(wallet(sim, "master", "flex"))
    args: dict[str, Any] = {"from_account": "flex", "to_account": "cash", "unit": "usd",
                            "amount": Decimal(1)} | change  # fmt: skip
    with pytest.raises(error) as raised:
        await client(session, sim).transfer(**args)
    assert raised.value.codes == (code,)
    assert wallet(sim, "master", "flex") == before
    assert wallet(sim, "master", "cash") == {}


async def test_subaccount_refusals(session: aiohttp.ClientSession, sim: RunningSimulator) -> None:
    futures = client(session, sim)
    with pytest.raises(InvalidRequest) as raised:
        await futures.trading_enabled(str(uuid.uuid4()))
    assert raised.value.codes == ("notFound",)
    with pytest.raises(InvalidRequest) as raised:
        await futures.set_trading_enabled("no/such uid", False)
    assert raised.value.codes == ("notFound",)
    with pytest.raises(InvalidRequest) as raised:
        await futures.transfer_subaccount(
            from_user="master", to_user="nobody", from_account="flex", to_account="flex",
            unit="usd", amount=Decimal(1),
        )  # fmt: skip
    assert raised.value.codes == ("invalidAccount",)


async def test_auth_errors(session: aiohttp.ClientSession, sim: RunningSimulator) -> None:
    key = sim.venue.keys_of("master")[0]
    for credentials in (
        ApiCredentials(key=Secret("nobody-at-all"), secret=Secret(key.secret_b64)),
        ApiCredentials(key=Secret(key.key), secret=Secret("c2VjcmV0IG9mIHNvbWVvbmUgZWxzZQ==")),
    ):
        stranger = KrakenFutures(session, sim.futures_url, account="master",
                                 credentials=credentials, nonce=LocalNonce())  # fmt: skip
        with pytest.raises(AuthError) as raised:
            await stranger.accounts()
        assert raised.value.codes == ("authenticationError",)
    with pytest.raises(AuthError):  # a sub-account key on a master-only call
        await client(session, sim, "alpha").subaccounts()
    with pytest.raises(AuthError):  # a read-only key cannot move funds
        await client(session, sim, "reader").transfer(
            from_account="flex", to_account="cash", unit="usd", amount=Decimal(1)
        )
    assert (await client(session, sim, "reader").accounts()).accounts["cash"] == CashAccount(
        balances={}
    )


async def test_stale_nonces_are_invalid_nonce(
    session: aiohttp.ClientSession, sim: RunningSimulator
) -> None:
    await client(session, sim, nonce=FixedNonce(1_000)).accounts()
    with pytest.raises(InvalidNonce) as raised:
        await client(session, sim, nonce=FixedNonce(1_000)).accounts()
    assert raised.value.codes == ("nonceDuplicate",)
    with pytest.raises(InvalidNonce) as raised:
        await client(session, sim, nonce=FixedNonce(999)).accounts()
    assert raised.value.codes == ("nonceBelowThreshold",)


async def test_the_derivatives_budget_refuses_then_recovers(
    session: aiohttp.ClientSession, sim: RunningSimulator
) -> None:
    """500 units per 10 s: fifty transfers (10 each) fill it; the next call is refused, moves
    nothing, and fits again once 0.2 s of decay (10 units) has passed."""
    futures = client(session, sim)
    cent = Decimal("0.01")
    for _ in range(50):
        await futures.transfer(from_account="flex", to_account="cash", unit="usd", amount=cent)
    with pytest.raises(VenueRateLimited) as raised:
        await futures.transfer(from_account="flex", to_account="cash", unit="usd", amount=cent)
    assert raised.value.codes == ("apiLimitExceeded",)
    with pytest.raises(VenueRateLimited):
        await futures.accounts()
    assert wallet(sim, "master", "cash") == {"ZUSD": Decimal("0.50")}
    await sim.advance(0.2)
    await futures.transfer(from_account="flex", to_account="cash", unit="usd", amount=cent)
    assert wallet(sim, "master", "cash") == {"ZUSD": Decimal("0.51")}


# --- a stub venue for what the simulator does not do ---------------------------------------------
SECRET = "c3R1YiBzZWNyZXQgZm9yIGZ1dHVyZXMgY2xpZW50IHRlc3Rz"
OK = b'{"result":"success","serverTime":"2024-01-01T00:00:00.000Z"}'


def envelope_error(code: str) -> bytes:
    return msgspec.json.encode(
        {"result": "error", "serverTime": "2024-01-01T00:00:00.000Z", "error": code}
    )


@dataclass
class Seen:
    method: str
    raw_path: str
    raw_query: str
    body: bytes
    headers: dict[str, str]


Behaviour = Callable[[web.Request], Any]


@dataclass
class Stub:
    """Answers each request with the next behaviour (the last one repeats) and records it."""

    url: str
    behaviours: list[Behaviour] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def client(self, session: aiohttp.ClientSession, **kw: Any) -> KrakenFutures:
        credentials = ApiCredentials(key=Secret("stub-key"), secret=Secret(SECRET))
        options: dict[str, Any] = {"nonce": LocalNonce(), "timeout_s": 2.0} | kw
        return KrakenFutures(session, self.url, account="stub", credentials=credentials, **options)


def answer_with(
    body: bytes, status: int = 200, content_type: str = "application/json"
) -> Behaviour:
    async def answer(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, status=status, content_type=content_type)

    return answer


def hang(stub: Stub) -> Behaviour:
    async def wait(request: web.Request) -> web.StreamResponse:
        await stub.release.wait()
        return web.Response(body=OK, content_type="application/json")

    return wait


async def drop(request: web.Request) -> web.StreamResponse:
    assert request.transport is not None
    request.transport.close()
    return web.Response()


@pytest.fixture
async def stub() -> AsyncIterator[Stub]:
    app = web.Application()
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    state: list[Stub] = []

    async def serve(request: web.Request) -> web.StreamResponse:
        current = state[0]
        body = await request.read()
        current.seen.append(Seen(request.method, request.rel_url.raw_path,
                                 request.rel_url.raw_query_string, body, dict(request.headers)))  # fmt: skip
        index = min(len(current.seen), len(current.behaviours)) - 1
        result: web.StreamResponse = await current.behaviours[index](request)
        return result

    app.router.add_route("*", "/{tail:.*}", serve)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.append(Stub(url=f"http://127.0.0.1:{port}"))
    try:
        yield state[0]
    finally:
        state[0].release.set()
        await runner.cleanup()


async def test_requests_are_signed_over_the_exact_bytes_sent(
    session: aiohttp.ClientSession, stub: Stub
) -> None:
    stub.behaviours = [answer_with(OK)] * 2 + [answer_with(b'{"result":"success","tradingEnabled":false,'
                                               b'"serverTime":"2024-01-01T00:00:00.000Z"}')]  # fmt: skip
    futures = stub.client(session)
    await futures.transfer(
        from_account="flex", to_account="cash", unit="usd", amount=Decimal("1E+2")
    )
    await futures.transfer_subaccount(from_user="a b", to_user="c&d", from_account="flex",
                                      to_account="cash", unit="xbt", amount=Decimal("0.5"))  # fmt: skip
    assert await futures.set_trading_enabled("a/b", False) is False
    first, second, third = stub.seen
    assert (first.method, first.raw_path, first.raw_query) == (
        "POST",
        "/derivatives/api/v3/transfer",
        "",
    )
    assert first.body == b"fromAccount=flex&toAccount=cash&unit=usd&amount=100"
    assert first.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert second.body == (b"fromUser=a+b&toUser=c%26d&fromAccount=flex&toAccount=cash"
                           b"&unit=xbt&amount=0.5")  # fmt: skip
    assert (third.method, third.raw_path, third.raw_query, third.body) == (
        "PUT", "/derivatives/api/v3/subaccount/a%2Fb/trading-enabled", "tradingEnabled=false", b"",
    )  # fmt: skip
    nonces = [int(s.headers["Nonce"]) for s in stub.seen]
    assert nonces == sorted(set(nonces))
    for seen in stub.seen:
        assert seen.headers["APIKey"] == "stub-key"
        post_data = seen.body.decode() or seen.raw_query
        expected = futures_authent(SECRET, post_data, seen.headers["Nonce"], seen.raw_path)
        assert seen.headers["Authent"] == expected


@pytest.mark.parametrize("code", ["Unavailable", "Server Error", "unknownError"])
async def test_unknown_outcomes_are_ambiguous_for_actions_only(
    session: aiohttp.ClientSession, stub: Stub, code: str
) -> None:
    stub.behaviours = [answer_with(envelope_error(code))]
    futures = stub.client(session)
    with pytest.raises(AmbiguousOutcome):
        await futures.transfer(
            from_account="flex", to_account="cash", unit="usd", amount=Decimal(1)
        )
    with pytest.raises(AmbiguousOutcome):
        await futures.transfer_subaccount(from_user="a", to_user="b", from_account="flex",
                                          to_account="flex", unit="usd", amount=Decimal(1))  # fmt: skip
    with pytest.raises(AmbiguousOutcome):
        await futures.set_trading_enabled("u", True)
    with pytest.raises(VenueUnavailable):
        await futures.accounts()
    assert len(stub.seen) == 4  # an error reply is never retried


async def test_a_lost_transfer_reply_is_ambiguous_and_not_retried(
    session: aiohttp.ClientSession, stub: Stub
) -> None:
    stub.behaviours = [hang(stub)]
    with pytest.raises(AmbiguousOutcome):
        await stub.client(session, timeout_s=0.05).transfer(
            from_account="flex", to_account="cash", unit="usd", amount=Decimal(1)
        )
    assert len(stub.seen) == 1


async def test_a_dropped_transfer_is_ambiguous(session: aiohttp.ClientSession, stub: Stub) -> None:
    stub.behaviours = [drop]
    with pytest.raises(AmbiguousOutcome):
        await stub.client(session).transfer(
            from_account="flex", to_account="cash", unit="usd", amount=Decimal(1)
        )
    assert len(stub.seen) == 1


async def test_queries_are_retried_on_transport_errors(
    session: aiohttp.ClientSession, stub: Stub
) -> None:
    stub.behaviours = [drop, drop, answer_with(KRAKEN_EXAMPLE)]
    reply = await stub.client(session).accounts()
    assert set(reply.accounts) == {"cash", "fi_xbtusd", "flex"}
    assert len(stub.seen) == 3
    stub.seen.clear()
    stub.behaviours = [hang(stub)]
    with pytest.raises(VenueUnavailable):
        await stub.client(session, timeout_s=0.05).accounts()
    assert len(stub.seen) == 3


async def test_replies_that_are_not_kraken_envelopes(
    session: aiohttp.ClientSession, stub: Stub
) -> None:
    futures = stub.client(session)
    stub.behaviours = [answer_with(b"<html>502 Bad Gateway</html>", 502, "text/html")]
    with pytest.raises(VenueUnavailable):
        await futures.subaccounts()
    with pytest.raises(AmbiguousOutcome):
        await futures.transfer(
            from_account="flex", to_account="cash", unit="usd", amount=Decimal(1)
        )
    stub.behaviours = [answer_with(b"slow down", 429, "text/plain")]
    with pytest.raises(VenueRateLimited):
        await futures.accounts()
    stub.behaviours = [answer_with(b'{"result":"error"}')]
    with pytest.raises(VenueUnavailable) as raised:
        await futures.accounts()
    assert raised.value.codes == ("unknownError",)
    stub.behaviours = [answer_with(OK)]  # success, but without the fields the call returns
    with pytest.raises(VenueUnavailable):
        await futures.trading_enabled("u")
    with pytest.raises(AmbiguousOutcome):
        await futures.set_trading_enabled("u", True)

"""The futures REST client with no sockets (`MockTransport`): the exact bytes signed, a permit per
send naming the futures method, `apiLimitExceeded` fed back with its permit, one request per key
at a time, and what each transport or reply outcome means. Against the simulator:
tests/e2e/test_kraken_futures.py; recorded payloads and the code table: test_futures_payloads.py."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import msgspec
import pytest

from orchestrator.errors import (
    AmbiguousOutcome,
    InvalidRequest,
    VenueRateLimited,
    VenueUnavailable,
)
from orchestrator.exchange.kraken.common.errors import RateLimitKind
from orchestrator.exchange.kraken.common.key_lock import LocalKeyLock
from orchestrator.exchange.kraken.common.nonce import LocalNonce
from orchestrator.exchange.kraken.common.transport import HttpReply, HttpRequest, MockTransport
from orchestrator.exchange.kraken.futures import methods as fm
from orchestrator.exchange.kraken.futures.client import KrakenFutures
from orchestrator.ratelimit.permits import Permit, Unlimited
from orchestrator.ratelimit.policy import VenueRequest
from orchestrator.secrets import ApiCredentials, Secret
from orchestrator.simulator.auth import futures_authent

FIXTURES = Path(__file__).parents[2] / "fixtures" / "futures"
KRAKEN_EXAMPLE = (FIXTURES / "accounts_example.json").read_bytes()
SECRET = "c3R1YiBzZWNyZXQgZm9yIGZ1dHVyZXMgY2xpZW50IHRlc3Rz"
CREDENTIALS = ApiCredentials(key=Secret("unit-key"), secret=Secret(SECRET))
OK = HttpReply(200, b'{"result":"success","serverTime":"2024-01-01T00:00:00.000Z"}')
TRADING_OFF = HttpReply(
    200, b'{"result":"success","tradingEnabled":false,"serverTime":"2024-01-01T00:00:00.000Z"}'
)
EMPTY_LOG = HttpReply(200, b'{"accountUid":"u-1","logs":[]}')
Handler = Callable[[HttpRequest], Awaitable[HttpReply]]


def envelope_error(code: str, status: int = 200) -> HttpReply:
    body = {"result": "error", "serverTime": "2024-01-01T00:00:00.000Z", "error": code}
    return HttpReply(status, msgspec.json.encode(body))


class RecordingPermits(Unlimited):
    """Grants everything and records what the client asked for and fed back."""

    def __init__(self) -> None:
        self.requests: list[VenueRequest] = []
        self.key_ids: list[str] = []
        self.feedback_calls: list[tuple[Permit, RateLimitKind | None]] = []

    async def acquire_for(self, request: VenueRequest, **kw: Any) -> Permit:
        self.requests.append(request)
        self.key_ids.append(kw["key_id"])
        return await super().acquire_for(request, **kw)

    async def feedback(self, permit: Permit, kind: RateLimitKind | None) -> None:
        self.feedback_calls.append((permit, kind))


def answers(*replies: HttpReply | BaseException) -> Handler:
    """Each request gets the next reply (or raises the next error, mapped by the transport)."""
    queue = list(replies)

    async def handler(request: HttpRequest) -> HttpReply:
        reply = queue.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        return reply

    return handler


def client(handler: Handler) -> tuple[KrakenFutures, MockTransport, RecordingPermits]:
    transport = MockTransport(handler)
    permits = RecordingPermits()
    futures = KrakenFutures(transport, "https://futures.example", account="a",
                            credentials=CREDENTIALS, nonce=LocalNonce(), key_lock=LocalKeyLock(),
                            permits=permits)  # fmt: skip
    return futures, transport, permits


async def transfer(futures: KrakenFutures) -> None:
    await futures.transfer(from_account="flex", to_account="cash", unit="usd", amount=Decimal(1))


async def transfer_subaccount(futures: KrakenFutures) -> None:
    await futures.transfer_subaccount(from_user="a", to_user="b", from_account="flex",
                                      to_account="flex", unit="usd", amount=Decimal(1))  # fmt: skip


def test_a_client_cannot_be_built_without_its_guarantees() -> None:
    params = inspect.signature(KrakenFutures).parameters
    for guarantee in ("transport", "credentials", "nonce", "key_lock", "permits"):
        assert params[guarantee].default is inspect.Parameter.empty, guarantee
    assert "session" not in params


async def test_requests_are_signed_over_the_exact_bytes_sent() -> None:
    futures, transport, permits = client(answers(OK, OK, TRADING_OFF, EMPTY_LOG))
    await futures.transfer(
        from_account="flex", to_account="cash", unit="usd", amount=Decimal("1E+2")
    )
    await futures.transfer_subaccount(from_user="a b", to_user="c&d", from_account="flex",
                                      to_account="cash", unit="xbt", amount=Decimal("0.5"))  # fmt: skip
    assert await futures.set_trading_enabled("a/b", False) is False
    await futures.account_log(from_id=7, sort="asc")
    first, second, third, fourth = transport.requests
    assert (first.method, first.url) == (
        "POST",
        "https://futures.example/derivatives/api/v3/transfer",
    )
    assert first.body == b"fromAccount=flex&toAccount=cash&unit=usd&amount=100"
    assert first.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert second.body == (b"fromUser=a+b&toUser=c%26d&fromAccount=flex&toAccount=cash"
                           b"&unit=xbt&amount=0.5")  # fmt: skip
    assert (third.method, third.url, third.body) == (
        "PUT",
        "https://futures.example/derivatives/api/v3/subaccount/a%2Fb/trading-enabled"
        "?tradingEnabled=false",
        None,
    )
    assert (fourth.method, fourth.url, fourth.body) == (
        "GET", "https://futures.example/api/history/v3/account-log?sort=asc&count=25&from=7", None,
    )  # fmt: skip
    nonces = [int(r.headers["Nonce"]) for r in transport.requests]
    assert nonces == sorted(set(nonces))
    for request in transport.requests:
        assert request.headers["APIKey"] == "unit-key"
        url = urlsplit(request.url)
        post_data = request.body.decode() if request.body else url.query
        path = url.path.removeprefix("/derivatives")
        expected = futures_authent(SECRET, post_data, request.headers["Nonce"], path)
        assert request.headers["Authent"] == expected  # the simulator's own check
    assert [r.method for r in permits.requests] == [
        fm.TRANSFER, fm.TRANSFER_SUBACCOUNT, fm.SET_TRADING_ENABLED, fm.ACCOUNT_LOG,
    ]  # fmt: skip
    assert set(permits.key_ids) == {futures.key_id}
    assert futures.key_id != "unit-key"  # the limiter sees a fingerprint, never the key


async def test_api_limit_exceeded_feeds_back_with_the_permit() -> None:
    futures, transport, permits = client(answers(envelope_error("apiLimitExceeded")))
    with pytest.raises(VenueRateLimited) as raised:
        await transfer(futures)
    assert raised.value.codes == ("apiLimitExceeded",)
    [(permit, kind)] = permits.feedback_calls
    assert kind == "futures"
    assert permit.lane == "new_risk"
    assert len(transport.requests) == 1
    futures, _, permits = client(answers(HttpReply(429, b"Rate limited")))
    with pytest.raises(VenueRateLimited):  # the history API says so with HTTP 429
        await futures.account_log()
    assert [kind for _, kind in permits.feedback_calls] == ["futures"]


@pytest.mark.parametrize(
    "failure",
    [TimeoutError(), aiohttp.ServerDisconnectedError(), aiohttp.ClientOSError(104, "reset")],
)
async def test_a_lost_reply_to_a_transfer_is_ambiguous_and_never_resent(
    failure: BaseException,
) -> None:
    for send in (transfer, transfer_subaccount):
        futures, transport, _ = client(answers(failure))
        with pytest.raises(AmbiguousOutcome):
            await send(futures)
        assert len(transport.requests) == 1


@pytest.mark.parametrize(
    "failure",
    [TimeoutError(), aiohttp.ServerDisconnectedError(), aiohttp.ClientOSError(104, "reset")],
)
async def test_queries_are_retried_with_a_permit_for_each_send(failure: BaseException) -> None:
    futures, transport, permits = client(answers(failure, failure, HttpReply(200, KRAKEN_EXAMPLE)))
    reply = await futures.accounts()
    assert set(reply.accounts) == {"cash", "fi_xbtusd", "flex"}
    assert len(transport.requests) == 3
    assert [r.method for r in permits.requests] == [fm.ACCOUNTS] * 3  # each send was charged
    futures, transport, _ = client(answers(failure, failure, failure))
    with pytest.raises(VenueUnavailable):
        await futures.accounts()
    assert len(transport.requests) == 3


async def test_a_connect_failure_means_nothing_was_sent() -> None:
    refused = aiohttp.ClientConnectorError(
        aiohttp.client_reqrep.ConnectionKey("h", 1, False, True, None, None, None),
        OSError(111, "refused"),
    )
    futures, transport, _ = client(answers(refused))
    with pytest.raises(VenueUnavailable):
        await transfer_subaccount(futures)
    assert len(transport.requests) == 1


@pytest.mark.parametrize("code", ["Unavailable", "Server Error", "unknownError"])
async def test_unknown_outcomes_are_ambiguous_for_actions_only(code: str) -> None:
    futures, transport, _ = client(answers(*[envelope_error(code)] * 4))
    with pytest.raises(AmbiguousOutcome):
        await transfer(futures)
    with pytest.raises(AmbiguousOutcome):
        await transfer_subaccount(futures)
    with pytest.raises(AmbiguousOutcome):
        await futures.set_trading_enabled("u", True)
    with pytest.raises(VenueUnavailable):
        await futures.accounts()
    assert len(transport.requests) == 4  # an error reply is never retried


@pytest.mark.parametrize(
    "garbled",
    [
        HttpReply(200, b'{"result":"success","serverTi'),
        HttpReply(502, b"<html>502 Bad Gateway</html>"),
    ],
)
async def test_replies_that_are_not_kraken_envelopes(garbled: HttpReply) -> None:
    for send in (transfer, transfer_subaccount):
        futures, _, _ = client(answers(garbled))
        with pytest.raises(AmbiguousOutcome):
            await send(futures)
    futures, transport, _ = client(answers(garbled))
    with pytest.raises(VenueUnavailable):  # a query: nothing executed
        await futures.subaccounts()
    assert len(transport.requests) == 1


async def test_replies_without_what_the_call_returns() -> None:
    futures, _, _ = client(answers(HttpReply(200, b'{"result":"error"}'), OK, OK))
    with pytest.raises(VenueUnavailable) as raised:
        await futures.accounts()
    assert raised.value.codes == ("unknownError",)
    with pytest.raises(VenueUnavailable):  # success, but without the fields the call returns
        await futures.trading_enabled("u")
    with pytest.raises(AmbiguousOutcome):
        await futures.set_trading_enabled("u", True)
    futures, _, _ = client(answers(HttpReply(200, b'{"accountUid":"u","logs":[{"id":"x"}]}')))
    with pytest.raises(VenueUnavailable):
        await futures.account_log()


async def test_one_request_per_key_at_a_time() -> None:
    """Nonces reach the venue in the order they were taken: the key lock lets one request out."""
    in_flight: list[int] = []
    most = [0]

    async def slow(request: HttpRequest) -> HttpReply:
        in_flight.append(1)
        most[0] = max(most[0], len(in_flight))
        for _ in range(3):
            await asyncio.sleep(0)  # let the other callers try to send meanwhile
        in_flight.pop()
        return OK

    futures, transport, _ = client(slow)
    await asyncio.gather(*(transfer(futures) for _ in range(5)))
    assert most[0] == 1
    nonces = [int(r.headers["Nonce"]) for r in transport.requests]
    assert nonces == sorted(nonces)


async def test_refusals_before_sending() -> None:
    futures, transport, permits = client(answers())
    with pytest.raises(InvalidRequest):
        await futures.transfer(
            from_account="flex", to_account="cash", unit="usd", amount=Decimal("NaN")
        )
    with pytest.raises(ValueError, match="count"):
        await futures.account_log(count=26)  # 26 entries cost 2 tokens: never asked for
    assert transport.requests == []
    assert permits.requests == []

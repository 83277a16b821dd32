"""The signed REST client with no sockets (`MockTransport`): what each transport and reply outcome
means, retries only where nothing can have executed, venue feedback with the permit, and the
guarantees a client cannot be built without."""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest

from orchestrator.errors import AmbiguousOutcome, InvalidNonce, VenueRateLimited, VenueUnavailable
from orchestrator.exchange.kraken.common.errors import RateLimitKind
from orchestrator.exchange.kraken.common.key_lock import LocalKeyLock
from orchestrator.exchange.kraken.common.methods import (
    ACCOUNT_TRANSFER,
    ADD_ORDER,
    AMEND_ORDER,
    BALANCE,
    CANCEL_ORDER,
    WITHDRAW,
    Method,
)
from orchestrator.exchange.kraken.common.nonce import LocalNonce
from orchestrator.exchange.kraken.common.transport import HttpReply, HttpRequest, MockTransport
from orchestrator.exchange.kraken.spot import schemas as s
from orchestrator.exchange.kraken.spot.rest import KrakenRest
from orchestrator.ratelimit.permits import Permit, Unlimited
from orchestrator.ratelimit.policy import VenueRequest
from orchestrator.secrets import ApiCredentials, Secret

CREDENTIALS = ApiCredentials(key=Secret("unit-key"), secret=Secret("c2VjcmV0"))


def ok(result: Any) -> HttpReply:
    return HttpReply(200, json.dumps({"error": [], "result": result}).encode())


def venue_error(code: str) -> HttpReply:
    return HttpReply(200, json.dumps({"error": [code]}).encode())


class RecordingPermits(Unlimited):
    """Grants everything and records what the client asked for and fed back."""

    def __init__(self) -> None:
        self.requests: list[VenueRequest] = []
        self.feedback_calls: list[tuple[Permit, RateLimitKind | None]] = []

    async def acquire_for(self, request: VenueRequest, **kw: Any) -> Permit:
        self.requests.append(request)
        return await super().acquire_for(request, **kw)

    async def feedback(self, permit: Permit, kind: RateLimitKind | None) -> None:
        self.feedback_calls.append((permit, kind))


def client(
    handler: Callable[[HttpRequest], Awaitable[HttpReply]],
) -> tuple[KrakenRest, MockTransport, RecordingPermits]:
    transport = MockTransport(handler)
    permits = RecordingPermits()
    rest = KrakenRest(transport, "https://api.example", account="a", credentials=CREDENTIALS,
                      nonce=LocalNonce(), key_lock=LocalKeyLock(), permits=permits)  # fmt: skip
    return rest, transport, permits


# The spot calls that act (issue 9's matrix), each with the type its caller decodes it into.
ACTING_CALLS = [
    pytest.param(ADD_ORDER, s.AddOrderResult, id="AddOrder"),
    pytest.param(AMEND_ORDER, s.AmendResult, id="AmendOrder"),
    pytest.param(CANCEL_ORDER, s.CancelResult, id="CancelOrder"),
    pytest.param(ACCOUNT_TRANSFER, s.TransferResult, id="AccountTransfer"),
    pytest.param(WITHDRAW, s.WithdrawResult, id="Withdraw"),
]


async def call_acting(rest: KrakenRest, method: Method, into: type[Any]) -> None:
    """Send `method` the way its caller does: typed, with the permit request that prices it."""
    await rest.call_as(into, method, {}, request=VenueRequest(method=method, pair="XBT/USD"))


def answers(*replies: HttpReply | BaseException) -> Callable[[HttpRequest], Awaitable[HttpReply]]:
    queue = list(replies)

    async def handler(request: HttpRequest) -> HttpReply:
        reply = queue.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        return reply

    return handler


def test_a_client_cannot_be_built_without_its_guarantees() -> None:
    params = inspect.signature(KrakenRest).parameters
    for guarantee in ("transport", "credentials", "nonce", "key_lock", "permits"):
        assert params[guarantee].default is inspect.Parameter.empty, guarantee


async def test_signed_request_carries_nonce_key_and_signature() -> None:
    rest, transport, permits = client(answers(ok({"ZUSD": "1.0"}), ok({"ZUSD": "2.0"})))
    await rest.call(BALANCE)
    await rest.call(BALANCE)
    nonces = []
    for request in transport.requests:
        assert request.url == "https://api.example/0/private/Balance"
        assert request.headers["API-Key"] == "unit-key"
        assert request.headers["API-Sign"]
        assert request.body is not None
        nonces.append(int(parse_qs(request.body.decode())["nonce"][0]))
    assert nonces[0] < nonces[1]
    assert [r.method for r in permits.requests] == [BALANCE, BALANCE]  # a permit per call


TRANSPORT_LOSSES = [
    pytest.param(TimeoutError(), id="timeout"),
    pytest.param(aiohttp.ServerDisconnectedError(), id="disconnected"),
    pytest.param(aiohttp.ClientOSError(104, "reset"), id="reset"),
]


@pytest.mark.parametrize("failure", TRANSPORT_LOSSES)
async def test_transport_loss_after_sending_a_query_asks_again(failure: BaseException) -> None:
    rest, transport, permits = client(answers(failure, ok({"ZUSD": "1.0"})))
    assert await rest.call(BALANCE) == {"ZUSD": "1.0"}
    assert len(transport.requests) == 2
    assert len(permits.requests) == 2  # the venue counts the retry: it takes its own permit


@pytest.mark.parametrize(("method", "into"), ACTING_CALLS)
@pytest.mark.parametrize("failure", TRANSPORT_LOSSES)
async def test_transport_loss_after_sending(
    failure: BaseException, method: Method, into: type[Any]
) -> None:
    """A call that acts is never re-sent by the client: the reply is lost, so it is ambiguous."""
    rest, transport, _ = client(answers(failure))
    with pytest.raises(AmbiguousOutcome):
        await call_acting(rest, method, into)
    assert len(transport.requests) == 1


async def test_connect_failure_means_nothing_was_sent() -> None:
    refused = aiohttp.ClientConnectorError(
        aiohttp.client_reqrep.ConnectionKey("h", 1, False, True, None, None, None),
        OSError(111, "refused"),
    )
    rest, _, _ = client(answers(refused))
    with pytest.raises(VenueUnavailable):
        await rest.call(ACCOUNT_TRANSFER, {})


GARBLED_REPLIES = [
    pytest.param(HttpReply(200, b'{"error":[],"result":{"transfer_'), id="truncated"),
    pytest.param(HttpReply(502, b"<html>Bad Gateway</html>"), id="html-502"),
]


@pytest.mark.parametrize(("method", "into"), ACTING_CALLS)
@pytest.mark.parametrize("garbled", GARBLED_REPLIES)
async def test_garbled_reply_to_an_acting_call_is_ambiguous(
    garbled: HttpReply, method: Method, into: type[Any]
) -> None:
    rest, transport, _ = client(answers(garbled))
    with pytest.raises(AmbiguousOutcome):
        await call_acting(rest, method, into)
    assert len(transport.requests) == 1


@pytest.mark.parametrize("garbled", GARBLED_REPLIES)
async def test_garbled_reply_to_a_query_is_retried_then_unavailable(garbled: HttpReply) -> None:
    rest, _, _ = client(answers(garbled, garbled, garbled))
    with pytest.raises(VenueUnavailable):  # a query: nothing executed, retried, then unavailable
        await rest.call(BALANCE)


@pytest.mark.parametrize(("method", "into"), ACTING_CALLS)
async def test_unreadable_result_of_an_acting_call_is_ambiguous(
    method: Method, into: type[Any]
) -> None:
    """The envelope is fine but the result is not what the call returns: the venue answered,
    so it may have acted. (Read as "unavailable, retry" this would send a transfer twice.)"""
    rest, transport, _ = client(answers(ok({"unexpected": True})))
    with pytest.raises(AmbiguousOutcome):
        await call_acting(rest, method, into)
    assert len(transport.requests) == 1


async def test_venue_errors_map_and_rate_limits_feed_back_with_the_permit() -> None:
    rest, _, permits = client(answers(venue_error("EAPI:Invalid nonce")))
    with pytest.raises(InvalidNonce):
        await rest.call(BALANCE)
    rest, _, permits = client(answers(venue_error("EOrder:Rate limit exceeded")))
    with pytest.raises(VenueRateLimited):
        await rest.call(ADD_ORDER, {}, request=VenueRequest(method=ADD_ORDER, pair="XBT/USD"))
    [(permit, kind)] = permits.feedback_calls
    assert kind == "trading"
    assert permit.lane == "new_risk"


async def test_request_must_describe_the_method_sent() -> None:
    rest, _, _ = client(answers())
    other: Method = CANCEL_ORDER
    with pytest.raises(ValueError, match="describes"):
        await rest.call(ADD_ORDER, {}, request=VenueRequest(method=other, pair="XBT/USD"))

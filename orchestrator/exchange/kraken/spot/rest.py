"""Kraken spot REST: signed private calls of one API key, and the public calls.

A private call is a `Method` of Kraken's table (common/methods.py): the client takes a permit
from the permit source first (always: there is no client without one), then holds the key's lock
(one request per key at a time, so nonces reach Kraken in the order they were allocated), takes
a nonce, signs and sends through the `Transport`. Replies are decoded once with msgspec; Kraken's
errors become our tree (`common/errors.to_exception`) and a venue rate-limit error is fed back
to the limiter with the permit that named the scopes.

Outcomes (docs/outcomes.md): a query is retried on transport trouble, then `VenueUnavailable`.
A call that acts is sent once; a lost, garbled or unreadable reply is an `AmbiguousOutcome` and
the caller reconciles (by `cl_ord_id`, order state, ledgers) before anything is sent again.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

import msgspec

from orchestrator.errors import AmbiguousOutcome, VenueRateLimited, VenueUnavailable
from orchestrator.exchange.kraken.common.auth import spot_sign
from orchestrator.exchange.kraken.common.errors import rate_limit_kind, to_exception
from orchestrator.exchange.kraken.common.methods import Method
from orchestrator.exchange.kraken.common.signed import SignedClient
from orchestrator.exchange.kraken.common.transport import HttpRequest, Transport
from orchestrator.exchange.kraken.spot.schemas import Envelope
from orchestrator.ratelimit.policy import VenueRequest

_QUERY_RETRIES: Final = 2
_FORM: Final = "application/x-www-form-urlencoded"

Stamp = Callable[[], Mapping[str, str]]
_envelope = msgspec.json.Decoder(Envelope)
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}
T = TypeVar("T")


def decode_result(into: type[T], raw: msgspec.Raw | bytes, call: str, *, acting: bool) -> T:
    """`raw` as `into`. A result we cannot read is ambiguous for a call that acts: the venue
    answered, so it may have done what we asked."""
    decoder = _decoders.get(into)
    if decoder is None:
        decoder = _decoders[into] = msgspec.json.Decoder(into)
    try:
        return decoder.decode(raw)  # type: ignore[no-any-return]
    except msgspec.DecodeError as exc:  # ValidationError included
        error = AmbiguousOutcome if acting else VenueUnavailable
        raise error(f"{call}: unexpected result shape: {exc}") from exc


def read_envelope(raw: bytes, call: str, *, acting: bool) -> msgspec.Raw:
    """The `result` of a Kraken reply, or the error its `error` list (or its absence) means."""
    try:
        envelope = _envelope.decode(raw)
    except msgspec.DecodeError as exc:
        error = AmbiguousOutcome if acting else VenueUnavailable
        raise error(f"{call}: reply is not Kraken's envelope") from exc
    if any(not e.startswith("W") for e in envelope.error):
        raise to_exception(envelope.error, acting=acting, method=call)
    return envelope.result


class KrakenPublic:
    """Kraken's public REST calls (market data, AssetPairs): no key, no permit."""

    def __init__(self, transport: Transport, base_url: str) -> None:
        self.transport = transport
        self.base_url = base_url.rstrip("/")

    async def call_as(self, into: type[T], name: str, params: Mapping[str, str] | None = None) -> T:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        request = HttpRequest("GET", f"{self.base_url}/0/public/{name}{query}", {}, None)
        for attempt in range(_QUERY_RETRIES + 1):
            try:
                reply = await self.transport.send(request, call=name, acting=False)
                return decode_result(into, read_envelope(reply.body, name, acting=False), name,
                                     acting=False)  # fmt: skip
            except VenueUnavailable:
                if attempt == _QUERY_RETRIES:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover


class KrakenRest(SignedClient):
    """One account's signed REST access (one API key). Every argument is a guarantee: there is
    no client without credentials, a nonce source, the key's lock and a permit source."""

    async def call(
        self,
        method: Method,
        params: Mapping[str, Any] | None = None,
        *,
        request: VenueRequest | None = None,
        deadline_s: float | None = None,
        stamp: Stamp | None = None,
    ) -> Any:
        """A signed call returning the decoded `result` as builtins (prefer `call_as`)."""
        return msgspec.json.decode(
            await self._private(method, params, request=request, deadline_s=deadline_s, stamp=stamp)
        )

    async def call_as(
        self,
        into: type[T],
        method: Method,
        params: Mapping[str, Any] | None = None,
        *,
        request: VenueRequest | None = None,
        deadline_s: float | None = None,
        stamp: Stamp | None = None,
    ) -> T:
        """A signed call whose `result` is decoded into `into` (a `schemas` Struct).

        `stamp`: parameters computed at the moment of signing, after every wait (permit, key
        lock), such as Kraken's `deadline` for an order."""
        raw = await self._private(method, params, request=request, deadline_s=deadline_s,
                                  stamp=stamp)  # fmt: skip
        return decode_result(into, raw, method.rest, acting=method.acting)

    async def _private(
        self,
        method: Method,
        params: Mapping[str, Any] | None,
        *,
        request: VenueRequest | None,
        deadline_s: float | None,
        stamp: Stamp | None,
    ) -> msgspec.Raw:
        """Permit, key lock, nonce, sign, send, check. `request` describes the call to the
        limiter when the method is priced by more than its name (pair, order ages)."""
        if request is not None and request.method is not method:
            raise ValueError(f"request describes {request.method}, not {method}")
        wait_s = self.permit_deadline_s if deadline_s is None else deadline_s
        attempts = 1 if method.acting else _QUERY_RETRIES + 1
        for attempt in range(attempts):
            # A permit per send: the venue counts a retried query again.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait_s  # one deadline for the permit and the key together
            permit = await self.permits.acquire_for(
                request or VenueRequest(method=method),
                account=self.account,
                key_id=self.key_id,
                strategy=self.strategy,  # cancels count toward the share, never wait on it
                deadline_s=wait_s,
            )
            try:
                left_s = max(0.0, deadline - loop.time())
                body = await self._send(method, params or {}, stamp, wait_s=left_s)
                return read_envelope(body, method.rest, acting=method.acting)
            except VenueRateLimited as exc:
                kind = rate_limit_kind(exc.codes[0]) if exc.codes else None
                await self.permits.feedback(permit, kind)
                raise
            except VenueUnavailable:
                if method.acting or attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(
        self, method: Method, params: Mapping[str, Any], stamp: Stamp | None, *, wait_s: float
    ) -> bytes:
        path = f"/0/private/{method.rest}"
        async with self.key_lock.hold(wait_s=wait_s):
            nonce = await self.nonce.next()
            stamped = {**params, **stamp()} if stamp is not None else params
            body = urllib.parse.urlencode({"nonce": nonce, **stamped}).encode()
            headers = {
                "API-Key": self.credentials.key.reveal(),
                "API-Sign": spot_sign(self.credentials.secret.reveal(), path, nonce, body),
                "Content-Type": _FORM,
            }
            request = HttpRequest("POST", self.base_url + path, headers, body)
            reply = await self.transport.send(request, call=method.rest, acting=method.acting)
            return reply.body

"""Kraken spot REST: signed private calls and public calls, one aiohttp session per process.

Every private call takes a limiter permit first (when a limiter is given), then a nonce, then
sends. Replies are decoded once with msgspec; Kraken's errors become our error tree
(`errors.to_exception`), and a venue rate-limit error feeds back into the limiter so that every
process backs off. A timeout or a dropped connection after sending a request that acts
(orders, transfers) is an `AmbiguousOutcome`: the caller reconciles (by `cl_ord_id`, ledgers)
before anything is sent again. Queries are retried on transport errors, acting calls never.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import urllib.parse
from collections.abc import Mapping
from typing import Any, Final, TypeVar

import aiohttp
import msgspec

from orchestrator.errors import AmbiguousOutcome, VenueRateLimited, VenueUnavailable
from orchestrator.exchange.kraken.common.auth import spot_sign
from orchestrator.exchange.kraken.common.errors import rate_limit_kind, to_exception
from orchestrator.exchange.kraken.common.nonce import NonceSource
from orchestrator.exchange.kraken.spot.schemas import Envelope
from orchestrator.ratelimit.policy import VenueRequest
from orchestrator.ratelimit.redis import Limiter
from orchestrator.secrets import ApiCredentials
from orchestrator.store.mutex import RedisMutex

ACTING_METHODS: Final = frozenset(
    {
        "AddOrder",
        "AddOrderBatch",
        "AmendOrder",
        "EditOrder",
        "CancelOrder",
        "CancelOrderBatch",
        "CancelAll",
        "CancelAllOrdersAfter",
        "AccountTransfer",
        "Withdraw",
        "WalletTransfer",
        "CreateSubaccount",
    }
)
_QUERY_RETRIES: Final = 2
_USER_AGENT: Final = "orchestrator/0.1"


_envelope = msgspec.json.Decoder(Envelope)
_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}
T = TypeVar("T")


def _decode_as(into: type[T], raw: msgspec.Raw, method: str) -> T:
    decoder = _decoders.get(into)
    if decoder is None:
        decoder = _decoders[into] = msgspec.json.Decoder(into)
    try:
        return decoder.decode(raw)  # type: ignore[no-any-return]
    except msgspec.ValidationError as exc:
        raise VenueUnavailable(f"{method}: unexpected result shape: {exc}") from exc


def key_fingerprint(key_id: str) -> str:
    """A short, non-reversible name for an API key, for Redis keys and limiter scopes."""
    return hashlib.sha256(key_id.encode()).hexdigest()[:16]


class KrakenRest:
    """One account's REST access (one API key)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        account: str,
        credentials: ApiCredentials | None = None,
        nonce: NonceSource | None = None,
        limiter: Limiter | None = None,
        strategy: str | None = None,
        timeout_s: float = 10.0,
        permit_deadline_s: float = 5.0,
        key_mutex: RedisMutex | None = None,
    ) -> None:
        """`key_mutex`: give one when other processes use the same API key (see `_send`)."""
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.account = account
        self.credentials = credentials
        self.nonce = nonce
        self.limiter = limiter
        self.strategy = strategy
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.permit_deadline_s = permit_deadline_s
        self.key_id = key_fingerprint(credentials.key.reveal()) if credentials else ""
        # One request per key at a time: nonces then reach the venue in the order they were
        # allocated, so a key with nonce window 0 never sees EAPI:Invalid nonce from us. Across
        # processes sharing the key, the Redis mutex does the same.
        self._in_order = asyncio.Lock()
        self._key_mutex = key_mutex

    async def public(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        url = f"{self.base_url}/0/public/{method}"
        for attempt in range(_QUERY_RETRIES + 1):
            try:
                async with self.session.get(url, params=params, timeout=self.timeout) as resp:
                    raw = await resp.read()
            except (TimeoutError, aiohttp.ClientError) as exc:
                if attempt == _QUERY_RETRIES:
                    raise VenueUnavailable(f"{method}: {type(exc).__name__}") from exc
                continue
            return msgspec.json.decode(self._result(raw, method, acting=False))
        raise AssertionError("unreachable")  # pragma: no cover

    async def private(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        request: VenueRequest | None = None,
        deadline_s: float | None = None,
    ) -> Any:
        """A signed call returning the decoded `result` as builtins."""
        raw = await self._private(method, params, request=request, deadline_s=deadline_s)
        return msgspec.json.decode(raw)

    async def private_as(
        self,
        into: type[T],
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        request: VenueRequest | None = None,
        deadline_s: float | None = None,
    ) -> T:
        """A signed call whose `result` is decoded into `into` (a `schemas` Struct)."""
        raw = await self._private(method, params, request=request, deadline_s=deadline_s)
        return _decode_as(into, raw, method)

    async def _private(
        self,
        method: str,
        params: Mapping[str, Any] | None,
        *,
        request: VenueRequest | None,
        deadline_s: float | None,
    ) -> msgspec.Raw:
        """Permit, nonce, sign, send, check. `request` describes the call to the limiter."""
        acting = method in ACTING_METHODS
        venue_request = request or VenueRequest(method=method, pair=None)
        if self.limiter is not None:
            await self.limiter.acquire_for(
                venue_request,
                account=self.account,
                key_id=self.key_id,
                strategy=self.strategy,  # cancels count toward the share, never wait on it
                deadline_s=self.permit_deadline_s if deadline_s is None else deadline_s,
            )
        attempts = 1 if acting else _QUERY_RETRIES + 1
        for attempt in range(attempts):
            try:
                raw = await self._send(method, params or {})
            except (TimeoutError, aiohttp.ClientError) as exc:
                if acting:
                    raise AmbiguousOutcome(
                        f"{method}: no reply ({type(exc).__name__}); the venue may have acted"
                    ) from exc
                if attempt == attempts - 1:
                    raise VenueUnavailable(f"{method}: {type(exc).__name__}") from exc
                continue
            try:
                return self._result(raw, method, acting=acting)
            except VenueRateLimited as exc:
                await self._feedback(exc, venue_request)
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(self, method: str, params: Mapping[str, Any]) -> bytes:
        credentials, nonces = self.credentials, self.nonce
        if credentials is None or nonces is None:
            raise ValueError(f"{self.account}: private calls need credentials and a nonce source")
        path = f"/0/private/{method}"
        async with self._in_order, self._turn():
            nonce = await nonces.next()
            body = urllib.parse.urlencode({"nonce": nonce, **params}).encode()
            headers = {
                "API-Key": credentials.key.reveal(),
                "API-Sign": spot_sign(credentials.secret.reveal(), path, nonce, body),
                "Content-Type": "application/x-www-form-urlencoded",
                "User-Agent": _USER_AGENT,
            }
            async with self.session.post(
                self.base_url + path, data=body, headers=headers, timeout=self.timeout
            ) as resp:
                return await resp.read()

    def _turn(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self._key_mutex.hold() if self._key_mutex is not None else contextlib.nullcontext()

    def _result(self, raw: bytes, method: str, *, acting: bool) -> msgspec.Raw:
        try:
            envelope = _envelope.decode(raw)
        except msgspec.DecodeError as exc:
            error = AmbiguousOutcome if acting else VenueUnavailable
            raise error(f"{method}: reply is not Kraken's envelope") from exc
        if any(not e.startswith("W") for e in envelope.error):
            raise to_exception(envelope.error, acting=acting, method=method)
        return envelope.result

    async def _feedback(self, exc: VenueRateLimited, request: VenueRequest) -> None:
        """Tell every process: the scope the venue named is full."""
        if self.limiter is not None:
            kind = rate_limit_kind(exc.codes[0]) if exc.codes else None
            await self.limiter.feedback(
                kind, account=self.account, key_id=self.key_id, pair=request.pair
            )

"""Kraken futures (derivatives) REST: wallets, sub-accounts, the trading switch, transfers, and
the account log.

Same shape as the spot client (`spot/rest.KrakenRest`): every call is a `FuturesMethod` of the
futures table (futures/methods.py); the client takes a permit from the permit source first (there
is no client without one), then holds the key's lock (one request per key at a time, so nonces
reach Kraken in the order they were allocated), takes a nonce, signs and sends through the
`Transport`. Replies are decoded once per type with msgspec; Kraken's error codes become our tree
(`futures/errors.to_exception`), and `apiLimitExceeded` (or HTTP 429) is fed back to the permit
source with the permit that named the key's futures budget (kind `futures`).

Authentication (docs/kraken/rest.md 5.2): headers `APIKey`, `Authent`, `Nonce`; `Authent` signs
postData (the URL-encoded body, or the query string when there is no body, exactly the bytes
sent), then the nonce, then the path without `/derivatives` (the history path as it is).

Outcomes: a query is retried on transport trouble (a new permit each time: every send that
reached Kraken was charged), then `VenueUnavailable`; an error reply is not retried. A call that
acts (transfers, the trading switch) is sent once: losing its reply, or a reply `Unavailable` /
`Server Error` / `unknownError` or one we cannot read, is `AmbiguousOutcome`, and the caller
reconciles before sending again (futures/treasury.py, from the account log: futures transfers
carry no idempotency key).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final, Literal, TypeVar

import msgspec

from orchestrator.errors import (
    AmbiguousOutcome,
    VenueRateLimited,
    VenueUnavailable,
)
from orchestrator.exchange.kraken.common.amounts import amount_text
from orchestrator.exchange.kraken.common.auth import futures_sign
from orchestrator.exchange.kraken.common.signed import SignedClient
from orchestrator.exchange.kraken.common.transport import HttpReply, HttpRequest
from orchestrator.exchange.kraken.futures import methods as fm
from orchestrator.exchange.kraken.futures.errors import NO_CODE, to_exception
from orchestrator.exchange.kraken.futures.schemas import (
    AccountLog,
    AccountsResponse,
    Envelope,
    SubaccountsResponse,
    TradingEnabled,
)
from orchestrator.logs import get_logger
from orchestrator.ratelimit.policy import VenueRequest

log = get_logger(__name__)

_QUERY_RETRIES: Final = 2
_HTTP_OK: Final = 200
_HTTP_TOO_MANY_REQUESTS: Final = 429
_FORM: Final = "application/x-www-form-urlencoded"

_envelope = msgspec.json.Decoder(Envelope)
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}
T = TypeVar("T")


def decode_reply(into: type[T], raw: bytes, method: fm.FuturesMethod) -> T:
    """The typed reply. A success we cannot read is ambiguous for a call that acts."""
    decoder = _decoders.get(into)
    if decoder is None:
        decoder = _decoders[into] = msgspec.json.Decoder(into)
    try:
        return decoder.decode(raw)  # type: ignore[no-any-return]
    except msgspec.DecodeError as exc:  # ValidationError included
        error = AmbiguousOutcome if method.acting else VenueUnavailable
        raise error(f"{method}: unexpected reply shape: {exc}") from exc


def check_reply(reply: HttpReply, method: fm.FuturesMethod) -> None:
    """Nothing for a success; otherwise the error the reply (or its unreadable body) means.

    The account log answers without an envelope, so for it HTTP 200 is the success."""
    if method.budget == "history" and reply.status == _HTTP_OK:
        return
    try:
        envelope = _envelope.decode(reply.body)
    except msgspec.DecodeError as exc:
        if reply.status == _HTTP_TOO_MANY_REQUESTS:
            raise VenueRateLimited(f"{method}: HTTP 429", codes=("HTTP 429",)) from exc
        error = AmbiguousOutcome if method.acting else VenueUnavailable
        raise error(f"{method}: HTTP {reply.status}, reply is not Kraken's envelope") from exc
    if envelope.result == "success":
        return
    raise to_exception(envelope.error or NO_CODE, acting=method.acting, call=str(method))


class KrakenFutures(SignedClient):
    """One account's futures REST access (one Derivatives API key). Every argument is a
    guarantee: there is no client without credentials, a nonce source, the key's lock and a
    permit source."""

    # --- queries ---------------------------------------------------------------------------------
    async def accounts(self) -> AccountsResponse:
        """Every wallet of this account: `cash`, `flex` and single-collateral `fi_*` ones."""
        return decode_reply(AccountsResponse, await self._call(fm.ACCOUNTS), fm.ACCOUNTS)

    async def subaccounts(self) -> SubaccountsResponse:
        """The master's uid and every sub-account's futures wallets (master key only)."""
        return decode_reply(SubaccountsResponse, await self._call(fm.SUBACCOUNTS), fm.SUBACCOUNTS)

    async def trading_enabled(self, uid: str) -> bool:
        """Whether sub-account `uid` (its futures uid) may trade; unknown uid: `notFound`."""
        raw = await self._call(fm.TRADING_ENABLED, uid=uid)
        return decode_reply(TradingEnabled, raw, fm.TRADING_ENABLED).trading_enabled

    async def account_log(
        self,
        *,
        from_id: int | None = None,
        sort: Literal["asc", "desc"] = "desc",
        count: int = fm.ACCOUNT_LOG_MAX_COUNT,
    ) -> AccountLog:
        """This account's log: `count` entries from entry `from_id` on (inclusive), newest first
        unless `sort="asc"`. At most `ACCOUNT_LOG_MAX_COUNT` entries, the most one token buys."""
        if not 1 <= count <= fm.ACCOUNT_LOG_MAX_COUNT:
            raise ValueError(f"count must be 1 to {fm.ACCOUNT_LOG_MAX_COUNT}, got {count}")
        query = {"sort": sort, "count": str(count)}
        if from_id is not None:
            query["from"] = str(from_id)
        raw = await self._call(fm.ACCOUNT_LOG, query=query)
        return decode_reply(AccountLog, raw, fm.ACCOUNT_LOG)

    # --- calls that act --------------------------------------------------------------------------
    async def set_trading_enabled(self, uid: str, enabled: bool) -> bool:
        """Switch trading of sub-account `uid` on or off; returns the venue's new value.

        Idempotent, so after an `AmbiguousOutcome` sending it again is safe."""
        query = {"tradingEnabled": "true" if enabled else "false"}
        raw = await self._call(fm.SET_TRADING_ENABLED, uid=uid, query=query)
        return decode_reply(TradingEnabled, raw, fm.SET_TRADING_ENABLED).trading_enabled

    async def transfer(
        self, *, from_account: str, to_account: str, unit: str, amount: Decimal
    ) -> None:
        """Move `amount` of `unit` between two wallets of this account (`cash`, `flex`, `fi_*`).
        Sent once; exactly once is `FuturesTreasury.transfer`."""
        form = {
            "fromAccount": from_account,
            "toAccount": to_account,
            "unit": unit,
            "amount": amount_text(amount),
        }
        await self._call(fm.TRANSFER, form=form)

    async def transfer_subaccount(
        self,
        *,
        from_user: str,
        to_user: str,
        from_account: str,
        to_account: str,
        unit: str,
        amount: Decimal,
    ) -> None:
        """Move funds between futures wallets of the master and its sub-accounts (master key).
        Sent once; exactly once is `FuturesTreasury.transfer_subaccount`."""
        form = {
            "fromUser": from_user,
            "toUser": to_user,
            "fromAccount": from_account,
            "toAccount": to_account,
            "unit": unit,
            "amount": amount_text(amount),
        }
        await self._call(fm.TRANSFER_SUBACCOUNT, form=form)

    # --- the wire --------------------------------------------------------------------------------
    async def _call(
        self,
        method: fm.FuturesMethod,
        *,
        uid: str | None = None,
        query: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
    ) -> bytes:
        """Permit, key lock, nonce, sign, send, check: the raw bytes of a success reply."""
        path = method.path
        if uid is not None:
            path = path.format(uid=urllib.parse.quote(uid, safe=""))
        query_text = urllib.parse.urlencode(query) if query else ""
        body = urllib.parse.urlencode(form) if form else ""
        attempts = 1 if method.acting else _QUERY_RETRIES + 1
        for attempt in range(attempts):
            permit = await self.permits.acquire_for(
                VenueRequest(method=method),
                account=self.account,
                key_id=self.key_id,
                strategy=self.strategy,
                deadline_s=self.permit_deadline_s,
            )
            try:
                reply = await self._send(method, path, query_text, body)
            except VenueUnavailable:  # nothing was sent, or a query's reply was lost
                if method.acting or attempt == attempts - 1:
                    raise
                continue
            except AmbiguousOutcome:
                log.warning("futures.reply_lost", account=self.account, call=str(method))
                raise
            try:
                check_reply(reply, method)
            except VenueRateLimited as exc:
                log.warning("futures.rate_limited", account=self.account, call=str(method),
                            code=exc.codes[0] if exc.codes else None)  # fmt: skip
                await self.permits.feedback(permit, "futures")
                raise
            except AmbiguousOutcome as exc:
                log.warning("futures.ambiguous", account=self.account, call=str(method),
                            error=str(exc))  # fmt: skip
                raise
            return reply.body
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(self, method: fm.FuturesMethod, path: str, query: str, body: str) -> HttpReply:
        url = self.base_url + path + (f"?{query}" if query else "")
        async with self.key_lock.hold(wait_s=self.permit_deadline_s):
            nonce = str(await self.nonce.next())
            authent = futures_sign(self.credentials.secret.reveal(), body or query, nonce, path)
            headers = {"APIKey": self.credentials.key.reveal(), "Authent": authent, "Nonce": nonce}
            if body:
                headers["Content-Type"] = _FORM
            request = HttpRequest(method.verb, url, headers, body.encode() if body else None)
            return await self.transport.send(request, call=str(method), acting=method.acting)

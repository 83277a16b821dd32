"""Kraken futures (derivatives) REST: wallets, sub-accounts, the trading switch, transfers.

Same shape as the spot client (`rest.KrakenRest`): one aiohttp session, a decoder per reply type
made once, Kraken's error codes translated into our tree at this edge (`to_exception`). Requests
of one key go out one at a time, so nonces reach the venue in the order they were allocated.

Authentication (docs/kraken/rest.md 5.2): headers `APIKey`, `Authent`, `Nonce`; `Authent` signs
postData (the URL-encoded body, or the query string when there is no body, exactly the bytes
sent), then the nonce, then the path without `/derivatives`.

Outcomes: a query (GET) is retried on a timeout or dropped connection, then `VenueUnavailable`.
A call that acts (transfers, the trading switch) is sent once: losing its reply, or a reply
`Unavailable` / `Server Error` / `unknownError`, is `AmbiguousOutcome`, and the caller reconciles
(wallet balances through `accounts()`) before sending again. Futures transfers carry no
idempotency key.

Rate limits: futures calls are charged on the key's own `/derivatives` budget (500 cost units per
10 s, docs/kraken/rest.md 5.4), separate from every spot counter; the shared limiter does not
model that budget yet, so this client takes no limiter and `apiLimitExceeded` surfaces as
`VenueRateLimited`.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from decimal import Decimal
from typing import Final, TypeVar

import aiohttp
import msgspec
from yarl import URL

from orchestrator.errors import (
    AmbiguousOutcome,
    AuthError,
    InsufficientFunds,
    InvalidNonce,
    InvalidRequest,
    VenueError,
    VenueRateLimited,
    VenueRejected,
    VenueUnavailable,
)
from orchestrator.exchange.kraken.common.auth import futures_sign
from orchestrator.exchange.kraken.common.nonce import NonceSource
from orchestrator.exchange.kraken.futures.schemas import (
    AccountsResponse,
    Envelope,
    SubaccountsResponse,
    TradingEnabled,
)
from orchestrator.logs import get_logger
from orchestrator.secrets import ApiCredentials

log = get_logger(__name__)

PREFIX: Final = "/derivatives/api/v3"
_QUERY_RETRIES: Final = 2
_USER_AGENT: Final = "orchestrator/0.1"
_HTTP_TOO_MANY_REQUESTS: Final = 429
_FORM: Final = "application/x-www-form-urlencoded"

# Kraken's futures error codes (docs/kraken/rest.md 5.3) by what they mean for us.
RATE_LIMITED: Final = frozenset({"apiLimitExceeded"})
BAD_NONCE: Final = frozenset({"nonceBelowThreshold", "nonceDuplicate"})
AUTH: Final = frozenset({"authenticationError", "accountInactive"})
FUNDS: Final = frozenset({"insufficientFunds"})
INVALID: Final = frozenset(
    {
        "invalidArgument",
        "invalidAmount",
        "invalidUnit",
        "invalidAccount",
        "requiredArgumentMissing",
        "notFound",
        "Json Parse Error",
    }
)
NOT_EXECUTED: Final = frozenset({"marketUnavailable"})
UNKNOWN_OUTCOME: Final = frozenset({"Unavailable", "Server Error", "unknownError"})
_NO_CODE: Final = "unknownError"  # `result: "error"` without an `error` field

_envelope = msgspec.json.Decoder(Envelope)
_accounts = msgspec.json.Decoder(AccountsResponse)
_subaccounts = msgspec.json.Decoder(SubaccountsResponse)
_trading_enabled = msgspec.json.Decoder(TradingEnabled)

T = TypeVar("T")


def to_exception(code: str, *, acting: bool, call: str) -> VenueError:
    """The error for a futures reply `{"result": "error", "error": code}`.

    `notFound` (an unknown sub-account uid, HTTP 404) is an `InvalidRequest` whose `codes` are
    `("notFound",)`. A code Kraken does not document is a refusal for a query, but an
    `AmbiguousOutcome` for a call that acts: we cannot tell that nothing moved.
    """
    message = f"{call}: {code}"
    codes = (code,)
    if code in RATE_LIMITED:
        return VenueRateLimited(message, codes=codes)
    if code in BAD_NONCE:
        return InvalidNonce(message, codes=codes)
    if code in AUTH:
        return AuthError(message, codes=codes)
    if code in FUNDS:
        return InsufficientFunds(message, codes=codes)
    if code in INVALID:
        return InvalidRequest(message, codes=codes)
    if code in NOT_EXECUTED:
        return VenueUnavailable(message, codes=codes)
    if acting:  # `Unavailable`, `Server Error`, `unknownError`, or a code we do not know
        return AmbiguousOutcome(message, codes=codes)
    if code in UNKNOWN_OUTCOME:
        return VenueUnavailable(message, codes=codes)
    return VenueRejected(message, codes=codes)


def amount_text(amount: Decimal) -> str:
    """Plain decimal text for the wire (`100`, never `1E+2`); NaN and infinities are refused."""
    if not amount.is_finite():
        raise InvalidRequest(f"amount {amount} is not a finite number")
    return format(amount, "f")


class KrakenFutures:
    """One account's futures REST access (one Derivatives API key)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        account: str,
        credentials: ApiCredentials,
        nonce: NonceSource,
        timeout_s: float = 10.0,
    ) -> None:
        """`base_url`: scheme and host (`https://futures.kraken.com`); paths add `PREFIX`."""
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.account = account
        self.credentials = credentials
        self.nonce = nonce
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._in_order = asyncio.Lock()

    # --- queries ---------------------------------------------------------------------------------
    async def accounts(self) -> AccountsResponse:
        """Every wallet of this account: `cash`, `flex` and single-collateral `fi_*` ones."""
        raw = await self._call("GET", "/accounts", acting=False)
        return self._decode(_accounts, raw, "accounts", acting=False)

    async def subaccounts(self) -> SubaccountsResponse:
        """The master's uid and every sub-account's futures wallets (master key only)."""
        raw = await self._call("GET", "/subaccounts", acting=False)
        return self._decode(_subaccounts, raw, "subaccounts", acting=False)

    async def trading_enabled(self, uid: str) -> bool:
        """Whether sub-account `uid` (its futures uid) may trade; unknown uid: `notFound`."""
        path = _trading_path(uid)
        raw = await self._call("GET", path, acting=False)
        return self._decode(_trading_enabled, raw, "trading-enabled", acting=False).trading_enabled

    # --- calls that act --------------------------------------------------------------------------
    async def set_trading_enabled(self, uid: str, enabled: bool) -> bool:
        """Switch trading of sub-account `uid` on or off; returns the venue's new value.

        Idempotent, so after an `AmbiguousOutcome` sending it again is safe."""
        query = urllib.parse.urlencode({"tradingEnabled": "true" if enabled else "false"})
        raw = await self._call("PUT", _trading_path(uid), query=query, acting=True)
        return self._decode(_trading_enabled, raw, "trading-enabled", acting=True).trading_enabled

    async def transfer(
        self, *, from_account: str, to_account: str, unit: str, amount: Decimal
    ) -> None:
        """Move `amount` of `unit` between two wallets of this account (`cash`, `flex`, `fi_*`)."""
        form = {
            "fromAccount": from_account,
            "toAccount": to_account,
            "unit": unit,
            "amount": amount_text(amount),
        }
        await self._call("POST", "/transfer", form=form, acting=True)

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
        """Move funds between futures wallets of the master and its sub-accounts (master key)."""
        form = {
            "fromUser": from_user,
            "toUser": to_user,
            "fromAccount": from_account,
            "toAccount": to_account,
            "unit": unit,
            "amount": amount_text(amount),
        }
        await self._call("POST", "/transfer/subaccount", form=form, acting=True)

    # --- the wire --------------------------------------------------------------------------------
    async def _call(
        self,
        method: str,
        path: str,
        *,
        acting: bool,
        query: str = "",
        form: dict[str, str] | None = None,
    ) -> bytes:
        """The raw bytes of a success reply, or the error the reply (or its absence) means."""
        body = urllib.parse.urlencode(form) if form else ""
        name = f"{method} {path}"
        attempts = 1 if acting else _QUERY_RETRIES + 1
        for attempt in range(attempts):
            try:
                status, raw = await self._send(method, path, query, body)
            except (TimeoutError, aiohttp.ClientError) as exc:
                if acting:
                    log.warning("futures.reply_lost", account=self.account, call=name)
                    raise AmbiguousOutcome(
                        f"{name}: no reply ({type(exc).__name__}); the venue may have acted"
                    ) from exc
                if attempt == attempts - 1:
                    raise VenueUnavailable(f"{name}: {type(exc).__name__}") from exc
                continue
            self._check(status, raw, name, acting=acting)
            return raw
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(self, method: str, path: str, query: str, body: str) -> tuple[int, bytes]:
        endpoint = PREFIX + path
        url = URL(self.base_url + endpoint + (f"?{query}" if query else ""), encoded=True)
        async with self._in_order:
            nonce = str(await self.nonce.next())
            headers = {
                "APIKey": self.credentials.key.reveal(),
                "Authent": futures_sign(
                    self.credentials.secret.reveal(), body or query, nonce, endpoint
                ),
                "Nonce": nonce,
                "User-Agent": _USER_AGENT,
            }
            if body:
                headers["Content-Type"] = _FORM
            async with self.session.request(
                method,
                url,
                data=body.encode() if body else None,
                headers=headers,
                timeout=self.timeout,
            ) as resp:
                return resp.status, await resp.read()

    def _check(self, status: int, raw: bytes, name: str, *, acting: bool) -> None:
        try:
            envelope = _envelope.decode(raw)
        except msgspec.DecodeError as exc:
            if status == _HTTP_TOO_MANY_REQUESTS:
                raise VenueRateLimited(f"{name}: HTTP 429", codes=("HTTP 429",)) from exc
            kind = AmbiguousOutcome if acting else VenueUnavailable
            raise kind(f"{name}: HTTP {status}, reply is not Kraken's envelope") from exc
        if envelope.result == "success":
            return
        error = to_exception(envelope.error or _NO_CODE, acting=acting, call=name)
        if isinstance(error, VenueRateLimited | AmbiguousOutcome):
            log.warning("futures.venue_error", account=self.account, call=name, code=error.codes[0])
        raise error

    @staticmethod
    def _decode(decoder: msgspec.json.Decoder[T], raw: bytes, name: str, *, acting: bool) -> T:
        """The typed reply. A success we cannot read is ambiguous for a call that acts."""
        try:
            return decoder.decode(raw)
        except msgspec.DecodeError as exc:
            kind = AmbiguousOutcome if acting else VenueUnavailable
            raise kind(f"{name}: unexpected reply shape: {exc}") from exc


def _trading_path(uid: str) -> str:
    return f"/subaccount/{urllib.parse.quote(uid, safe='')}/trading-enabled"

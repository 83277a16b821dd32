"""Futures (derivatives) private REST: wallets, sub-accounts, the trading switch, transfers.

Routes under `/derivatives/api/v3` (`docs/kraken/rest.md` section 5): `GET /accounts`,
`GET /subaccounts`, `GET|PUT /subaccount/{uid}/trading-enabled`, `POST /transfer` and
`POST /transfer/subaccount`. Every call is authenticated (`APIKey`, `Authent`, optional `Nonce`),
charged on the key's `/derivatives` budget (500 cost units per 10 s) and answered in Kraken's
envelope `{"result": "success"|"error", "serverTime": ..., ...}`, HTTP 200 except `notFound`
(404). Nothing a client sends can take the server down: unexpected failures are logged and
answered `Server Error`. Transfers write the account log (`futures_log`, served by
`futures_history`); the payloads of the reads are built in `futures_payloads`.

Choices where Kraken says nothing:
- postData is the request body as sent when there is one, else the raw (still URL-encoded) query
  string; endpointPath is the raw path without `/derivatives`.
- Permissions: reads need `query_funds`, transfers `withdraw`, the trading switch `trade`; a key
  lacking one, or a sub-account key on a master-only call, is `authenticationError`.
- The budget is charged once the key is known and before the call runs: refused calls (over
  budget) cost nothing, calls that then fail validation cost their full price. `GET /subaccounts`
  costs 2 (UNCONFIRMED: docs/kraken/rest.md 5.4; Kraken's cost table does not list it).
- Wallets are `cash` and `flex` (`Account.futures`); transfers naming any other wallet are
  `invalidAccount`. Taking collateral out of a flex wallet with open positions (`flex_risk`)
  is `insufficientFunds` when its available margin would fall below zero.
- Asset names: lower-case altnames in `cash` and sub-account lists (`xbt`), upper-case in `flex`
  (`XBT`), as in Kraken's example; `unit` accepts any name the catalog knows, in any case.
- Amounts: plain decimal text (an exponent is allowed), > 0, below 10**15 and with no more
  decimals than the asset has; anything else is `invalidAmount`. A transfer from a wallet to
  itself is `invalidAccount`. Users are named by futures uid, username, account id or email.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, Inexact, localcontext
from typing import Any, Final
from urllib.parse import parse_qsl

import msgspec
from aiohttp import web

from orchestrator.logs import get_logger
from orchestrator.simulator import futures_accounts as fa
from orchestrator.simulator import futures_log as flog
from orchestrator.simulator import futures_payloads as fp
from orchestrator.simulator.accounts import Account
from orchestrator.simulator.auth import (
    FUTURES_AUTHENTICATION_ERROR,
    FUTURES_INVALID_ARGUMENT,
    ApiKey,
    Permission,
)
from orchestrator.simulator.catalog import AssetSpec
from orchestrator.simulator.errors import KrakenError
from orchestrator.simulator.http import VENUE_KEY, count_error, faults_before
from orchestrator.simulator.limits import Counter
from orchestrator.simulator.reply_faults import choose, strike
from orchestrator.simulator.venue import Venue

log = get_logger(__name__)
FUTURES_UNAVAILABLE: Final = "Unavailable"  # futures' code for a service that did not act

PREFIX: Final = "/derivatives/api/v3"
_DERIVATIVES: Final = "/derivatives"

# Futures error strings (docs/kraken/rest.md section 5.3) not already in `auth`.
API_LIMIT_EXCEEDED: Final = "apiLimitExceeded"
INSUFFICIENT_FUNDS: Final = "insufficientFunds"
INVALID_ACCOUNT: Final = "invalidAccount"
INVALID_AMOUNT: Final = "invalidAmount"
INVALID_UNIT: Final = "invalidUnit"
NOT_FOUND: Final = "notFound"
REQUIRED_ARGUMENT_MISSING: Final = "requiredArgumentMissing"
SERVER_ERROR: Final = "Server Error"

# The `/derivatives` budget: 500 per 10 s, modelled as a leaky counter.
BUDGET_THRESHOLD: Final = 500.0
BUDGET_DECAY_PER_S: Final = 50.0
COST_ACCOUNTS: Final = 2
COST_SUBACCOUNTS: Final = 2  # UNCONFIRMED: not in Kraken's table
COST_TRADING_ENABLED: Final = 2
COST_TRANSFER: Final = 10
COST_TRANSFER_SUBACCOUNT: Final = 10

WALLETS: Final = frozenset({"cash", "flex"})
MAX_AMOUNT: Final = Decimal(10) ** 15
_AMOUNT_TEXT: Final = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]{1,3})?")
_MAX_AMOUNT_CHARS: Final = 64
_ZERO: Final = Decimal(0)
_encoder = msgspec.json.Encoder()


class FuturesBudget:
    """One `/derivatives` counter per API key. Pure: every call takes `now_s`."""

    def __init__(
        self, threshold: float = BUDGET_THRESHOLD, decay_per_s: float = BUDGET_DECAY_PER_S
    ) -> None:
        self.threshold = threshold
        self.decay_per_s = decay_per_s
        self.refusals = 0
        self._counters: dict[str, Counter] = {}

    def charge(self, key_id: str, cost: float, now_s: float) -> None:
        """Take `cost` from the key's counter, or refuse with `apiLimitExceeded`, taking nothing."""
        counter = self._counters.get(key_id)
        if counter is None:
            counter = self._counters[key_id] = Counter(self.threshold, self.decay_per_s)
        if not counter.fits(cost, now_s):
            self.refusals += 1
            raise KrakenError(API_LIMIT_EXCEEDED, f"futures:{key_id}")
        counter.add(cost, now_s)

    def level(self, key_id: str, now_s: float) -> float:
        counter = self._counters.get(key_id)
        return 0.0 if counter is None else counter.level_at(now_s)


BUDGET_KEY: Final = web.AppKey("futures_budget", FuturesBudget)


@dataclass(frozen=True, slots=True)
class Call:
    """One authenticated call: who, with which parameters (query and form merged)."""

    venue: Venue
    key: ApiKey
    method: str
    params: Mapping[str, str]
    path_args: Mapping[str, str]

    @property
    def account(self) -> Account:
        return self.venue.domain.accounts[self.key.account]


Handler = Callable[[Call], dict[str, Any]]


# --- replies -------------------------------------------------------------------------------------
def _reply(venue: Venue, fields: Mapping[str, Any], status: int = 200) -> web.Response:
    body = {"result": "success", "serverTime": fa.server_time(venue.clock.time()), **fields}
    return web.Response(body=_encoder.encode(body), status=status, content_type="application/json")


def _error(venue: Venue, code: str) -> web.Response:
    count_error(venue, code)
    status = 404 if code == NOT_FOUND else 200
    return _reply(venue, {"result": "error", "error": code}, status)


# --- parameters ----------------------------------------------------------------------------------
def _need(params: Mapping[str, str], *names: str) -> list[str]:
    """The values of required parameters; a missing or empty one is `requiredArgumentMissing`."""
    missing = [name for name in names if not params.get(name)]
    if missing:
        raise KrakenError(REQUIRED_ARGUMENT_MISSING, ",".join(missing))
    return [params[name] for name in names]


def _unit(venue: Venue, name: str) -> AssetSpec:
    try:
        return venue.catalog.asset(name)
    except KrakenError:
        raise KrakenError(INVALID_UNIT, name[:40]) from None


def parse_amount(text: str, decimals: int) -> Decimal:
    """A positive amount the asset can hold exactly, or `invalidAmount`."""
    if len(text) > _MAX_AMOUNT_CHARS or _AMOUNT_TEXT.fullmatch(text) is None:
        raise KrakenError(INVALID_AMOUNT, text[:40])
    amount = Decimal(text)
    if not _ZERO < amount < MAX_AMOUNT:
        raise KrakenError(INVALID_AMOUNT, text[:40])
    with localcontext() as wide:
        wide.prec = 100  # quantizing must not itself fail on a large, fine-grained amount
        representable = amount == amount.quantize(Decimal(1).scaleb(-decimals))
    if not representable:
        raise KrakenError(INVALID_AMOUNT, f"more than {decimals} decimals")
    return amount


def _wallet(name: str) -> str:
    if name not in WALLETS:
        raise KrakenError(INVALID_ACCOUNT, name[:40])
    return name


def _user(venue: Venue, name: str) -> Account:
    """The master or a sub-account, by futures uid, username, account id or email."""
    found = venue.domain.find(name)
    if found is None:
        lowered = name.lower()
        found = next((a for a in venue.domain.clients() if a.email.lower() == lowered), None)
    if found is None or found.role == "system":
        raise KrakenError(INVALID_ACCOUNT, name[:40])
    return found


def _require_master(call: Call) -> None:
    if call.account.role != "master":
        raise KrakenError(FUTURES_AUTHENTICATION_ERROR, "master key required")


def _subaccount(venue: Venue, uid: str) -> Account:
    for account in venue.domain.clients():
        if account.role == "sub" and account.futures_uid == uid:
            return account
    raise KrakenError(NOT_FOUND, uid[:40])


# --- money ---------------------------------------------------------------------------------------
def move(
    source: Account, source_wallet: str, target: Account, target_wallet: str,
    *, asset: str, amount: Decimal,
) -> tuple[flog.Leg, flog.Leg]:  # fmt: skip
    """Move exactly `amount` of `asset` between two futures wallets, or refuse, moving nothing.

    Returns both sides as account-log legs (balances before and after)."""
    if source is target and source_wallet == target_wallet:
        raise KrakenError(INVALID_ACCOUNT, "source and target are the same wallet")
    take_from = source.futures[source_wallet]
    give_to = target.futures[target_wallet]
    if amount > take_from.get(asset, _ZERO):
        raise KrakenError(INSUFFICIENT_FUNDS)
    with localcontext() as exact:
        exact.prec = 100
        exact.traps[Inexact] = True  # a rounded balance would create or destroy money
        had, has = take_from.get(asset, _ZERO), give_to.get(asset, _ZERO)
        left, grown = had - amount, has + amount
    take_from[asset] = left
    give_to[asset] = grown
    return (
        flog.Leg(source.futures_log, source_wallet, had, left),
        flog.Leg(target.futures_log, target_wallet, has, grown),
    )


def _move_backed(
    venue: Venue, source: Account, source_wallet: str, target: Account, target_wallet: str,
    *, asset: str, amount: Decimal,
) -> tuple[flog.Leg, flog.Leg]:  # fmt: skip
    """`move`, keeping the collateral that backs open positions: taking funds out of a flex
    wallet may not leave its available margin below zero (`insufficientFunds`)."""
    source_wallet, target_wallet = _wallet(source_wallet), _wallet(target_wallet)
    moves_out = source is not target or source_wallet != target_wallet
    if moves_out and source_wallet == "flex" and source.flex_risk != fa.NO_RISK:
        after = dict(source.futures["flex"])
        after[asset] = after.get(asset, _ZERO) - amount
        if fp.flex_available_margin(venue, source, after) < 0:
            raise KrakenError(INSUFFICIENT_FUNDS, "needed as margin")
    return move(source, source_wallet, target, target_wallet, asset=asset, amount=amount)


def _log_transfer(venue: Venue, legs: tuple[flog.Leg, flog.Leg], *, info: str, asset: str) -> None:
    """One account-log entry per side of a transfer, both naming the transfer's uid."""
    ids = venue.domain.ids
    flog.record(
        list(legs), info=info, asset=venue.catalog.assets[asset].altname.lower(),
        uids=[ids.uuid(), ids.uuid()], execution=ids.uuid(), time_s=venue.clock.time(),
    )  # fmt: skip


# --- handlers ------------------------------------------------------------------------------------
def accounts(call: Call) -> dict[str, Any]:
    return fp.accounts_payload(call.venue, call.account)


def subaccounts(call: Call) -> dict[str, Any]:
    _require_master(call)
    domain = call.venue.domain
    return {
        "masterAccountUid": domain.master.futures_uid,
        "subaccounts": [
            fp.subaccount_entry(call.venue, a) for a in domain.clients() if a.role == "sub"
        ],
    }


def trading_enabled(call: Call) -> dict[str, Any]:
    _require_master(call)
    account = _subaccount(call.venue, call.path_args["uid"])
    if call.method == "PUT":
        (text,) = _need(call.params, "tradingEnabled")
        if text.lower() not in ("true", "false"):
            raise KrakenError(FUTURES_INVALID_ARGUMENT, "tradingEnabled")
        account.trading_enabled = text.lower() == "true"
    return {"tradingEnabled": account.trading_enabled}


def transfer(call: Call) -> dict[str, Any]:
    """Between the caller's own wallets."""
    source, target, unit, amount = _need(call.params, "fromAccount", "toAccount", "unit", "amount")
    asset = _unit(call.venue, unit)
    quantity = parse_amount(amount, asset.decimals)
    account = call.account
    legs = _move_backed(
        call.venue, account, source, account, target, asset=asset.id, amount=quantity
    )
    _log_transfer(call.venue, legs, info=flog.WALLET_TRANSFER, asset=asset.id)
    return {}


def transfer_subaccount(call: Call) -> dict[str, Any]:
    """Between wallets of the master and its sub-accounts (master key)."""
    _require_master(call)
    names = ("fromUser", "toUser", "fromAccount", "toAccount", "unit", "amount")
    from_user, to_user, source, target, unit, amount = _need(call.params, *names)
    asset = _unit(call.venue, unit)
    quantity = parse_amount(amount, asset.decimals)
    venue = call.venue
    source_account, target_account = _user(venue, from_user), _user(venue, to_user)
    legs = _move_backed(
        venue, source_account, source, target_account, target, asset=asset.id, amount=quantity
    )
    _log_transfer(venue, legs, info=flog.SUBACCOUNT_TRANSFER, asset=asset.id)
    return {}


# --- the HTTP shell ------------------------------------------------------------------------------
def signed_params(request: web.Request, body: bytes) -> tuple[str, dict[str, str]]:
    """postData (as signed) and the parameters: the body's, or the query's when there is none.

    Both at once is refused: only one of them is signed, so the other could be forged.
    """
    query = request.rel_url.raw_query_string
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise KrakenError(FUTURES_INVALID_ARGUMENT, "body is not UTF-8") from None
    if body and query:
        raise KrakenError(FUTURES_INVALID_ARGUMENT, "parameters in both query and body")
    signed = text if body else query
    return signed, dict(parse_qsl(signed, keep_blank_values=True))


def endpoint(
    name: str, cost: int, permission: Permission, handler: Handler
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A guarded aiohttp handler: auth, budget, then `handler`; every failure is an envelope."""

    async def serve(request: web.Request) -> web.Response:
        venue = request.app[VENUE_KEY]
        venue.count(f"futures:{name}")
        try:
            await faults_before(venue, unavailable=FUTURES_UNAVAILABLE, busy=FUTURES_UNAVAILABLE)
            body = await request.read()
            post_data, params = signed_params(request, body)
            key = venue.futures_auth.authenticate(
                request.headers.get("APIKey"),
                request.headers.get("Authent"),
                post_data,
                request.headers.get("Nonce"),
                request.rel_url.raw_path.removeprefix(_DERIVATIVES),
            )
            venue.futures_auth.require(key, permission)
            request.app[BUDGET_KEY].charge(key.key, cost, venue.clock.time())
            fields = handler(Call(venue, key, request.method, params, dict(request.match_info)))
        except KrakenError as exc:
            return _error(venue, exc.code)
        except Exception as exc:
            venue.record_internal_error("futures_failed", exc)
            return _error(venue, SERVER_ERROR)
        reply = _reply(venue, fields)
        fault = choose(venue.settings.faults, venue.rng, name, acting=request.method != "GET")
        return reply if fault is None else await strike(venue, request, fault, reply)

    return serve


async def unknown(request: web.Request) -> web.Response:
    """Any other method or path under the prefix: the `notFound` envelope, 404."""
    return _error(request.app[VENUE_KEY], NOT_FOUND)


# (method, path under PREFIX, name, cost, permission, handler)
_ROUTES: Final[tuple[tuple[str, str, str, int, Permission, Handler], ...]] = (
    ("GET", "/accounts", "accounts", COST_ACCOUNTS, "query_funds", accounts),
    ("GET", "/subaccounts", "subaccounts", COST_SUBACCOUNTS, "query_funds", subaccounts),
    ("GET", "/subaccount/{uid}/trading-enabled", "trading-enabled", COST_TRADING_ENABLED,
     "query_funds", trading_enabled),
    ("PUT", "/subaccount/{uid}/trading-enabled", "trading-enabled", COST_TRADING_ENABLED,
     "trade", trading_enabled),
    ("POST", "/transfer", "transfer", COST_TRANSFER, "withdraw", transfer),
    ("POST", "/transfer/subaccount", "transfer/subaccount", COST_TRANSFER_SUBACCOUNT,
     "withdraw", transfer_subaccount),
)  # fmt: skip


def add_routes(app: web.Application) -> None:
    """The futures routes and their budget; any other path under PREFIX is `notFound`."""
    app[BUDGET_KEY] = FuturesBudget()
    for method, path, name, cost, permission, handler in _ROUTES:
        app.router.add_route(method, PREFIX + path, endpoint(name, cost, permission, handler))
    app.router.add_route("*", f"{PREFIX}/{{tail:.*}}", unknown)

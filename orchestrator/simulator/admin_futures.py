"""Admin endpoints for the futures wallets (`/admin/futures/*`): not part of Kraken's API.

- `GET /admin/futures/margin?account=NAME`: the account's flex figures as `GET /accounts`
  reports them, what its positions weigh (`risk`) and its margin level.
- `POST /admin/futures/margin` `{"account": NAME, "initial_margin": "1000", ...}`: set what the
  flex wallet's positions and orders weigh, in USD (`initial_margin`, `maintenance_margin`,
  `unrealized_pnl`, `unrealized_funding`, `order_margin`; decimal strings or integers; a figure
  left out keeps its value), then the same reply as the GET.
- `POST /admin/futures/fund` `{"account": NAME, "wallet": "flex"|"cash", "asset": "USD",
  "amount": "1000"}`: credit a futures wallet from outside, logged as an `admin transfer`.

The margin level is docs/kraken/accounts-and-transfers.md section 4's formula with the
maintenance margin as the requirement, in percent: (collateralValue + totalUnrealizedAsMargin)
/ maintenanceMargin x 100, computed from the reply's own figures; null while nothing is open.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any, Final

import msgspec
from aiohttp import web

from orchestrator.simulator import futures_log as flog
from orchestrator.simulator import futures_payloads as fp
from orchestrator.simulator.accounts import Account
from orchestrator.simulator.admin import asset_amount, bad_request, json_body, json_reply
from orchestrator.simulator.http import VENUE_KEY
from orchestrator.simulator.venue import Venue

RISK_FIELDS: Final = (
    "initial_margin",
    "maintenance_margin",
    "unrealized_pnl",
    "unrealized_funding",
    "order_margin",
)
ADMIN_TRANSFER: Final = "admin transfer"  # an info type of Kraken's account log
_WALLETS: Final = ("cash", "flex")


def _client(venue: Venue, name: object) -> Account | None:
    found = venue.domain.accounts.get(str(name))
    return None if found is None or found.role == "system" else found


def margin_view(venue: Venue, account: Account) -> dict[str, Any]:
    """The account's flex wallet as `GET /accounts` shows it, its risk and its margin level."""
    wallet = fp.flex_wallet(venue, account)
    level = fp.flex_margin_level(wallet)
    return {
        "account": account.name,
        "risk": msgspec.to_builtins(account.flex_risk),
        "flex": msgspec.to_builtins(wallet),
        "margin_level_pct": None if level is None else str(level),
    }


async def get_margin(request: web.Request) -> web.Response:
    venue = request.app[VENUE_KEY]
    account = _client(venue, request.query.get("account"))
    if account is None:
        return bad_request("unknown account")
    return json_reply(margin_view(venue, account))


async def post_margin(request: web.Request) -> web.Response:
    venue = request.app[VENUE_KEY]
    body = await json_body(request)
    account = _client(venue, body.pop("account", None))
    if account is None:
        return bad_request("unknown account")
    unknown = set(body) - set(RISK_FIELDS)
    if unknown:
        return bad_request(f"unknown fields: {sorted(unknown)}")
    if not all(isinstance(v, str | int) and not isinstance(v, bool) for v in body.values()):
        return bad_request("figures are decimal strings or integers")
    try:
        venue.set_flex_risk(account.name, **body)
    except (InvalidOperation, ValueError) as exc:
        return bad_request(str(exc) or "figures are decimal strings or integers")
    return json_reply(margin_view(venue, account))


async def post_fund(request: web.Request) -> web.Response:
    venue = request.app[VENUE_KEY]
    body = await json_body(request)
    account = _client(venue, body.get("account"))
    if account is None:
        return bad_request("unknown account")
    wallet = body.get("wallet", "flex")
    if wallet not in _WALLETS:
        return bad_request("wallet must be cash or flex")
    parsed = asset_amount(venue, body)
    if isinstance(parsed, str):
        return bad_request(parsed)
    asset, amount = parsed
    holdings = account.futures[wallet]
    had = holdings.get(asset, Decimal(0))
    holdings[asset] = had + amount
    ids = venue.domain.ids
    flog.record(
        [flog.Leg(account.futures_log, wallet, had, holdings[asset])], info=ADMIN_TRANSFER,
        asset=venue.catalog.assets[asset].altname.lower(), uids=[ids.uuid()], execution=None,
        time_s=venue.clock.time(),
    )  # fmt: skip
    return json_reply({"wallet": wallet, "asset": asset, "balance": holdings[asset]})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/futures/margin", get_margin)
    app.router.add_post("/admin/futures/margin", post_margin)
    app.router.add_post("/admin/futures/fund", post_fund)

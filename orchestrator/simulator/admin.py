"""Admin and introspection endpoints (`/admin/*`) for tests, benchmarks and the demo.

Not part of Kraken's API: they read counters, rejections, orders, transfers and ledgers, change
faults and settings at run time (the daily withdrawal limit too), approve Organization
withdrawals, reset counters and move a manual clock; the futures ones are in `admin_futures`.
Bound to the simulator's own address; the simulator holds no real money.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any, Final

import msgspec
from aiohttp import web

from orchestrator.clock import ManualClock
from orchestrator.simulator.errors import KrakenError
from orchestrator.simulator.http import VENUE_KEY, step_venue
from orchestrator.simulator.order_views import order_info
from orchestrator.simulator.settings import FaultSettings
from orchestrator.simulator.venue import Venue

_encoder = msgspec.json.Encoder(decimal_format="string")
_MAX_ADVANCE_S: Final = 86400.0


def json_reply(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=_encoder.encode(data), status=status, content_type="application/json")


def bad_request(reason: str) -> web.Response:
    return json_reply({"error": reason}, status=400)


def asset_amount(venue: Venue, body: dict[str, Any]) -> tuple[str, Decimal] | str:
    """A body's known `asset` (its id) and positive decimal `amount`, or what is wrong."""
    try:
        asset = venue.catalog.asset(str(body.get("asset"))).id
        amount = Decimal(str(body.get("amount")))
    except (KrakenError, InvalidOperation):
        return "a known asset and a decimal amount are required"
    if not amount.is_finite() or amount <= 0:
        return "amount must be positive"
    return asset, amount


async def json_body(request: web.Request) -> dict[str, Any]:
    try:
        data = msgspec.json.decode(await request.read() or b"{}")
    except msgspec.DecodeError as exc:
        raise web.HTTPBadRequest(text=f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return data


def state(venue: Venue) -> dict[str, Any]:
    """Counters per scope, rejections, request and error counts, activity totals."""
    now_s = venue.clock.time()
    rejections = venue.limits.rejections()
    return {
        "time": now_s,
        "status": venue.settings.status,
        "scopes": [msgspec.to_builtins(s) for s in venue.limits.scope_info(now_s)],
        "rejections": rejections,
        "rate_limit_rejections": sum(rejections.values()),
        "requests": dict(venue.request_counts),
        "auth_failures": venue.spot_auth.failures(),
        "orders": len(venue.engine.orders),
        "open_orders": sum(len(o) for o in venue.engine.open_by_account.values()),
        "trades": venue.engine.trades_count,
        "transfers": len(venue.funding.transfers),
        "withdrawals": len(venue.funding.withdrawals),
    }


async def get_state(request: web.Request) -> web.Response:
    return json_reply(state(request.app[VENUE_KEY]))


async def get_orders(request: web.Request) -> web.Response:
    venue = request.app[VENUE_KEY]
    account = request.query.get("account")
    orders = [
        {"txid": o.txid, "account": o.account, **order_info(o)}
        for o in venue.engine.orders.values()
        if account is None or o.account == account
    ]
    return json_reply(orders)


async def get_transfers(request: web.Request) -> web.Response:
    venue = request.app[VENUE_KEY]
    transfers = [
        {"transfer_id": t.transfer_id, "asset": t.asset, "amount": t.amount, "from": t.source,
         "to": t.target, "status": t.status, "created_s": t.created_s}
        for t in venue.funding.transfers.values()
    ]  # fmt: skip
    withdrawals = [
        {"refid": w.refid, "account": w.account, "asset": w.asset, "amount": w.amount,
         "status": w.status, "approval_request_id": w.approval_request_id,
         "usd_value": w.usd_value}
        for w in venue.funding.withdrawals.values()
    ]  # fmt: skip
    return json_reply({"transfers": transfers, "withdrawals": withdrawals})


async def get_balances(request: web.Request) -> web.Response:
    venue = request.app[VENUE_KEY]
    accounts = {
        a.name: {"balances": a.balances, "holds": a.holds, "pending_out": a.pending_out}
        for a in venue.domain.accounts.values()
    }
    return json_reply({"accounts": accounts, "totals": venue.domain.totals()})


async def get_ledgers(request: web.Request) -> web.Response:
    venue = request.app[VENUE_KEY]
    name = request.query.get("account", "")
    account = venue.domain.accounts.get(name)
    if account is None:
        return bad_request(f"unknown account {name!r}")
    return json_reply([msgspec.to_builtins(e) for e in account.ledger])


async def post_faults(request: web.Request) -> web.Response:
    venue = request.app[VENUE_KEY]
    merged = msgspec.to_builtins(venue.settings.faults) | await json_body(request)
    try:
        venue.settings.faults = msgspec.convert(merged, FaultSettings)
    except msgspec.ValidationError as exc:
        return bad_request(str(exc))
    return json_reply(venue.settings.faults)


_SETTINGS: Final = frozenset({
    "status", "transfer_mode", "organization_mode", "daily_withdraw_limit_usd",
    "withdraw_limit_scope", "withdraw_limit_window",
})  # fmt: skip


def _settings_problem(body: dict[str, Any]) -> str | None:
    unknown = set(body) - _SETTINGS
    if unknown:
        return f"unknown settings: {sorted(unknown)}"
    if body.get("status", "online") not in ("online", "maintenance", "cancel_only", "post_only"):
        return "status must be online, maintenance, cancel_only or post_only"
    if body.get("transfer_mode", "complete") not in ("complete", "pending", "fail"):
        return "transfer_mode must be complete, pending or fail"
    if body.get("withdraw_limit_scope", "domain") not in ("domain", "account"):
        return "withdraw_limit_scope must be domain or account"
    if body.get("withdraw_limit_window", "utc_day") not in ("utc_day", "rolling_24h"):
        return "withdraw_limit_window must be utc_day or rolling_24h"
    if "daily_withdraw_limit_usd" in body:
        limit = body["daily_withdraw_limit_usd"]
        try:
            valid = not isinstance(limit, bool | float) and Decimal(str(limit)) >= 0
        except InvalidOperation:
            valid = False
        if not valid:
            return "daily_withdraw_limit_usd must be a decimal string or integer >= 0"
    return None


async def post_settings(request: web.Request) -> web.Response:
    """Run-time settings: `status`, `transfer_mode`, `organization_mode`, and the withdrawal
    limit: `daily_withdraw_limit_usd` (the venue's tier's), `withdraw_limit_scope`,
    `withdraw_limit_window`."""
    venue = request.app[VENUE_KEY]
    body = await json_body(request)
    problem = _settings_problem(body)
    if problem is not None:
        return bad_request(problem)
    funding = venue.funding.settings
    if "status" in body:
        venue.settings.status = body["status"]
    if "transfer_mode" in body:
        funding.transfer_mode = body["transfer_mode"]
    if "organization_mode" in body:
        funding.organization_mode = bool(body["organization_mode"])
    if "daily_withdraw_limit_usd" in body:
        limit = Decimal(str(body["daily_withdraw_limit_usd"]))
        funding.daily_withdraw_limit_usd[venue.funding.tier] = limit
    if "withdraw_limit_scope" in body:
        funding.withdraw_limit_scope = body["withdraw_limit_scope"]
    if "withdraw_limit_window" in body:
        funding.withdraw_limit_window = body["withdraw_limit_window"]
    return json_reply({"ok": True})


async def get_withdraw_limit(request: web.Request) -> web.Response:
    """The daily withdrawal limit as `account` sees it now: limit, counted, headroom (USD)."""
    venue = request.app[VENUE_KEY]
    name = request.query.get("account", venue.domain.master.name)
    account = venue.domain.accounts.get(name)
    if account is None or account.role == "system":
        return bad_request(f"unknown account {name!r}")
    funding = venue.funding
    return json_reply({
        "account": name, "tier": funding.tier, "scope": funding.settings.withdraw_limit_scope,
        "window": funding.settings.withdraw_limit_window,
        "limit_usd": funding.daily_withdraw_limit_usd(),
        "withdrawn_usd": funding.withdrawn_usd(name),
        "headroom_usd": funding.withdraw_headroom_usd(name),
    })  # fmt: skip


async def post_approve(request: web.Request) -> web.Response:
    venue = request.app[VENUE_KEY]
    body = await json_body(request)
    try:
        withdrawal = venue.funding.decide(
            str(body.get("approval_request_id")), bool(body.get("approve", True))
        )
    except KeyError:
        return bad_request("unknown approval_request_id")
    return json_reply({"refid": withdrawal.refid, "status": withdrawal.status})


async def post_reset(request: web.Request) -> web.Response:
    venue = request.app[VENUE_KEY]
    venue.limits.reset()
    venue.request_counts.clear()
    return json_reply({"ok": True})


async def post_time(request: web.Request) -> web.Response:
    """Advance a manual clock by `advance_s`, moving the markets and timers with it."""
    venue = request.app[VENUE_KEY]
    if not isinstance(venue.clock, ManualClock):
        return bad_request("the simulator runs on the real clock")
    advance_s = (await json_body(request)).get("advance_s")
    if not isinstance(advance_s, int | float) or not 0 <= advance_s <= _MAX_ADVANCE_S:
        return bad_request(f"advance_s must be a number of seconds in [0, {_MAX_ADVANCE_S}]")
    await venue.clock.advance(float(advance_s))
    step_venue(request.app, float(advance_s))
    return json_reply({"time": venue.clock.time()})


async def post_fund(request: web.Request) -> web.Response:
    """Deposit into an account from outside (tests, demo top-ups)."""
    venue = request.app[VENUE_KEY]
    body = await json_body(request)
    account = venue.domain.accounts.get(str(body.get("account")))
    if account is None or account.role == "system":
        return bad_request("unknown account")
    parsed = asset_amount(venue, body)
    if isinstance(parsed, str):
        return bad_request(parsed)
    asset, amount = parsed
    ids = venue.domain.ids
    external = venue.domain.accounts["_external"]
    _, entry = venue.domain.move(
        external,
        account,
        asset,
        amount,
        type_="deposit",
        refid=ids.make("Q"),
        now_s=venue.clock.time(),
    )
    venue.engine.emit_ledger(account.name, entry)
    return json_reply({"balance": account.balance(asset)})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/state", get_state)
    app.router.add_get("/admin/orders", get_orders)
    app.router.add_get("/admin/transfers", get_transfers)
    app.router.add_get("/admin/balances", get_balances)
    app.router.add_get("/admin/ledgers", get_ledgers)
    app.router.add_post("/admin/faults", post_faults)
    app.router.add_post("/admin/settings", post_settings)
    app.router.add_get("/admin/withdraw_limit", get_withdraw_limit)
    app.router.add_post("/admin/approve", post_approve)
    app.router.add_post("/admin/reset", post_reset)
    app.router.add_post("/admin/time", post_time)
    app.router.add_post("/admin/fund", post_fund)

"""The spot REST shell: Kraken's envelope, authentication, permissions, REST counter, faults.

Faults come in two places: before the venue acts (latency, `EService:Unavailable`/`Busy`:
nothing executed) and after it acted (`reply_faults`: the reply lost, garbled or reset).

Everything a request can do wrong becomes Kraken's `{"error": [...], "result": ...}` reply;
nothing a client sends can take the server down (unexpected errors are logged and answered
`EGeneral:Internal error`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Final

import msgspec
from aiohttp import web

from orchestrator.logs import get_logger
from orchestrator.simulator.auth import ApiKey
from orchestrator.simulator.errors import (
    INTERNAL_ERROR,
    INVALID_ARGUMENTS,
    PERMISSION_DENIED,
    SERVICE_BUSY,
    SERVICE_UNAVAILABLE,
    UNKNOWN_METHOD,
    KrakenError,
)
from orchestrator.simulator.params import Params
from orchestrator.simulator.reply_faults import add_release, choose, strike
from orchestrator.simulator.rest_private import ENDPOINTS, EXTRA_PERMISSIONS
from orchestrator.simulator.rest_public import PUBLIC
from orchestrator.simulator.venue import Venue

log = get_logger(__name__)
VENUE_KEY: Final = web.AppKey("venue", Venue)
# Called after every market step (the feeds publish there); `RunningSimulator.step` and the
# admin time control both go through `step_venue`.
STEP_LISTENERS_KEY: Final = web.AppKey("step_listeners", list[Callable[[], None]])


def step_venue(app: web.Application, dt_s: float) -> None:
    """Move the markets and timers by `dt_s`, then let the feeds publish."""
    app[VENUE_KEY].step_markets(dt_s)
    for listener in app[STEP_LISTENERS_KEY]:
        listener()


_encoder = msgspec.json.Encoder(decimal_format="string")


def envelope(
    result: Any = None, errors: list[str] | None = None, status: int = 200
) -> web.Response:
    body: dict[str, Any] = {"error": errors or []}
    if not errors:
        body["result"] = result
    return web.Response(body=_encoder.encode(body), status=status, content_type="application/json")


async def read_body(request: web.Request) -> bytes:
    """The raw body; over `max_body_bytes` is Kraken-style refused with HTTP 413."""
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _TooLarge from None


class _TooLarge(Exception):
    pass


_TOO_LARGE = f"{INVALID_ARGUMENTS}:body too large"


def count_error(venue: Venue, code: str) -> None:
    venue.count(f"error:{code}")


async def faults_before(
    venue: Venue, *, unavailable: str = SERVICE_UNAVAILABLE, busy: str = SERVICE_BUSY
) -> None:
    """Latency, then maybe a refusal that executed nothing (the codes are the API's own)."""
    faults = venue.settings.faults
    if faults.latency_s > 0:
        await asyncio.sleep(faults.latency_s)
    if faults.unavailable_next > 0:
        faults.unavailable_next -= 1
        raise KrakenError(unavailable)
    draw = venue.rng.random()
    if draw < faults.unavailable_rate:
        raise KrakenError(unavailable)
    if draw < faults.unavailable_rate + faults.busy_rate:
        raise KrakenError(busy)


def _check_permissions(venue: Venue, key: ApiKey, method: str) -> None:
    """Any one of the endpoint's permissions, plus every extra one it needs."""
    if not any(p in key.permissions for p in ENDPOINTS[method].permissions):
        raise KrakenError(PERMISSION_DENIED)
    for permission in EXTRA_PERMISSIONS.get(method, ()):
        venue.spot_auth.require(key, permission)


def _error_reply(venue: Venue, exc: Exception, method: str) -> web.Response:
    """Kraken's error envelope for a failed request (call from inside the `except`)."""
    if isinstance(exc, KrakenError):
        count_error(venue, exc.code)
        return envelope(errors=[exc.code])
    if isinstance(exc, _TooLarge):
        count_error(venue, _TOO_LARGE)
        return envelope(errors=[_TOO_LARGE], status=413)
    venue.record_internal_error(f"request {method}", exc)  # a bug of ours: never the client's
    count_error(venue, INTERNAL_ERROR)
    return envelope(errors=[INTERNAL_ERROR])


async def public(request: web.Request) -> web.Response:
    venue = request.app[VENUE_KEY]
    method = request.match_info["method"]
    handler = PUBLIC.get(method)
    if handler is None:
        return envelope(errors=[UNKNOWN_METHOD])
    venue.count(f"public:{method}")
    try:
        await faults_before(venue)
        body = await read_body(request) if request.method == "POST" else b""
        params = Params.parse(body, request.content_type, request.query_string)
        return envelope(handler(venue, params))
    except Exception as exc:  # every failure becomes Kraken's envelope
        return _error_reply(venue, exc, method)


async def private(request: web.Request) -> web.StreamResponse:
    venue = request.app[VENUE_KEY]
    method = request.match_info["method"]
    endpoint = ENDPOINTS.get(method)
    if endpoint is None:
        return envelope(errors=[UNKNOWN_METHOD])
    venue.count(f"private:{method}")
    try:
        await faults_before(venue)
        body = await read_body(request)
        params = Params.parse(body, request.content_type)
        nonce = params.raw("nonce")
        key = venue.spot_auth.authenticate(
            request.headers.get("API-Key"),
            request.headers.get("API-Sign"),
            request.path,
            None if nonce is None or isinstance(nonce, bool) else str(nonce),
            body,
            now_s=venue.clock.time(),
        )
        _check_permissions(venue, key, method)
        venue.limits.charge_rest(key.key, method, venue.clock.time())
        result = endpoint.handler(venue, key, params)
    except Exception as exc:  # every failure becomes Kraken's envelope
        return _error_reply(venue, exc, method)
    reply = envelope(result)
    fault = choose(venue.settings.faults, venue.rng, method, acting=endpoint.acting)
    return reply if fault is None else await strike(venue, request, fault, reply)


def add_routes(app: web.Application) -> None:
    add_release(app)
    app.router.add_route("GET", "/0/public/{method}", public)
    app.router.add_route("POST", "/0/public/{method}", public)
    app.router.add_route("POST", "/0/private/{method}", private)

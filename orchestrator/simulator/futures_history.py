"""Kraken's futures history API as far as reconciling needs it: `GET /api/history/v3/account-log`.

Authenticated like the derivatives API (`APIKey`, `Authent` over postData + nonce + endpointPath,
here the whole path `/api/history/v3/account-log`); a read-only key suffices (`query_funds`). Each
key has its own `/history` pool (100 tokens, refilled at 100 per 10 minutes; a call costs by its
`count`, `futures_log.cost`); over it the reply is HTTP 429, text/plain, with the seconds to wait
in `rate-limit-reset`, as Kraken's spec has. The reply is `{"accountUid": ..., "logs": [...]}`:
the caller's own log, filtered by `since`/`before` (ms), `from`/`to` (ids), `info`, `sort`
(`desc` by default) and `count` (500 by default); `conversion_details` is accepted and ignored.

Choices where Kraken says nothing: a refused key, signature, nonce or permission is HTTP 401, a
bad parameter HTTP 400, each in the derivatives' error envelope (`authenticationError`,
`invalidArgument`, ...); `count` must be 1 to 100000. Faults before the venue acts do not apply
here; reply faults do when they name `account-log`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

import msgspec
from aiohttp import web

from orchestrator.logs import get_logger
from orchestrator.simulator import futures_log as flog
from orchestrator.simulator.auth import FUTURES_INVALID_ARGUMENT
from orchestrator.simulator.errors import KrakenError
from orchestrator.simulator.futures_accounts import server_time
from orchestrator.simulator.futures_rest import SERVER_ERROR, signed_params
from orchestrator.simulator.http import VENUE_KEY, count_error
from orchestrator.simulator.limits import Counter
from orchestrator.simulator.reply_faults import choose, strike
from orchestrator.simulator.venue import Venue

log = get_logger(__name__)
HISTORY_PREFIX: Final = "/api/history/v3"
ACCOUNT_LOG_PATH: Final = f"{HISTORY_PREFIX}/account-log"
_MAX_ID_DIGITS: Final = 19
_encoder = msgspec.json.Encoder()


class HistoryBudget:
    """One `/history` pool per API key. Pure: every call takes `now_s`."""

    def __init__(
        self,
        tokens: float = flog.HISTORY_TOKENS,
        refill_per_s: float = flog.HISTORY_REFILL_PER_S,
    ) -> None:
        self.tokens = tokens
        self.refill_per_s = refill_per_s
        self._counters: dict[str, Counter] = {}

    def charge(self, key_id: str, cost: float, now_s: float) -> float:
        """Take `cost` and return 0, or take nothing and return the seconds until it fits."""
        counter = self._counters.get(key_id)
        if counter is None:
            counter = self._counters[key_id] = Counter(self.tokens, self.refill_per_s)
        wait_s = counter.wait_s(cost, now_s)
        if wait_s == 0:
            counter.add(cost, now_s)
        return wait_s


HISTORY_BUDGET_KEY: Final = web.AppKey("futures_history_budget", HistoryBudget)


def _integer(params: Mapping[str, str], name: str) -> int | None:
    text = params.get(name)
    if text is None or text == "":
        return None
    if not text.isdigit() or len(text) > _MAX_ID_DIGITS:
        raise KrakenError(FUTURES_INVALID_ARGUMENT, name)
    return int(text)


def parse_query(params: Mapping[str, str]) -> flog.Query:
    """The account-log filters, or `invalidArgument` naming the bad one."""
    sort = params.get("sort", "desc")
    if sort not in ("asc", "desc"):
        raise KrakenError(FUTURES_INVALID_ARGUMENT, "sort")
    info = params.get("info")
    if info is not None and info not in flog.INFO_TYPES:
        raise KrakenError(FUTURES_INVALID_ARGUMENT, "info")
    count = _integer(params, "count")
    if count is not None and not 1 <= count <= flog.MAX_COUNT:
        raise KrakenError(FUTURES_INVALID_ARGUMENT, "count")
    return flog.Query(
        since_ms=_integer(params, "since"),
        before_ms=_integer(params, "before"),
        from_id=_integer(params, "from"),
        to_id=_integer(params, "to"),
        info=info,
        sort="asc" if sort == "asc" else "desc",
        count=flog.DEFAULT_COUNT if count is None else count,
    )


def _json(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(body=_encoder.encode(body), status=status, content_type="application/json")


def _refusal(venue: Venue, code: str, status: int) -> web.Response:
    count_error(venue, code)
    body = {"result": "error", "serverTime": server_time(venue.clock.time()), "error": code}
    return _json(body, status)


async def account_log(request: web.Request) -> web.Response:
    venue = request.app[VENUE_KEY]
    venue.count("futures:account-log")
    try:
        post_data, params = signed_params(request, await request.read())
        key = venue.futures_auth.authenticate(
            request.headers.get("APIKey"),
            request.headers.get("Authent"),
            post_data,
            request.headers.get("Nonce"),
            request.rel_url.raw_path,
        )
        venue.futures_auth.require(key, "query_funds")
        query = parse_query(params)
    except KrakenError as exc:
        return _refusal(venue, exc.code, 400 if exc.code == FUTURES_INVALID_ARGUMENT else 401)
    except Exception as exc:
        venue.record_internal_error("futures_history_failed", exc)
        return _refusal(venue, SERVER_ERROR, 500)
    wait_s = request.app[HISTORY_BUDGET_KEY].charge(
        key.key, flog.cost(query.count), venue.clock.time()
    )
    if wait_s > 0:
        count_error(venue, "history:rate_limited")
        reset_s = max(1, math.ceil(wait_s))
        return web.Response(
            status=429, text="Rate limited", headers={"rate-limit-reset": str(reset_s)}
        )
    account = venue.domain.accounts[key.account]
    logs = [flog.entry_json(e) for e in flog.select(account.futures_log, query)]
    reply = _json({"accountUid": account.futures_uid, "logs": logs})
    fault = choose(venue.settings.faults, venue.rng, "account-log", acting=False)
    return reply if fault is None else await strike(venue, request, fault, reply)


def add_routes(app: web.Application) -> None:
    app[HISTORY_BUDGET_KEY] = HistoryBudget()
    app.router.add_get(ACCOUNT_LOG_PATH, account_log)

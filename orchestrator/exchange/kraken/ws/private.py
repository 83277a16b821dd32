"""One account's private WebSocket v2 connection: its token from the account's own REST key, its
`executions` (open orders in the snapshot, every status change) and `balances` channels.

The token is fetched by `KrakenWs` once per connection through REST GetWebSocketsToken, on the
key's REST counter like any query. A token that cannot be had *now* (the venue busy, our limiter
or the venue's counter full, Redis down) is the link's trouble, not the owner's bug: it reads as
`VenueUnavailable`, so `run()` backs off and reconnects instead of ending. A refusal of the key
itself (`AuthError`: no `websocket` permission, a bad key) still ends `run()`: no retry mends it.
"""

from __future__ import annotations

from typing import Any, Final

from orchestrator.clock import Clock
from orchestrator.errors import LimiterUnavailable, RateLimited, VenueRateLimited, VenueUnavailable
from orchestrator.exchange.kraken.account import KrakenAccount
from orchestrator.exchange.kraken.common.methods import WEBSOCKETS_TOKEN
from orchestrator.exchange.kraken.spot.schemas import WebSocketsToken
from orchestrator.exchange.kraken.ws.client import (
    BalanceHandler,
    ExecutionHandler,
    KrakenWs,
    RateCountHandler,
)
from orchestrator.exchange.kraken.ws.subscription import Subscription

# Open orders in the snapshot (what reconciling after a reconnect starts from), every status
# change (pending_new, amended, restated ...), no past fills (REST has them, by cl_ord_id).
EXECUTIONS: Final = Subscription(
    channel="executions", snapshot=True, extra=(("order_status", True), ("snap_trades", False))
)
# The same, with the venue's own per-pair trading counter in the stream (`ratecounter`).
EXECUTIONS_WITH_RATECOUNT: Final = Subscription(
    channel="executions",
    snapshot=True,
    extra=(("order_status", True), ("snap_trades", False), ("ratecounter", True)),
)
BALANCES: Final = Subscription(channel="balances", snapshot=True)
_NOT_NOW: Final = (RateLimited, LimiterUnavailable, VenueRateLimited)


def open_private_ws(
    account: KrakenAccount,
    url: str,
    *,
    clock: Clock,
    on_execution: ExecutionHandler,
    on_balance: BalanceHandler,
    on_ratecount: RateCountHandler | None = None,
    **ws_options: Any,
) -> KrakenWs:
    """The account's private connection, subscribed (from its first connect, and after every
    reconnect) to `executions` and `balances`. The caller runs `run()` in its TaskGroup and
    `close()`s it; `ws_options` are `KrakenWs`'s (timeouts, heartbeats, backoff). With
    `on_ratecount`, `executions` is asked for the venue's trading counters (`ratecounter`)."""

    async def token() -> str:
        try:
            result = await account.rest.call_as(WebSocketsToken, WEBSOCKETS_TOKEN)
        except _NOT_NOW as exc:
            raise VenueUnavailable(f"{account.name}: no WebSocket token now ({exc})") from exc
        return result.token

    ws = KrakenWs(url, clock=clock, token=token, on_execution=on_execution,
                  on_balance=on_balance, on_ratecount=on_ratecount, **ws_options)  # fmt: skip
    executions = EXECUTIONS if on_ratecount is None else EXECUTIONS_WITH_RATECOUNT
    for subscription in (executions, BALANCES):
        # Not connected yet: wanting is all `subscribe` does, and `run()` subscribes on connect.
        ws.wanted[(subscription.channel, subscription.symbol)] = subscription
    return ws

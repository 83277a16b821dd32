"""Trading over a WebSocket v2 connection: a permit first, on the same counters as REST.

A request names its row of Kraken's method table; it is charged on the account's trading
counters and the domain pool exactly as over REST, but never on the key's REST counter (Kraken
does not count WebSocket order entry there). A venue rate-limit refusal fills the scopes the
permit booked, for every process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from orchestrator.errors import VenueRateLimited
from orchestrator.exchange.kraken.common.errors import rate_limit_kind
from orchestrator.exchange.kraken.common.methods import Method
from orchestrator.exchange.kraken.ws.client import KrakenWs
from orchestrator.ratelimit.permits import PermitSource
from orchestrator.ratelimit.policy import VenueRequest


class KrakenWsTrading:
    """Order entry over one account's private connection."""

    def __init__(
        self, ws: KrakenWs, *, permits: PermitSource, account: str, strategy: str | None
    ) -> None:
        self.ws = ws
        self.permits = permits
        self.account = account
        self.strategy = strategy

    async def trade(
        self,
        request: VenueRequest,
        params: dict[str, Any],
        *,
        stamp: Callable[[], Mapping[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Send `request.method` over the connection and return the reply frame. `stamp`:
        parameters computed once the permit is granted, just before sending (Kraken's
        `deadline`, which a wait for the permit must not eat into)."""
        method = request.method
        if not isinstance(method, Method) or method.ws is None or not method.acting:
            raise ValueError(f"{method} is not a WebSocket trading method")
        name = method.ws
        token = await self.ws.private_token()
        permit = await self.permits.acquire_for(
            msgspec.structs.replace(request, via_ws=True),
            account=self.account,
            key_id="",  # no REST counter is charged over WebSocket
            strategy=self.strategy,
        )
        stamped = params if stamp is None else params | dict(stamp())
        try:
            return await self.ws.request(name, stamped | {"token": token})
        except VenueRateLimited as exc:
            kind = rate_limit_kind(exc.codes[0]) if exc.codes else None
            await self.permits.feedback(permit, kind)  # the scopes this request booked
            raise

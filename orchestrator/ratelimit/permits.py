"""Where venue clients get permits: the one argument no client can be built without.

`Limiter` (ratelimit/redis.py) is the product's permit source. `Unlimited` exists for tests of
code that is not about rate limits; its name says what it does, and product wiring never builds
one (`exchange/kraken/account.py` always builds the shared limiter).
"""

from __future__ import annotations

from typing import Protocol

from orchestrator.exchange.kraken.common.errors import RateLimitKind
from orchestrator.ratelimit.policy import VenueRequest
from orchestrator.ratelimit.redis import Permit


class PermitSource(Protocol):
    async def acquire_for(
        self,
        request: VenueRequest,
        *,
        account: str,
        key_id: str,
        strategy: str | None = None,
        deadline_s: float = 5.0,
    ) -> Permit:
        """Wait until the request fits every counter it touches, then book it."""
        ...

    async def feedback(self, permit: Permit, kind: RateLimitKind | None) -> None:
        """The venue refused the permitted request for rate limits of `kind`."""
        ...


class Unlimited:
    """Grants every request at once and books nothing. For tests only: with it, nothing stops a
    client from exceeding Kraken's limits."""

    async def acquire_for(
        self,
        request: VenueRequest,
        *,
        account: str,
        key_id: str,
        strategy: str | None = None,
        deadline_s: float = 5.0,
    ) -> Permit:
        return Permit((), request.lane, 0.0)

    async def feedback(self, permit: Permit, kind: RateLimitKind | None) -> None:
        return None

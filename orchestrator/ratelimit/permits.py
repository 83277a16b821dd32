"""Permits, and where venue clients get them: the one argument no client can be built without.

A `Permit` names the charges it booked (each scope with its threshold and decay), so venue
feedback can fill exactly the counter the venue named.

`Limiter` (ratelimit/redis.py) is the product's permit source. `Unlimited` exists for tests of
code that is not about rate limits; its name says what it does, and product wiring never builds
one (`exchange/kraken/account.py` always builds the shared limiter).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, Protocol

import msgspec

from orchestrator.exchange.kraken.common.errors import RateLimitKind
from orchestrator.ratelimit.policy import Charge, Lane, Scope, VenueRequest

# Which venue counter a scope is, by the names `policy` gives them (`rest:<key id>`,
# `trade:<account>:<pair>`, `domain:<pair>`): what a venue rate-limit error names.
KIND_PREFIX: Final[Mapping[RateLimitKind, str]] = MappingProxyType(
    {"rest": "rest:", "trading": "trade:", "domain": "domain:", "futures": "futures:"}
)


class Permit(msgspec.Struct, frozen=True):
    """Proof that a request may be sent now: the charges it booked (each scope with its
    threshold and decay), its lane, and how long the caller slept for its slot (`waited_s`)."""

    charges: tuple[Charge, ...]
    lane: Lane
    waited_s: float
    fallback: bool = False  # granted by the local budget while Redis was down

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(c.scope.name for c in self.charges)

    def scopes_of(self, kind: RateLimitKind) -> list[Scope]:
        """The permit's scopes that are venue counters of `kind` (a CancelAll may book several
        pairs' trading counters; a request over WS books no REST counter)."""
        prefix = KIND_PREFIX[kind]
        return [c.scope for c in self.charges if c.scope.name.startswith(prefix)]


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

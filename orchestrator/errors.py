"""The one error tree of orchestrator.

Every error the service raises on purpose is an `OrchestratorError`. Errors from libraries (redis,
aiohttp, websockets) are translated into this tree at the I/O edge that met them, so that callers
decide on *what happened* (retry? reconcile? give up?) and never on which library said it.

    OrchestratorError
    +-- ConfigError               bad configuration; names the field path (fails at start)
    |   +-- SecretError           a key reference cannot be resolved (never shows the value)
    +-- FeatureNotBuilt           a CLI subcommand or option whose feature does not exist yet
    +-- StoreError                Redis trouble
    |   +-- StoreUnavailable      Redis cannot be reached (the limiter fails closed on this)
    +-- RateLimited               our limiter refuses now; `wait_s` says when it would fit
    +-- LimiterUnavailable        the limiter cannot decide (Redis down) and fails closed
    +-- CommandError              a bad operator command; the service keeps running
    +-- StrategyError             a strategy raised; it is stopped, the others keep running
    +-- VenueError                the venue said no, or did not say
        +-- VenueRejected         a definite "no": the request had no effect; do not retry as is
        |   +-- AuthError         invalid key / signature / nonce / permission / lockout
        |   |   +-- InvalidNonce  retry with a fresh nonce is safe: the request was not executed
        |   +-- InsufficientFunds
        |   +-- UnknownOrder
        |   +-- InvalidRequest    malformed or out-of-bounds arguments
        +-- VenueRateLimited      the venue's counter is full; feeds back into the limiter
        +-- VenueUnavailable      EService:Unavailable / Busy: not executed, retryable
        +-- AmbiguousOutcome      we sent, then lost the reply: reconcile before any retry

The distinction that matters for money is `VenueRejected` / `VenueUnavailable` (nothing happened)
against `AmbiguousOutcome` (something may have happened).
"""

from __future__ import annotations


class OrchestratorError(Exception):
    """Root of every error raised on purpose by orchestrator."""


class ConfigError(OrchestratorError):
    """Configuration is invalid. `path` is the dotted field path (`accounts[1].role`)."""

    def __init__(self, path: str, reason: str, *, source: str | None = None) -> None:
        self.path = path
        self.reason = reason
        self.source = source
        where = f"{source}: " if source else ""
        field = path if path else "(top level)"
        super().__init__(f"{where}{field}: {reason}")


class SecretError(ConfigError):
    """A secret reference (`env:NAME`, `file:PATH`) cannot be resolved. Never carries the value."""


class FeatureNotBuilt(OrchestratorError):
    """A feature the CLI names but the project has not built yet; the CLI exits 2 on it."""

    def __init__(self, feature: str, issue: int | None = None) -> None:
        self.feature = feature
        self.issue = issue
        tracked = f" (tracked in issue {issue})" if issue is not None else ""
        super().__init__(f"{feature} is not built yet{tracked}")


class StoreError(OrchestratorError):
    """Redis trouble that is not just unavailability."""


class StoreUnavailable(StoreError):
    """Redis cannot be reached."""


class RateLimited(OrchestratorError):
    """Our limiter refuses the request now. `wait_s` is the wait until every scope would fit."""

    def __init__(self, scope: str, wait_s: float) -> None:
        self.scope = scope
        self.wait_s = wait_s
        super().__init__(f"rate limited on {scope}: fits in {wait_s:.3f} s")


class LimiterUnavailable(OrchestratorError):
    """The shared limiter cannot decide (Redis unreachable): new risk is refused."""


class CommandError(OrchestratorError):
    """An operator command is malformed, unauthenticated or not allowed now."""


class StrategyError(OrchestratorError):
    """A strategy callback raised; the strategy is stopped and its orders cancelled."""

    def __init__(self, strategy: str, reason: str) -> None:
        self.strategy = strategy
        super().__init__(f"strategy {strategy!r}: {reason}")


class VenueError(OrchestratorError):
    """The venue refused, failed, or did not answer. `codes` are the venue's error strings."""

    def __init__(self, message: str, *, codes: tuple[str, ...] = ()) -> None:
        self.codes = codes
        super().__init__(message)


class VenueRejected(VenueError):
    """A definite refusal: the request had no effect on the venue."""


class AuthError(VenueRejected):
    """Invalid key, signature, nonce, permission, or a temporary lockout. Never retry in a loop."""


class InvalidNonce(AuthError):
    """The nonce was not above the key's last one. The request was not executed."""


class InsufficientFunds(VenueRejected):
    """Not enough available balance for the order or transfer."""


class UnknownOrder(VenueRejected):
    """The venue knows no such order (or it is already closed)."""


class InvalidRequest(VenueRejected):
    """Arguments the venue refused: unknown pair, bad volume, tick size, ordermin, ..."""


class VenueRateLimited(VenueError):
    """The venue's own counter refused us. The limiter assumes that scope is full."""


class VenueUnavailable(VenueError):
    """The venue is unavailable or busy. Nothing was executed; retry after a backoff."""


class AmbiguousOutcome(VenueError):
    """The request was sent and its reply lost. The venue may have acted: reconcile first."""

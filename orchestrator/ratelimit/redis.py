"""The shared limiter: every budgeted request to the venue takes a permit here first.

One Lua script (`lua/acquire.lua`, the mirror of `bucket.decide`) checks and books all the scopes
of a request atomically on Redis's clock, so any number of processes on any number of hosts share
one truth. A grant may come with a wait: the script has *reserved* the caller's slot, the caller
sleeps once and sends. Refusals write nothing.

Venue feedback: a permit names the scopes it booked; when the venue still says "rate limit
exceeded", `feedback(permit, kind)` fills that permit's scope of that kind, for every process.

Failure policy: when Redis cannot be reached the limiter fails closed for new risk
(`LimiterUnavailable`) and lets risk-reducing requests (cancels) through on a small local budget
per account; it tries Redis again after `retry_after_s`, so service resumes on its own.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from types import MappingProxyType
from typing import Final

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from orchestrator.clock import Clock
from orchestrator.config import LimitsConfig
from orchestrator.errors import LimiterUnavailable, RateLimited
from orchestrator.exchange.kraken.common.errors import RateLimitKind
from orchestrator.logs import get_logger
from orchestrator.metrics import Registry
from orchestrator.ratelimit.policy import Charge, Lane, Policy, Scope, VenueRequest
from orchestrator.store.keys import Keys

log = get_logger(__name__)
_JITTER: Final = 0.1
_UNREACHABLE: Final = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)
# Which venue counter a scope is, by the names `policy` gives them (`rest:<key id>`,
# `trade:<account>:<pair>`, `domain:<pair>`): what a venue rate-limit error names.
_KIND_PREFIX: Final[Mapping[RateLimitKind, str]] = MappingProxyType(
    {"rest": "rest:", "trading": "trade:", "domain": "domain:"}
)


def _lua(name: str) -> str:
    return resources.files("orchestrator.ratelimit").joinpath(f"lua/{name}").read_text("utf-8")


ACQUIRE_LUA: Final = _lua("acquire.lua")
PENALIZE_LUA: Final = _lua("penalize.lua")


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
        prefix = _KIND_PREFIX[kind]
        return [c.scope for c in self.charges if c.scope.name.startswith(prefix)]


class LimiterMetrics:
    def __init__(self, registry: Registry) -> None:
        r = registry
        self.permits = r.counter("orch_limiter_permits", "Permits granted", ["lane", "mode"])
        self.refusals = r.counter("orch_limiter_refusals", "Refusals", ["lane", "reason"])
        self.wait_s = r.histogram("orch_limiter_wait_seconds", "Wait per permit", ["lane"])
        self.cooldowns = r.counter("orch_limiter_cooldowns", "Venue rate-limit errors", ["scope"])
        self.level = r.gauge("orch_limiter_level_ratio", "Scope level / threshold", ["scope"])
        self.redis_down = r.gauge("orch_limiter_redis_down", "1 while Redis is unreachable")


class _LocalBudget:
    """A conservative token bucket per account, used for cancels only while Redis is down."""

    def __init__(self, rate_per_s: float, burst: float = 2.0) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._tokens: dict[str, tuple[float, float]] = {}

    def wait_s(self, account: str, now_s: float) -> float:
        tokens, at_s = self._tokens.get(account, (self.burst, now_s))
        tokens = min(self.burst, tokens + (now_s - at_s) * self.rate_per_s)
        if tokens >= 1:
            self._tokens[account] = (tokens - 1, now_s)
            return 0.0
        self._tokens[account] = (tokens, now_s)
        return (1 - tokens) / self.rate_per_s


class Limiter:
    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        policy: Policy,
        clock: Clock,
        *,
        limits: LimitsConfig,
        weights: Mapping[str, float] | None = None,
        registry: Registry | None = None,
        active_window_s: float = 10.0,
        retry_after_s: float = 0.5,
        script_time: Callable[[], float] | None = None,
    ) -> None:
        """`script_time` is for tests only: the scripts then use it instead of Redis TIME."""
        self.redis = redis
        self.keys = keys
        self.policy = policy
        self.clock = clock
        self.limits = limits
        self.total_weight = sum((weights or {}).values())
        self.weights = self.effective_weights(weights or {}, limits)
        self.active_window_s = active_window_s
        self.retry_after_s = retry_after_s
        self.metrics = LimiterMetrics(registry or Registry())
        self._acquire_sha = hashlib.sha1(ACQUIRE_LUA.encode()).hexdigest()  # noqa: S324 - Redis's script id
        self._penalize = redis.register_script(PENALIZE_LUA)
        self._local = _LocalBudget(limits.local_cancel_per_s)
        self._rng = random.Random()  # noqa: S311 - jitter, not security
        self._down_until_s = 0.0
        self._ttl_ms = limits.key_idle_ttl_s * 1000
        self._script_time = script_time
        # The freshest `tat` this process saw per scope: floors for the script, so that scopes
        # lost with a Redis restart come back no emptier than this process knew them.
        self._tat_floor_s: dict[str, float] = {}
        # Arguments that never change, formatted once (the hot path builds only the rest).
        self._reserve_arg = repr(limits.risk_reserve_fraction)
        self._transit_arg = repr(limits.transit_allowance_s)
        self._total_weight_arg = repr(self.total_weight)
        self._window_arg = repr(active_window_s)
        self._key_names: dict[str, str] = {}
        self._scope_args: dict[str, str] = {}

    def _scope_arg(self, scope: Scope) -> str:
        """`"threshold decay "` of a scope, formatted once."""
        arg = self._scope_args.get(scope.name)
        if arg is None:
            arg = self._scope_args[scope.name] = f"{scope.threshold!r} {scope.decay_per_s!r} "
        return arg

    def _scope_key(self, scope: str) -> str:
        key = self._key_names.get(scope)
        if key is None:
            key = self._key_names[scope] = self.keys.limiter_scope(scope)
        return key

    @staticmethod
    def effective_weights(weights: Mapping[str, float], limits: LimitsConfig) -> dict[str, float]:
        """Weights capped at what one account can use of a per-pair pool (1/multiplier of it,
        when each account keeps its own 1x counter). A share nobody can use would sit reserved
        and idle; capped, the rest of the pool is nobody's and anyone may borrow it."""
        total = sum(weights.values())
        if not (limits.per_account_cap and limits.domain_scope == "pair") or total <= 0:
            return dict(weights)
        cap = total / limits.domain_multiplier
        return {name: min(weight, cap) for name, weight in weights.items()}

    def _now_arg(self) -> str:
        return "" if self._script_time is None else repr(self._script_time())

    # --- the one call everything makes ---------------------------------------------------------
    async def acquire_for(
        self,
        request: VenueRequest,
        *,
        account: str,
        key_id: str,
        strategy: str | None = None,
        deadline_s: float = 5.0,
    ) -> Permit:
        """A permit for one venue request (its charges come from the policy)."""
        charges = self.policy.charges_for(request, account=account, key_id=key_id)
        return await self.acquire(
            charges, lane=request.lane, deadline_s=deadline_s, strategy=strategy, account=account
        )

    async def acquire(
        self,
        charges: Sequence[Charge],
        *,
        lane: Lane,
        deadline_s: float,
        strategy: str | None = None,
        account: str = "",
    ) -> Permit:
        """Wait (at most `deadline_s`) for every scope to fit, then return the permit.

        Raises `RateLimited` with the wait when it cannot fit within the deadline, and
        `LimiterUnavailable` for new risk while Redis is unreachable. Cancelling the caller while
        it sleeps for a reserved slot leaves the slot booked: conservative, never over the limit.
        """
        booked = tuple(charges)
        if not booked:
            return Permit(booked, lane, 0.0)
        start_s = self.clock.monotonic()
        while True:
            remaining_s = max(0.0, deadline_s - (self.clock.monotonic() - start_s))
            try:
                granted, wait_s, binding = await self._decide(booked, lane, remaining_s, strategy)
            except _UNREACHABLE as exc:
                return await self._fallback(booked, lane, account, exc)
            if granted:
                if wait_s > 0:
                    await self.clock.sleep(wait_s)  # the slot is booked: one sleep, no polling
                waited_s = self.clock.monotonic() - start_s
                self.metrics.permits.inc(lane, "redis")
                self.metrics.wait_s.observe(waited_s, lane)
                return Permit(booked, lane, waited_s)
            if wait_s > remaining_s:
                self.metrics.refusals.inc(lane, "deadline")
                raise RateLimited(_binding_name(booked, binding), wait_s)
            # Beyond its fair share with no idle capacity to borrow: wait until the share has
            # room (the strategy's own state, so no herd), with a little jitter for its own loops.
            self.metrics.refusals.inc(lane, "share")
            await self.clock.sleep(wait_s * (1 + _JITTER * self._rng.random()) + 0.001)

    async def _decide(
        self, charges: Sequence[Charge], lane: Lane, max_wait_s: float, strategy: str | None
    ) -> tuple[bool, float, int]:
        if self.clock.monotonic() < self._down_until_s:
            raise RedisConnectionError("Redis marked down; retrying shortly")
        keys, args = self._script_call(charges, lane, max_wait_s, strategy)
        try:
            # EVALSHA directly (redis-py's Script wrapper costs ~5 us a call); NOSCRIPT after a
            # restart or SCRIPT FLUSH falls back to loading the script once more.
            try:
                reply = await self.redis.evalsha(self._acquire_sha, len(keys), *keys, *args)
            except NoScriptError:
                self._acquire_sha = await self.redis.script_load(ACQUIRE_LUA)
                reply = await self.redis.evalsha(self._acquire_sha, len(keys), *keys, *args)
        except _UNREACHABLE:
            self._down_until_s = self.clock.monotonic() + self.retry_after_s
            self.metrics.redis_down.set(1)
            raise
        if self._down_until_s:
            self._down_until_s = 0.0
            self.metrics.redis_down.set(0)
            log.info("limiter.redis_recovered")
        for charge, tat in zip(charges, reply[4:], strict=True):
            name = charge.scope.name
            self._tat_floor_s[name] = max(self._tat_floor_s.get(name, 0.0), float(tat))
        return bool(int(reply[0])), float(reply[1]), int(reply[2]) - 1

    def _script_call(
        self, charges: Sequence[Charge], lane: Lane, max_wait_s: float, strategy: str | None
    ) -> tuple[list[str], list[str | int]]:
        """KEYS and ARGV of `acquire.lua` (see its header) for one request."""
        keys = [self._scope_key(c.scope.name) for c in charges]
        packed: list[str] = []
        pool_name = ""
        for charge in charges:
            scope = charge.scope
            is_pool = scope.name.startswith("domain:")
            if is_pool and not pool_name:
                pool_name = scope.name
            floor = self._tat_floor_s.get(scope.name, 0.0)
            packed.append(
                f"{self._scope_arg(scope)}{float(charge.cost)!r} {int(is_pool)} {floor!r}"
            )
        weight = self.weights.get(strategy or "", 0.0)
        fair = bool(strategy and weight > 0 and pool_name)
        if fair:
            keys.append(self.keys.limiter_share(pool_name))
        args: list[str | int] = [
            self._now_arg(),
            1 if lane == "risk_reducing" else 0,
            self._reserve_arg,
            repr(max_wait_s),
            self._ttl_ms,
            self._transit_arg,
            strategy if fair and strategy else "",
            repr(weight) if fair else "0",
            self._total_weight_arg,
            self._window_arg,
            "|".join(packed),
        ]
        return keys, args

    async def _fallback(
        self, charges: tuple[Charge, ...], lane: Lane, account: str, exc: BaseException
    ) -> Permit:
        if lane != "risk_reducing":
            self.metrics.refusals.inc(lane, "redis_down")
            raise LimiterUnavailable(
                f"limiter cannot reach Redis ({type(exc).__name__}): new risk refused"
            ) from exc
        wait_s = self._local.wait_s(account, self.clock.monotonic())
        if wait_s > 0:
            await self.clock.sleep(wait_s)
        # Remember what was spent without Redis, so it is counted once Redis is back.
        now_s = self.clock.time()
        for charge in charges:
            name, decay = charge.scope.name, charge.scope.decay_per_s
            self._tat_floor_s[name] = (
                max(self._tat_floor_s.get(name, 0.0), now_s) + charge.cost / decay
            )
        self.metrics.permits.inc(lane, "local")
        log.warning("limiter.local_permit", account=account, reason=type(exc).__name__)
        return Permit(charges, lane, wait_s, fallback=True)

    # --- venue feedback ------------------------------------------------------------------------
    async def penalize(self, scope: Scope, cooldown_s: float = 1.0) -> None:
        """The venue said rate limit exceeded on `scope`: everyone treats it as full."""
        self.metrics.cooldowns.inc(scope.name)
        try:
            await self._penalize(
                keys=[self.keys.limiter_scope(scope.name)],
                args=[
                    self._now_arg(),
                    repr(scope.threshold),
                    repr(scope.decay_per_s),
                    repr(cooldown_s),
                    self._ttl_ms,
                ],
            )
        except (*_UNREACHABLE, RedisError) as exc:
            log.warning("limiter.penalize_failed", scope=scope.name, error=type(exc).__name__)

    async def feedback(self, permit: Permit, kind: RateLimitKind | None) -> None:
        """The venue refused `permit`'s request for rate limits of `kind` (`rate_limit_kind` of
        its error): the permit's scope(s) of that kind are full, for every process."""
        scopes = permit.scopes_of(kind) if kind is not None else []
        for scope in scopes:
            await self.penalize(scope)
        log.warning(
            "limiter.venue_rate_limited",
            kind=kind,
            scopes=[s.name for s in scopes],
            permitted=list(permit.scopes),
        )

    async def level(self, scope: Scope) -> float:
        """The scope's level now (for metrics and introspection)."""
        stored = await self.redis.get(self.keys.limiter_scope(scope.name))
        tat = stored.split()[0] if stored else None
        if self._script_time is not None:
            now_s = self._script_time()
        else:
            seconds, micros = await self.redis.time()
            now_s = seconds + micros / 1e6
        level = max(0.0, (float(tat or 0.0) - now_s) * scope.decay_per_s)
        self.metrics.level.set(level / scope.threshold, scope.name)
        return level


def _binding_name(charges: Sequence[Charge], binding: int) -> str:
    """The scope that decided a wait (the first when none did)."""
    return charges[binding if 0 <= binding < len(charges) else 0].scope.name

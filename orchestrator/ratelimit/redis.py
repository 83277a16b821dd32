"""The shared limiter: every budgeted request to the venue takes a permit here first.

One Lua script (`lua/acquire.lua`, the mirror of `bucket.decide`) checks and books all the scopes
of a request atomically on Redis's clock, so any number of processes on any number of hosts share
one truth. A grant may come with a wait: the script has *reserved* the caller's slot (beyond a
strategy's fair share too: it is booked at the share's next room), the caller sleeps once and
sends. Only a wait past the caller's deadline is refused, and refusals write nothing.

Failure policy: when Redis cannot be reached (or answers with an error: every redis-py error
is translated at one edge, `store.errors.redis_errors`) the limiter fails closed for new risk
(`LimiterUnavailable`) and lets risk-reducing requests (cancels) through on a local budget: the
same decision as the script, on the levels this process last saw, charged at each cancel's real
cost (`local_budget.py`). It tries Redis again after `retry_after_s`, so service resumes on its own.

Venue feedback: a permit names the scopes it booked; when the venue still says "rate limit
exceeded", `feedback(permit, kind)` fills that permit's scope of that kind, for every process.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Final

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from orchestrator.clock import Clock
from orchestrator.config import LimitsConfig
from orchestrator.errors import LimiterUnavailable, RateLimited, StoreError, StoreUnavailable
from orchestrator.exchange.kraken.common.errors import RateLimitKind
from orchestrator.logs import get_logger
from orchestrator.metrics import Registry
from orchestrator.ratelimit.calls import AcquireCalls
from orchestrator.ratelimit.epoch import EpochGuard
from orchestrator.ratelimit.local_budget import LocalBudget, Seen
from orchestrator.ratelimit.permits import Permit
from orchestrator.ratelimit.policy import Charge, Lane, Policy, Scope, VenueRequest
from orchestrator.ratelimit.scripts import now_arg, script
from orchestrator.ratelimit.usage import LimiterUsage
from orchestrator.ratelimit.wire import Reply, check_strategy_name, parse_reply, unpack_counter
from orchestrator.store.errors import raise_translated, redis_errors, stop_if_cancelled
from orchestrator.store.health import RedisHealth
from orchestrator.store.keys import Keys

log = get_logger(__name__)


ACQUIRE_LUA: Final = script("acquire.lua")
PENALIZE_LUA: Final = script("penalize.lua")


class LimiterMetrics:
    def __init__(self, registry: Registry) -> None:
        r = registry
        self.permits = r.counter("orch_limiter_permits", "Permits granted", ["lane", "mode"])
        self.refusals = r.counter("orch_limiter_refusals", "Refusals", ["lane", "reason"])
        self.wait_s = r.histogram("orch_limiter_wait_seconds", "Wait per permit", ["lane"])
        self.cooldowns = r.counter("orch_limiter_cooldowns", "Venue rate-limit errors", ["scope"])
        # The same errors, all scopes together, at 0 from the start: a series to watch stay 0.
        self.venue_rate_limited = r.counter(
            "orch_venue_rate_limited", "Venue rate-limit errors, every scope"
        )
        self.venue_rate_limited.inc(amount=0)
        self.level = r.gauge("orch_limiter_level_ratio", "Scope level / threshold", ["scope"])


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
        pairs: Mapping[str, Sequence[str]] | None = None,
        registry: Registry | None = None,
        active_window_s: float = 10.0,
        retry_after_s: float = 0.5,
        script_time: Callable[[], float] | None = None,
        health: RedisHealth | None = None,
        risk_reducing_timeout_s: float = 0.5,
    ) -> None:
        """`health`: the process's shared verdict on Redis (the nonces and key locks read it
        too); `risk_reducing_timeout_s`: how long a cancel waits on Redis before it takes the
        local budget (a hung Redis must not hold a cancel for a socket timeout).
        `pairs`: the pairs each weighted strategy trades, so that each domain pool's burst is
        split by the weights configured on it, not by whoever asks first (without them, by the
        strategies active so far). `script_time` is for tests only: the scripts then use it
        instead of Redis TIME."""
        self.redis = redis
        self.keys = keys
        self.policy = policy
        self.clock = clock
        self.limits = limits
        for name in weights or {}:
            check_strategy_name(name)
        self.configured_weights = dict(weights or {})  # as set, before capping
        self.weights = self.effective_weights(weights or {}, limits)
        self._pools_of = {
            name: {policy.domain_scope(pair).name for pair in traded}
            for name, traded in (pairs or {}).items()
        }
        self._opening_weight = self._opening_weights()
        self.active_window_s = active_window_s
        registry = registry or Registry()
        self.metrics = LimiterMetrics(registry)
        self.usage = LimiterUsage()  # each strategy's recent take of the pools (status screen)
        self._acquire_sha = hashlib.sha1(ACQUIRE_LUA.encode()).hexdigest()  # noqa: S324 - Redis's script id
        self._penalize = redis.register_script(PENALIZE_LUA)
        self._local = LocalBudget(limits.risk_reserve_fraction, limits.transit_allowance_s)
        # Without a shared verdict (tests, benchmarks), one of its own, `retry_after_s` long.
        self.health = health or RedisHealth(clock, registry, retry_after_s=retry_after_s)
        self.risk_reducing_timeout_s = risk_reducing_timeout_s
        self._fell_back = False  # decided without Redis since it last answered
        self._script_time = script_time
        self._seen = Seen()
        self._calls = AcquireCalls(keys, limits, active_window_s, script_time)
        self._state_key = self._calls.state_key
        self._calls.set_weights(self.weights, self._opening_weight)
        # The incarnation of Redis's state this process holds; after a loss, floors handed back.
        self.epoch = EpochGuard(redis, keys, clock, floors=lambda: self._seen.tat_floor_s,
                                reserve_fraction=limits.risk_reserve_fraction,
                                transit_s=limits.transit_allowance_s, script_time=script_time,
                                registry=registry)  # fmt: skip

    @staticmethod
    def effective_weights(weights: Mapping[str, float], limits: LimitsConfig) -> dict[str, float]:
        """Weights capped at what one account can use of a per-pair pool (1/multiplier of it,
        when each account keeps its own 1x counter). A share nobody can use would sit reserved
        and idle: the pool lends it only when nearly empty, which a busy pool never is. The cap
        is the fixed point `c = sum(min(w, c)) / multiplier` (a capped weight is then exactly
        1/multiplier of the capped total, not of the total before capping). With no more
        strategies than the multiplier nobody can reach it, and the weights stay as set."""
        multiplier = limits.domain_multiplier
        if not (limits.per_account_cap and limits.domain_scope == "pair") or multiplier <= 1:
            return dict(weights)
        ordered = sorted(weights.values(), reverse=True)
        for capped in range(min(len(ordered), math.ceil(multiplier))):
            cap = sum(ordered[capped:]) / (multiplier - capped)
            if ordered[capped] <= cap:  # the largest weight left under the cap: the fixed point
                return {name: min(weight, cap) for name, weight in weights.items()}
        return dict(weights)

    def set_weights(self, weights: Mapping[str, float]) -> None:
        """Replace the fair-share weights (an operator's `set_limit_shares`), from the next
        permit on; every weight must be > 0."""
        if any(not weight > 0 for weight in weights.values()):
            raise ValueError(f"every weight must be > 0, got {dict(weights)}")
        for name in weights:
            check_strategy_name(name)
        self.configured_weights = dict(weights)
        self.weights = self.effective_weights(weights, self.limits)
        self._opening_weight = self._opening_weights()
        self._calls.set_weights(self.weights, self._opening_weight)

    def _opening_weights(self) -> dict[str, float]:
        """Each domain pool's summed weight of the strategies configured on it (a pool nobody
        configured is absent: its burst goes by the active weight)."""
        totals: dict[str, float] = {}
        for name, pools in self._pools_of.items():
            for pool in pools:
                totals[pool] = totals.get(pool, 0.0) + self.weights.get(name, 0.0)
        return totals

    @property
    def retry_after_s(self) -> float:
        """How long Redis is skipped after it failed (the shared verdict's setting)."""
        return self.health.retry_after_s

    def now_arg(self) -> str:
        """The scripts' time argument: Redis TIME, or the test clock (`script_time`)."""
        return now_arg(self._script_time)

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
        `LimiterUnavailable` for new risk while Redis is unreachable or failing (cancels then
        take the local budget, within the same deadline). Cancelling the caller while it sleeps
        for a reserved slot leaves the slot booked: conservative, never over the limit.
        """
        booked = tuple(charges)
        if not booked:
            return Permit(booked, lane, 0.0)
        start_s = self.clock.monotonic()
        try:
            granted, wait_s, binding = await self._decide(booked, lane, deadline_s, strategy)
        except StoreError as exc:
            return await self._fallback(booked, lane, exc, account=account, strategy=strategy,
                                        max_wait_s=deadline_s, start_s=start_s)  # fmt: skip
        if not granted:
            self.metrics.refusals.inc(lane, "deadline")
            raise RateLimited(_binding_name(booked, binding), wait_s)
        if wait_s > 0:
            await self.clock.sleep(wait_s)  # the slot is booked: one sleep, no polling
        end_s = self.clock.monotonic()
        waited_s = end_s - start_s
        self.metrics.permits.inc(lane, "redis")
        self.metrics.wait_s.observe(waited_s, lane)
        self.usage.record(strategy, booked, waited_s, end_s)
        return Permit(booked, lane, waited_s)

    async def _decide(
        self, charges: Sequence[Charge], lane: Lane, max_wait_s: float, strategy: str | None
    ) -> tuple[bool, float, int]:
        if self.health.is_down():
            raise StoreUnavailable("limiter: Redis marked down; retrying shortly")
        try:
            # redis-py's errors translated by the edge's own rules (`redis_errors`), caught
            # here rather than through its context manager: this runs once per permit.
            try:
                if lane == "risk_reducing":
                    # A cancel waits on Redis briefly, then takes the local budget (the timeout's
                    # TimeoutError is an OSError, which the edge reads as "unavailable").
                    async with asyncio.timeout(self.risk_reducing_timeout_s):
                        reply = await self._in_epoch(charges, lane, max_wait_s, strategy)
                else:  # no timeout context on the hot path: it costs a few us a call
                    reply = await self._in_epoch(charges, lane, max_wait_s, strategy)
            except (RedisError, OSError) as exc:
                await raise_translated(self.redis, "limiter.acquire", exc)
            stop_if_cancelled()
        except StoreUnavailable as exc:
            self.health.mark_down("limiter", str(exc))
            self._fell_back = True
            raise
        self.health.mark_up()
        if self._fell_back:
            self._fell_back = False
            self._local.forget()
            log.info("limiter.redis_recovered")
        self.epoch.observe_clock(reply.now_s)  # the local budget counts on Redis's clock
        floors, seen = self._seen.tat_floor_s, self._seen.names
        for charge, tat in zip(charges, reply.tats, strict=True):
            name = charge.scope.name
            floors[name] = max(floors.get(name, 0.0), tat)
            seen.add(name)
        return reply.status == 1, reply.wait_s, reply.binding

    async def _in_epoch(
        self, charges: Sequence[Charge], lane: Lane, max_wait_s: float, strategy: str | None
    ) -> Reply:
        """The script's reply in the epoch Redis holds: when it holds another (state lost), the
        guard settles on it and hands back this process's floors, and the call is made once
        more. New risk is refused while the floors of every live process are coming back."""
        guard = self.epoch
        for _ in range(2):
            epoch_id = guard.id or await guard.ensure()
            if lane != "risk_reducing" and guard.lost_s and guard.new_risk_blocked(guard.now_s()):
                self.metrics.refusals.inc(lane, "restoring")
                raise LimiterUnavailable("limiter: state lost, restoring: new risk refused")
            mark = guard.mark()
            keys, args = self._script_call(charges, lane, max_wait_s, strategy)
            try:  # EVALSHA directly: redis-py's Script wrapper costs ~5 us a call
                raw = await self.redis.evalsha(self._acquire_sha, len(keys), *keys, *args)
            except NoScriptError:  # after a restart or SCRIPT FLUSH
                raw = await self._load_and_call(keys, args)
            reply = _parsed(raw)
            if reply.status != -1:
                if reply.status == 1 and guard.on_seq(reply.seq, reply.now_s, mark):
                    await guard.recover(mark)  # a replica behind: what it granted is not trusted
                    if lane != "risk_reducing":
                        self.metrics.refusals.inc(lane, "restoring")
                        raise LimiterUnavailable("limiter: state went back: new risk refused")
                return reply
            await guard.on_mismatch(epoch_id)
        raise StoreError("limiter: Redis's epoch changed twice during one call")

    async def _load_and_call(self, keys: list[str], args: list[str | bytes]) -> bytes:
        """The script is not in Redis's cache: load it once more and call it."""
        self._acquire_sha = await self.redis.script_load(ACQUIRE_LUA)
        raw: bytes = await self.redis.evalsha(self._acquire_sha, len(keys), *keys, *args)
        return raw

    def _script_call(
        self, charges: Sequence[Charge], lane: Lane, max_wait_s: float, strategy: str | None
    ) -> tuple[list[str], list[str | bytes]]:
        """KEYS and ARGV of `acquire.lua` for one request, in the epoch held."""
        return self._calls.build(charges, lane, max_wait_s, strategy, epoch=self.epoch,
                                 floors=self._seen.tat_floor_s)  # fmt: skip

    async def _fallback(
        self,
        charges: tuple[Charge, ...],
        lane: Lane,
        exc: StoreError,
        *,
        account: str,
        strategy: str | None,
        max_wait_s: float,
        start_s: float,
    ) -> Permit:
        """Redis could not decide: new risk is refused, a cancel waits on the local budget."""
        if lane != "risk_reducing":
            self.metrics.refusals.inc(lane, "redis_down")
            raise LimiterUnavailable(f"limiter cannot decide ({exc}): new risk refused") from exc
        now_s = self.epoch.now_s()
        decision = self._local.decide(charges, now_s, max_wait_s, self._seen)
        if not decision.granted:
            self.metrics.refusals.inc(lane, "deadline")
            raise RateLimited(_binding_name(charges, decision.binding), decision.wait_s)
        # Remember what was spent without Redis (at the send time, on top of what Redis last
        # said), so it is counted once Redis is back. The local worst-case guesses stay local.
        send_s = now_s + decision.wait_s
        floors = self._seen.tat_floor_s
        for charge in charges:
            name, decay = charge.scope.name, charge.scope.decay_per_s
            floors[name] = max(floors.get(name, 0.0), send_s) + charge.cost / decay
        if decision.wait_s > 0:
            await self.clock.sleep(decision.wait_s)
        waited_s = self.clock.monotonic() - start_s
        self.metrics.permits.inc(lane, "local")
        self.metrics.wait_s.observe(waited_s, lane)
        self.usage.record(strategy, charges, waited_s, self.clock.monotonic())
        log.warning("limiter.local_permit", account=account, reason=str(exc), waited_s=waited_s)
        return Permit(charges, lane, waited_s, fallback=True)

    def start(self) -> None:
        """Watch Redis's epoch (every 0.25 s), so that an idle process hands back its floors
        after a loss too; `stop` ends it. Not on a test clock (`script_time`): there a loop of
        its own would drive an autojumping manual clock forward by itself; such tests start the
        guard (`self.epoch.start()`) when they want it."""
        if self._script_time is None:
            self.epoch.start()

    async def stop(self) -> None:
        await self.epoch.stop()

    # --- venue feedback ------------------------------------------------------------------------
    async def penalize(self, scope: Scope, cooldown_s: float = 1.0) -> None:
        """The venue said rate limit exceeded on `scope`: everyone treats it as full.

        Known here at once (the floor the script is sent, the local budget), so it holds while
        Redis cannot be told; a failure to tell Redis is logged, not raised, because the caller
        is reporting the venue's error, and that is the error its own caller must see.
        """
        self.metrics.cooldowns.inc(scope.name)
        self.metrics.venue_rate_limited.inc()
        now_s = self.epoch.now_s()
        self._local.penalize(scope, now_s, cooldown_s, self._seen)
        floors = self._seen.tat_floor_s
        floors[scope.name] = max(
            floors.get(scope.name, 0.0), now_s + scope.threshold / scope.decay_per_s
        )
        self._seen.names.add(scope.name)
        try:
            async with redis_errors(self.redis, "limiter.penalize"):
                await self._penalize(
                    keys=[self._state_key],
                    args=[
                        self.now_arg(),
                        self.keys.limiter_scope_field(scope.name),
                        repr(scope.threshold),
                        repr(scope.decay_per_s),
                        repr(cooldown_s),
                    ],
                )
        except StoreError as exc:
            log.warning("limiter.penalize_failed", scope=scope.name, error=str(exc))

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
        """The scope's level now (for metrics and introspection). Raises `StoreError`
        (`StoreUnavailable` when Redis cannot be reached)."""
        async with redis_errors(self.redis, "limiter.level"):
            field = self.keys.limiter_scope_field(scope.name)
            stored = await self.redis.hget(self._state_key, field)
            if self._script_time is not None:
                now_s = self._script_time()
            else:
                seconds, micros = await self.redis.time()
                now_s = seconds + micros / 1e6
        try:
            tat_s = unpack_counter(stored)[0] if stored else 0.0
        except ValueError as exc:  # written by something other than these scripts: a bug
            raise StoreError(f"limiter.level: {scope.name}: {exc}") from exc
        level = max(0.0, (tat_s - now_s) * scope.decay_per_s)
        self.metrics.level.set(level / scope.threshold, scope.name)
        return level


def _parsed(raw: bytes) -> Reply:
    """The script's reply; one that does not parse is a `StoreError` (the script and this code
    disagree: a bug, not an outage)."""
    try:
        return parse_reply(raw)
    except ValueError as exc:
        raise StoreError(f"limiter: acquire.lua answered {raw!r}") from exc


def _binding_name(charges: Sequence[Charge], binding: int) -> str:
    """The scope that decided a wait (the first when none did)."""
    return charges[binding if 0 <= binding < len(charges) else 0].scope.name

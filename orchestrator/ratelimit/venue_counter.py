"""The venue's own trading counter as truth: re-sync the limiter's account scopes upward from it.

Kraken's private `executions` channel with `ratecounter: true` reports an account's per-pair
trading counter (`docs/kraken/websocket.md`, "The trading counter in the stream"). Budget spent
outside the limiter (a person on the web UI, another tool on the same key) shows there and
nowhere else, so each report raises the account's scope `trade:<account>:<pair>` to the
venue's level: `tat = max(stored tat, now + level / decay)` (`lua/sync.lua`), never lower, so no
booked cost is ever lost. The cooldown a venue refusal set is kept.

    sync = VenueCounterSync(limiter, account="mm-xbt", instruments=instruments, registry=r)
    ws = open_private_ws(..., on_ratecount=sync.offer)   # the reader hands reports over
    tg.create_task(sync.run())                            # one owned task applies them

Reports come from the socket's reader, which must not wait on Redis: `offer` keeps the latest
level per pair and `run` applies them (a burst of reports becomes one script call per pair).
The level is the venue's as of its report; read on arrival it is a little higher than the truth
(it has decayed meanwhile): conservative. Nothing is synced when accounts have no counter of
their own (`per_account_cap = false`): the limiter keeps no such scope then.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from orchestrator.errors import InvalidRequest, StoreError
from orchestrator.exchange.instruments import Instruments
from orchestrator.exchange.kraken.ws.schemas import RateCount
from orchestrator.logs import get_logger
from orchestrator.metrics import Registry
from orchestrator.ratelimit.redis import Limiter
from orchestrator.ratelimit.scripts import script
from orchestrator.store.errors import redis_errors

log = get_logger(__name__)

SYNC_LUA: Final = script("sync.lua")


class VenueCounterSync:
    """One account's venue counters into the shared limiter (see the module)."""

    def __init__(
        self,
        limiter: Limiter,
        *,
        account: str,
        instruments: Instruments,
        registry: Registry,
    ) -> None:
        """On the limiter's clock (Redis TIME, or its test clock)."""
        self.limiter = limiter
        self.account = account
        self.instruments = instruments
        self._sync = limiter.redis.register_script(SYNC_LUA)  # not a hot path: redis-py's wrapper
        self._pending: dict[str, float] = {}  # by WS symbol: the latest level reported
        self._wake = asyncio.Event()
        self.raised = registry.counter(
            "orch_limiter_venue_resyncs",
            "Venue counter reports that raised a limiter scope (budget spent elsewhere)",
            ("account",),
        )

    def offer(self, count: RateCount) -> None:
        """A report from the socket's reader: kept (latest per pair wins) for `run`."""
        self._pending[count.symbol] = count.level
        self._wake.set()

    async def run(self) -> None:
        """Apply reports as they come, until cancelled. A failed sync is logged, not raised:
        the limiter's own bookings stand, and the next report tries again."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            pending, self._pending = self._pending, {}
            for symbol, level in pending.items():
                try:
                    await self.sync(symbol, level)
                except (StoreError, InvalidRequest) as exc:
                    log.warning("limiter.venue_sync_failed", account=self.account,
                                symbol=symbol, error=str(exc))  # fmt: skip

    async def sync(self, symbol: str, level: float) -> bool:
        """Raise the account's scope on `symbol` (WS v2 name) to the venue's `level`; whether
        it rose. Raises `StoreError` (`StoreUnavailable`: Redis unreachable), `InvalidRequest`
        for a pair we do not know."""
        limiter = self.limiter
        if not limiter.limits.per_account_cap:
            return False
        pair = self.instruments.get(symbol).wsname
        scope = limiter.policy.trade_scope(self.account, pair)
        field = limiter.keys.limiter_scope_field(scope.name)
        args = [limiter.now_arg(), field, repr(float(level)), repr(scope.decay_per_s)]
        async with redis_errors(limiter.redis, "limiter.venue_sync"):
            reply: list[Any] = await self._sync(keys=[limiter.keys.limiter_state()], args=args)
        raised = int(reply[0]) == 1
        if raised:
            self.raised.inc(self.account)
            log.info("limiter.venue_counter_raised", account=self.account, pair=pair,
                     level=level, tat=float(reply[1]))  # fmt: skip
        return raised

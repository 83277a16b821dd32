"""Whether Redis answers this process, as one verdict shared by everything that uses it.

The limiter, the shared nonces and the key locks all reach Redis on a cancel's path. When Redis
hangs (a stopped server, a partition: no refusal, only silence) each would otherwise wait out its
own socket timeout in turn, seconds per cancel. One of them meeting an outage marks Redis down
for `retry_after_s`; meanwhile the others go straight to their local fallbacks, and the first
call after that tries Redis again, so service resumes on its own.
"""

from __future__ import annotations

from orchestrator.clock import Clock
from orchestrator.logs import get_logger
from orchestrator.metrics import Registry

log = get_logger(__name__)


class RedisHealth:
    def __init__(self, clock: Clock, registry: Registry, *, retry_after_s: float = 0.5) -> None:
        self.clock = clock
        self.retry_after_s = retry_after_s
        self._down_until_s = 0.0
        self.gauge = registry.gauge("orch_redis_down", "1 while Redis is taken as unreachable")
        self.gauge.set(0)  # a series from the start: absent would read as "unknown"

    def is_down(self) -> bool:
        """Whether to skip Redis now (it failed less than `retry_after_s` ago)."""
        # Up is 0 (`mark_up`): no clock read on the limiter's hot path while Redis answers.
        return self._down_until_s > 0 and self.clock.monotonic() < self._down_until_s

    def mark_down(self, what: str, reason: str) -> None:
        if not self._down_until_s:
            log.warning("redis.down", what=what, reason=reason)
        self._down_until_s = self.clock.monotonic() + self.retry_after_s
        self.gauge.set(1)

    def mark_up(self) -> None:
        if self._down_until_s:
            log.info("redis.up")
            self._down_until_s = 0.0
            self.gauge.set(0)

"""The service's HTTP endpoint: metrics as Prometheus reads them, the probes, the status page."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, cast

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.clock import RealClock
from orchestrator.metrics import Registry
from orchestrator.runtime.http import Readiness, ServiceHttp
from orchestrator.runtime.readiness import ServiceProbes, assess
from orchestrator.store.keys import Keys

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from orchestrator.service import Service

READY = assess(redis_error=None, books_whole={"XBT/USD": True},
               strategy_states={"mm": "running"}, not_started={})  # fmt: skip


class Probes:
    def __init__(self) -> None:
        self.readiness = READY
        self.snapshot: dict[str, Any] = {"trading_state": "TRADING", "strategies": []}

    async def ready(self) -> Readiness:
        return self.readiness

    async def status(self) -> dict[str, Any]:
        return self.snapshot


@pytest.fixture
async def served() -> AsyncIterator[tuple[ServiceHttp, Probes, aiohttp.ClientSession]]:
    registry = Registry()
    registry.counter("orch_orders", "Orders", ["strategy"]).inc("mm", amount=3)
    probes = Probes()
    http = ServiceHttp(registry, host="127.0.0.1", port=0, readiness=probes.ready,
                       status=probes.status)  # fmt: skip
    await http.start()
    try:
        async with aiohttp.ClientSession() as session:
            yield http, probes, session
    finally:
        await http.close()


async def test_metrics_are_served_in_the_format_the_scraper_asks(
    served: tuple[ServiceHttp, Probes, aiohttp.ClientSession],
) -> None:
    http, _, session = served
    assert http.port > 0  # port 0 picked a free one, and says which
    async with session.get(f"{http.url}/metrics") as reply:
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await reply.text()
    samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples["orch_orders_total"] == 3
    openmetrics = "application/openmetrics-text; version=1.0.0"
    async with session.get(f"{http.url}/metrics", headers={"Accept": openmetrics}) as reply:
        assert reply.headers["Content-Type"].startswith("application/openmetrics-text")
        assert (await reply.text()).endswith("# EOF\n")


async def test_readyz_names_what_fails_and_healthz_stays_alive(
    served: tuple[ServiceHttp, Probes, aiohttp.ClientSession],
) -> None:
    http, probes, session = served
    async with session.get(f"{http.url}/readyz") as reply:
        assert reply.status == 200
        assert (await reply.json())["ready"] is True
    probes.readiness = assess(redis_error="limiter: Redis unavailable (ConnectionError)",
                              books_whole={"XBT/USD": False, "ETH/USD": True},
                              strategy_states={"mm": "failed", "tw": "paused"},
                              not_started={"bad": "unknown module"})  # fmt: skip
    async with session.get(f"{http.url}/readyz") as reply:
        assert reply.status == 503
        body = await reply.json()
    checks = {c["name"]: c for c in body["checks"]}
    assert body["ready"] is False
    assert checks["redis"] == {
        "name": "redis",
        "ok": False,
        "detail": "limiter: Redis unavailable (ConnectionError)",
    }
    assert checks["feeds"]["detail"] == "not whole: XBT/USD"
    assert checks["strategies"]["detail"] == "mm failed; bad not started: unknown module"
    async with session.get(f"{http.url}/healthz") as reply:
        assert (reply.status, await reply.text()) == (200, "ok\n")


def test_a_paused_strategy_and_no_books_are_ready() -> None:
    verdict = assess(redis_error=None, books_whole={}, strategy_states={"mm": "paused"},
                     not_started={})  # fmt: skip
    assert verdict.ready
    assert [c.ok for c in verdict.checks] == [True, True, True]


async def test_the_status_page_is_self_contained_and_reads_status_json(
    served: tuple[ServiceHttp, Probes, aiohttp.ClientSession],
) -> None:
    http, probes, session = served
    async with session.get(f"{http.url}/") as reply:
        assert reply.status == 200
        assert reply.content_type == "text/html"
        assert "connect-src 'self'" in reply.headers["Content-Security-Policy"]
        page = await reply.text()
    assert 'fetch("/status.json"' in page
    assert "http://" not in page  # no external assets
    assert "https://" not in page
    assert ".innerHTML" not in page  # values are text, never markup
    probes.snapshot = {"trading_state": "HALTED", "strategies": [{"name": "mm"}]}
    async with session.get(f"{http.url}/status.json") as reply:
        assert reply.headers["Cache-Control"] == "no-store"
        assert await reply.json() == probes.snapshot


async def test_a_taken_port_is_an_error_at_start(
    served: tuple[ServiceHttp, Probes, aiohttp.ClientSession],
) -> None:
    http, probes, _ = served
    again = ServiceHttp(Registry(), host="127.0.0.1", port=http.port, readiness=probes.ready,
                        status=probes.status)  # fmt: skip
    with pytest.raises(OSError):
        await again.start()
    await again.close()  # nothing was left bound


async def test_a_hung_redis_is_named_as_such_by_the_readiness_ping() -> None:
    class HungRedis:
        async def ping(self) -> bool:
            await asyncio.sleep(10)
            return True

    probes = ServiceProbes(cast("Service", None), redis=cast("aioredis.Redis", HungRedis()),
                           keys=Keys("t"), clock=RealClock(), ping_timeout_s=0.05)  # fmt: skip
    assert await probes._redis_error() == "Redis did not answer a PING within 0.05 s"

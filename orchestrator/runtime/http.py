"""The service's HTTP endpoint (`metrics.host`:`metrics.port`): what Prometheus, a probe and a
person look at.

- `/metrics`: every metric of the process (prometheus-client's exposition, text or OpenMetrics
  as the scraper asks).
- `/healthz`: alive, the event loop answers (a liveness probe: restart only when this fails).
- `/readyz`: 200 when Redis answers, every subscribed book is whole and every strategy runs;
  503 with the failing checks named otherwise (a readiness probe: route no work here).
- `/`: a read-only status page that refreshes itself from `/status.json` (no build step, no
  external assets: one HTML file with its script inline, `status_page.html`).
- `/status.json`: the status snapshot the live screen draws (`runtime/status.py`), the open
  orders and the latest audit entries.

Read-only by design: nothing here changes the service; operators act through the control bus.
The endpoint binds to loopback by default; a desk exposing it puts it behind its own network
policy (it carries no secrets: label values and statuses only).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, Final

import msgspec
from aiohttp import web
from prometheus_client import exposition

from orchestrator.logs import get_logger
from orchestrator.metrics import Registry

log = get_logger(__name__)

_PAGE: Final = resources.files("orchestrator.runtime").joinpath("status_page.html")
_encoder: Final = msgspec.json.Encoder(decimal_format="string")


class Check(msgspec.Struct, frozen=True):
    name: str  # "redis", "feeds", "strategies"
    ok: bool
    detail: str = ""


class Readiness(msgspec.Struct, frozen=True):
    ready: bool
    checks: list[Check]


ReadinessProbe = Callable[[], Awaitable[Readiness]]
StatusProbe = Callable[[], Awaitable[dict[str, Any]]]


class ServiceHttp:
    """The endpoint's server: `start` binds (port 0: a free one, then in `port`), `close` stops."""

    def __init__(
        self,
        registry: Registry,
        *,
        host: str,
        port: int,
        readiness: ReadinessProbe,
        status: StatusProbe,
    ) -> None:
        self.registry = registry
        self.host = host
        self.port = port
        self._readiness = readiness
        self._status = status
        self._page = _PAGE.read_bytes()
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/status.json", self._status_json)
        app.router.add_get("/", self._index)
        return app

    async def start(self) -> None:
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        if self.port == 0:  # a free one was asked for: which one it got
            self.port = int(runner.addresses[0][1])
        log.info("http.started", host=self.host, port=self.port)

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # --- handlers ------------------------------------------------------------------------------
    async def _metrics(self, request: web.Request) -> web.Response:
        encoder, content_type = exposition.choose_encoder(request.headers.get("Accept", ""))
        body = encoder(self.registry.prometheus)
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        report = await self._readiness()
        return web.Response(
            body=_encoder.encode(report),
            status=200 if report.ready else 503,
            content_type="application/json",
        )

    async def _status_json(self, request: web.Request) -> web.Response:
        body = _encoder.encode(await self._status())
        return web.Response(
            body=body, content_type="application/json", headers={"Cache-Control": "no-store"}
        )

    async def _index(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self._page,
            content_type="text/html",
            headers={
                "Cache-Control": "no-store",
                # The page runs its own inline script and talks to this origin only.
                "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; "
                "style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
            },
        )

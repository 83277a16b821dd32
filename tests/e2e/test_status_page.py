"""The status page as a person's browser shows it: headless Chromium (Debian's, installed by
.ci/run) loads `/` of a running service, the page renders every strategy, and it updates itself
without a reload (a marker set on the loaded page survives while the timestamp moves on). A
screenshot is taken. Chromium is driven over its DevTools protocol with `websockets`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import websockets

from orchestrator.simulator.app import open_simulator
from orchestrator.simulator.settings import SimSettings, domain_accounts
from orchestrator.store.embedded import free_port
from orchestrator.store.keys import Keys
from tests.children import stop_child
from tests.service_harness import ServiceSetup, StrategySpec, running_service, write_config

pytestmark = pytest.mark.e2e

FUNDS = {"ZUSD": Decimal(50_000), "XXBT": Decimal(2), "XETH": Decimal(20)}
MAKERS = [
    StrategySpec("mm0", "s0", "XBT/USD", {"size": "0.01", "spread_bps": 80, "requote_bps": 40}),
    StrategySpec("mm1", "s1", "ETH/USD", {"size": "0.1", "spread_bps": 80, "requote_bps": 40}),
]


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[str]:
    """Headless Chromium with its DevTools endpoint on a free port: that endpoint's URL."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-dev-shm-usage", f"--remote-debugging-port={port}",
         "--remote-debugging-address=127.0.0.1", f"--user-data-dir={tmp_path / 'profile'}",
         "--window-size=1400,1000", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_child(proc, timeout_s=10)


class Page:
    """One browser tab over the DevTools protocol: commands answered by id."""

    def __init__(self, socket: websockets.ClientConnection) -> None:
        self.socket = socket
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        await self.socket.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(await asyncio.wait_for(self.socket.recv(), timeout=15))
            if message.get("id") == call_id:
                assert "error" not in message, message
                result: dict[str, Any] = message["result"]
                return result

    async def evaluate(self, expression: str) -> Any:
        reply = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return reply["result"].get("value")


@contextlib.asynccontextmanager
async def open_page(devtools: str) -> AsyncIterator[Page]:
    deadline_s = time.monotonic() + 20
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(f"{devtools}/json/list") as reply:
                    targets = await reply.json()
                pages = [t for t in targets if t.get("type") == "page"]
                if pages:
                    break
            except aiohttp.ClientError:
                pass
            assert time.monotonic() < deadline_s, "Chromium's DevTools endpoint did not come up"
            await asyncio.sleep(0.2)
    async with websockets.connect(pages[0]["webSocketDebuggerUrl"], max_size=None) as socket:
        yield Page(socket)


async def until(page: Page, expression: str, *, timeout_s: float = 15.0) -> Any:
    deadline_s = time.monotonic() + timeout_s
    while True:
        value = await page.evaluate(expression)
        if value:
            return value
        assert time.monotonic() < deadline_s, f"never true on the page: {expression}"
        await asyncio.sleep(0.2)


async def test_the_status_page_renders_the_strategies_and_updates_itself(
    tmp_path: Path, redis_server: str, keys: Keys, chromium: str
) -> None:
    async with open_simulator(SimSettings(accounts=domain_accounts(3, FUNDS))) as sim:
        setup = ServiceSetup(tmp_path, sim, redis_server, keys.namespace, MAKERS)
        async with running_service(write_config(setup)) as service, open_page(chromium) as page:
            assert service.http is not None
            await page.call("Page.enable")
            await page.call("Page.navigate", url=f"{service.http.url}/")
            rows = "[...document.querySelectorAll('#strategies tbody tr')].map(r => r.innerText)"
            running = "r.length === 2 && r.every(t => t.includes('running')) && r"
            shown = await until(page, f"(() => {{ const r = {rows}; return {running}; }})()")
            assert [line.split("\t")[0] for line in shown] == ["mm0", "mm1"]
            await until(page, "document.querySelectorAll('#orders tbody tr').length === 4")
            state = await page.evaluate("document.getElementById('state').textContent")
            assert state == "ACTIVE"
            await page.evaluate("window.loadedOnce = true")  # gone if the page were reloaded
            first = await page.evaluate("document.getElementById('updated').textContent")
            changed = f"document.getElementById('updated').textContent !== {json.dumps(first)}"
            await until(page, changed, timeout_s=10)
            assert await page.evaluate("window.loadedOnce === true")
            shot = await page.call("Page.captureScreenshot", format="png")
            png = base64.b64decode(shot["data"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 10_000  # a drawn page, not a blank one
    (tmp_path / "status_page.png").write_bytes(png)

"""A real Prometheus (Debian's `prometheus`, installed by .ci/run) scrapes `make run`'s demo: the
key series move during the run, every expression of the Grafana dashboard returns a series, the
alert rules load and evaluate without error, and the rules pass `promtool`'s checks and tests.

The demo is the whole product on its embedded defaults (Redis, simulator, three strategies
trading, the rebalancer moving money); one operator command is sent so that the command
counters exist as they do on any desk.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from orchestrator.store.embedded import free_port
from tests.children import stop_child
from tests.http_poll import until_status

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "orchestrator.example.toml"
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "orchestrator.json"
ALERTS = 9  # the alert rules of RULES
SERIES_WITHIN_S = 120.0  # every dashboard expression has a series by then
MOVES_WITHIN_S = 30.0  # and the key series have moved on from where they first were


def _need(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.skip(f"{binary} is not installed (.ci/run installs Debian's prometheus)")
    return path


def dashboard_expressions() -> list[str]:
    panels = json.loads(DASHBOARD.read_text("utf-8"))["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def test_the_alert_rules_pass_promtool_check_and_their_unit_tests() -> None:
    promtool = _need("promtool")
    checked = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True,
                             text=True, timeout=60, check=False)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {ALERTS} rules found" in checked.stdout
    tested = subprocess.run([promtool, "test", "rules", "alerts_test.yml"], cwd=RULES.parent,
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert tested.returncode == 0, tested.stdout + tested.stderr


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[str]:
    """`orchestrator run` on the demo config, its endpoint on a free port: the endpoint's URL."""
    port = free_port()
    env = os.environ | {"PYTHONPATH": str(ROOT), "ORCH__METRICS__PORT": str(port),
                        "ORCH__LOG_LEVEL": "warning"}  # fmt: skip
    log = (tmp_path / "service.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "run", "--config", str(CONFIG), "--duration", "600"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
    )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        code = stop_child(proc, sig=signal.SIGINT, timeout_s=30)
        log.close()
        assert code == 0, (tmp_path / "service.log").read_text("utf-8", "replace")[-4000:]


@pytest.fixture
def prometheus(tmp_path: Path, demo: str) -> Iterator[str]:
    """A Prometheus scraping the demo every second, with the alert rules: its URL."""
    binary = _need("prometheus")
    port = free_port()
    target = demo.removeprefix("http://")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{json.dumps(str(RULES))}]\n"
        "scrape_configs:\n"
        "  - job_name: orchestrator\n"
        f"    static_configs: [{{targets: [{json.dumps(target)}]}}]\n",
        encoding="utf-8",
    )
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log, stderr=log, start_new_session=True,
    )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_child(proc)
        log.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as client:
        yield client


async def query(session: aiohttp.ClientSession, prometheus: str, expr: str) -> list[Any]:
    """The instant vector `expr` evaluates to now ([] while Prometheus is not up yet)."""
    try:
        async with session.get(f"{prometheus}/api/v1/query", params={"query": expr}) as reply:
            body = await reply.json()
    except (aiohttp.ClientError, TimeoutError):
        return []
    assert body["status"] == "success", (expr, body)
    result: list[Any] = body["data"]["result"]
    return result


async def total(session: aiohttp.ClientSession, prometheus: str, expr: str) -> float:
    rows = await query(session, prometheus, f"sum({expr})")
    return float(rows[0]["value"][1]) if rows else 0.0


async def operator_command() -> None:
    """`orchestrator ctl status` as the demo's operator (the command counters then exist)."""
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orchestrator", "ctl", "--config", str(CONFIG), "status",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0, (out + err).decode()


async def test_prometheus_scrapes_the_demo_and_every_panel_and_rule_has_data(
    demo: str, prometheus: str, session: aiohttp.ClientSession
) -> None:
    await until_status(session, f"{demo}/readyz", timeout_s=60)
    deadline_s = time.monotonic() + 30
    while not await query(session, prometheus, 'up{job="orchestrator"} == 1'):
        assert time.monotonic() < deadline_s, "Prometheus never scraped the demo"
        await asyncio.sleep(0.5)
    await operator_command()

    permits = await total(session, prometheus, "orch_limiter_permits_total")
    updates = await total(session, prometheus, "orch_feed_book_updates_total")
    missing = dashboard_expressions()
    deadline_s = time.monotonic() + SERIES_WITHIN_S
    while missing and time.monotonic() < deadline_s:
        missing = [expr for expr in missing if not await query(session, prometheus, expr)]
        await asyncio.sleep(1.0)
    assert not missing, f"dashboard expressions without a series: {missing}"

    # The key series move during the run (scraped every second; the demo may idle a moment).
    for series, before in (("orch_limiter_permits_total", permits),
                           ("orch_feed_book_updates_total", updates)):  # fmt: skip
        deadline_s = time.monotonic() + MOVES_WITHIN_S
        while await total(session, prometheus, series) <= before:
            assert time.monotonic() < deadline_s, f"{series} stayed at {before}"
            await asyncio.sleep(0.5)
    assert await total(session, prometheus, "orch_fills_total") > 0
    assert await total(session, prometheus, "orch_transfers_total") > 0
    strategies = await query(session, prometheus, 'orch_strategy_state{state="running"} == 1')
    assert {row["metric"]["strategy"] for row in strategies} == {"mm-xbt", "twap-eth", "grid-sol"}
    assert await total(session, prometheus, "orch_venue_rate_limited_total") == 0

    async with session.get(f"{prometheus}/api/v1/rules", params={"type": "alert"}) as reply:
        groups = (await reply.json())["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) == ALERTS
    assert all(rule["health"] == "ok" for rule in rules), [r for r in rules if r["health"] != "ok"]
    firing = {rule["name"] for rule in rules if rule["state"] == "firing"}
    assert not firing & {
        "OrchestratorDown",
        "OrchestratorVenueRateLimited",
        "OrchestratorStrategyFailed",
        "OrchestratorLimiterUnavailable",
    }, firing

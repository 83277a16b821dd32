"""The deploy files are what they claim: the Kubernetes manifests pass the API schema (strict:
no unknown field), the compose file validates, the configs they carry load, the image builds
where Docker can, and the compose desk's way of getting keys works: a standalone simulator
writes fresh keys (`--demo-keys`) and serves them, and the service trades with the config's
references to them."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from orchestrator.config import load_config
from orchestrator.store.embedded import free_port
from orchestrator.store.keys import Keys
from orchestrator.testing.service import running_service
from tests.http_poll import until_status

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
MANIFESTS = ("configmap.yaml", "statefulset.yaml", "service.yaml")


def _documents(name: str) -> list[dict[str, Any]]:
    text = (DEPLOY / "kubernetes" / name).read_text("utf-8")
    return [doc for doc in yaml.safe_load_all(text) if doc]


@pytest.mark.parametrize("name", MANIFESTS)
def test_the_kubernetes_manifests_pass_the_api_schema(name: str) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for document in _documents(name):
        kubernetes_validate.validate(document, "1.30", strict=True)  # raises on any error


def test_the_statefulset_probes_limits_and_secrets_are_set() -> None:
    (sts,) = _documents("statefulset.yaml")
    pod = sts["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert set(container["resources"]) == {"requests", "limits"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    secrets = [v["secret"] for v in pod["volumes"] if "secret" in v]
    assert secrets
    assert all(s["defaultMode"] == 0o400 for s in secrets)  # owner-only files


def test_the_configmap_config_is_a_valid_service_config(tmp_path: Path) -> None:
    (configmap,) = _documents("configmap.yaml")
    path = tmp_path / "orchestrator.toml"
    path.write_text(configmap["data"]["orchestrator.toml"], encoding="utf-8")
    config = load_config(path)
    assert config.venue.kind == "kraken"
    assert config.metrics.host == "0.0.0.0"  # in a pod: for the kubelet and Prometheus
    assert [s.name for s in config.strategies] == ["mm-xbt"]


def test_the_compose_file_validates() -> None:
    compose = _compose_command()
    if compose is None:
        pytest.skip(
            "neither `docker compose` nor docker-compose is installed (.ci/run installs it)"
        )
    done = subprocess.run([*compose, "-f", str(DEPLOY / "compose" / "docker-compose.yml"),
                           "config", "-q"], capture_output=True, text=True, timeout=60,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_image_builds_and_answers_where_docker_can_build() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker is not installed")
    info = subprocess.run([docker, "info"], capture_output=True, text=True, timeout=30,
                          check=False)  # fmt: skip
    if info.returncode != 0:
        pytest.skip(f"no Docker daemon to build with: {info.stderr.strip().splitlines()[-1:]}")
    built = subprocess.run([docker, "build", "-f", str(DEPLOY / "Dockerfile"), "-t",
                            "orchestrator:test", str(ROOT)], capture_output=True, text=True,
                           timeout=900, check=False)  # fmt: skip
    assert built.returncode == 0, built.stderr[-4000:]
    ran = subprocess.run([docker, "run", "--rm", "orchestrator:test", "sim", "--duration", "1"],
                         capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "demo API keys" in ran.stdout


def _compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30,
                               check=False)  # fmt: skip
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy is not None else None


async def test_a_standalone_simulator_serves_the_keys_it_wrote_and_the_service_trades(
    tmp_path: Path, redis_server: str, keys: Keys
) -> None:
    port, keys_dir = free_port(), tmp_path / "demo-keys"
    text = (DEPLOY / "compose" / "orchestrator.toml").read_text("utf-8")
    text = (text.replace("redis://redis:6379/0", redis_server)
                .replace('namespace = "desk"', f'namespace = "{keys.namespace}"')
                .replace("simulator:8800", f"127.0.0.1:{port}")
                .replace("/run/demo-keys", str(keys_dir))
                .replace('host = "0.0.0.0"\nport = 9464', 'host = "127.0.0.1"\nport = 0'))  # fmt: skip
    config = tmp_path / "desk.toml"
    config.write_text(text, encoding="utf-8")
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    sim = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orchestrator", "sim", "--config", str(config), "--port", str(port),
        "--demo-keys", str(keys_dir), "--keys-file", str(tmp_path / "sim-keys.json"),
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession() as session:
            await until_status(session, f"http://127.0.0.1:{port}/0/public/Time", timeout_s=20,
                               alive=lambda: sim.returncode is None)  # fmt: skip
        modes = {p.name: p.stat().st_mode & 0o777 for p in keys_dir.iterdir()}
        assert len(modes) == 6  # a key and a secret per account
        assert set(modes.values()) == {0o400}
        async with running_service(config) as service:
            deadline_s = time.monotonic() + 20
            while not all(u.worker.manager.open_orders() for u in service.units.values()):
                assert time.monotonic() < deadline_s, "the strategies never rested an order"
                await asyncio.sleep(0.1)
            assert {n: u.worker.state for n, u in service.units.items()} == {
                "mm-xbt": "running", "twap-eth": "running"}  # fmt: skip
    finally:
        if sim.returncode is None:
            sim.terminate()
        _, err = await asyncio.wait_for(sim.communicate(), timeout=20)
    assert sim.returncode in (0, -15), err.decode()[-2000:]

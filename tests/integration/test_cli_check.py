"""`orchestrator run --check`: the example config (embedded Redis), and a password-protected
Redis whose password must appear in no output."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.store.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]
REDIS_PASSWORD = "hunter2-redis-pw"  # the test's own throwaway server


def run_check(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", "run", "--config", str(config), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _answers(port: int) -> bool:
    """True once the server answers at all (NOAUTH counts: it is up and wants the password)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


@pytest.fixture(scope="module")
def redis_with_password(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """Port of a private redis-server on 127.0.0.1 that requires REDIS_PASSWORD."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    workdir = tmp_path_factory.mktemp("redis-pw")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--requirepass", REDIS_PASSWORD,
         "--save", "", "--appendonly", "no", "--dir", str(workdir), "--loglevel", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None and not _answers(port):
            time.sleep(0.01)
        if proc.poll() is not None or not _answers(port):
            pytest.fail("could not start a private redis-server with a password")
        yield port
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_run_check_on_the_example_config() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "run",
            "--config",
            "orchestrator.example.toml",
            "--check",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=os.environ | {"ORCH__LOG_LEVEL": "info"},  # the demo logs warnings only
    )
    assert result.returncode == 0, result.stderr
    assert "config ok: 4 accounts" in result.stdout
    assert "redis ok" in result.stdout
    assert '"event":"redis.embedded_started"' in result.stderr
    assert '"event":"redis.embedded_stopped"' in result.stderr


def test_sim_serves_the_example_config(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator", "sim", "--config", "orchestrator.example.toml", "--port", "0",
         "--duration", "1", "--report-every", "0.5", "--keys-file", str(keys)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "simulator REST" in result.stdout
    assert "simulator stopped" in result.stdout
    accounts = json.loads(keys.read_text())["accounts"]
    assert set(accounts) == {"master", "mm-xbt", "twap-eth", "grid-sol"}
    assert oct(keys.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:{pw}@127.0.0.1:{port}/0", "redis://:***@127.0.0.1:{port}/0"),
        ("redis://default:{pw}@127.0.0.1:{port}/0", "redis://default:***@127.0.0.1:{port}/0"),
        ("redis://127.0.0.1:{port}/0?password={pw}", "redis://127.0.0.1:{port}/0?password=***"),
    ],
    ids=["password-only", "user-and-password", "query-password"],
)
def test_run_check_never_shows_the_redis_password(
    url: str, shown: str, redis_with_password: int, tmp_path: Path
) -> None:
    config = tmp_path / "orchestrator.toml"
    full_url = url.format(pw=REDIS_PASSWORD, port=redis_with_password)
    config.write_text(f'[redis]\nurl = "{full_url}"\n', encoding="utf-8")
    result = run_check(config)
    assert result.returncode == 0, result.stderr
    assert f"redis ok: {shown.format(port=redis_with_password)} (server " in result.stdout
    assert REDIS_PASSWORD not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:{pw}@127.0.0.1:{port}/0", "redis://:***@127.0.0.1:{port}/0"),
        ("redis://127.0.0.1:{port}/0?password={pw}", "redis://127.0.0.1:{port}/0?password=***"),
    ],
    ids=["password-only", "query-password"],
)
def test_wrong_redis_password_fails_without_showing_it(
    url: str, shown: str, redis_with_password: int, tmp_path: Path
) -> None:
    wrong = "not-the-password-42"
    config = tmp_path / "orchestrator.toml"
    full_url = url.format(pw=wrong, port=redis_with_password)
    config.write_text(f'[redis]\nurl = "{full_url}"\n', encoding="utf-8")
    result = run_check(config)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"Redis at {shown.format(port=redis_with_password)}" in result.stderr
    assert wrong not in result.stdout + result.stderr

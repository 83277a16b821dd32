"""`orchestrator run --check` against the example config: config, secrets and embedded Redis."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


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
    assert set(accounts) == {"master", "mm-xbt", "twap-eth", "mm-sol"}
    assert oct(keys.stat().st_mode & 0o777) == "0o600"

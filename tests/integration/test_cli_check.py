"""`orchestrator run --check` against the example config: config, secrets and embedded Redis."""

from __future__ import annotations

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

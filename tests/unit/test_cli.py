"""The command line: help, honest 'not built yet', bad-config exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli import EXIT_USAGE, main


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("run", "sim", "ctl", "bench"):
        assert f"    {command} " in out


@pytest.mark.parametrize("command", ["run", "sim", "ctl", "bench"])
def test_each_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert f"usage: orchestrator {command}" in capsys.readouterr().out


def test_ctl_on_the_embedded_default_says_it_needs_the_services_redis(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["ctl", "status"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "redis.url" in err
    assert "embedded" in err


def test_bad_config_exits_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[limits]\ndomain_scope = 'world'\n", encoding="utf-8")
    assert main(["run", "--config", str(path), "--check"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "bad config" in err
    assert "limits.domain_scope" in err


def test_run_refuses_a_duration_that_is_not_positive(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--config", "orchestrator.example.toml", "--duration", "0"]) == EXIT_USAGE
    assert "--duration" in capsys.readouterr().err


def test_python_dash_m_entry_point() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert "run" in result.stdout
    assert "sim" in result.stdout


def test_unknown_benchmark_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "nope"]) == EXIT_USAGE
    assert "unknown ['nope']" in capsys.readouterr().err


def one_error_line(err: str) -> str:
    """The CLI's error: one line, no traceback, whatever JSON log lines precede it."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if not line.startswith("{")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    "url", ["redis://:hunter2pw@127.0.0.1:notaport", "http://x", "", "redis://:hunter/2pw@h"]
)
def test_bad_redis_url_is_one_line_naming_the_field(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(f"[redis]\nurl = {url!r}\n", encoding="utf-8")
    assert main(["run", "--config", str(path), "--check"]) == EXIT_USAGE
    captured = capsys.readouterr()
    line = one_error_line(captured.err)
    assert line.startswith(f"orchestrator: bad config: {path}: redis.url: ")
    assert "hunter" not in captured.err + captured.out


KRAKEN_WITH_FILE_SECRET = """
[venue]
kind = "kraken"

[[accounts]]
name = "master"
role = "master"
api_key = "env:TEST_CLI_MASTER_KEY"
api_secret = "file:master.secret"
"""


@pytest.mark.parametrize(
    ("content", "mode", "reason"),
    [
        (b"a2V5LWJ5dGVz\n", 0o644, "chmod 600"),
        (b"\xffa2V5LWJ5dGVz\n", 0o600, "is not UTF-8 text"),
    ],
    ids=["group-readable", "not-utf8"],
)
def test_bad_secret_file_is_one_line_naming_field_and_file(
    content: bytes,
    mode: int,
    reason: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_CLI_MASTER_KEY", "public-key-123")
    config = tmp_path / "orchestrator.toml"
    config.write_text(KRAKEN_WITH_FILE_SECRET, encoding="utf-8")
    secret = tmp_path / "master.secret"
    secret.write_bytes(content)
    secret.chmod(mode)
    assert main(["run", "--config", str(config), "--check"]) == EXIT_USAGE
    captured = capsys.readouterr()
    line = one_error_line(captured.err)
    assert line.startswith("orchestrator: bad config: accounts[0].api_secret: ")
    assert str(secret) in line
    assert reason in line
    assert "a2V5LWJ5dGVz" not in captured.err + captured.out

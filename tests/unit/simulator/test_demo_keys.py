"""`orchestrator sim --demo-keys DIR`: fresh keys for the config's accounts, owner-only, kept
once written; the simulator serves the keys a config references."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from orchestrator.cli import EXIT_USAGE, main
from orchestrator.config import load_config
from orchestrator.secrets import resolve_credentials
from orchestrator.simulator.demo_keys import ensure_demo_keys
from orchestrator.simulator.settings import settings_from_config

CONFIG = """
[[accounts]]
name = "master"
role = "master"
api_key = "file:keys/master.key"
api_secret = "file:keys/master.secret"

[[accounts]]
name = "s0"
role = "sub"
"""


def test_keys_are_written_once_owner_only_and_served_as_referenced(tmp_path: Path) -> None:
    path = tmp_path / "desk.toml"
    path.write_text(CONFIG, encoding="utf-8")
    config = load_config(path)
    assert ensure_demo_keys(config, tmp_path / "keys") == ["master", "s0"]
    files = sorted((tmp_path / "keys").iterdir())
    assert [f.name for f in files] == ["master.key", "master.secret", "s0.key", "s0.secret"]
    assert {f.stat().st_mode & 0o777 for f in files} == {0o400}
    secret = (tmp_path / "keys" / "master.secret").read_text("utf-8")
    assert len(base64.b64decode(secret, validate=True)) == 64
    before = {f.name: f.read_text("utf-8") for f in files}
    assert ensure_demo_keys(config, tmp_path / "keys") == []  # kept, not replaced
    assert {f.name: f.read_text("utf-8") for f in files} == before
    credentials = resolve_credentials(config, base_dir=tmp_path)
    served = {n: (c.key.reveal(), c.secret.reveal()) for n, c in credentials.items()}
    settings = settings_from_config(config, keys=served)
    by_name = {a.name: a for a in settings.accounts}
    assert by_name["master"].keys[0].key == before["master.key"]
    assert by_name["master"].keys[0].secret == before["master.secret"]
    assert by_name["s0"].keys[0].key is None  # no reference: generated from the seed


def test_demo_keys_without_a_config_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--demo-keys", "/tmp/nowhere"]) == EXIT_USAGE
    assert "--demo-keys: needs --config" in capsys.readouterr().err

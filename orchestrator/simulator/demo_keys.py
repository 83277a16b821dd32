"""API keys for a simulator that runs apart from the service (compose, a test desk): fresh random
keys written once as files the service's config references, so neither side holds a key in its
config and none is ever committed.

    orchestrator sim --config desk.toml --demo-keys /run/demo-keys

writes `<account>.key` and `<account>.secret` (mode 0400) for every account of the config that
lacks them; the simulator then serves, for each account, the key its config references
(`api_key = "file:/run/demo-keys/master.key"`, ...). They are a simulator's keys: they move no
money anywhere but in the simulator.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path
from typing import Final

from orchestrator.config import Config

_MODE: Final = 0o400
_KEY_BYTES: Final = 42  # Kraken's API keys are 56 base64 characters
_SECRET_BYTES: Final = 64  # and their secrets 64 bytes, base64


def ensure_demo_keys(config: Config, directory: Path) -> list[str]:
    """Write the key files every account of `config` lacks under `directory`; the accounts
    given new keys (an account whose two files exist keeps them)."""
    directory.mkdir(parents=True, exist_ok=True)
    made = []
    for account in config.accounts:
        key_file, secret_file = (
            directory / f"{account.name}.key",
            directory / f"{account.name}.secret",
        )
        if key_file.exists() and secret_file.exists():
            continue
        _write_private(key_file, base64.b64encode(secrets.token_bytes(_KEY_BYTES)).decode())
        _write_private(secret_file, base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode())
        made.append(account.name)
    return made


def _write_private(path: Path, text: str) -> None:
    path.unlink(missing_ok=True)  # a stale file may be read-only
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)

"""What lets `orchestrator ctl` reach the demo: the embedded Redis's URL and the demo operator.

The demo (`make run`) runs on an embedded Redis on a free port and the embedded simulator; a
second process (`ctl`) finds both through files the service writes under `.run/` next to its
config, readable by the desk's user only:
- `.run/redis.url`: the embedded Redis's URL, written at start, removed at stop;
- `.run/demo-operator.secret`: the secret of the admin operator `demo` (when
  `control.demo_operator`, allowed only with the embedded simulator), made once, kept.
A real desk names its operators and their secrets in the config; none of this applies.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Final

from orchestrator.secrets import Secret

DEMO_OPERATOR: Final = "demo"
RUN_DIR: Final = ".run"


def redis_url_file(base_dir: Path) -> Path:
    return base_dir / RUN_DIR / "redis.url"


def demo_secret_file(base_dir: Path) -> Path:
    return base_dir / RUN_DIR / "demo-operator.secret"


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


def publish_redis_url(base_dir: Path, url: str) -> None:
    _write_private(redis_url_file(base_dir), url + "\n")


def withdraw_redis_url(base_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        redis_url_file(base_dir).unlink()


def embedded_redis_url(base_dir: Path) -> str | None:
    """The URL a running demo service published, or None when none runs from `base_dir`."""
    try:
        return redis_url_file(base_dir).read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def demo_secret(base_dir: Path, *, create: bool) -> Secret | None:
    """The demo operator's secret; made (random, 256 bits) when `create` and missing."""
    path = demo_secret_file(base_dir)
    try:
        return Secret(path.read_text(encoding="utf-8").strip())
    except FileNotFoundError:
        if not create:
            return None
    value = secrets.token_hex(32)
    _write_private(path, value)
    return Secret(value)

"""Resolving secret references (`env:NAME`, `file:PATH`) into values, once, at start.

A resolved value is wrapped in `Secret`, whose repr and str never show it, and is registered with
the log redactor, so that it cannot reach a log line even by accident. Errors name the field path
and the reference, never the value.
"""

from __future__ import annotations

import base64
import binascii
import os
import shlex
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from orchestrator.config import Config
from orchestrator.errors import SecretError
from orchestrator.logs import register_secret

_HIDDEN: Final = "Secret(***)"
_GROUP_OR_OTHERS: Final = 0o077  # any permission bit beyond the owner's


class Secret:
    """A secret string. `reveal()` is the only way to read it; printing shows nothing."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register_secret(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return _HIDDEN

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class ApiCredentials:
    """One account's API key and secret (the secret is base64 text, as Kraken issues it)."""

    key: Secret
    secret: Secret


def resolve_secret(
    ref: str,
    field_path: str,
    *,
    environ: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
) -> Secret:
    """Resolve one reference. `file:` paths are relative to `base_dir` (the config's folder)."""
    env = os.environ if environ is None else environ
    kind, _, target = ref.partition(":")
    if kind == "env":
        if target not in env:
            raise SecretError(field_path, f"environment variable {target} is not set")
        value = env[target]
        try:
            value.encode("utf-8")  # undecodable bytes arrive as lone surrogates (PEP 383)
        except UnicodeEncodeError:
            raise SecretError(
                field_path, f"environment variable {target} is not UTF-8 text"
            ) from None
    elif kind == "file":
        path = Path(target)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        value = _read_secret_file(path, field_path)
    else:
        raise SecretError(field_path, "must be a secret reference `env:NAME` or `file:PATH`")
    value = value.strip()
    if not value:
        raise SecretError(field_path, f"{ref} is empty")
    return Secret(value)


def _read_secret_file(path: Path, field_path: str) -> str:
    """The text of a secret file that only its owner can read or change.

    A file accessible to group or others is refused, as ssh refuses such a private key: anyone
    who can read it can trade and withdraw, anyone who can write it can swap the key. The mode
    is checked on the opened file (`fstat`), so the file checked is the file read; the file is
    opened non-blocking so that a FIFO in its place is refused instead of hanging the start.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise SecretError(field_path, f"secret file {path} is not a regular file")
            if st.st_mode & _GROUP_OR_OTHERS:
                mode = stat.S_IMODE(st.st_mode)
                raise SecretError(
                    field_path,
                    f"secret file {path} is accessible to group or others (mode {mode:04o}); "
                    f"run `chmod 600 {shlex.quote(str(path))}`",
                )
            with open(fd, "rb", closefd=False) as f:
                data = f.read()
        finally:
            os.close(fd)
    except FileNotFoundError:
        raise SecretError(field_path, f"secret file {path} does not exist") from None
    except OSError as exc:
        raise SecretError(field_path, f"secret file {path} unreadable: {exc.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretError(field_path, f"secret file {path} is not UTF-8 text") from None


def resolve_credentials(
    config: Config,
    *,
    environ: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
    futures: bool = False,
) -> dict[str, ApiCredentials]:
    """Resolve the API credentials of every account that references them, by account name:
    the spot keys, or with `futures` the Derivatives keys (`futures_api_key`/`_secret`)."""
    prefix = "futures_api" if futures else "api"
    out: dict[str, ApiCredentials] = {}
    for i, account in enumerate(config.accounts):
        key_ref = getattr(account, f"{prefix}_key")
        secret_ref = getattr(account, f"{prefix}_secret")
        if key_ref is None or secret_ref is None:
            continue
        field = f"accounts[{i}].{prefix}"
        key = resolve_secret(key_ref, f"{field}_key", environ=environ, base_dir=base_dir)
        secret = resolve_secret(secret_ref, f"{field}_secret", environ=environ, base_dir=base_dir)
        try:
            base64.b64decode(secret.reveal(), validate=True)
        except (binascii.Error, ValueError):
            raise SecretError(f"{field}_secret", f"{secret_ref} is not base64 text") from None
        out[account.name] = ApiCredentials(key=key, secret=secret)
    return out


def resolve_operator_secrets(
    config: Config, *, environ: Mapping[str, str] | None = None, base_dir: Path | None = None
) -> dict[str, Secret]:
    """Resolve each operator's command-signing secret, by operator name."""
    return {
        op.name: resolve_secret(
            op.secret, f"control.operators[{i}].secret", environ=environ, base_dir=base_dir
        )
        for i, op in enumerate(config.control.operators)
    }

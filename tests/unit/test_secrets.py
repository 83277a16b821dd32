"""Secret references: resolution, errors naming the field, values that never print."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.config import parse_config
from orchestrator.errors import ConfigError, SecretError
from orchestrator.secrets import (
    Secret,
    resolve_credentials,
    resolve_operator_secrets,
    resolve_secret,
)
from orchestrator.store.connection import safe_url

SECRET_B64 = (
    "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
)


def kraken_config(secret_ref: str = "env:M_SECRET") -> dict[str, object]:
    return {
        "venue": {"kind": "kraken"},
        "accounts": [
            {"name": "m", "role": "master", "api_key": "env:M_KEY", "api_secret": secret_ref},
        ],
        "control": {"operators": [{"name": "alice", "secret": "env:ALICE"}]},
    }


def secret_file(path: Path, content: bytes, mode: int = 0o600) -> Path:
    """A secret file with an explicit mode (the umask would otherwise decide it)."""
    path.write_bytes(content)
    os.chmod(path, mode)
    return path


def test_env_and_file_references(tmp_path: Path) -> None:
    secret_file(tmp_path / "m.secret", SECRET_B64.encode() + b"\n")
    config = parse_config(kraken_config("file:m.secret"))
    creds = resolve_credentials(config, environ={"M_KEY": "public-key-123"}, base_dir=tmp_path)
    assert creds["m"].key.reveal() == "public-key-123"
    assert creds["m"].secret.reveal() == SECRET_B64  # trailing newline stripped


def test_missing_env_var_names_field_and_variable() -> None:
    config = parse_config(kraken_config())
    with pytest.raises(SecretError) as info:
        resolve_credentials(config, environ={"M_KEY": "k" * 10})
    assert info.value.path == "accounts[0].api_secret"
    assert str(info.value) == "accounts[0].api_secret: environment variable M_SECRET is not set"


def test_missing_file_names_field(tmp_path: Path) -> None:
    config = parse_config(kraken_config("file:nope.secret"))
    with pytest.raises(SecretError) as info:
        resolve_credentials(config, environ={"M_KEY": "k" * 10}, base_dir=tmp_path)
    assert info.value.path == "accounts[0].api_secret"
    assert "does not exist" in info.value.reason


def test_empty_secret_is_an_error() -> None:
    with pytest.raises(SecretError) as info:
        resolve_secret("env:EMPTY", "x.y", environ={"EMPTY": "  \n"})
    assert str(info.value) == "x.y: env:EMPTY is empty"


def test_non_base64_api_secret_is_refused_without_showing_it() -> None:
    config = parse_config(kraken_config())
    bad = "not base64 at all!"
    with pytest.raises(SecretError) as info:
        resolve_credentials(config, environ={"M_KEY": "k" * 10, "M_SECRET": bad})
    assert info.value.path == "accounts[0].api_secret"
    assert bad not in str(info.value)


def test_operator_secrets() -> None:
    config = parse_config(kraken_config())
    with pytest.raises(SecretError) as info:
        resolve_operator_secrets(config, environ={})
    assert info.value.path == "control.operators[0].secret"
    assert resolve_operator_secrets(config, environ={"ALICE": "opensesame"})["alice"].reveal() == (
        "opensesame"
    )


def test_secret_never_prints() -> None:
    secret = Secret("hunter2-very-secret")
    assert "hunter2" not in repr(secret)
    assert "hunter2" not in str(secret)
    assert "hunter2" not in f"{secret!r} {secret} {[secret]} { ({'s': secret}) }"
    assert secret == Secret("hunter2-very-secret")
    assert secret != Secret("other-secret-value")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o444], ids=oct)
def test_secret_file_accessible_to_group_or_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = secret_file(tmp_path / "m.secret", SECRET_B64.encode(), mode)
    with pytest.raises(SecretError) as info:
        resolve_secret("file:m.secret", "accounts[0].api_secret", base_dir=tmp_path)
    message = str(info.value)
    assert info.value.path == "accounts[0].api_secret"
    assert str(path) in message
    assert f"chmod 600 {path}" in message
    assert oct(mode)[2:] in message
    assert "\n" not in message
    assert SECRET_B64 not in message


@pytest.mark.parametrize("mode", [0o600, 0o400], ids=oct)
def test_secret_file_private_to_its_owner_is_accepted(tmp_path: Path, mode: int) -> None:
    secret_file(tmp_path / "m.secret", b"opensesame\n", mode)
    assert resolve_secret("file:m.secret", "x.y", base_dir=tmp_path).reveal() == "opensesame"


@pytest.mark.parametrize("make", [os.mkfifo, os.mkdir], ids=["fifo", "directory"])
def test_secret_file_that_is_not_a_regular_file_is_refused(
    tmp_path: Path, make: Callable[[Path, int], None]
) -> None:
    make(tmp_path / "odd.secret", 0o600)  # a FIFO must be refused, not block the start
    with pytest.raises(SecretError) as info:
        resolve_secret("file:odd.secret", "x.y", base_dir=tmp_path)
    assert "not a regular file" in info.value.reason


def test_non_utf8_secret_file_names_field_and_file(tmp_path: Path) -> None:
    path = secret_file(tmp_path / "m.secret", b"\xff\xfeopensesame")
    with pytest.raises(SecretError) as info:
        resolve_secret("file:m.secret", "control.operators[0].secret", base_dir=tmp_path)
    assert info.value.path == "control.operators[0].secret"
    assert str(info.value) == (f"control.operators[0].secret: secret file {path} is not UTF-8 text")


def test_non_utf8_environment_value_names_field_and_variable() -> None:
    # os.environ carries undecodable bytes as lone surrogates (PEP 383).
    with pytest.raises(SecretError) as info:
        resolve_secret("env:K", "x.y", environ={"K": "open\udcffsesame"})
    assert str(info.value) == "x.y: environment variable K is not UTF-8 text"


# --- Redis URLs never show their password ------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:hunter2pw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("redis://alice:hunter2pw@h:6379/0", "redis://alice:***@h:6379/0"),
        ("rediss://alice:hunter2pw@h", "rediss://alice:***@h"),
        ("redis://:hunter2pw@[::1]:6379/0", "redis://:***@[::1]:6379/0"),
        ("redis://:hunter2pw@h:notaport", "redis://:***@h:notaport"),
        ("unix://:hunter2pw@/run/redis.sock?db=2", "unix://:***@/run/redis.sock?db=2"),
        ("redis://h:6379/0?password=hunter2pw", "redis://h:6379/0?password=***"),
        ("redis://h/0?db=1&password=hunter2pw&x=y", "redis://h/0?db=1&password=***&x=y"),
        ("unix:///run/redis.sock?password=hunter2pw", "unix:///run/redis.sock?password=***"),
        # Unencoded reserved characters in the password: the whole user part goes.
        ("redis://:hunter/2pw@h:6379", "redis://***@h:6379"),
        ("redis://:hun#ter2pw@h", "redis://***@h"),
        ("redis://:hun?ter2pw@h", "redis://***@h"),
        ("redis://:hunter2pw@h/0?password=hunter2pw", "redis://:***@h/0?password=***"),
        ("alice:hunter2pw@h:6379", "alice:***@h:6379"),  # no scheme at all
        ("redis:/:hunter2pw@h", "***@h"),
        # Nothing secret: unchanged.
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("redis://alice@h", "redis://alice@h"),
        ("embedded", "embedded"),
        ("", ""),
    ],
)
def test_safe_url_masks_every_password(url: str, shown: str) -> None:
    assert safe_url(url) == shown
    assert "ter2" not in safe_url(url)  # no piece of the password either


def test_futures_keys_resolve_apart_and_come_in_pairs() -> None:
    raw = kraken_config()
    account = raw["accounts"][0]  # type: ignore[index]
    account |= {"futures_api_key": "env:F_KEY", "futures_api_secret": "env:F_SECRET"}
    environ = {"M_KEY": "spot", "M_SECRET": SECRET_B64, "F_KEY": "deriv", "F_SECRET": SECRET_B64}
    config = parse_config(raw)
    assert resolve_credentials(config, environ=environ)["m"].key.reveal() == "spot"
    futures = resolve_credentials(config, environ=environ, futures=True)
    assert futures["m"].key.reveal() == "deriv"
    with pytest.raises(SecretError, match=r"accounts\[0\].futures_api_secret"):
        resolve_credentials(config, environ={"F_KEY": "deriv", "F_SECRET": "not base64!"},
                            futures=True)  # fmt: skip
    del account["futures_api_secret"]
    with pytest.raises(ConfigError, match=r"accounts\[0\].futures_api_secret: futures keys come"):
        parse_config(raw)

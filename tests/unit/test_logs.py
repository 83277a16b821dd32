"""JSON log lines, and that no secret leaks through any path into them."""

from __future__ import annotations

import io
import json
import logging
import random
import time
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.config import parse_config
from orchestrator.logs import (
    REDACTED,
    configure_logging,
    forget_secrets,
    get_logger,
    is_sensitive_name,
    redact,
    redact_text,
    register_secret,
)
from orchestrator.secrets import resolve_credentials

API_SECRET = (
    "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
)
API_KEY = "PUBLICKEY0123456789abcdefghijklmnopqrstu"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    root = logging.getLogger()
    level = root.level
    configure_logging("debug", out)
    yield out
    for handler in list(root.handlers):
        root.removeHandler(handler)
    # The level too: a root left at DEBUG turns on libraries' debug paths in later tests
    # (redis-py 8 then renders the connection of a failure, which fakeredis's cannot do).
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_one_json_object_per_line_with_event_and_fields(stream: io.StringIO) -> None:
    log = get_logger("orchestrator.test")
    log.info("order.placed", pair="XBT/USD", volume="0.5", cost=1, nested={"a": [1, 2]})
    log.debug("tick")
    [first, second] = lines(stream)
    assert first["event"] == "order.placed"
    assert first["level"] == "info"
    assert first["logger"] == "orchestrator.test"
    assert first["pair"] == "XBT/USD"
    assert first["nested"] == {"a": [1, 2]}
    assert isinstance(first["ts"], str)
    assert second["event"] == "tick"


def test_sensitive_field_names_are_redacted_at_any_depth(stream: io.StringIO) -> None:
    log = get_logger("t")
    log.info(
        "request.sent",
        api_secret="s3cr3t-value",
        headers={"API-Key": "k", "API-Sign": "sig", "User-Agent": "orchestrator"},
        body=[{"otp": "123456", "nonce": 5}],
        token="tok",
        authorization="Bearer x",
    )
    [line] = lines(stream)
    assert line["api_secret"] == REDACTED
    assert line["headers"] == {
        "API-Key": REDACTED,
        "API-Sign": REDACTED,
        "User-Agent": "orchestrator",
    }
    assert line["body"] == [{"otp": REDACTED, "nonce": 5}]
    assert line["token"] == REDACTED
    assert line["authorization"] == REDACTED


def test_registered_values_are_redacted_everywhere(stream: io.StringIO) -> None:
    register_secret(API_SECRET)
    log = get_logger("t")
    log.info(
        f"event mentioning {API_SECRET}", detail=f"prefix {API_SECRET} suffix", items=[API_SECRET]
    )
    try:
        raise ValueError(f"bad secret {API_SECRET}")
    except ValueError:
        log.exception("failure", where="here")
    text = stream.getvalue()
    assert API_SECRET not in text
    [info, error] = lines(stream)
    assert info["detail"] == f"prefix {REDACTED} suffix"
    assert info["items"] == [REDACTED]
    assert error["error"] == f"ValueError: bad secret {REDACTED}"
    assert REDACTED in str(error["traceback"])


def test_stdlib_loggers_go_through_the_same_redaction(stream: io.StringIO) -> None:
    register_secret(API_SECRET)
    logging.getLogger("aiohttp.client").warning("retrying with %s", API_SECRET)
    assert API_SECRET not in stream.getvalue()
    assert lines(stream)[0]["event"] == f"retrying with {REDACTED}"


def test_resolved_credentials_never_reach_a_log(stream: io.StringIO) -> None:
    config = parse_config(
        {
            "venue": {"kind": "kraken"},
            "accounts": [
                {"name": "m", "role": "master", "api_key": "env:K", "api_secret": "env:S"},
            ],
        }
    )
    creds = resolve_credentials(config, environ={"K": API_KEY, "S": API_SECRET})
    log = get_logger("t")
    # The mistakes a careless caller could make: log the object, its revealed value, a dump.
    log.info(
        "creds", value=creds["m"], plain=creds["m"].secret.reveal(), key=creds["m"].key.reveal()
    )
    log.info("dump", payload=f"key={creds['m'].key.reveal()}&secret={creds['m'].secret.reveal()}")
    text = stream.getvalue()
    assert API_SECRET not in text
    assert API_KEY not in text


def test_short_values_are_not_registered() -> None:
    register_secret("USD")
    assert redact("USD") == "USD"


# Regex metacharacters, quotes, a space and non-ASCII: secrets are any UTF-8 text.
SECRET_ALPHABET = (
    'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/=-_.*?()[]|\\^$" é€'
)


def many_secrets(count: int) -> list[str]:
    """`count` distinct secrets of every length from 6 to 100 characters (every probe step)."""
    rnd = random.Random(7)
    secrets: dict[str, None] = {}
    while len(secrets) < count:
        length = 6 + len(secrets) % 95
        secrets["".join(rnd.choices(SECRET_ALPHABET, k=length))] = None
    return list(secrets)


def strings_in(value: object) -> Iterator[str]:
    """Every string of a decoded log line, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def test_a_thousand_secrets_register_in_bounded_time() -> None:
    # A regex of them all, recompiled at each registration, took minutes for a thousand.
    secrets = many_secrets(1000)
    started = time.perf_counter()
    for secret in secrets:
        register_secret(secret)
    assert time.perf_counter() - started < 1.0
    assert all(redact_text(f"<{secret}>") == f"<{REDACTED}>" for secret in secrets)


def test_each_of_a_thousand_secrets_is_redacted_everywhere(stream: io.StringIO) -> None:
    secrets = many_secrets(1000)
    for secret in secrets:
        register_secret(secret)
    log = get_logger("t")
    for i, secret in enumerate(secrets):
        pad = "x" * (i % 37)  # every alignment of the secret against the probed positions
        log.info(
            f"event {pad}{secret}",
            detail=f"{pad}{secret}!",
            nested={"a": [f"{pad}{secret}", {"b": (secret, 1)}], f"by-key {secret}": 2},
            raw=f"{pad}{secret}".encode(),
        )
        try:
            raise RuntimeError(f"{pad}{secret}")
        except RuntimeError:
            log.exception("failure")
    text = stream.getvalue().splitlines()
    assert len(text) == 2 * len(secrets)
    for i, secret in enumerate(secrets):
        pad = "x" * (i % 37)
        info_text, error_text = text[2 * i], text[2 * i + 1]
        info, error = json.loads(info_text), json.loads(error_text)
        for line_text, line in ((info_text, info), (error_text, error)):
            assert secret not in line_text
            assert not [s for s in strings_in(line) if secret in s]
        assert info["detail"] == f"{pad}{REDACTED}!"
        assert info["nested"] == {
            "a": [f"{pad}{REDACTED}", {"b": [REDACTED, 1]}],
            f"by-key {REDACTED}": 2,
        }
        assert error["error"] == f"RuntimeError: {pad}{REDACTED}"


def test_a_secret_containing_another_is_replaced_whole() -> None:
    register_secret("abcdef")
    register_secret("abcdefghijklmnop")
    assert redact_text("1 abcdefghijklmnop 2 abcdef 3") == f"1 {REDACTED} 2 {REDACTED} 3"


def test_text_sharing_only_a_part_of_a_secret_is_left_alone() -> None:
    register_secret(API_SECRET)
    text = f"{API_SECRET[:40]} and {API_SECRET[-40:]}"
    assert redact_text(text) == text


def test_no_secret_is_left_even_when_a_replacement_forms_one() -> None:
    register_secret("Secret-A")
    register_secret(f"x{REDACTED}yz")
    assert redact_text("xSecret-Ayz") == REDACTED


@given(
    secrets=st.lists(st.text("ab*", min_size=6, max_size=14), min_size=1, max_size=8),
    pieces=st.lists(st.text("ab*", max_size=20) | st.integers(0, 7), max_size=8),
)
def test_redacted_text_holds_no_secret(secrets: list[str], pieces: list[str | int]) -> None:
    # A three-letter alphabet makes secrets overlap, contain each other and "***".
    forget_secrets()
    for secret in secrets:
        register_secret(secret)
    text = "".join(secrets[p % len(secrets)] if isinstance(p, int) else p for p in pieces)
    redacted = redact_text(text)
    assert not [secret for secret in secrets if secret in redacted]
    if not any(secret in text for secret in secrets):
        assert redacted == text


@pytest.mark.parametrize(
    ("name", "sensitive"),
    [
        ("api_secret", True),
        ("apiKey", True),
        ("API-Sign", True),
        ("otp", True),
        ("password", True),
        ("ws_token", True),
        ("Authent", True),
        ("nonce", False),
        ("pair", False),
        ("cost", False),
        ("key_count", False),
        ("redis_key", False),
        ("design", False),
    ],
)
def test_sensitive_names(name: str, sensitive: bool) -> None:
    assert is_sensitive_name(name) is sensitive

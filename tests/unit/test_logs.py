"""JSON log lines, and that no secret leaks through any path into them."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from orchestrator.config import parse_config
from orchestrator.logs import (
    REDACTED,
    configure_logging,
    get_logger,
    is_sensitive_name,
    redact,
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
    configure_logging("debug", out)
    yield out
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)


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

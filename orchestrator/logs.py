"""Structured logs: one JSON object per line, an event name plus fields, secrets redacted.

    log = get_logger(__name__)
    log.info("redis.embedded_started", backend="redis-server", port=6380)

Redaction happens in the formatter, so it covers every record whatever its origin:
- by field name: any field whose name says secret, password, token, signature, otp, api key ...
  is written as "***", at any depth of nested dicts and lists;
- by value: every value registered with `register_secret` (API secrets, keys, tokens, resolved at
  start) is replaced wherever it appears, in fields, in the message and in exception text.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any, Final

import msgspec

REDACTED: Final = "***"
_MIN_SECRET_LEN: Final = 6  # shorter values would redact innocent text ("1", "USD")
_SENSITIVE_PARTS: Final = frozenset(
    {
        "secret",
        "password",
        "passwd",
        "token",
        "otp",
        "sign",
        "signature",
        "authorization",
        "authent",
        "credential",
        "credentials",
        "apikey",
    }
)
_SPLIT = re.compile(r"[^a-z0-9]+")

_secrets_lock = threading.Lock()
_secret_values: set[str] = set()
_secret_pattern: re.Pattern[str] | None = None


def register_secret(value: str) -> None:
    """Make `value` unprintable: from now on every log line shows it as "***"."""
    global _secret_pattern  # noqa: PLW0603 - one process-wide registry, guarded by a lock
    if len(value) < _MIN_SECRET_LEN:
        return
    with _secrets_lock:
        if value in _secret_values:
            return
        _secret_values.add(value)
        # Longest first, so a secret that contains another is replaced whole.
        alternatives = sorted(_secret_values, key=len, reverse=True)
        _secret_pattern = re.compile("|".join(re.escape(v) for v in alternatives))


def forget_secrets() -> None:
    """Clear the registry (tests only)."""
    global _secret_pattern  # noqa: PLW0603
    with _secrets_lock:
        _secret_values.clear()
        _secret_pattern = None


def is_sensitive_name(name: str) -> bool:
    """True for field names that hold secrets: `api_secret`, `API-Sign`, `otp`, `apiKey` ..."""
    lowered = name.lower()
    if "api_key" in lowered or "api-key" in lowered or "apikey" in lowered:
        return True
    if "private_key" in lowered:
        return True
    return any(part in _SENSITIVE_PARTS for part in _SPLIT.split(lowered) if part)


def redact_text(text: str) -> str:
    """Replace every registered secret value inside `text`."""
    pattern = _secret_pattern
    return pattern.sub(REDACTED, text) if pattern is not None else text


def redact(value: Any, name: str | None = None) -> Any:
    """Return a JSON-ready copy of `value` with secrets removed by field name and by value."""
    if name is not None and is_sensitive_name(name):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bytes):
        return redact_text(value.decode("utf-8", "replace"))
    if isinstance(value, Mapping):
        return {str(k): redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, msgspec.Struct):
        return redact(msgspec.to_builtins(value), name)
    return redact_text(str(value))


class JsonFormatter(logging.Formatter):
    """Formats records as one JSON object per line with `ts`, `level`, `logger`, `event`."""

    _encoder = msgspec.json.Encoder()

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = getattr(record, "fields", {})
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": redact_text(record.getMessage()),
        }
        for key, value in fields.items():
            if key not in line:
                line[key] = redact(value, key)
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            line["error"] = redact_text(f"{type(exc).__name__}: {exc}")
            line["traceback"] = redact_text(
                "".join(traceback.format_exception(*record.exc_info)).rstrip()
            )
        return self._encoder.encode(line).decode()


class EventLogger:
    """A thin wrapper over `logging.Logger` taking an event name and keyword fields."""

    __slots__ = ("_logger",)

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    @property
    def name(self) -> str:
        return self._logger.name

    def _log(self, level: int, event: str, exc_info: bool, fields: dict[str, Any]) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, event, exc_info=exc_info, extra={"fields": fields})

    def debug(self, event: str, **fields: Any) -> None:
        self._log(logging.DEBUG, event, False, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log(logging.INFO, event, False, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log(logging.WARNING, event, False, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._log(logging.ERROR, event, False, fields)

    def exception(self, event: str, **fields: Any) -> None:
        """Log at error level with the exception being handled."""
        self._log(logging.ERROR, event, True, fields)


def get_logger(name: str) -> EventLogger:
    return EventLogger(logging.getLogger(name))


class _StderrNow:
    """`sys.stderr` as it is when a record is written, not when logging was configured: the
    live status screen swaps it for a proxy that prints lines above the screen."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(level: str = "info", stream: IO[str] | None = None) -> None:
    """Send every record of the process as JSON lines to `stream` (stderr by default)."""
    handler: logging.Handler = logging.StreamHandler(stream if stream is not None else _StderrNow())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())

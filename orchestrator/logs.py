"""Structured logs: one JSON object per line, an event name plus fields, secrets redacted.

    log = get_logger(__name__)
    log.info("redis.embedded_started", backend="redis-server", port=6380)

Redaction happens in the formatter, so it covers every record whatever its origin:
- by field name: any field whose name says secret, password, token, signature, otp, api key ...
  is written as "***", at any depth of nested dicts and lists;
- by value: every value registered with `register_secret` (API secrets, keys, tokens, resolved at
  start) is replaced wherever it appears, in fields (values and keys), in the message and in
  exception text.

Redaction by value runs on every string of every record, so its cost must not grow with the number
of secrets (two per account, hundreds in one process): see `_SecretIndex`.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import traceback
from collections.abc import Mapping, Sequence
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

_GRAM_LEN: Final = _MIN_SECRET_LEN  # every secret has at least one window of this length
_MAX_STEP: Final = 32  # a secret is filed under at most this many windows
_Tier = tuple[int, dict[str, tuple[str, ...]]]  # (step, window -> the secrets filed under it)
_NONE_FOUND: Final[tuple[str, ...]] = ()


class _SecretIndex:
    """The registered secrets, indexed so that finding them in a text costs about as much with a
    thousand secrets as with one (a regex alternation of them all costs time in their number).

    A secret of length L is filed under its first `step` windows of `_GRAM_LEN` characters (at
    offsets 0 .. step-1), where `step` is the largest power of two <= L - _GRAM_LEN + 1, capped at
    `_MAX_STEP`. A text is then probed only at the multiples of `step`: an occurrence of the
    secret at any position p holds the probed window at offset (-p mod step) < step, whole, since
    step <= L - _GRAM_LEN + 1. So a text of n characters costs n / step dict look-ups for each step
    in use (at most six), whatever the number of secrets; only the secrets whose windows hit are
    looked for in full. Registering files at most `_MAX_STEP` windows: no recompilation.

    Readers take no lock: each write is one dict assignment (atomic), so a concurrent reader sees
    every secret registered before its call, and maybe part of one being registered meanwhile.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._tiers: tuple[_Tier, ...] = tuple((1 << i, {}) for i in range(_MAX_STEP.bit_length()))
        # The tiers holding a secret, replaced whole (never grown) so a reader can iterate it.
        self._in_use: tuple[_Tier, ...] = ()

    def add(self, value: str) -> None:
        if len(value) < _MIN_SECRET_LEN:
            return
        room = min(len(value) - _GRAM_LEN + 1, _MAX_STEP)
        step, windows = self._tiers[room.bit_length() - 1]
        with self._lock:
            if value in self._values:
                return
            self._values.add(value)
            first_in_tier = not windows
            for offset in range(step):
                window = value[offset : offset + _GRAM_LEN]
                filed = windows.get(window, ())
                if value not in filed:
                    windows[window] = (*filed, value)
            if first_in_tier:
                self._in_use = tuple(tier for tier in self._tiers if tier[1])

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._in_use = ()
            for _, windows in self._tiers:
                windows.clear()

    def found_in(self, text: str) -> Sequence[str]:
        """The secrets that `text` contains, longest first (so one containing another is
        replaced whole); usually none, found by a few look-ups."""
        found: set[str] | None = None  # made on a hit only: this runs for every string logged
        last = len(text) - _GRAM_LEN + 1
        for step, windows in self._in_use:
            for start in range(0, last, step):
                candidates = windows.get(text[start : start + _GRAM_LEN])
                if candidates is not None:
                    if found is None:
                        found = set()
                    found.update(c for c in candidates if c in text)
        return sorted(found, key=len, reverse=True) if found else _NONE_FOUND


_secrets = _SecretIndex()


def register_secret(value: str) -> None:
    """Make `value` unprintable: from now on every log line shows it as "***"."""
    _secrets.add(value)


def forget_secrets() -> None:
    """Clear the registry (tests only)."""
    _secrets.clear()


def is_sensitive_name(name: str) -> bool:
    """True for field names that hold secrets: `api_secret`, `API-Sign`, `otp`, `apiKey` ..."""
    lowered = name.lower()
    if "api_key" in lowered or "api-key" in lowered or "apikey" in lowered:
        return True
    if "private_key" in lowered:
        return True
    return any(part in _SENSITIVE_PARTS for part in _SPLIT.split(lowered) if part)


def redact_text(text: str) -> str:
    """Replace every registered secret value inside `text`.

    Repeated until none is left: a replacement can join the text around it into another secret
    (each round shortens the text, so this ends).
    """
    if len(text) < _MIN_SECRET_LEN:  # most field names: no look-up at all
        return text
    while found := _secrets.found_in(text):
        for secret in found:
            text = text.replace(secret, REDACTED)
    return text


def redact(value: Any, name: str | None = None) -> Any:
    """Return a JSON-ready copy of `value` with secrets removed by field name and by value."""
    if name is not None and is_sensitive_name(name):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bytes):
        return redact_text(value.decode("utf-8", "replace"))
    if isinstance(value, Mapping):
        # Keys too: a dict keyed by account API key is a plausible thing to log.
        return {redact_text(str(k)): redact(v, str(k)) for k, v in value.items()}
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
                line[redact_text(key)] = redact(value, key)
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

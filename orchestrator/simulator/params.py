"""Reading request parameters the way Kraken does: form-encoded or JSON bodies, query strings.

Form values are strings; JSON values may be numbers, booleans, lists. The accessors accept both
and turn anything malformed into `EGeneral:Invalid arguments:<name>`, never an exception of ours.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from orchestrator.simulator.errors import INVALID_ARGUMENTS, KrakenError
from orchestrator.simulator.orders import invalid

_json_decoder = msgspec.json.Decoder(float_hook=Decimal)
_MAX_FIELD_CHARS = 4096


class Params:
    """One request's parameters with typed accessors."""

    __slots__ = ("values",)

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    @classmethod
    def parse(cls, body: bytes, content_type: str, query: str = "") -> Params:
        values: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
        if not body:
            return cls(values)
        if content_type.startswith("application/json"):
            try:
                decoded = _json_decoder.decode(body)
            except msgspec.DecodeError:
                raise KrakenError(f"{INVALID_ARGUMENTS}:body is not valid JSON") from None
            if not isinstance(decoded, dict):
                raise KrakenError(f"{INVALID_ARGUMENTS}:body must be a JSON object")
            values.update(decoded)
        else:
            try:
                text = body.decode("utf-8")
                values.update(parse_qsl(text, keep_blank_values=True, strict_parsing=False))
            except (UnicodeDecodeError, ValueError):
                raise KrakenError(f"{INVALID_ARGUMENTS}:body is not form-encoded") from None
        return cls(values)

    def raw(self, name: str) -> Any:
        return self.values.get(name)

    def text(self, name: str, *, required: bool = False) -> str | None:
        value = self.values.get(name)
        if value is None:
            if required:
                raise invalid(name)
            return None
        if isinstance(value, bool | list | dict):
            raise invalid(name)
        text = str(value)
        if len(text) > _MAX_FIELD_CHARS:
            raise invalid(name)
        return text

    def need(self, name: str) -> str:
        value = self.text(name, required=True)
        assert value is not None  # noqa: S101 - required=True raised otherwise
        return value

    def integer(self, name: str) -> int | None:
        value = self.values.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            raise invalid(name)
        if isinstance(value, int):
            return value
        text = str(value).strip()
        if not text.lstrip("-").isdigit() or len(text) > 20:
            raise invalid(name)
        return int(text)

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.values.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise invalid(name)

    def array(self, name: str) -> list[Any] | None:
        value = self.values.get(name)
        if value is None:
            return None
        if not isinstance(value, list):
            raise invalid(name)
        return value

    def csv(self, name: str) -> list[str]:
        text = self.text(name)
        return [part for part in (text or "").split(",") if part]

"""What the service answers: one `Reply` per command stream entry, one `Ack` per process a
command was broadcast to. Both are JSON on Redis (lists keyed by the command's entry id).

    reply = decode_reply(raw)
    if not reply.ok:
        print(reply.error)

`result` holds JSON builtins only (str, int, float, bool, None, lists and dicts of them): what a
command returns is data a script can read (`ctl --json`) and a table can show.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from orchestrator.errors import CommandError


class Reply(msgspec.Struct, frozen=True, kw_only=True):
    entry: str  # the stream entry id the reply answers (the sender's XADD reply)
    command_id: str | None  # None when the entry held no readable command
    type: str | None  # the command's type, when it was readable
    ok: bool
    result: Any = None
    error: str | None = None
    process: str  # the service process that answered
    time_s: float  # wall clock when it answered


class Ack(msgspec.Struct, frozen=True, kw_only=True):
    """One process's answer to a command broadcast to every process (halt, ...)."""

    process: str
    ok: bool
    result: Any = None
    error: str | None = None


_encoder: Final = msgspec.json.Encoder(decimal_format="string")
_reply: Final = msgspec.json.Decoder(Reply)
_ack: Final = msgspec.json.Decoder(Ack)


def encode(message: Reply | Ack) -> bytes:
    return _encoder.encode(message)


def to_builtins(value: Any) -> Any:
    """`value` (Structs, Decimals, tuples...) as JSON builtins."""
    return msgspec.to_builtins(value)  # Decimals become strings


def decode_reply(raw: bytes) -> Reply:
    try:
        return _reply.decode(raw)
    except msgspec.DecodeError as exc:
        raise CommandError(f"unreadable reply: {exc}") from None


def decode_ack(raw: bytes) -> Ack:
    try:
        return _ack.decode(raw)
    except msgspec.DecodeError as exc:
        raise CommandError(f"unreadable ack: {exc}") from None

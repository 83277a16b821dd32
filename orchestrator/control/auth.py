"""Who may send what: commands signed with HMAC-SHA256 by per-operator secrets, checked against a
time window and the operator's role. Pure (no Redis): the transport adds the id check.

    wire = sign(command, secret)                               # what `orchestrator ctl` sends
    command = verify(wire, operators, now_s=clock.time(), max_age_s=60.0)

The wire form is `{"command": "<the command's JSON, as text>", "signature": "<hex>"}`: the
signature covers the command's exact bytes, so nothing has to be re-encoded the same way to be
checked. The command names its operator; that operator's secret must have signed it
(compared in constant time). A command signed more than `max_age_s` ago, or that far in the
future, is refused (with its id, remembered by the transport for that long, this stops replays).
Roles are ranked viewer < trader < admin; each command type needs at least one of them.
Every refusal is a `CommandError` whose text says what is wrong and never holds a secret.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import msgspec

from orchestrator.control.commands import Command, Role, decode_command, encode_command, type_of
from orchestrator.errors import CommandError
from orchestrator.secrets import Secret

ROLE_RANK: Final[Mapping[Role, int]] = MappingProxyType({"viewer": 0, "trader": 1, "admin": 2})
NEEDS: Final[Mapping[str, Role]] = MappingProxyType({
    "status": "viewer", "list_strategies": "viewer", "list_transfers": "viewer",
    "approve_status": "viewer", "limits": "viewer",
    "start_strategy": "trader", "stop_strategy": "trader", "pause_strategy": "trader",
    "resume_strategy": "trader", "set_params": "trader", "cancel_all": "trader",
    "rebalance_now": "trader",
    "halt": "admin", "resume_trading": "admin", "set_targets": "admin",
    "set_limit_shares": "admin",
})  # fmt: skip


@dataclass(frozen=True, slots=True)
class OperatorKey:
    secret: Secret
    role: Role


class _Wire(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    command: str
    signature: str


_wire: Final = msgspec.json.Decoder(_Wire)
_encode: Final = msgspec.json.Encoder().encode
MAX_WIRE_BYTES: Final = 96 * 1024


def _mac(secret: Secret, message: bytes) -> str:
    return hmac.new(secret.reveal().encode(), message, hashlib.sha256).hexdigest()


def sign(command: Command, secret: Secret) -> bytes:
    body = encode_command(command)
    return _encode(_Wire(command=body.decode(), signature=_mac(secret, body)))


def verify(
    raw: bytes, operators: Mapping[str, OperatorKey], *, now_s: float, max_age_s: float
) -> Command:
    """The command, once its signature, age and role check out; else `CommandError`."""
    if len(raw) > MAX_WIRE_BYTES:
        raise CommandError(f"message of {len(raw)} bytes; at most {MAX_WIRE_BYTES}")
    try:
        wire = _wire.decode(raw)
    except (msgspec.DecodeError, RecursionError, ValueError, OverflowError) as exc:
        raise CommandError(f"not a signed command ({{command, signature}}): {exc}") from None
    body = wire.command.encode("utf-8", errors="surrogatepass")
    command = decode_command(body)
    key = operators.get(command.operator)
    if key is None:
        raise CommandError(f"unknown operator {command.operator!r}")
    # Bytes, not text: compare_digest refuses non-ASCII text with a TypeError.
    given = wire.signature.lower().encode("utf-8", errors="surrogatepass")
    if not hmac.compare_digest(_mac(key.secret, body).encode(), given):
        raise CommandError(f"bad signature for operator {command.operator!r}")
    age_s = now_s - command.time_s
    if not -max_age_s <= age_s <= max_age_s:
        raise CommandError(f"command {command.id} signed {age_s:.1f} s from now: outside the "
                           f"{max_age_s:g} s window (clock skew or a replay)")  # fmt: skip
    needed = NEEDS[type_of(command)]
    if ROLE_RANK[key.role] < ROLE_RANK[needed]:
        raise CommandError(f"operator {command.operator!r} ({key.role}) may not "
                           f"{type_of(command)}: it needs {needed}")  # fmt: skip
    return command

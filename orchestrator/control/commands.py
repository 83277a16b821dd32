"""Operator commands: one versioned msgspec tagged union, decoded in one pass, strictly.

    command = decode_command(raw)            # raises CommandError naming what is wrong
    match command:
        case Halt(reason=why): ...

Every command carries its `id` (the operator's, unique: replies and exactly-once handling are
keyed by it), the `operator` who sends it, `time_s` (wall clock when it was signed: the replay
window) and `v`, the wire version (1). Unknown fields, unknown types and wrong types are refused,
naming the field; nothing is ever half-read. Numbers in the values a command sets (params,
targets) are written in ASCII digits: Python's Decimal reads an Arabic-Indic or a fullwidth
one (U+0661, U+FF11) as 1, and what an operator reads must be what runs. What a command may
do is decided by the operator's role (auth.py); what it does, by the service (not built yet).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Final, Literal

import msgspec

from orchestrator.errors import CommandError

WIRE_VERSION: Final = 1
CommandId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:-]{8,64}$")]
Operator = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
StrategyName = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
Role = Literal["viewer", "trader", "admin"]


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


class _Command(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True,
               tag_field="type", tag=_snake):  # fmt: skip
    v: Literal[1] = WIRE_VERSION
    id: CommandId
    operator: Operator
    time_s: Annotated[float, msgspec.Meta(ge=0)]


# --- reading ---------------------------------------------------------------------------------
class Status(_Command, frozen=True):
    pass


class ListStrategies(_Command, frozen=True):
    pass


class ListTransfers(_Command, frozen=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 50


class ApproveStatus(_Command, frozen=True):
    """Withdrawals awaiting an Organizations approval."""


class Limits(_Command, frozen=True):
    """The live limiter view per scope."""


# --- trading ---------------------------------------------------------------------------------
class StartStrategy(_Command, frozen=True):
    strategy: StrategyName


class StopStrategy(_Command, frozen=True):
    strategy: StrategyName


class PauseStrategy(_Command, frozen=True):
    strategy: StrategyName


class ResumeStrategy(_Command, frozen=True):
    strategy: StrategyName


class SetParams(_Command, frozen=True):
    """Replace a strategy's params whole (checked against its Params Struct when applied)."""

    strategy: StrategyName
    params: dict[str, Any]


class CancelAll(_Command, frozen=True):
    """A strategy's orders, an account's, or (neither given) every order of the domain."""

    strategy: StrategyName | None = None
    account: StrategyName | None = None


class RebalanceNow(_Command, frozen=True):
    pass


# --- the desk's switches ---------------------------------------------------------------------
class Halt(_Command, frozen=True):
    """Kill switch: trading state HALTED everywhere, every order cancelled, rebalancing paused."""

    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class ResumeTrading(_Command, frozen=True):
    pass


class Target(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    account: StrategyName
    asset: Annotated[str, msgspec.Meta(min_length=1, max_length=16)]
    target: Decimal
    low: Decimal
    high: Decimal


class SetTargets(_Command, frozen=True):
    targets: Annotated[list[Target], msgspec.Meta(min_length=1, max_length=1000)]


class SetLimitShares(_Command, frozen=True):
    """Strategy -> weight of its share of the domain pools."""

    weights: Annotated[
        dict[StrategyName, Annotated[float, msgspec.Meta(gt=0, le=1e6)]], msgspec.Meta(min_length=1)
    ]


Command = (
    Status | ListStrategies | ListTransfers | ApproveStatus | Limits | StartStrategy
    | StopStrategy | PauseStrategy | ResumeStrategy | SetParams | CancelAll | RebalanceNow | Halt
    | ResumeTrading | SetTargets | SetLimitShares
)  # fmt: skip
COMMAND_TYPES: Final[tuple[type[_Command], ...]] = (
    Status, ListStrategies, ListTransfers, ApproveStatus, Limits, StartStrategy, StopStrategy,
    PauseStrategy, ResumeStrategy, SetParams, CancelAll, RebalanceNow, Halt, ResumeTrading,
    SetTargets, SetLimitShares,
)  # fmt: skip
TYPE_NAMES: Final[frozenset[str]] = frozenset(_snake(t.__name__) for t in COMMAND_TYPES)

_decoder: Final = msgspec.json.Decoder(Command)
_encoder: Final = msgspec.json.Encoder(decimal_format="string")
MAX_COMMAND_BYTES: Final = 64 * 1024


def type_of(command: Command) -> str:
    return _snake(type(command).__name__)


def encode_command(command: Command) -> bytes:
    return _encoder.encode(command)


def decode_command(raw: bytes) -> Command:
    """The command in `raw`, or `CommandError` saying what is wrong (never another error)."""
    if len(raw) > MAX_COMMAND_BYTES:
        raise CommandError(f"command of {len(raw)} bytes; at most {MAX_COMMAND_BYTES}")
    try:
        command: Command = _decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise CommandError(f"bad command: {exc}") from None
    except (msgspec.DecodeError, RecursionError, ValueError, OverflowError) as exc:
        raise CommandError(f"command is not JSON: {exc}") from None
    if isinstance(command, SetParams | SetTargets):
        _ascii_digits(raw, type_of(command))
    if isinstance(command, CancelAll) and command.strategy and command.account:
        raise CommandError("bad command: cancel_all takes a strategy or an account, not both")
    if isinstance(command, SetTargets):
        for i, target in enumerate(command.targets):
            low, mid, high = target.low, target.target, target.high
            finite = all(n.is_finite() for n in (low, mid, high))
            if not (finite and 0 <= low <= mid <= high):
                raise CommandError(f"bad command: targets[{i}] needs 0 <= low <= target <= "
                                   f"high, got {low} / {mid} / {high}")  # fmt: skip
    return command


def _ascii_digits(raw: bytes, type_name: str) -> None:
    """`CommandError` if a string of the (decoded) body holds a digit other than 0-9. The walk
    is iterative: the body is as deep as the decoder let it be."""
    stack: list[Any] = [msgspec.json.decode(raw)]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack += [*value.keys(), *value.values()]
        elif isinstance(value, list):
            stack += value
        elif isinstance(value, str) and not value.isascii():
            digit = next((ch for ch in value if ch.isdigit() and not ch.isascii()), None)
            if digit is not None:
                why = f"{type_name} holds the digit {digit!r} (U+{ord(digit):04X})"
                raise CommandError(f"bad command: {why}; write numbers in ASCII digits")

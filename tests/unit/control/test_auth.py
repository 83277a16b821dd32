"""Signed commands: a good one passes; every malformed, unknown, unsigned, wrongly signed,
expired, future, over-privileged or oversized one is refused with a CommandError saying why;
of 10,000 hostile messages none raises anything else and none passes altered."""

from __future__ import annotations

import json
import random
from decimal import Decimal

import pytest

from orchestrator.control.auth import NEEDS, OperatorKey, sign, verify
from orchestrator.control.commands import (
    TYPE_NAMES,
    CancelAll,
    Command,
    Halt,
    SetTargets,
    Status,
    Target,
    decode_command,
    encode_command,
)
from orchestrator.errors import CommandError
from orchestrator.secrets import Secret

NOW_S = 1_800_000_000.0
OPERATORS = {
    "vera": OperatorKey(Secret("vera-secret-0123456789"), "viewer"),
    "tom": OperatorKey(Secret("tom-secret-0123456789"), "trader"),
    "ada": OperatorKey(Secret("ada-secret-0123456789"), "admin"),
}


def check(raw: bytes, *, now_s: float = NOW_S) -> Command:
    return verify(raw, OPERATORS, now_s=now_s, max_age_s=60.0)


def halt(operator: str = "ada", *, time_s: float = NOW_S, id: str = "cmd-00000001") -> Halt:
    return Halt(id=id, operator=operator, time_s=time_s, reason="desk drill")


def test_every_command_type_has_a_role() -> None:
    assert set(NEEDS) == TYPE_NAMES


def test_a_signed_command_in_its_window_from_an_allowed_operator_passes() -> None:
    command = halt()
    assert check(sign(command, OPERATORS["ada"].secret)) == command
    status = Status(id="cmd-00000002", operator="vera", time_s=NOW_S - 59)
    assert check(sign(status, OPERATORS["vera"].secret)) == status


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (sign(halt("tom"), OPERATORS["tom"].secret), "(trader) may not halt: it needs admin"),
        (sign(halt("vera"), OPERATORS["vera"].secret), "(viewer) may not halt"),
        (sign(halt("ada"), OPERATORS["tom"].secret), "bad signature for operator 'ada'"),
        (sign(halt("eve"), Secret("eve-secret-0123456789")), "unknown operator 'eve'"),
        (sign(halt(time_s=NOW_S - 61), OPERATORS["ada"].secret), "outside the 60 s window"),
        (sign(halt(time_s=NOW_S + 61), OPERATORS["ada"].secret), "outside the 60 s window"),
        (encode_command(halt()), "not a signed command"),
        (b"{" * 10_000, "not a signed command"),
        (b"x" * 200_000, "at most"),
    ],
)  # fmt: skip
def test_refusals_say_why(wire: bytes, reason: str) -> None:
    with pytest.raises(CommandError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        check(wire)


def test_a_refusal_never_shows_a_secret() -> None:
    wire = sign(halt("ada"), OPERATORS["tom"].secret)
    with pytest.raises(CommandError) as caught:
        check(wire)
    assert all(key.secret.reveal() not in str(caught.value) for key in OPERATORS.values())


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "launch_missiles"}, "type"),
        ({"type": "halt", "id": "cmd-00000001", "operator": "ada", "time_s": 1}, "reason"),
        ({"type": "halt", "id": "x", "operator": "ada", "time_s": 1, "reason": "r"}, "id"),
        ({"type": "status", "id": "cmd-00000001", "operator": "ada", "time_s": 1, "extra": 1},
         "extra"),
        ({"type": "status", "id": "cmd-00000001", "operator": "ada", "time_s": 1, "v": 2}, "v"),
        ({"type": "list_transfers", "id": "cmd-00000001", "operator": "ada", "time_s": 1,
          "limit": 10_000}, "limit"),
    ],
)  # fmt: skip
def test_bad_commands_are_refused_naming_the_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(CommandError, match=field):
        decode_command(json.dumps(body).encode())


def test_targets_outside_their_band_are_refused() -> None:
    bad = SetTargets(id="cmd-00000003", operator="ada", time_s=NOW_S, targets=[
        Target(account="mm", asset="ZUSD", target=Decimal(5), low=Decimal(6), high=Decimal(9))])  # fmt: skip
    with pytest.raises(CommandError, match=r"targets\[0\] needs 0 <= low <= target <= high"):
        decode_command(encode_command(bad))


GOOD = CancelAll(id="cmd-00000009", operator="tom", time_s=NOW_S)


def hostile(rng: random.Random) -> bytes:
    """One of the kinds of message an attacker or a broken tool sends."""
    good = sign(GOOD, OPERATORS["tom"].secret)
    kind = rng.randrange(8)
    if kind == 0:  # bytes flipped anywhere
        raw = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        return bytes(raw)
    if kind == 1:  # cut short
        return good[: rng.randrange(len(good))]
    if kind == 2:  # unsigned
        return encode_command(halt(id=f"cmd-{rng.randrange(10**8):08d}"))
    if kind == 3:  # signature of another operator
        return sign(halt(id=f"cmd-{rng.randrange(10**8):08d}"), OPERATORS["vera"].secret)
    if kind == 4:  # expired or from the future
        offset_s = rng.choice([-1, 1]) * rng.uniform(61, 10**6)
        return sign(halt(time_s=NOW_S + offset_s), OPERATORS["ada"].secret)
    if kind == 5:  # over-privileged
        return sign(halt("vera"), OPERATORS["vera"].secret)
    if kind == 6:  # random JSON values
        value: object = rng.choice([None, 1, -1.5, "s", [], {}, {"command": 1, "signature": 2},
                            {"command": "{}", "signature": ""}, 1e308, [[[[]]]]])  # fmt: skip
        return json.dumps(value).encode()
    return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))  # noise


def test_ten_thousand_hostile_messages_are_refused_or_pass_only_unaltered() -> None:
    rng = random.Random(7)
    refused = passed_unchanged = 0
    for _ in range(10_000):
        raw = hostile(rng)
        try:
            command = check(raw)
        except CommandError:
            refused += 1
        else:
            # Only a flip that left the signed bytes as they were (a byte set to itself, a hex
            # digit's case in the signature) may pass, and then it is the command as signed.
            assert command == GOOD, raw
            passed_unchanged += 1
    assert refused + passed_unchanged == 10_000
    assert refused >= 9_950

"""The command union: every type goes through the wire and back unchanged, tagged by its name;
numbers it sets are ASCII digits; limit shares name a strategy."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TypedDict

import pytest

from orchestrator.control import commands as c
from orchestrator.control.commands import decode_command, encode_command, type_of
from orchestrator.errors import CommandError


class Base(TypedDict):
    id: str
    operator: str
    time_s: float


BASE: Base = {"id": "cmd-00000001", "operator": "ada", "time_s": 1.0}
ONE_OF_EACH: list[c.Command] = [
    c.Status(**BASE), c.ListStrategies(**BASE), c.ListTransfers(**BASE, limit=5),
    c.ApproveStatus(**BASE), c.Limits(**BASE), c.StartStrategy(**BASE, strategy="mm"),
    c.StopStrategy(**BASE, strategy="mm"), c.PauseStrategy(**BASE, strategy="mm"),
    c.ResumeStrategy(**BASE, strategy="mm"),
    c.SetParams(**BASE, strategy="mm", params={"size": "0.02"}),
    c.CancelAll(**BASE, account="mm-xbt"), c.RebalanceNow(**BASE), c.Halt(**BASE, reason="drill"),
    c.ResumeTrading(**BASE),
    c.SetTargets(**BASE, targets=[c.Target(account="mm-xbt", asset="ZUSD", target=Decimal(10),
                                           low=Decimal(5), high=Decimal(20))]),
    c.SetLimitShares(**BASE, weights={"mm": 2.0}),
]  # fmt: skip


def test_every_type_round_trips_tagged_by_its_name() -> None:
    assert {type_of(command) for command in ONE_OF_EACH} == c.TYPE_NAMES
    for command in ONE_OF_EACH:
        wire = encode_command(command)
        assert json.loads(wire)["type"] == type_of(command)
        assert json.loads(wire)["v"] == 1
        assert decode_command(wire) == command


def _body(type_name: str, **fields: object) -> bytes:
    return json.dumps({"type": type_name, **BASE, **fields}).encode()


@pytest.mark.parametrize("digits", ["\u0661", "\uff11", "\u0660.\u0665", "1\u0969"])
def test_numbers_in_values_it_sets_are_ascii_digits(digits: str) -> None:
    """Decimal reads U+0661 (Arabic-Indic one) and U+FF11 (fullwidth one) as 1: refused."""
    wires = [
        _body("set_params", strategy="mm", params={"size": digits}),
        _body("set_params", strategy="mm", params={"ladder": [{"size": digits}]}),
        _body("set_targets", targets=[{"account": "mm-xbt", "asset": "ZUSD", "target": digits,
                                       "low": "0", "high": "100"}]),
    ]  # fmt: skip
    for wire in wires:
        with pytest.raises(CommandError, match=r"holds the digit .* \(U\+[0-9A-F]{4}\)"):
            decode_command(wire)
    assert decode_command(_body("set_params", strategy="mm", params={"label": "日本"}))
    assert decode_command(_body("halt", reason="\u0661 fat finger"))  # free text: as it is


def test_limit_shares_name_at_least_one_strategy() -> None:
    with pytest.raises(CommandError, match=r"length >= 1 - at `\$.weights`"):
        decode_command(_body("set_limit_shares", weights={}))

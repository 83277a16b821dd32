"""The command union: every type goes through the wire and back unchanged, tagged by its name."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TypedDict

from orchestrator.control import commands as c
from orchestrator.control.commands import decode_command, encode_command, type_of


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

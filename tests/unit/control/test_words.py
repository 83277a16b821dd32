"""What an operator types after `orchestrator ctl`: every command's words read into its type and
fields, short verbs and type names alike; every mistake a UsageError naming the bad word; and
what the words give makes a command the service accepts."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from orchestrator.control.client import make_command
from orchestrator.control.commands import TYPE_NAMES
from orchestrator.control.words import (
    USAGE,
    CommandWords,
    HelpWords,
    UsageError,
    WatchWords,
    parse_words,
)

TARGETS = '[{"account": "sub1", "asset": "USD", "target": "100", "low": 80, "high": 120.5}]'
FILES = {"targets.json": TARGETS, "params.json": '{"size": "0.2"}', "bad.json": "[1,"}


def read_file(path: str) -> str:
    if path not in FILES:
        raise UsageError(f"cannot read @{path}: No such file or directory")
    return FILES[path]


def parse(*words: str) -> Any:
    return parse_words(list(words), read_file=read_file)


@pytest.mark.parametrize(
    ("words", "type_name", "fields"),
    [
        (["status"], "status", {}),
        (["list-strategies"], "list_strategies", {}),
        (["strategies"], "list_strategies", {}),
        (["limits"], "limits", {}),
        (["approvals"], "approve_status", {}),
        (["approve-status"], "approve_status", {}),
        (["transfers"], "list_transfers", {}),
        (["transfers", "--limit", "5"], "list_transfers", {"limit": 5}),
        (["transfers", "--limit=7"], "list_transfers", {"limit": 7}),
        (["list_transfers"], "list_transfers", {}),
        (["start", "mm1"], "start_strategy", {"strategy": "mm1"}),
        (["stop", "mm-2"], "stop_strategy", {"strategy": "mm-2"}),
        (["pause", "grid_1"], "pause_strategy", {"strategy": "grid_1"}),
        (["resume", "twap"], "resume_strategy", {"strategy": "twap"}),
        (["start_strategy", "mm1"], "start_strategy", {"strategy": "mm1"}),
        (["start-strategy", "mm1"], "start_strategy", {"strategy": "mm1"}),
        (["set-params", "mm1", "size=0.1", "spread_bps=3"], "set_params",
         {"strategy": "mm1", "params": {"size": "0.1", "spread_bps": "3"}}),
        (["set-params", "mm1", "note=a=b"], "set_params",
         {"strategy": "mm1", "params": {"note": "a=b"}}),
        (["set-params", "mm1", '{"size": 0.10, "on": true, "legs": [1, 2]}'], "set_params",
         {"strategy": "mm1", "params": {"size": Decimal("0.10"), "on": True, "legs": [1, 2]}}),
        (["set-params", "mm1", "@params.json"], "set_params",
         {"strategy": "mm1", "params": {"size": "0.2"}}),
        (["cancel-all"], "cancel_all", {}),
        (["cancel-all", "--strategy", "mm1"], "cancel_all", {"strategy": "mm1"}),
        (["cancel-all", "--account=sub1"], "cancel_all", {"account": "sub1"}),
        (["rebalance-now"], "rebalance_now", {}),
        (["halt", "--reason", "feed is stale"], "halt", {"reason": "feed is stale"}),
        (["halt", "--reason=drill"], "halt", {"reason": "drill"}),
        (["halt", "feed", "is", "stale"], "halt", {"reason": "feed is stale"}),
        (["halt", "--reason", "--json"], "halt", {"reason": "--json"}),  # a value, verbatim
        (["resume-trading"], "resume_trading", {}),
        (["set-targets", TARGETS], "set_targets", {"targets": [
            {"account": "sub1", "asset": "USD", "target": "100", "low": 80,
             "high": Decimal("120.5")}]}),
        (["set-targets", "@targets.json"], "set_targets", {"targets": [
            {"account": "sub1", "asset": "USD", "target": "100", "low": 80,
             "high": Decimal("120.5")}]}),
        (["set-shares", "mm1=2", "mm2=0.5"], "set_limit_shares",
         {"weights": {"mm1": 2.0, "mm2": 0.5}}),
        (["set_limit_shares", "mm1=1e3"], "set_limit_shares", {"weights": {"mm1": 1000.0}}),
    ],
)  # fmt: skip
def test_words_read_into_a_command(
    words: list[str], type_name: str, fields: dict[str, Any]
) -> None:
    assert parse(*words) == CommandWords(type_name, fields)


def test_every_command_type_has_words() -> None:
    """Each type name is a verb too: one of a few argument shapes reads into that type."""
    readable = {
        type_name
        for type_name in TYPE_NAMES
        for words in ([type_name], [type_name, "mm1"], [type_name, "mm1", "a=1"],
                      [type_name, TARGETS], [type_name, "mm1=1"], [type_name, "why"])
        if _reads(words) == type_name
    }  # fmt: skip
    assert readable == TYPE_NAMES


def _reads(words: list[str]) -> str | None:
    try:
        parsed = parse(*words)
    except UsageError:
        return None
    return parsed.type_name if isinstance(parsed, CommandWords) else None


@pytest.mark.parametrize(
    "words",
    [["status"], ["start", "mm1"], ["set-params", "mm1", "size=0.1"],
     ["set-params", "mm1", '{"size": 0.1}'], ["cancel-all", "--account", "sub1"],
     ["halt", "--reason", "drill"], ["set-targets", "@targets.json"], ["transfers", "--limit", "9"],
     ["set-shares", "mm1=2", "mm2=1"], ["resume-trading"], ["approvals"]],
)  # fmt: skip
def test_what_the_words_give_makes_a_valid_command(words: list[str]) -> None:
    parsed = parse(*words)
    command = make_command(parsed.type_name, parsed.fields, operator="ada", time_s=1.0)
    assert command.operator == "ada"


def test_target_numbers_reach_the_command_exactly() -> None:
    parsed = parse("set-targets", '[{"account": "a", "asset": "BTC", "target": 0.123456789012345678901,'
                   ' "low": 0.1, "high": 1}]')  # fmt: skip
    command = make_command(parsed.type_name, parsed.fields, operator="ada", time_s=1.0)
    [target] = command.targets  # type: ignore[union-attr]
    assert target.target == Decimal("0.123456789012345678901")
    assert target.low == Decimal("0.1")


@pytest.mark.parametrize(
    ("words", "says"),
    [
        ([], "no command given"),
        (["nope"], "unknown command 'nope'"),
        (["status", "now"], "status: unexpected word 'now'"),
        (["status", "--json"], "ctl's own --json goes before the command"),
        (["limits", "--verbose"], "limits: unknown option '--verbose'"),
        (["start"], "start takes one strategy name, got 0 words"),
        (["start", "mm1", "mm2"], "start takes one strategy name, got 2 words"),
        (["start", "MM1"], "strategy name 'MM1' must be"),
        (["stop", "-mm"], "strategy name '-mm' must be"),
        (["set-params"], "set-params needs a strategy name and its params"),
        (["set-params", "mm1"], "give the params as JSON or as key=value words"),
        (["set-params", "mm1", "size"], "'size' is not param=value"),
        (["set-params", "mm1", "size="], "no value in 'size='"),
        (["set-params", "mm1", "9x=1"], "'9x' in '9x=1' is not a valid param name"),
        (["set-params", "mm1", "a=1", "a=2"], "set-params: a given twice"),
        (["set-params", "mm1", "{bad"], "'{bad' is not valid JSON"),
        (["set-params", "mm1", "@bad.json"], "@bad.json is not valid JSON"),
        (["set-params", "mm1", "@missing.json"], "cannot read @missing.json"),
        (["set-params", "mm1", '{"a": NaN}'], "NaN is not a number JSON allows"),
        (["set-params", "mm1", "@targets.json"], "the params must be a JSON object, got a"),
        (["cancel-all", "mm1"], "cancel-all: unexpected word 'mm1'"),
        (["cancel-all", "--strategy", "a", "--account", "b"], "not both"),
        (["cancel-all", "--strategy"], "--strategy needs a value"),
        (["cancel-all", "--strategy", "a", "--strategy", "b"], "--strategy given twice"),
        (["cancel-all", "--account", "Sub 1"], "account name 'Sub 1' must be"),
        (["halt"], 'halt needs a reason: halt --reason "what happened"'),
        (["halt", "--reason", "  "], "halt needs a reason"),
        (["halt", "--reason"], "--reason needs a value"),
        (["halt", "stale", "--json"], "ctl's own --json goes before the command"),
        (["set-targets"], "set-targets takes one word"),
        (["set-targets", "a", "b"], "set-targets takes one word"),
        (["set-targets", '{"account": "a"}'], "expected a JSON list of {account, asset, target, "
                                             "low, high}, got an object"),
        (["set-targets", "Infinity"], "Infinity is not a number JSON allows"),
        (["transfers", "--limit", "x"], "transfers --limit: 'x' is not a whole number"),
        (["transfers", "--limit", "-1"], "is not a whole number"),
        (["set-shares"], "set-shares needs NAME=WEIGHT words"),
        (["set-shares", "mm1"], "'mm1' is not strategy=value"),
        (["set-shares", "mm1=0"], "weight of mm1 must be a positive number, got '0'"),
        (["set-shares", "mm1=-2"], "got '-2'"),
        (["set-shares", "mm1=inf"], "got 'inf'"),
        (["set-shares", "mm1=nan"], "got 'nan'"),
        (["set-shares", "mm1=lots"], "got 'lots'"),
        (["set-shares", "MM=1"], "'MM' in 'MM=1' is not a valid strategy name"),
        (["set-shares", "mm1=1", "mm1=2"], "mm1 given twice"),
        (["watch", "--since", "yesterday"], "'yesterday' is not a stream entry id"),
        (["watch", "now"], "watch: unexpected word 'now'"),
    ],
)  # fmt: skip
def test_mistakes_are_usage_errors_naming_the_word(words: list[str], says: str) -> None:
    with pytest.raises(UsageError) as info:
        parse(*words)
    assert says in str(info.value)


def test_an_unknown_command_lists_the_commands() -> None:
    with pytest.raises(UsageError) as info:
        parse("stauts")
    assert USAGE in str(info.value)


@pytest.mark.parametrize(
    ("words", "parsed"),
    [
        (["watch"], WatchWords("$")),
        (["watch", "--since", "0"], WatchWords("0")),
        (["watch", "--since=1733112000000-3"], WatchWords("1733112000000-3")),
        (["help"], HelpWords()),
        (["--help"], HelpWords()),
        (["-h"], HelpWords()),
    ],
)
def test_watch_and_help(words: list[str], parsed: Any) -> None:
    assert parse(*words) == parsed


def test_the_usage_names_every_short_verb() -> None:
    for verb in ("status", "list-strategies", "limits", "approvals", "transfers", "start", "stop",
                 "pause", "resume", "set-params", "cancel-all", "rebalance-now", "halt",
                 "resume-trading", "set-targets", "set-shares", "watch"):  # fmt: skip
        assert verb in USAGE


def test_the_default_reader_reads_a_file(tmp_path: Any) -> None:
    path = tmp_path / "t.json"
    path.write_text(TARGETS, encoding="utf-8")
    parsed = parse_words(["set-targets", f"@{path}"])
    assert isinstance(parsed, CommandWords)
    assert parsed.fields["targets"][0]["account"] == "sub1"
    with pytest.raises(UsageError, match="cannot read @"):
        parse_words(["set-targets", f"@{tmp_path / 'none.json'}"])

"""Replies and audit entries as text: whatever shape a result has, it reads as a table or a line;
an error is one line; cells are plain text (never rich markup); no colour unless asked."""

from __future__ import annotations

import re
from typing import Any

import pytest

from orchestrator.control.audit import AuditEntry
from orchestrator.control.render import audit_line, render_reply, render_value, utc
from orchestrator.control.replies import Reply


def reply(result: Any = None, *, ok: bool = True, error: str | None = None) -> Reply:
    return Reply(entry="1-0", command_id="ada-1", type="status", ok=ok, result=result,
                 error=error, process="p1", time_s=1.0)  # fmt: skip


def rows(text: str) -> list[list[str]]:
    """The table's rows as lists of cells (box characters and padding dropped)."""
    out = []
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃]", line) if c.strip()]
        if cells and not re.fullmatch(r"[─━┏┓┗┛┡┩└┘┌┐├┤┬┴┼╇╈┳┻╋\s]+", line):
            out.append(cells)
    return out


def test_a_dict_is_key_value_rows_with_nested_values_compact() -> None:
    text = render_reply(reply({"trading": "HALTED", "since_s": 1733112000.5, "paused": False,
                               "reason": None, "tags": ["a", "b"], "cfg": {"x": 1, "y": [1]},
                               "empty": []}))  # fmt: skip
    lines = [line.split(None, 1) for line in text.splitlines()]
    assert lines == [["trading", "HALTED"], ["since_s", "1733112000.5"], ["paused", "false"],
                     ["reason", "-"], ["tags", "a, b"], ["cfg", '{"x":1,"y":[1]}'],
                     ["empty", "[]"]]  # fmt: skip


def test_a_list_of_dicts_is_one_table_over_the_union_of_their_keys() -> None:
    text = render_value([{"name": "mm1", "state": "running"}, {"name": "mm2", "pnl": "-1.5"}])
    assert rows(text) == [["name", "state", "pnl"], ["mm1", "running", "-"], ["mm2", "-", "-1.5"]]


def test_a_dict_of_dicts_is_a_table_named_by_its_keys() -> None:
    text = render_value({"mm1": {"state": "running"}, "mm2": {"state": "paused", "fills": 3}})
    assert rows(text) == [["name", "state", "fills"], ["mm1", "running", "-"],
                          ["mm2", "paused", "3"]]  # fmt: skip


def test_record_lists_inside_a_dict_get_titled_tables_under_its_rows() -> None:
    text = render_value({"trading": "ACTIVE",
                         "processes": [{"process": "p1", "strategies": ["mm1", "mm2"]}],
                         "strategies": {"mm1": {"state": "running"}}})  # fmt: skip
    lines = text.splitlines()
    assert lines[0].split() == ["trading", "ACTIVE"]
    assert lines.index("processes") < lines.index("strategies")
    assert ["p1", "mm1, mm2"] in rows(text)
    assert ["mm1", "running"] in rows(text)


@pytest.mark.parametrize(
    ("result", "text"),
    [
        (None, "ok"),
        ("halted", "halted"),
        (3, "3"),
        (0.1, "0.1"),
        (True, "true"),
        ([], "(none)"),
        ({}, "(empty)"),
        (["mm1", "mm2"], "mm1\nmm2"),
    ],
)
def test_scalars_and_plain_lists_are_lines(result: Any, text: str) -> None:
    assert render_reply(reply(result)) == text


def test_an_error_is_one_line() -> None:
    assert render_reply(reply(ok=False, error="operator 'vera' (viewer) may not\nhalt")) == (
        "error: operator 'vera' (viewer) may not halt"
    )
    assert render_reply(reply(ok=False)) == "error: the service gave no reason"


def test_cells_are_plain_text_never_markup() -> None:
    text = render_value([{"name": "[bold]mm1[/]", "note": "[/] [red]x"}])
    assert ["[bold]mm1[/]", "[/] [red]x"] in rows(text)
    assert render_value("[b]hi[/b]") == "[b]hi[/b]"


def test_no_colour_unless_asked() -> None:
    plain = render_value([{"a": 1}])
    assert "\x1b[" not in plain
    assert "\x1b[" in render_value([{"a": 1}], color=True)


def test_lines_fit_the_width_and_carry_no_trailing_spaces() -> None:
    text = render_value([{"name": f"strategy-{i}", "note": "word " * 30} for i in range(3)],
                        width=60)  # fmt: skip
    assert all(len(line) <= 60 for line in text.splitlines())
    assert all(line == line.rstrip() for line in text.splitlines())
    assert "strategy-2" in text


def test_an_audit_entry_is_one_line_with_the_usual_keys_first() -> None:
    entry = AuditEntry(entry="1-0", kind="command", time_s=1_700_000_000.25, record={
        "process": "p1", "note": "two\nlines", "type": "halt", "operator": "ada", "ok": False,
        "error": "no", "params": {"size": "0.1"}})  # fmt: skip
    assert audit_line(entry) == ('2023-11-14T22:13:20.250Z command operator=ada type=halt '
                                 'ok=false error=no process=p1 note=two lines '
                                 'params={"size":"0.1"}')  # fmt: skip


def test_a_time_that_is_not_one_still_prints() -> None:
    assert utc(float("nan")) == "t=nan"
    assert utc(1e30) == "t=1e+30"


def test_records_too_wide_for_the_width_become_key_value_blocks() -> None:
    records = [{f"column_{c}": f"value-{r}-{c}" for c in range(8)} for r in range(2)]
    narrow = render_value({"transfers": records}, width=80)
    assert "…" not in narrow
    lines = narrow.splitlines()
    assert lines[0] == "transfers [1]"
    assert lines[1].split() == ["column_0", "value-0-0"]
    assert "transfers [2]" in lines
    assert lines[-1].split() == ["column_7", "value-1-7"]
    wide = render_value({"transfers": records}, width=200)
    assert rows(wide)[:2] == [["transfers"], [f"column_{c}" for c in range(8)]]


def test_an_audit_line_leaves_out_empty_fields() -> None:
    entry = AuditEntry(entry="1-0", kind="command", time_s=0.0,
                       record={"operator": "ada", "ok": True, "error": None})  # fmt: skip
    assert audit_line(entry) == "1970-01-01T00:00:00.000Z command operator=ada ok=true"

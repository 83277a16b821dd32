"""A reply or an audit entry as text a person reads at a terminal.

    print(render_reply(reply, width=120))       # tables, or "error: ..." in one line
    print(audit_line(entry))                    # one line per audit entry (ctl watch)

Generic over what a command returns, so a new command needs nothing here:
- a dict: key/value rows; a value that is a list of dicts (or a dict of dicts) gets a table of
  its own under the rows, titled by its key; other nested values are written compactly (JSON);
- a list of dicts: one table whose columns are the union of their keys, in first-seen order;
- a dict of dicts (`{"mm1": {...}, "mm2": {...}}`): one table with the names as first column;
- a table too wide for the terminal: one block of key/value rows per record instead;
- a list of plain values: one per line; anything else: one line.
Every cell is plain text (never rich markup: a strategy named `[bold]` prints as typed).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from orchestrator.control.audit import AuditEntry
from orchestrator.control.replies import Reply

_compact: Final = msgspec.json.Encoder(decimal_format="string", enc_hook=str)
_FIRST: Final = ("operator", "type", "command_id", "ok", "error", "process")  # audit line order
NOTHING: Final = "-"


def render_reply(reply: Reply, *, width: int = 100, color: bool = False) -> str:
    """The reply's result as tables/lines, or `error: <text>` (one line) for an error reply."""
    if not reply.ok:
        return f"error: {one_line(reply.error or 'the service gave no reason')}"
    return render_value(reply.result, width=width, color=color)


def render_value(value: Any, *, width: int = 100, color: bool = False) -> str:
    return _print(_renderables(value, width), width=width, color=color)


def audit_line(entry: AuditEntry) -> str:
    """`<UTC time> <kind> key=value ...`, the usual keys first."""
    record = entry.record
    keys = [k for k in _FIRST if k in record] + [k for k in record if k not in _FIRST]
    keys = [k for k in keys if record[k] is not None]  # `error=-` on every success says nothing
    fields = " ".join(f"{k}={_cell(record[k])}" for k in keys)
    return one_line(f"{utc(entry.time_s)} {entry.kind} {fields}".rstrip())


def utc(time_s: float) -> str:
    try:
        moment = datetime.fromtimestamp(time_s, UTC)
    except (ValueError, OverflowError, OSError):
        return f"t={time_s!r}"
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def one_line(text: str) -> str:
    return " ".join(text.split())


def _renderables(value: Any, width: int) -> list[RenderableType]:
    if _is_records(value) or _is_keyed_records(value):
        return _records(value, None, width)
    if isinstance(value, Mapping):
        if not value:
            return [Text("(empty)")]
        plain = {k: v for k, v in value.items() if not (_is_records(v) or _is_keyed_records(v))}
        out: list[RenderableType] = [_pairs_table(plain)] if plain else []
        for key, sub in value.items():
            if key not in plain:
                out += _records(sub, str(key), width)
        return out
    if isinstance(value, list):
        return [Text("\n".join(_cell(item) for item in value) or "(none)")]
    return [Text("ok" if value is None else _cell(value))]


def _pairs_table(pairs: Mapping[str, Any], title: str | None = None) -> Table:
    table = Table(title=Text(title, style="bold") if title else None, title_justify="left",
                  show_header=False, box=None, padding=(0, 2, 0, 0))  # fmt: skip
    table.add_column(style="bold")
    table.add_column()
    for key, value in pairs.items():
        table.add_row(Text(str(key)), Text(_cell(value)))
    return table


def _records(
    value: list[dict[str, Any]] | dict[str, dict[str, Any]], title: str | None, width: int
) -> list[RenderableType]:
    """One table, columns the union of the records' keys (a dict of records: its keys first,
    as `name`). Too wide for `width`, each record is a block of key/value rows instead: a
    table squeezed into cells of a few letters each says nothing."""
    if isinstance(value, dict):
        rows = [{"name": name, **record} for name, record in value.items()]
    else:
        rows = value
    columns = list(dict.fromkeys(k for row in rows for k in row))
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    natural = [max(len(str(c)), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    if sum(natural) + 3 * len(columns) + 1 > width:  # a cell's padding and one border each
        head = f"{title} " if title else ""
        return [_pairs_table(dict(zip(columns, row, strict=True)), f"{head}[{i + 1}]")
                for i, row in enumerate(cells)]  # fmt: skip
    table = Table(title=Text(title) if title else None, title_justify="left")
    for column in columns:
        table.add_column(Text(str(column)))
    for row in cells:
        table.add_row(*(Text(cell) for cell in row))
    return [table]


def _is_records(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _is_keyed_records(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and bool(value)
        and all(isinstance(v, dict) and v for v in value.values())
    )


def _cell(value: Any) -> str:
    """A value as one cell: text as is, JSON literals as JSON, nested values as compact JSON."""
    if value is None:
        return NOTHING
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return ", ".join(_cell(v) for v in value) if value else "[]"
    return _compact.encode(value).decode()


def _print(renderables: list[RenderableType], *, width: int, color: bool) -> str:
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width,
        force_terminal=color,
        no_color=not color,
        color_system="standard" if color else None,
        highlight=False,
        emoji=False,
        soft_wrap=False,
    )
    for i, renderable in enumerate(renderables):
        if i:
            console.print()
        console.print(renderable)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()).rstrip("\n")

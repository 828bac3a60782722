"""Rows of records written as a table for people, or as CSV or JSON for programs.

The command line's `list` and `query` print through here. A table is for a terminal: on one it
folds long cells to the terminal's width (never cutting them); written anywhere else it is laid
out at its natural width, one line per row. CSV and JSON keep every value whole and at full
precision, one record per row, whatever the terminal, so that `| grep` and `> out.csv` work. By
default a terminal gets the table and a pipe or file gets CSV (the convention of `gh`, `kubectl`
and other tools that print tables), decided by `default_format`.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import sys
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import IO, Any

from rich.console import Console
from rich.table import Table

FORMATS = ("table", "csv", "json")


def default_format(stream: IO[str] | None = None) -> str:
    """"table" when `stream` (default: stdout) is a terminal, "csv" when piped or redirected."""
    stream = stream or sys.stdout
    try:
        return "table" if stream.isatty() else "csv"
    except (AttributeError, ValueError):  # a closed or unusual stream
        return "csv"


def check_format(value: str | None) -> str:
    """The format to use: `value` if allowed, the default for stdout if None."""
    if value is None:
        return default_format()
    if value not in FORMATS:
        from optiscope.errors import OptiscopeError

        raise OptiscopeError(f"--format must be one of {', '.join(FORMATS)}, not '{value}'")
    return value


def write_rows(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    fmt: str,
    *,
    title: str | None = None,
    text: Callable[[Any], str] = str,
    null: str = "NULL",
    show_lines: bool = False,
    stream: IO[str] | None = None,
) -> None:
    """Write `rows` (one sequence of values per row, in `columns` order) as `fmt`.

    `text` turns a non-null value into a table cell (say, a dict of settings into "k=v, ...");
    CSV uses it too for values that are not numbers or strings. JSON writes the values as they
    are, with non-finite floats as the strings "NaN", "Infinity", "-Infinity" (JSON has no such
    numbers; the proto3 JSON mapping writes them the same way) and datetimes in ISO 8601.
    """
    stream = stream or sys.stdout
    if fmt == "json":
        records = [dict(zip(columns, row, strict=True)) for row in rows]
        stream.write(json.dumps(_jsonable(records), indent=1, allow_nan=False) + "\n")
    elif fmt == "csv":
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if v is None else _csv_cell(v, text) for v in row])
    elif fmt == "table":
        table = Table(*columns, title=title, show_lines=show_lines)
        for col in table.columns:
            col.overflow = "fold"  # wrap inside the cell, never cut with an ellipsis
        for row in rows:
            table.add_row(*(null if v is None else text(v) for v in row))
        _print_table(table, stream)
    else:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")


def _print_table(table: Table, stream: IO[str]) -> None:
    terminal = default_format(stream) == "table"
    console = Console(file=stream, highlight=False, soft_wrap=False)
    if not terminal:  # a file or a pipe: lay the table out at its natural width, unwrapped
        width = console.measure(table, options=console.options.update_width(1_000_000)).maximum
        console = Console(file=stream, width=max(width, 1), highlight=False, soft_wrap=False)
    console.print(table)


def _csv_cell(value: Any, text: Callable[[Any], str]) -> Any:
    if isinstance(value, (str, int, float, Decimal)):
        return value
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return text(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if hasattr(value, "_asdict"):  # a NamedTuple: an object with named fields
        return _jsonable(value._asdict())
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return _jsonable(float(value))
    if hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item())
    return str(value)

"""Rows as a table, CSV or JSON: whole values whatever the terminal width."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re

import pytest

from optiscope.errors import OptiscopeError
from optiscope.tabular import check_format, default_format, write_rows

LONG = "a value much longer than any terminal this test pretends to have " * 3
COLUMNS = ["name", "value", "when"]
ROWS = [["x" * 50, LONG, dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc)], ["short", None, None]]


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_table_written_to_a_file_is_never_folded(monkeypatch):
    monkeypatch.setenv("COLUMNS", "20")
    out = io.StringIO()
    write_rows(COLUMNS, ROWS, "table", stream=out)
    lines = out.getvalue().splitlines()
    assert any("x" * 50 in ln and LONG.strip() in ln for ln in lines)
    assert any(" short " in ln and "NULL" in ln for ln in lines)


def test_a_table_on_a_terminal_folds_cells_without_cutting_them(monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    out = Tty()
    write_rows(["value"], [[LONG]], "table", stream=out)
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())  # colours on a terminal
    assert max(len(ln) for ln in text.splitlines()) <= 60
    assert "…" not in text
    body = [ln for ln in text.splitlines() if ln.startswith("│")]
    assert len(body) > 2  # folded over several lines, every character kept
    assert "".join(ch for ch in "".join(body) if ch.isalnum()) == "".join(ch for ch in LONG if ch.isalnum())


def test_csv_and_json_keep_full_precision_and_say_what_is_missing():
    out = io.StringIO()
    write_rows(["a", "b"], [[1 / 3, None], [float("inf"), "t"]], "csv", stream=out)
    assert list(csv.reader(io.StringIO(out.getvalue()))) == [["a", "b"], [repr(1 / 3), ""], ["inf", "t"]]
    out = io.StringIO()
    write_rows(["a", "b"], [[float("nan"), -float("inf")], [1 / 3, {"k": (1, 2)}]], "json", stream=out)
    assert json.loads(out.getvalue()) == [{"a": "NaN", "b": "-Infinity"}, {"a": 1 / 3, "b": {"k": [1, 2]}}]


def test_the_default_is_a_table_on_a_terminal_and_csv_elsewhere():
    assert default_format(Tty()) == "table"
    assert default_format(io.StringIO()) == "csv"
    assert check_format("json") == "json"
    with pytest.raises(OptiscopeError, match="--format must be one of table, csv, json, not 'tsv'"):
        check_format("tsv")

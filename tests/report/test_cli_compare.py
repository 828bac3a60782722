"""`optiscope compare`: the comparison as rich tables, exported to CSV and Parquet."""

from __future__ import annotations

import csv

import numpy as np
import pyarrow.parquet as pq
from typer.testing import CliRunner

from optiscope.cli import app

from .conftest import write_cell


def test_compare_prints_tables_and_exports(handmade, tmp_path):
    write_cell(handmade, "a", "fast", {"f_gap": np.array([[9, 1], [9, 2], [9, 3]], float)}, [0, 10])
    write_cell(handmade, "b", "slow", {"f_gap": np.array([[9, 4], [9, 5], [9, np.nan]], float)}, [0, 10],
               status=["ok", "ok", "diverged"])
    out = CliRunner().invoke(app, [
        "compare", str(handmade.root), "--task", "quadratic", "--metric", "f_gap",
        "--csv", str(tmp_path / "s.csv"), "--parquet", str(tmp_path / "s.parquet"),
    ], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "quadratic: final f_gap" in out.output and "Holm across 1 comparisons" in out.output
    assert "fast" in out.output and "slow" in out.output
    rows = list(csv.DictReader(open(tmp_path / "s.csv")))
    assert [r["cell"] for r in rows] == ["fast", "slow"] and rows[1]["n_finite"] == "2"
    assert pq.read_table(tmp_path / "s.pairwise.parquet").num_rows == 1


def test_compare_bad_task_is_a_one_line_error(handmade):
    write_cell(handmade, "a", "A", {"f_gap": np.ones((2, 2))}, [0, 10])
    out = CliRunner().invoke(app, ["compare", str(handmade.root), "--task", "nope"])
    assert out.exit_code == 2 and "tasks stored: quadratic" in out.output

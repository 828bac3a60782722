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
        "--csv", str(tmp_path / "s.csv"), "--parquet", str(tmp_path / "s.parquet"), "--format", "table",
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


def _two_cells(store):
    write_cell(store, "a", "fast", {"f_gap": np.array([[9, 1], [9, 2], [9, 3], [9, 1.5]], float)}, [0, 10])
    write_cell(store, "b", "slow", {"f_gap": np.array([[9, 4], [9, 5], [9, 6], [9, 4.5]], float)}, [0, 10])


def test_compare_picks_the_only_task_and_the_headline_and_prints_json(handmade):
    import json

    _two_cells(handmade)
    out = CliRunner().invoke(app, ["compare", str(handmade.root), "--format", "json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["task"] == "quadratic" and doc["metric"] == "f_gap" and doc["goal"] == "min"
    assert [r["cell"] for r in doc["summary"]] == ["fast", "slow"]
    (pair,) = doc["pairwise"]
    # fast (a) beats slow (b) on every seed: P(a better) = 1, d favours a, named 'better'
    assert pair["a"] == "fast" and pair["p_a_better"] == 1.0 and pair["d_a_better"] > 0
    assert pair["a12"] == 0.0  # the raw A12 = P(a > b) stays for those who want it
    assert pair["better"] == ("fast" if pair["pvalue_holm"] < 0.05 else "")


def test_compare_csv_when_piped_with_the_pairs_on_request(handmade):
    _two_cells(handmade)
    runner = CliRunner()
    out = runner.invoke(app, ["compare", str(handmade.root)])  # not a terminal: csv
    assert out.exit_code == 0, out.output
    rows = list(csv.DictReader(out.output.splitlines()))
    assert [r["cell"] for r in rows] == ["fast", "slow"] and float(rows[0]["median"]) == 1.75
    out = runner.invoke(app, ["compare", str(handmade.root), "--format", "csv", "--pairs"])
    (pair,) = list(csv.DictReader(out.output.splitlines()))
    assert pair["a"] == "fast" and float(pair["p_a_better"]) == 1.0
    out = runner.invoke(app, ["compare", str(handmade.root), "--format", "table"], env={"COLUMNS": "220"})
    assert "P(a better)" in out.output and "A12" not in out.output


def test_compare_needs_task_when_the_store_has_several(handmade):
    _two_cells(handmade)
    write_cell(handmade, "c", "other", {"f_gap": np.ones((2, 2))}, [0, 10], task="rosenbrock")
    out = CliRunner().invoke(app, ["compare", str(handmade.root)])
    assert out.exit_code == 2 and "--task is needed" in out.output and "rosenbrock" in out.output
    out = CliRunner().invoke(app, ["compare", str(handmade.root), "--task", "rosenbrock", "--format", "csv"])
    assert out.exit_code == 0 and "other" in out.output


def test_compare_explains_alternative(handmade):
    out = CliRunner().invoke(app, ["compare", "--help"], env={"COLUMNS": "200"})
    assert "a the cell listed first" in " ".join(out.output.split())

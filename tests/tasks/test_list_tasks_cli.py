"""`optiscope list tasks` shows every task with its family, settings and defaults, metrics with
their goals, and parameter count: whole, whatever the terminal width."""

from __future__ import annotations

import csv
import io

from typer.testing import CliRunner

from optiscope.cli import app
from optiscope.tasks import TASKS, make_task


def _goal(metric) -> str:
    return metric.goal or "categorical"


def test_list_tasks_shows_every_task_with_family_settings_metrics_and_size():
    """A table asked for while piped is laid out at its natural width: no row is folded, even
    with a 40-column terminal (the test failed here before: cells wrapped to COLUMNS)."""
    result = CliRunner().invoke(app, ["list", "tasks", "--format", "table"], env={"COLUMNS": "40"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for name, cls in TASKS.items():
        row = next((ln for ln in lines if f" {name} " in ln), None)
        assert row is not None, name
        assert f" {cls.family} " in row and cls.description in row
        for metric in cls.metrics[:2]:
            assert f"{metric.name} ({_goal(metric)})" in row
    row = next(ln for ln in lines if " least-squares " in ln)
    assert "condition=100.0" in row and "batch_size=50" in row
    assert f"{make_task('least-squares').num_params():,}" in row
    row = next(ln for ln in lines if " mnist-mlp " in ln)
    assert "data_root=data" in row


def test_list_tasks_as_csv_has_one_whole_record_per_task():
    result = CliRunner().invoke(app, ["list", "tasks", "--format", "csv"], env={"COLUMNS": "20"})
    assert result.exit_code == 0, result.output
    records = list(csv.DictReader(io.StringIO(result.output)))
    assert sorted(r["name"] for r in records) == sorted(TASKS)
    for r in records:
        cls = TASKS[r["name"]]
        assert r["family"] == cls.family and r["description"] == cls.description
        assert r["metrics"] == ", ".join(f"{m.name} ({_goal(m)})" for m in cls.metrics)
    ls = next(r for r in records if r["name"] == "least-squares")
    assert ls["params"] == str(make_task("least-squares").num_params())  # a number, no commas

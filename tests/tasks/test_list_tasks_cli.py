"""`optiscope list tasks` shows every task with its family, settings and defaults, metrics with
their goals, and parameter count."""

from __future__ import annotations

from typer.testing import CliRunner

from optiscope.cli import app
from optiscope.tasks import TASKS, make_task


def test_list_tasks_shows_every_task_with_family_settings_metrics_and_size():
    result = CliRunner().invoke(app, ["list", "tasks"], env={"COLUMNS": "1000"}, terminal_width=1000)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for name, cls in TASKS.items():
        row = next((ln for ln in lines if f" {name} " in ln), None)
        assert row is not None, name
        assert f" {cls.family} " in row
        for metric in cls.metrics[:2]:
            assert f"{metric.name} ({metric.goal})" in row
    row = next(ln for ln in lines if " least-squares " in ln)
    assert "condition=100.0" in row and "batch_size=50" in row
    assert f"{make_task('least-squares').num_params():,}" in row
    row = next(ln for ln in lines if " mnist-mlp " in ln)
    assert "data_root='data'" in row or "data_root=data" in row

"""How the report names tasks: a config `label`, a ModuleTask's own name, or the task with only
its non-default settings; older stores without a recorded name still read well."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from optiscope.cli import app
from optiscope.config import parse_config
from optiscope.engine.runner import run_experiment
from optiscope.report import build_report
from optiscope.report.data import StoreView
from optiscope.store import RunStore

from .conftest import write_cell

TASKS_DIR = Path(__file__).resolve().parents[1] / "tasks"


def config(tasks, steps=6):
    return parse_config({
        "experiment": {"name": "names", "seeds": 2, "steps": steps, "eval_every": 3, "device": "cpu"},
        "tasks": tasks, "optimizers": [{"name": "sgd", "lr": 0.01}],
    })


def test_label_names_the_task_with_a_grid_and_leaves_the_cell_id_alone():
    labelled = config([{"name": "quadratic", "dim": [2, 4], "label": "bowl"}]).cells()
    plain = config([{"name": "quadratic", "dim": [2, 4]}]).cells()
    assert [c.task_display_name() for c in labelled] == ["bowl(dim=2)", "bowl(dim=4)"]
    assert [c.cell_id for c in labelled] == [c.cell_id for c in plain]
    assert "label" not in labelled[0].task_settings


def test_default_names_show_only_non_default_settings():
    (default,) = config([{"name": "quadratic", "dim": 10, "condition": 100.0}]).cells()
    (changed,) = config([{"name": "quadratic", "dim": 3, "condition": 100.0}]).cells()
    assert default.task_display_name() == "quadratic"
    assert changed.task_display_name() == "quadratic(dim=3)"


def test_the_store_records_the_name_and_the_report_and_compare_use_it(tmp_path):
    store = RunStore.create(tmp_path / "s")
    run_experiment(config([{"name": "quadratic", "dim": 2, "label": "bowl"},
                          {"name": "rosenbrock"}]), store)
    names = {r[0] for r in store.query("SELECT DISTINCT task_label FROM runs")[1]}
    assert names == {"bowl", "rosenbrock"}
    page = build_report(store, tmp_path / "r.html").read_text()
    assert "<h2>Task: bowl</h2>" in page and "quadratic(" not in page.split('<section id="setup">')[0]
    out = CliRunner().invoke(app, ["compare", str(store.root), "--task", "bowl", "--format", "csv"])
    assert out.exit_code == 0, out.output


def test_a_module_task_keeps_its_own_name(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TASKS_DIR))
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent))
    store = RunStore.create(tmp_path / "s")
    run_experiment(config([{"name": "named_task:make_named_task", "hidden": 8}], steps=3), store)
    (name,) = {r[0] for r in store.query("SELECT DISTINCT task_label FROM runs")[1]}
    assert name == "tiny-net(hidden=8)"


def test_a_store_without_recorded_names_shows_the_settings_that_differ(handmade):
    write_cell(handmade, "a", "A", {"f_gap": np.ones((2, 2))}, [0, 10],
               task_settings={"dim": 2, "condition": 10.0, "noise": 0.0})
    write_cell(handmade, "b", "B", {"f_gap": np.ones((2, 2))}, [0, 10],
               task_settings={"dim": 4, "condition": 10.0, "noise": 0.0})
    view = StoreView.load(handmade)
    assert sorted(view.task_name(t) for t in view.tasks()) == ["quadratic(dim=2)", "quadratic(dim=4)"]
    assert view.find_task("quadratic(dim=4)") == "quadratic(condition=10.0, dim=4, noise=0.0)"

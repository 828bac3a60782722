"""Landing a cell (optiscope.engine.landing): run rows, func_evals, and the metric declarations
the report reads instead of the task registry."""

from __future__ import annotations

import pytest

from optiscope.config import parse_config
from optiscope.engine.landing import metric_info_rows
from optiscope.engine.result import ENGINE_METRICS
from optiscope.engine.runner import run_experiment
from optiscope.store import RunStore
from optiscope.tasks import make_task


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = RunStore.create(tmp_path_factory.mktemp("landing") / "store")
    summary = run_experiment(parse_config({
        "experiment": {"name": "landing", "seeds": 2, "steps": 6, "eval_every": 3, "device": "cpu"},
        "tasks": [{"name": "six-hump-camel"}],
        "optimizers": [{"name": "sgd", "lr": 0.01}, {"name": "sgd_armijo"}],
    }), store)
    assert not summary.failed, summary.failed
    return store


def test_metric_info_declares_the_tasks_metrics_with_the_headline_first(store):
    task = make_task("six-hump-camel")
    for batch in store.completed_batches():
        rows = store.read_metric_info(batch).to_pylist()
        mine = [(r["name"], r["goal"], r["unit"], r["description"]) for r in rows if r["source"] == "task"]
        assert mine == [(m.name, m.goal, m.unit, m.description) for m in task.metrics]
        assert [r["name"] for r in rows if r["headline"]] == [task.metrics[0].name]
        engine = {r["name"]: r["goal"] for r in rows if r["source"] == "engine"}
        assert engine == {m.name: m.goal for m in ENGINE_METRICS}
        assert {r["name"] for r in rows if r["source"] == "iterate"} == {"iterate.x", "iterate.y"}


def test_every_stored_metric_is_declared_once(store):
    declared = store.query("SELECT cell_id, name, count(*) FROM metric_info GROUP BY ALL HAVING count(*) > 1")[1]
    assert declared == []
    undeclared = store.query(
        "SELECT DISTINCT m.name FROM metrics m JOIN runs r USING (run_id) "
        "ANTI JOIN metric_info i ON i.cell_id = r.cell_id AND i.name = m.name"
    )[1]
    assert undeclared == []
    assert store.categorical_metrics() == {"basin"}


def test_func_evals_column_matches_the_logged_counter(store):
    rows = store.query(
        "SELECT r.optimizer, any_value(r.func_evals), max(m.value) FROM runs r JOIN metrics m USING (run_id) "
        "WHERE m.name = 'func_evals' GROUP BY 1 ORDER BY 1"
    )[1]
    by_opt = {o: (col, logged) for o, col, logged in rows}
    assert by_opt["sgd"] == (0, 0.0)
    col, logged = by_opt["sgd_armijo"]
    assert col > 0 and col == logged  # line-search trials are counted


def test_undeclared_names_are_listed_as_probes_with_the_registrys_goal():
    task = make_task("quadratic", dim=2)
    rows = {r["name"]: r for r in metric_info_rows("c", task, ["f_gap", "grad_norm", "mystery"])}
    assert rows["grad_norm"]["source"] == "probe"
    assert rows["mystery"]["source"] == "probe" and rows["mystery"]["goal"] is None
    assert "iterate.x" not in rows  # declared only when recorded

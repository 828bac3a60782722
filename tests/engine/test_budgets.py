"""Per-optimizer budgets (`steps`, `grad_evals`) and the report's line saying which was equal."""

from __future__ import annotations

import pytest

from optiscope.config import parse_config
from optiscope.engine.runner import run_experiment
from optiscope.errors import OptiscopeError
from optiscope.report.budget import budget_line, budget_of
from optiscope.report.data import CellRuns, StoreView
from optiscope.store import RunStore


def config(optimizers, steps=100):
    return parse_config({
        "experiment": {"name": "budget", "seeds": 2, "steps": steps, "eval_every": 4},
        "tasks": [{"name": "mnist1d-mlp", "hidden": 8}],
        "optimizers": optimizers,
    })


def steps_of(cfg) -> dict[str, int]:
    return {c.display_name: c.steps for c in cfg.cells()}


# -- config ------------------------------------------------------------------------------------
def test_each_optimizer_may_have_its_own_steps():
    cfg = config([{"name": "adam", "steps": 30}, {"name": "sgd"}])
    assert steps_of(cfg) == {"adam": 30, "sgd": 100}
    # Budgets are not hyperparameters: not in the cell's settings, but in its id (via steps).
    (adam, _) = cfg.cells()
    assert "steps" not in adam.hyperparameters and "steps" not in (adam.given_hyperparameters or {})
    assert adam.cell_id != config([{"name": "adam"}]).cells()[0].cell_id


def test_a_grad_evals_budget_gives_sam_half_of_adams_steps():
    cfg = config([{"name": "sam", "grad_evals": 101, "rho": 0.05}, {"name": "adam", "grad_evals": 101},
                  {"name": "asam", "grad_evals": 10}])
    assert steps_of(cfg) == {"sam(rho=0.05)": 50, "adam": 101, "asam": 5}
    assert "grad_evals" not in cfg.cells()[0].hyperparameters


@pytest.mark.parametrize(
    ("entry", "message"),
    [({"name": "adam", "steps": 10, "grad_evals": 10}, r"optimizers\.0.*both steps and grad_evals"),
     ({"name": "sam", "grad_evals": 1}, r"grad_evals = 1 is less than one step \(2 gradient"),
     ({"name": "adam", "grad_evals": 0}, r"optimizers\.0\.grad_evals: Input should be greater"),
     ({"name": "adam", "steps": "many"}, r"optimizers\.0\.steps")],
    ids=["both", "under-one-step", "zero", "not-a-number"],
)
def test_bad_budgets_are_clear_errors_naming_the_field(entry, message):
    with pytest.raises(OptiscopeError, match=message):
        config([entry])


def test_the_trained_runs_spend_the_budget_they_were_given(tmp_path):
    store = RunStore.create(tmp_path / "s")
    run_experiment(config([{"name": "sam", "grad_evals": 8}, {"name": "adam", "grad_evals": 8}]), store)
    rows = dict(store.query("SELECT optimizer, any_value(steps || '/' || grad_evals) FROM runs GROUP BY 1")[1])
    assert rows == {"sam": "4/8", "adam": "8/8"}
    view = StoreView.load(store)
    (task,) = view.tasks()
    assert budget_line(view, task) == "Budget: equal gradient evaluations (8); steps differ (4 to 8)."
    from optiscope.report.html import build_report

    html = build_report(store, tmp_path / "report.html").read_text()
    assert "equal gradient evaluations (8); steps differ (4 to 8)" in html


def test_a_grad_evals_budget_needs_a_fixed_cost_per_step(monkeypatch):
    from optiscope.optim.armijo import SGDArmijo

    assert steps_of(config([{"name": "sgd_armijo", "grad_evals": 10}])) == {"sgd_armijo": 10}
    monkeypatch.setattr(SGDArmijo, "grad_evals_per_step", "1 + line-search trials", raising=False)
    with pytest.raises(OptiscopeError, match=r"grad_evals needs a fixed number .* set steps instead"):
        config([{"name": "sgd_armijo", "grad_evals": 10}])


# -- the report's line -------------------------------------------------------------------------
def cell(steps, grad_evals, status=("ok", "ok")) -> CellRuns:
    n = len(status)
    return CellRuns(
        cell_id=f"c{steps}-{grad_evals}", task_key="t", task="t", optimizer="o", label="o",
        hyperparameters={}, seeds=list(range(n)), run_ids=[str(i) for i in range(n)],
        status=list(status), diverged_step=[None if s == "ok" else 1 for s in status], error=None,
        wall_time_s=1.0, grad_evals=grad_evals, mode="ensemble", steps=steps,
    )


@pytest.mark.parametrize(
    ("cells", "line"),
    [([cell(100, 100), cell(100, 100)],
      "Budget: equal steps (100) and equal gradient evaluations (100)."),
     ([cell(100, 100), cell(100, 200)],
      "Budget: equal steps (100); gradient evaluations differ (100 to 200)."),
     ([cell(50, 100), cell(100, 100)],
      "Budget: equal gradient evaluations (100); steps differ (50 to 100)."),
     ([cell(50, 90), cell(100, 100)],
      "Budget: neither equal: steps 50 to 100, gradient evaluations 90 to 100."),
     ([cell(100, 100), cell(100, 3, ("diverged", "diverged")), cell(100, 0, ("failed", "failed"))],
      "Budget: equal steps (100) and equal gradient evaluations (100) (over 1 of 3 cells; the "
      "others failed or diverged before the end)."),
     ([cell(100, 0, ("failed",))], "Budget: no cell of this task trained to the end.")],
    ids=["both", "steps", "grad-evals", "neither", "left-out", "none"],
)
def test_the_budget_line_says_which_budget_was_equal(cells, line):
    assert budget_of(cells).describe() == line

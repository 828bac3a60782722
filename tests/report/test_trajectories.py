"""Re-run trajectories of 2-D synthetic cells agree with what the store recorded."""

from __future__ import annotations

import numpy as np
import pytest

from optiscope.config import parse_config
from optiscope.engine.runner import run_experiment
from optiscope.report import trajectories as tr
from optiscope.report.data import StoreView
from optiscope.store import RunStore


@pytest.fixture(scope="module")
def view(tmp_path_factory):
    store = RunStore.create(tmp_path_factory.mktemp("traj") / "store")
    run_experiment(parse_config({
        "experiment": {"name": "t", "seeds": 3, "steps": 40, "eval_every": 20},
        "tasks": [{"name": "quadratic", "dim": 2, "condition": 10.0}, {"name": "quadratic", "dim": 3}],
        "optimizers": [{"name": "adam", "lr": 0.1}, {"name": "torch.optim:SGD", "lr": 0.05}],
    }), store)
    return StoreView.load(store)


def test_only_two_dimensional_synthetic_tasks_qualify(view):
    by_task = {c.task_key: tr.is_2d_synthetic(c) for c in view.cells}
    assert by_task == {"quadratic(condition=10.0, dim=2)": True, "quadratic(dim=3)": False}


@pytest.mark.parametrize("optimizer", ["adam", "torch.optim:SGD"])
def test_rerun_ends_where_the_store_says_in_instance_coordinates(view, optimizer):
    cell = next(c for c in view.cells if c.optimizer == optimizer and c.task_key.endswith("dim=2)"))
    t = tr.rerun(cell, view.store, n_seeds=2)
    assert t.z.shape == (2, 41, 2)
    assert t.max_abs_diff_to_stored is not None and t.max_abs_diff_to_stored < 1e-5
    # The stored dist_to_min (computed by the task at the last evaluation) is |z_final - z*|,
    # with the quadratic's minimiser at z* = 0.
    stored = view.final_values(cell, "dist_to_min")[:2]
    np.testing.assert_allclose(np.linalg.norm(t.z[:, -1], axis=1), stored, rtol=1e-4, atol=1e-6)


def test_contour_grid_evaluates_the_function_and_contains_the_minimiser(view):
    cell = next(c for c in view.cells if c.task_key.endswith("dim=2)"))
    t = tr.rerun(cell, view.store, n_seeds=2)
    (gx, gy, f), mins = tr.contour_grid(cell.task, cell.task_settings, t.z, n=30)
    assert gx.min() <= mins[0, 0] <= gx.max() and gy.min() <= mins[0, 1] <= gy.max()
    # f(z) = 1/2 (z0^2 + 10 z1^2) for condition 10 in two dimensions.
    np.testing.assert_allclose(f, 0.5 * (gx**2 + 10 * gy**2), rtol=1e-6, atol=1e-9)
